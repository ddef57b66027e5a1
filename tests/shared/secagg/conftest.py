"""A small in-memory federation: one coordinator, n hospitals, messages passed as dicts."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medfed.shared.crypto.identity import public_bytes
from medfed.shared.secagg import (
    MaskedUpload,
    SecAggCoordinator,
    SecAggHospital,
    SecureAggregate,
    SecureAggregationConfig,
    UnmaskRequest,
)
from medfed.shared.secagg.authentication import HospitalIdentity


@dataclass
class Federation:
    config: SecureAggregationConfig
    coordinator: SecAggCoordinator
    hospitals: dict[int, SecAggHospital]
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))

    @property
    def ids(self) -> list[int]:
        return sorted(self.hospitals)

    @property
    def threshold(self) -> int:
        return self.coordinator.roster().threshold

    def updates(self, length: int, scale: float = 1.0) -> dict[int, tuple[np.ndarray, int]]:
        """Random updates within the clipping range and random integer weights."""
        return {
            hospital: (
                self.rng.uniform(-scale, scale, length),
                int(self.rng.integers(1, 1000)),
            )
            for hospital in self.ids
        }

    def upload(
        self,
        updates: dict[int, tuple[np.ndarray, int]],
        round_number: int,
        attempt: int = 0,
        senders: Iterable[int] | None = None,
    ) -> None:
        """begin_round, then the masked uploads of `senders` (default: everyone)."""
        self.coordinator.begin_round(round_number, attempt)
        for hospital in self.ids if senders is None else senders:
            update, weight = updates[hospital]
            upload = self.hospitals[hospital].mask_update(update, weight, round_number, attempt)
            self.coordinator.receive_upload(upload.to_dict())

    def unmask(self, answering: Iterable[int] | None = None) -> None:
        """Send unmask requests and pass back the answers of `answering` (default: all asked)."""
        requests = self.coordinator.unmask_requests()
        allowed = None if answering is None else set(answering)
        for request in requests:
            if allowed is None or request.hospital_id in allowed:
                response = self.hospitals[request.hospital_id].unmask(request.to_dict())
                self.coordinator.receive_unmask_response(response.to_dict())

    def run_round(
        self,
        updates: dict[int, tuple[np.ndarray, int]],
        round_number: int,
        attempt: int = 0,
        senders: Iterable[int] | None = None,
    ) -> SecureAggregate:
        self.upload(updates, round_number, attempt, senders)
        self.unmask()
        return self.coordinator.aggregate()

    def upload_everyone(
        self, updates: dict[int, tuple[np.ndarray, int]], round_number: int, attempt: int = 0
    ) -> dict[int, MaskedUpload]:
        """Everyone masks; a curious coordinator keeps every upload (no coordinator checks)."""
        return {
            u: self.hospitals[u].mask_update(*updates[u], round_number, attempt) for u in self.ids
        }

    def forge_request(
        self,
        uploads: dict[int, MaskedUpload],
        hospital: int,
        dropped: set[int],
        round_number: int,
        attempt: int = 0,
    ) -> UnmaskRequest:
        """An unmask request of a (possibly malicious) coordinator's choosing for one hospital."""
        senders = [v for v in self.hospitals[hospital].neighbours if v not in dropped]
        return UnmaskRequest(
            run_id=self.coordinator.run_id,
            hospital_id=hospital,
            round_number=round_number,
            attempt=attempt,
            survivors=[u for u in self.ids if u not in dropped],
            dropped=sorted(dropped),
            share_senders=senders,
            sealed_shares=[
                uploads[v].sealed_shares[uploads[v].share_receivers.index(hospital)]
                for v in senders
            ],
            confirmations=[uploads[u].roster_confirmation for u in self.ids if u not in dropped],
        )

    def expected_average(
        self, updates: dict[int, tuple[np.ndarray, int]], members: Iterable[int]
    ) -> np.ndarray:
        """The golden value: Σ w·clip(x) / Σ w in float64, computed without medfed code."""
        members, bound = list(members), self.config.clipping_range
        total = sum(updates[u][1] for u in members)
        return sum(updates[u][1] * np.clip(updates[u][0], -bound, bound) for u in members) / total


def make_identities(ids: Iterable[int]) -> dict[int, HospitalIdentity]:
    """An Ed25519 identity per hospital, all pinning each other's public keys."""
    private = {hospital: Ed25519PrivateKey.generate() for hospital in ids}
    pins = {f"H{u}": public_bytes(key.public_key()) for u, key in private.items()}
    return {u: HospitalIdentity(f"H{u}", key, pins) for u, key in private.items()}


@pytest.fixture
def make_federation() -> Callable[..., Federation]:
    def make(num_hospitals: int, **settings: object) -> Federation:
        config = SecureAggregationConfig(**settings)
        ids = [1_000 + 37 * i for i in range(num_hospitals)]
        identities = make_identities(ids)
        hospitals = {
            u: SecAggHospital(u, config, run_id="run-test", identity=identities[u]) for u in ids
        }
        coordinator = SecAggCoordinator("run-test", config)
        for hospital in hospitals.values():
            coordinator.add_advertisement(hospital.advertise().to_dict())
        roster = coordinator.roster().to_dict()
        for hospital in hospitals.values():
            hospital.join(roster)
        return Federation(config, coordinator, hospitals)

    return make
