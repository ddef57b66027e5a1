"""The hospital side of SecAgg+: mask each round's update, answer one unmask request safely."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg import keys
from medfed.shared.secagg.authentication import (
    HospitalIdentity,
    confirm_roster,
    sign_advertisement,
)
from medfed.shared.secagg.checks import check_roster, check_unmask_request
from medfed.shared.secagg.config import SecureAggregationConfig
from medfed.shared.secagg.graph import neighbour_graph
from medfed.shared.secagg.masking import mask_encoded
from medfed.shared.secagg.messages import (
    MaskedUpload,
    Roster,
    SetupAdvertisement,
    UnmaskRequest,
    UnmaskResponse,
    parse_message,
)
from medfed.shared.secagg.quantize import quantize
from medfed.shared.secagg.shares import decrypt_share, encrypt_share, share_aad, split_seed


class SecAggHospital:
    """One hospital's secure-aggregation session for one run (create once, persist between rounds).

    It masks at most once per (round, attempt), only ever later ones, and answers unmask
    requests for its latest upload only. Per attempt it records which neighbours the
    coordinator declared survived or dropped; any later request that disagrees is refused, so
    it never reveals both a share of a peer's self-mask and their pair seed.
    """

    def __init__(
        self,
        hospital_id: int,
        config: SecureAggregationConfig,
        *,
        run_id: str,
        identity: HospitalIdentity,
        mask_private_key: bytes | None = None,
        share_private_key: bytes | None = None,
    ) -> None:
        if not 0 <= hospital_id <= keys.MAX_ID:
            raise SecureAggregationError(f"hospital id {hospital_id} must lie in [0, 2^64)")
        if not run_id:
            raise SecureAggregationError("a secure-aggregation session needs its run_id")
        self.hospital_id, self.config, self.run_id = hospital_id, config, run_id
        self.identity = identity
        self._mask_private = mask_private_key or keys.generate_private_key()
        self._share_private = share_private_key or keys.generate_private_key()
        self._roster: Roster | None = None
        self._confirmation = b""
        self._neighbours: tuple[int, ...] = ()
        self._open: tuple[int, int] | None = None
        self._declared: dict[int, bool] | None = None

    # -- setup -------------------------------------------------------------------------------

    def advertise(self) -> SetupAdvertisement:
        """The public keys to send the coordinator at setup, signed with the identity key."""
        mask_key, share_key = (
            keys.public_key(k) for k in (self._mask_private, self._share_private)
        )
        return sign_advertisement(self.identity, self.run_id, self.hospital_id, mask_key, share_key)

    def join(self, roster: Roster | Mapping[str, Any]) -> None:
        """Accept the coordinator's roster after checking it against our keys, our pinned
        peers and our config; raises `SecureAggregationError` for any other roster."""
        roster = parse_message(Roster, roster)
        if self._roster is not None and self._roster.to_dict() == roster.to_dict():
            return  # this very roster passed the checks below with this identity and config
        check_roster(roster, self.advertise(), self.config, self.identity, self.run_id)
        if self._roster is not None:
            raise SecureAggregationError(
                f"hospital {self.hospital_id} already joined run '{self._roster.run_id}' with "
                "another roster; a new run needs a new SecAggHospital (fresh keys)"
            )
        self._roster = roster
        self._confirmation = confirm_roster(self.identity, roster)
        graph = neighbour_graph(roster.hospital_ids, roster.run_seed, roster.neighbours)
        self._neighbours = graph[self.hospital_id]

    @property
    def neighbours(self) -> tuple[int, ...]:
        """The hospitals this one masks with and shares its self-mask seed with."""
        return self._neighbours

    # -- per round ---------------------------------------------------------------------------

    def mask_update(
        self, update: np.ndarray, weight: int, round_number: int, attempt: int = 0
    ) -> MaskedUpload:
        """y_u for `update` × `weight`, with a fresh self-mask seed sealed in t-of-k shares."""
        roster = self._joined()
        self.check_later(round_number, attempt)
        encoded = quantize(update, weight, self.config)
        self_seed = os.urandom(keys.KEY_BYTES)
        masked = mask_encoded(
            encoded,
            owner=self.hospital_id,
            self_seed=self_seed,
            pair_seeds={v: self._pair_seed(v, round_number, attempt) for v in self._neighbours},
            field_bits=self.config.field_bits,
        )
        shares = split_seed(self_seed, roster.threshold, len(self._neighbours))
        sealed = [
            encrypt_share(
                self._share_key(receiver),
                share,
                self._aad(round_number, attempt, sender=self.hospital_id, receiver=receiver),
            )
            for receiver, share in zip(self._neighbours, shares, strict=True)
        ]
        self._open, self._declared = (round_number, attempt), None
        return MaskedUpload(
            run_id=roster.run_id,
            hospital_id=self.hospital_id,
            round_number=round_number,
            attempt=attempt,
            masked=masked,
            share_receivers=list(self._neighbours),
            sealed_shares=sealed,
            roster_confirmation=self._confirmation,
        )

    def check_later(self, round_number: int, attempt: int) -> None:
        """Raise `SecureAggregationError` unless (round, attempt) is after the last upload, so
        a caller can refuse before it trains (and spends privacy) for an upload it cannot mask."""
        if not all(isinstance(n, int) and n >= 0 for n in (round_number, attempt)):
            raise SecureAggregationError("round_number and attempt must be non-negative ints")
        if self._open is not None and (round_number, attempt) <= self._open:
            raise SecureAggregationError(
                f"hospital {self.hospital_id} already masked round {self._open[0]} attempt "
                f"{self._open[1]}; a new upload needs a later round or attempt"
            )

    def unmask(self, request: UnmaskRequest | Mapping[str, Any]) -> UnmaskResponse:
        """Shares of surviving neighbours' self-mask seeds and dropped neighbours' pair seeds.

        Raises `SecureAggregationError` for any request that is malformed, tampered with, or
        unsafe (see `checks.check_unmask_request`). Persist `state_dict()` before sending the
        response, so the per-attempt record survives a restart.
        """
        roster, request = self._joined(), parse_message(UnmaskRequest, request)
        declared = check_unmask_request(
            roster,
            request,
            hospital_id=self.hospital_id,
            identity=self.identity,
            open_attempt=self._open,
            declared_before=self._declared,
        )
        round_number, attempt = request.round_number, request.attempt
        opened = []
        for sender, sealed in zip(request.share_senders, request.sealed_shares, strict=True):
            if not declared.get(sender, False):
                raise SecureAggregationError(
                    f"unmask request forwards a share from hospital {sender}, which is not a "
                    f"surviving neighbour of hospital {self.hospital_id}"
                )
            aad = self._aad(round_number, attempt, sender=sender, receiver=self.hospital_id)
            share = decrypt_share(self._share_key(sender), sealed, aad)
            if not 1 <= share.index <= len(self._neighbours):
                raise SecureAggregationError(f"share from hospital {sender} has a bad index")
            opened.append((sender, share))
        self._declared = declared
        dropped = [v for v, survived in declared.items() if not survived]
        return UnmaskResponse(
            run_id=roster.run_id,
            hospital_id=self.hospital_id,
            round_number=round_number,
            attempt=attempt,
            share_owners=[sender for sender, _ in opened],
            share_indices=[share.index for _, share in opened],
            share_values=[share.value for _, share in opened],
            seed_peers=dropped,
            pair_seeds=[self._pair_seed(v, round_number, attempt) for v in dropped],
        )

    # -- keys --------------------------------------------------------------------------------

    def _joined(self) -> Roster:
        if self._roster is None:
            raise SecureAggregationError(f"hospital {self.hospital_id} has not joined a roster")
        return self._roster

    def _peer_key(self, peer: int, kind: int) -> bytes:
        roster = self._joined()
        keys_of_kind = (roster.mask_public_keys, roster.share_public_keys)[kind]
        return keys_of_kind[roster.hospital_ids.index(peer)]

    def _pair_seed(self, peer: int, round_number: int, attempt: int) -> bytes:
        secret = keys.shared_secret(self._mask_private, self._peer_key(peer, 0))
        return keys.derive_pair_seed(
            secret,
            run_id=self.run_id,
            round_number=round_number,
            attempt=attempt,
            pair=(self.hospital_id, peer),
        )

    def _share_key(self, peer: int) -> bytes:
        secret = keys.shared_secret(self._share_private, self._peer_key(peer, 1))
        return keys.derive_share_key(secret, run_id=self.run_id, pair=(self.hospital_id, peer))

    def _aad(self, round_number: int, attempt: int, *, sender: int, receiver: int) -> bytes:
        where = {"round_number": round_number, "attempt": attempt}
        return share_aad(run_id=self.run_id, sender=sender, receiver=receiver, **where)

    # -- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume but the identity: the X25519 private keys included
        (it never leaves the hospital)."""
        return {
            "hospital_id": self.hospital_id,
            "run_id": self.run_id,
            "config": self.config.model_dump(),
            "mask_private_key": self._mask_private,
            "share_private_key": self._share_private,
            "roster": None if self._roster is None else self._roster.to_dict(),
            "open_attempt": None if self._open is None else list(self._open),
            "declared": None
            if self._declared is None
            else {str(v): survived for v, survived in self._declared.items()},
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any], identity: HospitalIdentity) -> SecAggHospital:
        """Rebuild a hospital session saved by `state_dict()`, with the hospital's identity."""
        try:
            hospital = cls(
                int(state["hospital_id"]),
                SecureAggregationConfig.model_validate(state["config"]),
                run_id=str(state["run_id"]),
                identity=identity,
                mask_private_key=bytes(state["mask_private_key"]),
                share_private_key=bytes(state["share_private_key"]),
            )
            if state["roster"] is not None:
                hospital.join(Roster.from_dict(state["roster"]))
            if state["open_attempt"] is not None:
                round_number, attempt = state["open_attempt"]
                hospital._open = (int(round_number), int(attempt))
            if state["declared"] is not None:
                hospital._declared = {int(v): bool(s) for v, s in state["declared"].items()}
        except (KeyError, TypeError, ValueError) as error:
            raise SecureAggregationError(f"unreadable SecAggHospital state: {error}") from None
        return hospital
