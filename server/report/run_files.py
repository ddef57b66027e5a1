"""Read the run directory's config, metrics and privacy files for the audit report.

Each reader raises `DataError` naming the file and the fix; values that JSON cannot hold
(NaN, Infinity) or that are not numbers become None.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from medfed.shared.errors import DataError

RERUN = "run `medfed simulate` first"


class PrivacyRecord(BaseModel):
    """One hospital's entry of privacy.json (null values when DP is disabled)."""

    model_config = ConfigDict(extra="ignore")

    status: str | None = None
    epsilon: float | None = None
    delta: float | None = None
    target_epsilon: float | None = None
    max_epsilon: float | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    sample_rate: float | None = None
    steps: int | None = None
    accountant: str | None = None
    evaluation_epsilon: float | None = None
    max_evaluation_epsilon: float | None = None
    privacy: str | None = None
    reason: str | None = None

    @field_validator(
        "epsilon",
        "delta",
        "target_epsilon",
        "max_epsilon",
        "noise_multiplier",
        "max_grad_norm",
        "sample_rate",
        "evaluation_epsilon",
        "max_evaluation_epsilon",
        mode="after",
    )
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        return value if value is None or math.isfinite(value) else None


class MetricsLine(BaseModel):
    """One line of metrics.jsonl (hospital metric values are cleaned by `numbers`)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    round: int
    phase: str = "train"
    seconds: float | None = None
    hospitals: dict[str, dict[str, Any]] = Field(default_factory=dict)
    global_: dict[str, Any] = Field(default_factory=dict, alias="global")
    skipped: dict[str, str] = Field(default_factory=dict)
    stopped: str | None = None


@dataclass(frozen=True)
class RunFiles:
    """The parsed inputs of one report."""

    config: dict[str, Any]
    config_text: str
    config_sha256: str
    metrics: list[MetricsLine]
    privacy: dict[str, PrivacyRecord]


def numbers(values: dict[str, Any]) -> dict[str, float | None]:
    """Keep finite numbers; anything else (null, NaN, text) becomes None."""
    cleaned: dict[str, float | None] = {}
    for key, value in values.items():
        is_number = isinstance(value, int | float) and not isinstance(value, bool)
        cleaned[key] = float(value) if is_number and math.isfinite(value) else None
    return cleaned


def _required(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: missing ({RERUN})") from None
    except OSError as error:
        raise DataError(f"{path}: unreadable ({error.strerror}); check its permissions") from None


def read_config(path: Path) -> tuple[dict[str, Any], str, str]:
    """The resolved configuration, its text and the SHA-256 of its bytes.

    Raises:
        DataError: config.toml is missing or not TOML.
    """
    raw = _required(path)
    try:
        text = raw.decode("utf-8")
        config = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise DataError(f"{path}: not valid TOML ({error}); restore it or {RERUN}") from None
    return config, text, hashlib.sha256(raw).hexdigest()


def read_metrics(path: Path) -> list[MetricsLine]:
    """Every line of metrics.jsonl, in order.

    Raises:
        DataError: the file is missing, or a line is not a metrics object.
    """
    lines = []
    text = _required(path).decode("utf-8", errors="replace")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append(MetricsLine.model_validate(json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}: line {number} is not JSON ({error.msg}); {RERUN}") from None
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "line"
            raise DataError(
                f"{path}: line {number}: {where}: {problem['msg']} (expected a metrics.jsonl "
                f"line with round, phase and hospitals; {RERUN})"
            ) from None
    return lines


def read_privacy(path: Path) -> dict[str, PrivacyRecord]:
    """privacy.json as one record per hospital.

    Raises:
        DataError: the file is missing, not JSON, or not an object of hospital records.
    """
    try:
        data = json.loads(_required(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not valid JSON ({error}); {RERUN}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object of hospitals, got {type(data).__name__}")
    records = {}
    for hospital, record in data.items():
        try:
            records[hospital] = PrivacyRecord.model_validate(record)
        except ValidationError as error:
            problem = error.errors()[0]
            where = ".".join(str(part) for part in problem["loc"]) or "record"
            raise DataError(f"{path}: {hospital}: {where}: {problem['msg']}; {RERUN}") from None
    return records


def read_run_files(run_dir: Path) -> RunFiles:
    """config.toml, metrics.jsonl and privacy.json of `run_dir`.

    Raises:
        DataError: `run_dir` is not a directory, or a file is missing or malformed.
    """
    if not run_dir.is_dir():
        raise DataError(f"{run_dir}: not a run directory ({RERUN}, or check the path)")
    config, text, fingerprint = read_config(run_dir / "config.toml")
    return RunFiles(
        config=config,
        config_text=text,
        config_sha256=fingerprint,
        metrics=read_metrics(run_dir / "metrics.jsonl"),
        privacy=read_privacy(run_dir / "privacy.json"),
    )
