"""What the coordinator holds for one round attempt, and its outcome; both as plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from medfed.shared.secagg.messages import MaskedUpload, UnmaskResponse


@dataclass(frozen=True)
class SecureAggregate:
    """The outcome of one round: Σ w·x / Σ w over the survivors, and who they were."""

    weighted_average: np.ndarray
    total_weight: int
    survivors: list[int]
    dropped: list[int]


@dataclass
class AttemptRecord:
    """Uploads, the survivor set once unmasking began, and the answers of one attempt."""

    round_number: int
    attempt: int
    uploads: dict[int, MaskedUpload] = field(default_factory=dict)
    survivors: list[int] | None = None
    responses: dict[int, UnmaskResponse] = field(default_factory=dict)
    closed: bool = False
    aggregated: bool = False  # its sum was recovered: the round is over, no later attempt

    def vector_length(self) -> int | None:
        """The length every upload of this attempt must have, once one has arrived."""
        first = next(iter(self.uploads.values()), None)
        return None if first is None else len(first.masked)

    def to_dict(self) -> dict[str, Any]:
        return {
            "round_number": self.round_number,
            "attempt": self.attempt,
            "uploads": [upload.to_dict() for upload in self.uploads.values()],
            "survivors": None if self.survivors is None else list(self.survivors),
            "responses": [response.to_dict() for response in self.responses.values()],
            "closed": self.closed,
            "aggregated": self.aggregated,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttemptRecord:
        uploads = [MaskedUpload.from_dict(item) for item in data["uploads"]]
        responses = [UnmaskResponse.from_dict(item) for item in data["responses"]]
        return cls(
            round_number=int(data["round_number"]),
            attempt=int(data["attempt"]),
            uploads={upload.hospital_id: upload for upload in uploads},
            survivors=None if data["survivors"] is None else [int(u) for u in data["survivors"]],
            responses={response.hospital_id: response for response in responses},
            closed=bool(data["closed"]),
            aggregated=bool(data.get("aggregated", False)),
        )
