"""The audit report's data: what `report.json` holds and `report.html` shows.

Every number here is copied from the run directory (privacy.json, metrics.jsonl) or recomputed
from the hospitals' ledgers; nothing is rounded. `docs/privacy.md` documents each field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 2


class Metrics(BaseModel):
    """Classification metrics of one model on one test split (None: undefined or not reported)."""

    model_config = ConfigDict(extra="ignore")

    accuracy: float | None = None
    auroc: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    loss: float | None = None
    num_examples: float | None = None


class RoundEpsilon(BaseModel):
    """A hospital's cumulative ε after training in `round` (from metrics.jsonl)."""

    round: int
    epsilon: float


class LedgerAudit(BaseModel):
    """What the hospital's signed ledger says, checked from its entries alone."""

    file: str = Field(description="path relative to the run directory")
    valid: bool
    entries: int = Field(description="lines read, header included")
    round_entries: int
    runs: int = Field(description="distinct run_id values among the round entries")
    bad_line: int | None = Field(description="1-based line of the first problem; None if valid")
    reason: str = Field(description="why the ledger does not verify; empty if valid")
    epsilon: float | None = Field(
        description="ε of the training stream (label counts and rounds) recomputed from the ledger"
    )
    evaluation_epsilon: float | None = Field(
        default=None,
        description="ε of the test stream (evaluation releases) recomputed; None without any",
    )
    steps: int | None = Field(description="optimizer steps summed over every round entry")
    public_key: str = Field(description="base64 Ed25519 key in the ledger header")
    public_key_sha256: str = Field(description="hex SHA-256 of the raw 32-byte header key")
    key_pinned: bool = Field(description="checked against ledgers/keys/NAME.ed25519.pub")
    private_key_present: bool = Field(description="the hospital's signing key lies beside it")


class HospitalAudit(BaseModel):
    """One hospital: the coordinator's privacy record, its ledger, and its metrics."""

    name: str
    status: str | None = Field(description="active, exhausted or refused (privacy.json)")
    reason: str | None = None
    epsilon: float | None = Field(description="ε spent, lifetime of the dataset (privacy.json)")
    delta: float | None = None
    target_epsilon: float | None = Field(description="what this run was allowed to spend")
    max_epsilon: float | None = Field(description="lifetime budget of the dataset")
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    sample_rate: float | None = None
    steps: int | None = Field(description="optimizer steps, lifetime (privacy.json)")
    accountant: str | None = None
    evaluation_epsilon: float | None = Field(
        default=None, description="ε spent on the test split by DP evaluations (privacy.json)"
    )
    max_evaluation_epsilon: float | None = Field(
        default=None, description="the hospital's lifetime budget of its test split"
    )
    privacy: str | None = Field(
        default=None, description="'off' when the hospital said it trained without DP"
    )
    within_budget: bool | None = Field(description="epsilon <= max_epsilon; None if unknown")
    ledger: LedgerAudit | None = Field(description="None when no ledger was found")
    epsilon_matches_ledger: bool | None = Field(
        description="|privacy.json ε − ledger ε| <= 1e-6; None if either is missing"
    )
    epsilon_by_round: list[RoundEpsilon] = Field(default_factory=list)
    final_metrics: Metrics | None = Field(description="the final model on this test split")


class RoundMetrics(BaseModel):
    """One evaluation of a global model: `after_round` rounds of training (0: initial)."""

    after_round: int
    phase: str = Field(description="train (model received at round after_round+1) or final")
    seconds: float | None = None
    global_: Metrics = Field(alias="global", description="means weighted by num_examples")
    hospitals: dict[str, Metrics]
    skipped: dict[str, str] = Field(default_factory=dict)

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ReleasedValue(BaseModel):
    """One value a hospital sends to the coordinator, and why it is within the guarantee."""

    name: str
    record: str = Field(description="the reply record that carries it")
    release: str = Field(description="dp (a ledgered DP mechanism) or declared")
    why: str


class AuditReport(BaseModel):
    """The privacy officer's audit of one run directory (`report.json`)."""

    schema_version: int = SCHEMA_VERSION
    generated_at: datetime
    run_dir: str
    run_name: str
    config_sha256: str = Field(description="SHA-256 of config.toml's bytes")
    privacy_enabled: bool
    rounds_planned: int | None
    rounds_completed: int
    status: Literal["completed", "stopped", "incomplete"] = Field(
        default="incomplete",
        description="completed; stopped early (why: `stopped`); incomplete: no final line",
    )
    stopped: str | None = None
    hospitals: list[HospitalAudit]
    rounds: list[RoundMetrics]
    final_global: Metrics | None
    guarantee: list[str] = Field(description="plain-language meaning of the guarantee")
    coordinator_sees: list[ReleasedValue] = Field(
        default_factory=list, description="every value a hospital's replies carry"
    )
    issues: list[str] = Field(description="findings the privacy officer should look at")
