"""The five SecAgg+ messages as plain data: `to_dict()` / `from_dict()` with only str, int,
float, bytes, lists of those and numpy arrays, so they map onto Flower records.

`from_dict` checks every field's type and shape and raises `SecureAggregationError` with
the message and field name; who may send what is checked by the hospital and coordinator.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

import numpy as np

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import wire
from medfed.shared.secagg.keys import KEY_BYTES
from medfed.shared.secagg.shares import SEALED_BYTES, SEED_BYTES

SIGNATURE_BYTES = 64  # Ed25519


class _Message(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


M = TypeVar("M", bound=_Message)


def parse_message(kind: type[M], message: object) -> M:
    """`message` (a dict or a `kind`) re-checked field by field, as it would be off the wire."""
    if isinstance(message, kind):
        return kind.from_dict(message.to_dict())  # type: ignore[attr-defined]
    if isinstance(message, Mapping):
        return kind.from_dict(message)  # type: ignore[attr-defined]
    raise SecureAggregationError(f"expected a {kind.__name__} or a dict, got {type(message)}")


def _as_dict(message: object) -> dict[str, Any]:
    """The message's fields, lists copied so the dict can be changed freely."""
    return {
        key: list(value) if isinstance(value, list) else value
        for key, value in vars(message).items()
    }


@dataclass(frozen=True)
class SetupAdvertisement:
    """Hospital → coordinator, once per run: its two X25519 public keys, signed with its
    identity key for (run, name, id, keys)."""

    hospital_id: int
    name: str
    mask_public_key: bytes
    share_public_key: bytes
    signature: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetupAdvertisement:
        name = "setup advertisement"
        return cls(
            hospital_id=wire.read_int(data, name, "hospital_id"),
            name=wire.read_str(data, name, "name"),
            mask_public_key=wire.read_bytes(data, name, "mask_public_key", KEY_BYTES),
            share_public_key=wire.read_bytes(data, name, "share_public_key", KEY_BYTES),
            signature=wire.read_bytes(data, name, "signature", SIGNATURE_BYTES),
        )


@dataclass(frozen=True)
class Roster:
    """Coordinator → all hospitals, once per run: who takes part, their signed keys and the
    parameters."""

    run_id: str
    run_seed: bytes
    hospital_ids: list[int]
    hospital_names: list[str]
    mask_public_keys: list[bytes]
    share_public_keys: list[bytes]
    signatures: list[bytes] = field(repr=False)
    neighbours: int
    threshold: int
    field_bits: int
    quantization_bits: int
    clipping_range: float

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Roster:
        name = "roster"
        roster = cls(
            run_id=wire.read_str(data, name, "run_id"),
            run_seed=wire.read_bytes(data, name, "run_seed"),
            hospital_ids=wire.read_int_list(data, name, "hospital_ids"),
            hospital_names=wire.read_str_list(data, name, "hospital_names"),
            mask_public_keys=wire.read_bytes_list(data, name, "mask_public_keys", KEY_BYTES),
            share_public_keys=wire.read_bytes_list(data, name, "share_public_keys", KEY_BYTES),
            signatures=wire.read_bytes_list(data, name, "signatures", SIGNATURE_BYTES),
            neighbours=wire.read_int(data, name, "neighbours"),
            threshold=wire.read_int(data, name, "threshold"),
            field_bits=wire.read_int(data, name, "field_bits"),
            quantization_bits=wire.read_int(data, name, "quantization_bits"),
            clipping_range=wire.read_float(data, name, "clipping_range"),
        )
        wire.check_same_length(
            name,
            hospital_ids=roster.hospital_ids,
            hospital_names=roster.hospital_names,
            mask_public_keys=roster.mask_public_keys,
            share_public_keys=roster.share_public_keys,
            signatures=roster.signatures,
        )
        return roster


@dataclass(frozen=True)
class MaskedUpload:
    """Hospital → coordinator, with each training reply: y_u, b_u's sealed shares and the
    hospital's signed digest of the roster it accepted."""

    run_id: str
    hospital_id: int
    round_number: int
    attempt: int
    masked: np.ndarray = field(repr=False)
    share_receivers: list[int]
    sealed_shares: list[bytes] = field(repr=False)
    roster_confirmation: bytes = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MaskedUpload:
        name = "masked upload"
        upload = cls(
            run_id=wire.read_str(data, name, "run_id"),
            hospital_id=wire.read_int(data, name, "hospital_id"),
            round_number=wire.read_int(data, name, "round_number"),
            attempt=wire.read_int(data, name, "attempt"),
            masked=wire.read_vector(data, name, "masked"),
            share_receivers=wire.read_int_list(data, name, "share_receivers"),
            sealed_shares=wire.read_bytes_list(data, name, "sealed_shares", SEALED_BYTES),
            roster_confirmation=wire.read_bytes(data, name, "roster_confirmation", SIGNATURE_BYTES),
        )
        wire.check_same_length(
            name, share_receivers=upload.share_receivers, sealed_shares=upload.sealed_shares
        )
        return upload


@dataclass(frozen=True)
class UnmaskRequest:
    """Coordinator → one surviving hospital: who survived, who dropped, its sealed shares,
    and each survivor's roster confirmation (parallel to `survivors`)."""

    run_id: str
    hospital_id: int
    round_number: int
    attempt: int
    survivors: list[int]
    dropped: list[int]
    share_senders: list[int]
    sealed_shares: list[bytes] = field(repr=False)
    confirmations: list[bytes] = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnmaskRequest:
        name = "unmask request"
        request = cls(
            run_id=wire.read_str(data, name, "run_id"),
            hospital_id=wire.read_int(data, name, "hospital_id"),
            round_number=wire.read_int(data, name, "round_number"),
            attempt=wire.read_int(data, name, "attempt"),
            survivors=wire.read_int_list(data, name, "survivors"),
            dropped=wire.read_int_list(data, name, "dropped"),
            share_senders=wire.read_int_list(data, name, "share_senders"),
            sealed_shares=wire.read_bytes_list(data, name, "sealed_shares", SEALED_BYTES),
            confirmations=wire.read_bytes_list(data, name, "confirmations", SIGNATURE_BYTES),
        )
        wire.check_same_length(
            name, share_senders=request.share_senders, sealed_shares=request.sealed_shares
        )
        return request


@dataclass(frozen=True)
class UnmaskResponse:
    """Hospital → coordinator: shares of survivors' self-mask seeds, dropped peers' pair seeds."""

    run_id: str
    hospital_id: int
    round_number: int
    attempt: int
    share_owners: list[int]
    share_indices: list[int]
    share_values: list[bytes] = field(repr=False)
    seed_peers: list[int] = field(default_factory=list)
    pair_seeds: list[bytes] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return _as_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnmaskResponse:
        name = "unmask response"
        response = cls(
            run_id=wire.read_str(data, name, "run_id"),
            hospital_id=wire.read_int(data, name, "hospital_id"),
            round_number=wire.read_int(data, name, "round_number"),
            attempt=wire.read_int(data, name, "attempt"),
            share_owners=wire.read_int_list(data, name, "share_owners"),
            share_indices=wire.read_int_list(data, name, "share_indices", distinct=False),
            share_values=wire.read_bytes_list(data, name, "share_values", SEED_BYTES),
            seed_peers=wire.read_int_list(data, name, "seed_peers"),
            pair_seeds=wire.read_bytes_list(data, name, "pair_seeds", SEED_BYTES),
        )
        wire.check_same_length(
            name,
            share_owners=response.share_owners,
            share_indices=response.share_indices,
            share_values=response.share_values,
        )
        wire.check_same_length(name, seed_peers=response.seed_peers, pair_seeds=response.pair_seeds)
        return response
