"""The one error hierarchy of medfed.

Every error a user can cause is a `MedfedError` whose message names the file, the key or
column, and the fix. `code` is what crosses the network: a stable identifier plus the
message, never a traceback.
"""

from __future__ import annotations


class MedfedError(Exception):
    """Base class: a problem medfed can explain in one line."""

    code = "medfed_error"


class ConfigError(MedfedError):
    """A configuration file, key or value is wrong."""

    code = "config_error"


class DataError(MedfedError):
    """A data file is missing, malformed or yields an unusable partition."""

    code = "data_error"


class PrivacyBudgetExceeded(MedfedError):
    """Training would push a hospital's epsilon past its budget."""

    code = "privacy_budget_exceeded"

    def __init__(self, message: str, *, spent_epsilon: float, max_epsilon: float) -> None:
        super().__init__(message)
        self.spent_epsilon = spent_epsilon
        self.max_epsilon = max_epsilon


class EvaluationBudgetExceeded(MedfedError):
    """Evaluating another model would pass the hospital's test-split budget or its cap."""

    code = "evaluation_budget_exceeded"


class PolicyViolation(MedfedError):
    """A coordinator instruction breaks the hospital's policy."""

    code = "policy_violation"


class ModelMismatch(MedfedError):
    """The coordinator's model does not fit the hospital's data (shape, classes, tensors)."""

    code = "model_mismatch"


class SecureAggregationError(MedfedError):
    """A secure-aggregation step cannot complete safely."""

    code = "secure_aggregation_error"


class SecureAggregationRefused(SecureAggregationError):
    """A hospital refuses a secure-aggregation request that could release more than one sum.

    `code` names the reason (e.g. `secure_aggregation_required`); the reply's status is
    "refused", as for a budget refusal.
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code


class LedgerError(MedfedError):
    """A privacy ledger is unreadable, broken or does not verify."""

    code = "ledger_error"


class MalformedLedgerLine(LedgerError):
    """A ledger line is not a JSON entry; `line` is its 1-based number."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


class ProtocolError(MedfedError):
    """A message from the other side does not follow medfed's protocol."""

    code = "protocol_error"


class HospitalUnavailable(MedfedError):
    """The hospital's warm executor did not start (it loads the data and the ClientApp)."""

    code = "hospital_unavailable"


ERRORS_BY_CODE: dict[str, type[MedfedError]] = {
    cls.code: cls
    for cls in (
        MedfedError,
        ConfigError,
        DataError,
        PrivacyBudgetExceeded,
        EvaluationBudgetExceeded,
        PolicyViolation,
        ModelMismatch,
        SecureAggregationError,
        LedgerError,
        ProtocolError,
        HospitalUnavailable,
    )
}
