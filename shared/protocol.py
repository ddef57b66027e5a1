"""What travels in a medfed message: record keys, model weights, typed outcomes.

One training message per hospital per round carries the global model and the round's
instruction; the reply carries the update, a `TrainingReport`, the DP `EvaluationReport` of
the received model (shared/hospital_report.py declares every field), and an outcome
(ok / refused / error) with a code and a safe message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from medfed.shared.errors import (
    EvaluationBudgetExceeded,
    MedfedError,
    ModelMismatch,
    PolicyViolation,
    PrivacyBudgetExceeded,
    ProtocolError,
    SecureAggregationError,
    SecureAggregationRefused,
)
from medfed.shared.hospital_report import EvaluationReport, TrainingReport

if TYPE_CHECKING:  # torch loads only where a model is built
    import torch

ARRAYS = "arrays"
CONFIG = "config"
TRAINING = TrainingReport.record_name
EVALUATION = EvaluationReport.record_name
OUTCOME = "outcome"
WEIGHT_KEY = "num-examples"  # Flower strategies weight replies by this metric
# Secure aggregation: the roster rides on training messages, the masked upload on replies,
# setup and unmask are query messages.
SECAGG_ROSTER, SECAGG_UPLOAD = "secagg.roster", "secagg.upload"
SECAGG_SETUP, SECAGG_UNMASK = "secagg.setup", "secagg.unmask"

REFUSALS = (
    PrivacyBudgetExceeded,
    PolicyViolation,
    EvaluationBudgetExceeded,
    SecureAggregationRefused,
    ModelMismatch,
)
# Errors whose text is about the coordinator's request or the hospital's own settings and
# accounting; any other error (data, ledger, configuration) may quote records, counts or local
# paths, so only its code and a fixed text leave the hospital (details stay in its log).
SPEAKABLE = (*REFUSALS, ProtocolError, SecureAggregationError)
WITHHELD = "the hospital could not use its data, ledger or configuration; see the hospital's log"


def state_to_arrays(state: dict[str, torch.Tensor]) -> ArrayRecord:
    """A torch state_dict as an ArrayRecord (keys kept, float tensors as numpy)."""
    return ArrayRecord(
        {key: Array(np.ascontiguousarray(t.detach().cpu().numpy())) for key, t in state.items()}
    )


def arrays_to_state(record: ArrayRecord) -> dict[str, torch.Tensor]:
    """An ArrayRecord back into a torch state_dict."""
    import torch

    return {key: torch.from_numpy(array.numpy().copy()) for key, array in record.items()}


@dataclass(frozen=True)
class Outcome:
    """How a hospital answered: `status` is ok, refused (budget/policy) or error."""

    hospital: str
    status: str
    code: str = ""
    message: str = ""

    def to_record(self) -> ConfigRecord:
        return ConfigRecord(
            {
                "hospital": self.hospital,
                "status": self.status,
                "code": self.code,
                "message": self.message,
            }
        )

    @classmethod
    def from_record(cls, record: ConfigRecord) -> Outcome:
        return cls(
            str(record["hospital"]),
            str(record["status"]),
            str(record["code"]),
            str(record["message"]),
        )

    @classmethod
    def from_error(cls, hospital: str, error: MedfedError) -> Outcome:
        status = "refused" if isinstance(error, REFUSALS) else "error"
        message = str(error) if isinstance(error, SPEAKABLE) else WITHHELD
        return cls(hospital, status, error.code, message)


def reply_content(
    outcome: Outcome,
    state: dict[str, torch.Tensor] | None = None,
    training: TrainingReport | None = None,
    evaluation: EvaluationReport | None = None,
) -> RecordDict:
    """Assemble a hospital's reply; absent parts are left out."""
    content = RecordDict({OUTCOME: outcome.to_record()})
    if state is not None:
        content[ARRAYS] = state_to_arrays(state)
    if training is not None:
        content[TRAINING] = training.to_record()
    if evaluation is not None:
        content[EVALUATION] = evaluation.to_record()
    return content
