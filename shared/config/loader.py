"""Load a run configuration: TOML file, then `MEDFED_` environment, then `--set` overrides."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from medfed.shared.config.models import RunConfig
from medfed.shared.errors import ConfigError

ENV_PREFIX = "MEDFED_"


def parse_value(text: str) -> Any:
    """A `--set` value as TOML would read it (`3`, `1e-5`, `true`, `"x"`); bare words stay text."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(assignment: str, source: str) -> tuple[str, Any]:
    """Split `key.sub=value` into its dotted key and parsed value."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"{source}: '{assignment}' is not key=value (e.g. privacy.delta=1e-5)")
    return key.strip(), parse_value(value.strip())


def env_overrides(environ: Mapping[str, str]) -> list[tuple[str, Any]]:
    """`MEDFED_PRIVACY__TARGET_EPSILON=2` → `("privacy.target_epsilon", 2)`."""
    return [
        (name[len(ENV_PREFIX) :].lower().replace("__", "."), parse_value(value))
        for name, value in sorted(environ.items())
        if name.startswith(ENV_PREFIX) and name not in {"MEDFED_HOME"}
    ]


def apply_override(tree: dict[str, Any], dotted_key: str, value: Any, source: str) -> None:
    """Set `tree[a][b] = value` for `a.b`, refusing to descend through a non-table."""
    *parents, leaf = dotted_key.split(".")
    node = tree
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{source}: '{dotted_key}': '{part}' is a value, not a table")
        node = child
    node[leaf] = value


def read_toml(path: Path, missing: str) -> dict[str, Any]:
    """The table in `path`.

    Raises:
        ConfigError: `{path}: {missing}` when absent, or the TOML error when unreadable.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: {missing}")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def first_problem(exc: ValidationError, prefix: tuple[str, ...] = ()) -> str:
    """`key.path: message` of a pydantic error's first problem."""
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in (*prefix, *first['loc']))}: {first['msg']}"


def _describe(error: dict[str, Any]) -> str:
    key = ".".join(str(part) for part in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        return f"unknown key '{key}' (check the spelling against configs/heart_disease.toml)"
    return f"{key}: {error['msg']} (got {error.get('input')!r})"


def validate_tree(tree: dict[str, Any], source: str) -> RunConfig:
    """Validate a raw config tree; the error names `source` and the first bad key."""
    try:
        return RunConfig.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ConfigError(f"{source}: {_describe(first)}") from None


def load_config(
    path: str | Path,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> RunConfig:
    """Load `path`, apply `MEDFED_*` environment then `--set key=value` overrides, validate.

    Raises:
        ConfigError: missing or unreadable file, bad TOML, unknown key or bad value.
    """
    path = Path(path)
    missing = "config file not found (pass an existing .toml, e.g. configs/heart_disease.toml)"
    tree = read_toml(path, missing)
    for key, value in env_overrides(os.environ if environ is None else environ):
        apply_override(tree, key, value, f"{path} (environment {ENV_PREFIX}{key.upper()})")
    for assignment in overrides:
        key, value = parse_assignment(assignment, f"{path} (--set)")
        apply_override(tree, key, value, f"{path} (--set {assignment})")
    return validate_tree(tree, str(path))


def to_toml(config: RunConfig) -> str:
    """The resolved configuration as TOML (written to RUN_DIR/config.toml)."""
    data = config.model_dump(mode="json", exclude_none=True)
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict)}
    lines = [f"{key} = {_toml_value(value)}" for key, value in scalars.items()]
    for table, values in data.items():
        if isinstance(values, dict):
            lines.append(f"\n[{table}]")
            lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{_toml_value(str(key))} = {_toml_value(item)}" for key, item in value.items())
        return "{ " + ", ".join(items) + " }"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
