"""SecAgg+ secure aggregation (Bonawitz et al. 2017; Bell et al. 2020), pure Python.

Data in, data out: `SecAggHospital` and `SecAggCoordinator` exchange the plain messages of
`messages.py`; wiring them into Flower apps is the caller's job. See
docs/secure-aggregation.md for the protocol and its security argument.
"""

from medfed.shared.secagg.attempt import SecureAggregate
from medfed.shared.secagg.config import SecureAggregationConfig
from medfed.shared.secagg.coordinator import SecAggCoordinator
from medfed.shared.secagg.hospital import SecAggHospital
from medfed.shared.secagg.messages import (
    MaskedUpload,
    Roster,
    SetupAdvertisement,
    UnmaskRequest,
    UnmaskResponse,
    parse_message,
)
from medfed.shared.secagg.quantize import check_no_overflow, quantization_error_bound
from medfed.shared.secagg.recovery import UnmaskIncomplete

__all__ = [
    "MaskedUpload",
    "Roster",
    "SecAggCoordinator",
    "SecAggHospital",
    "SecureAggregate",
    "SecureAggregationConfig",
    "SetupAdvertisement",
    "UnmaskIncomplete",
    "UnmaskRequest",
    "UnmaskResponse",
    "check_no_overflow",
    "parse_message",
    "quantization_error_bound",
]
