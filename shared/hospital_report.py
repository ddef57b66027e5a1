"""What a hospital's reply tells the coordinator, field by field.

Every value that leaves a hospital is either `dp` (the output, or post-processing of the
output, of a mechanism the hospital accounted in its ledger) or `declared` (listed by name in
the audit report's "what the coordinator sees" table with why it is acceptable). A reply
carries two typed records: `TrainingReport` after a training round, `EvaluationReport` for
the DP evaluation of a received model; record keys are the field names.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar, Literal

from flwr.app import ConfigRecord

from medfed.shared.errors import ProtocolError

Release = Literal["dp", "declared"]


@dataclass(frozen=True)
class ReleasedField:
    """One value a hospital sends: where it rides, dp or declared, and why that is acceptable."""

    name: str
    record: str
    release: Release
    why: str


_SIZE = "post-processing of the DP label-count release (ledger entry `count`, train stream)"
_ACCOUNTING = (
    "accounting output: a function of σ, q and step counts, which are public configuration "
    "or post-processing of DP releases, never of the records themselves"
)
_EVALUATION = (
    "post-processing of the DP release of test-split score histograms and clipped loss "
    "(ledger entry `evaluation`, test stream)"
)

RELEASED_FIELDS: tuple[ReleasedField, ...] = (
    ReleasedField("update", "arrays", "dp", "the DP-SGD output (ledger entry `round`)"),
    ReleasedField(
        "masked update",
        "secagg.upload",
        "dp",
        "(DP-SGD output × released weight) plus masks; only the sum is unmasked",
    ),
    ReleasedField(
        "secure-aggregation keys and shares",
        "secagg.setup / secagg.upload / secagg.unmask",
        "declared",
        "fresh X25519 public keys and the hospital's name, signed with its identity key; its "
        "signed digest of the roster; Shamir shares of its own mask seeds: independent of "
        "patient data",
    ),
    ReleasedField(
        "reply timing",
        "(transport)",
        "declared",
        "not DP: how long a hospital takes to answer grows with its training-split size, and any "
        "coordinator can time the replies it receives",
    ),
    ReleasedField(
        "outcome",
        "outcome",
        "declared",
        "status, error code and a message: refusals explain the request or the hospital's own "
        "limits (a budget refusal carries the spent ε and the budget; a model mismatch the "
        "sample shape and class count the hospital's config fixes); data, ledger and "
        "configuration errors send a fixed text, the details stay in the hospital's log",
    ),
    ReleasedField("num_examples", "training", "dp", f"training-split size: {_SIZE}"),
    ReleasedField(
        "epsilon", "training", "declared", f"lifetime ε of the training split: {_ACCOUNTING}"
    ),
    ReleasedField("epsilon_at_run_start", "training", "declared", _ACCOUNTING),
    ReleasedField(
        "max_epsilon", "training", "declared", "the hospital's own lifetime budget setting"
    ),
    ReleasedField("delta", "training", "declared", "the hospital's own δ setting"),
    ReleasedField("accountant", "training", "declared", "the hospital's own accountant setting"),
    ReleasedField(
        "noise_multiplier",
        "training",
        "declared",
        "σ calibrated from the budget, the coordinator's plan and the released size",
    ),
    ReleasedField("max_grad_norm", "training", "declared", "clipping norm C from the instruction"),
    ReleasedField(
        "privacy",
        "training",
        "declared",
        "'off' when the hospital trains without DP: then its update, size and metrics are exact "
        "and the report names the hospital",
    ),
    ReleasedField(
        "sample_rate", "training", "declared", f"Poisson rate from the batch size and the {_SIZE}"
    ),
    ReleasedField("steps", "training", "declared", "this round's optimizer steps, planned from q"),
    ReleasedField("total_steps", "training", "declared", "lifetime optimizer steps in the ledger"),
    ReleasedField(
        "evaluation_epsilon", "training", "declared", f"ε of the test split: {_ACCOUNTING}"
    ),
    ReleasedField(
        "max_evaluation_epsilon", "training", "declared", "the hospital's test-split budget"
    ),
    *(
        ReleasedField(name, "evaluation", "dp", _EVALUATION)
        for name in ("accuracy", "auroc", "sensitivity", "specificity", "loss", "num_examples")
    ),
    ReleasedField(
        "evaluation_epsilon", "evaluation", "declared", f"ε of the test split: {_ACCOUNTING}"
    ),
)


class _Report:
    """Shared wire code: a frozen dataclass of scalars ↔ a ConfigRecord keyed by field name."""

    record_name: ClassVar[str]

    def to_record(self) -> ConfigRecord:
        return ConfigRecord({k: v for k, v in asdict(self).items() if v is not None})

    @classmethod
    def from_record(cls, record: ConfigRecord) -> Any:
        """Parse a hospital's record.

        Raises:
            ProtocolError: an unknown field (one no report declares) or a value of the wrong type.
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(record) - set(known))
        if unknown:
            raise ProtocolError(
                f"hospital '{cls.record_name}' record has undeclared field(s) {unknown}"
            )
        values: dict[str, Any] = {}
        for name, value in record.items():
            kind = str if known[name].type in ("str", "str | None") else float
            if kind is float and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise ProtocolError(f"hospital '{cls.record_name}' field '{name}' is not a number")
            values[name] = kind(value)
        try:
            return cls(**values)
        except TypeError as error:
            raise ProtocolError(
                f"hospital '{cls.record_name}' record is incomplete ({error})"
            ) from None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class TrainingReport(_Report):
    """What a hospital says about a training round (all fields registered above)."""

    record_name: ClassVar[str] = "training"

    num_examples: float | None = None
    steps: float | None = None
    epsilon: float | None = None
    epsilon_at_run_start: float | None = None
    max_epsilon: float | None = None
    delta: float | None = None
    accountant: str | None = None
    noise_multiplier: float | None = None
    max_grad_norm: float | None = None
    privacy: str | None = None
    sample_rate: float | None = None
    total_steps: float | None = None
    evaluation_epsilon: float | None = None
    max_evaluation_epsilon: float | None = None


@dataclass(frozen=True)
class EvaluationReport(_Report):
    """DP evaluation metrics of one received model on the hospital's test split."""

    record_name: ClassVar[str] = "evaluation"

    num_examples: float
    accuracy: float | None = None
    auroc: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None
    loss: float | None = None
    evaluation_epsilon: float | None = None

    def metrics(self) -> dict[str, float]:
        """The classification metrics (what metrics.jsonl records per hospital)."""
        return {k: v for k, v in self.as_dict().items() if k != "evaluation_epsilon"}


def registered(record: str) -> set[str]:
    """Names of the fields `record` may carry."""
    return {f.name for f in RELEASED_FIELDS if f.record == record}
