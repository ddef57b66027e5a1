"""The coordinator side of SecAgg+: roster, masked uploads, one unmask exchange, the sum."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.attempt import AttemptRecord, SecureAggregate
from medfed.shared.secagg.config import SecureAggregationConfig
from medfed.shared.secagg.graph import Graph, components, neighbour_graph, short_of_neighbours
from medfed.shared.secagg.keys import check_public_key
from medfed.shared.secagg.messages import (
    MaskedUpload,
    Roster,
    SetupAdvertisement,
    UnmaskRequest,
    UnmaskResponse,
    parse_message,
)
from medfed.shared.secagg.quantize import dequantize
from medfed.shared.secagg.recovery import build_requests, check_response, recover_sum


class SecAggCoordinator:
    """The server's secure-aggregation session for one run.

    Per round: `begin_round`, `receive_upload` for each training reply, `unmask_requests`,
    `receive_unmask_response` for each answer, `aggregate`. After `UnmaskIncomplete` the
    attempt is closed for good (late answers are refused, so it can never be finished) and
    the round restarts with `begin_round(round, attempt + 1)`; after a successful
    `aggregate` it does not.
    """

    def __init__(
        self, run_id: str, config: SecureAggregationConfig, *, run_seed: bytes | None = None
    ) -> None:
        if not run_id:
            raise SecureAggregationError("secure aggregation needs a non-empty run_id")
        self.run_id = run_id
        self.config = config
        self.run_seed = run_seed if run_seed is not None else secrets.token_bytes(16)
        self._advertisements: dict[int, SetupAdvertisement] = {}
        self._roster: Roster | None = None
        self._graph: Graph = {}
        self._attempt: AttemptRecord | None = None

    # -- setup -------------------------------------------------------------------------------

    def add_advertisement(self, advertisement: SetupAdvertisement | Mapping[str, Any]) -> None:
        """Register one hospital's public keys (before the roster is fixed)."""
        advertisement = parse_message(SetupAdvertisement, advertisement)
        if self._roster is not None:
            raise SecureAggregationError("the roster is fixed; new hospitals join the next run")
        hospital = advertisement.hospital_id
        if hospital in self._advertisements:
            raise SecureAggregationError(f"hospital {hospital} advertised keys twice")
        if any(ad.name == advertisement.name for ad in self._advertisements.values()):
            raise SecureAggregationError(f"two hospitals advertised as '{advertisement.name}'")
        check_public_key(advertisement.mask_public_key, f"hospital {hospital}: mask key")
        check_public_key(advertisement.share_public_key, f"hospital {hospital}: share key")
        self._advertisements[hospital] = advertisement

    def roster(self) -> Roster:
        """Fix and return the roster to broadcast; checks the field fits this many hospitals."""
        if self._roster is None:
            ids = sorted(self._advertisements)
            self.config.check_for(len(ids))
            num_neighbours = self.config.neighbours_for(len(ids))
            self._roster = Roster(
                run_id=self.run_id,
                run_seed=self.run_seed,
                hospital_ids=ids,
                hospital_names=[self._advertisements[i].name for i in ids],
                mask_public_keys=[self._advertisements[i].mask_public_key for i in ids],
                share_public_keys=[self._advertisements[i].share_public_key for i in ids],
                signatures=[self._advertisements[i].signature for i in ids],
                neighbours=num_neighbours,
                threshold=self.config.threshold_for(num_neighbours),
                field_bits=self.config.field_bits,
                quantization_bits=self.config.quantization_bits,
                clipping_range=self.config.clipping_range,
            )
            self._graph = neighbour_graph(ids, self.run_seed, num_neighbours)
        return self._roster

    # -- per round ---------------------------------------------------------------------------

    def begin_round(self, round_number: int, attempt: int = 0) -> None:
        """Start collecting masked uploads; (round, attempt) must increase, and a round whose
        sum was recovered takes no further attempt (a second sum of the same updates over
        other survivors would give away the difference: one hospital's update)."""
        self._fixed()
        last = self._attempt
        if last is not None and last.aggregated and last.round_number == round_number:
            raise SecureAggregationError(
                f"round {round_number} was aggregated at attempt {last.attempt}; "
                "a round is aggregated once"
            )
        if self._attempt is not None and (round_number, attempt) <= (
            self._attempt.round_number,
            self._attempt.attempt,
        ):
            raise SecureAggregationError(
                f"round {round_number} attempt {attempt} is not after round "
                f"{self._attempt.round_number} attempt {self._attempt.attempt}"
            )
        self._attempt = AttemptRecord(round_number, attempt)

    def receive_upload(self, upload: MaskedUpload | Mapping[str, Any]) -> None:
        """Keep one hospital's masked vector; raises if it is not valid for this attempt."""
        upload = parse_message(MaskedUpload, upload)
        roster, state = self._fixed(), self._current("a masked upload")
        who = f"masked upload of hospital {upload.hospital_id}"
        if state.survivors is not None:
            raise SecureAggregationError(f"{who} arrived after unmasking began; it is ignored")
        self._check_binding(upload, who)
        if upload.hospital_id not in roster.hospital_ids or upload.hospital_id in state.uploads:
            raise SecureAggregationError(f"{who}: not on the roster, or sent twice")
        if upload.share_receivers != list(self._graph[upload.hospital_id]):
            raise SecureAggregationError(f"{who}: shares not addressed to its neighbours")
        if state.vector_length() not in (None, len(upload.masked)):
            raise SecureAggregationError(f"{who}: vector length differs from the others")
        if int(upload.masked.max()) >= 2**self.config.field_bits:
            raise SecureAggregationError(f"{who}: elements outside the field")
        state.uploads[upload.hospital_id] = upload

    def unmask_requests(self) -> list[UnmaskRequest]:
        """One request per survivor; raises (sending nothing) if too few hospitals survived."""
        roster, state = self._fixed(), self._current("unmask requests")
        if state.survivors is None:
            graph, threshold = self._graph, roster.threshold
            if len(state.uploads) < threshold:
                raise SecureAggregationError(
                    f"only {len(state.uploads)} of {len(roster.hospital_ids)} hospitals sent "
                    f"masked updates, fewer than t = {threshold}; nothing is unmasked"
                )
            short = short_of_neighbours(graph, state.uploads, threshold)
            if short or len(components(graph, state.uploads)) != 1:
                raise SecureAggregationError(
                    f"hospitals {short} have fewer than t = {threshold} surviving neighbours "
                    "(or the survivors are split into separate groups), so their self-masks "
                    "could not be removed; nothing is unmasked. Retry the round with attempt "
                    "+ 1, or configure more secure_aggregation.neighbours"
                )
            state.survivors = sorted(state.uploads)
        return build_requests(
            run_id=self.run_id,
            graph=self._graph,
            roster_ids=roster.hospital_ids,
            state=state,
        )

    def receive_unmask_response(self, response: UnmaskResponse | Mapping[str, Any]) -> None:
        """Keep one survivor's answer; raises if it does not answer this attempt's request."""
        response = parse_message(UnmaskResponse, response)
        roster, state = self._fixed(), self._current("an unmask response")
        who = f"unmask response of hospital {response.hospital_id}"
        if state.survivors is None:
            raise SecureAggregationError(f"{who} arrived before any unmask request was sent")
        self._check_binding(response, who)
        check_response(
            response,
            graph=self._graph,
            survivors=state.survivors,
            num_neighbours=roster.neighbours,
        )
        if response.hospital_id in state.responses:
            raise SecureAggregationError(f"{who} arrived twice")
        state.responses[response.hospital_id] = response

    def pending_responses(self) -> list[int]:
        """Survivors whose unmask response has not arrived yet."""
        state = self._current("pending responses")
        return sorted(set(state.survivors or ()) - set(state.responses))

    def aggregate(self) -> SecureAggregate:
        """Σ w·x / Σ w over the survivors; `UnmaskIncomplete` closes this attempt for good."""
        roster, state = self._fixed(), self._current("aggregation")
        if state.survivors is None:
            raise SecureAggregationError("aggregate() before unmask_requests()")
        state.closed = True
        try:
            field_sum = recover_sum(
                graph=self._graph,
                threshold=roster.threshold,
                field_bits=self.config.field_bits,
                uploads=state.uploads,
                survivors=state.survivors,
                responses=state.responses,
            )
        finally:
            state.uploads, state.responses = {}, {}
        state.aggregated = True
        average, total_weight = dequantize(field_sum, self.config)
        return SecureAggregate(
            weighted_average=average,
            total_weight=total_weight,
            survivors=list(state.survivors),
            dropped=sorted(set(roster.hospital_ids) - set(state.survivors)),
        )

    # -- helpers -----------------------------------------------------------------------------

    def _fixed(self) -> Roster:
        if self._roster is None:
            raise SecureAggregationError("call roster() to fix the roster before any round")
        return self._roster

    def _current(self, what: str) -> AttemptRecord:
        if self._attempt is None or self._attempt.closed:
            raise SecureAggregationError(f"{what}: no open attempt; call begin_round() first")
        return self._attempt

    def _check_binding(self, message: MaskedUpload | UnmaskResponse, who: str) -> None:
        state = self._current(who)
        if (message.run_id, message.round_number, message.attempt) != (
            self.run_id,
            state.round_number,
            state.attempt,
        ):
            raise SecureAggregationError(
                f"{who} is for run '{message.run_id}' round {message.round_number} attempt "
                f"{message.attempt}, not this attempt ({state.round_number}, {state.attempt})"
            )

    # -- persistence -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Run identity, advertised keys, whether the roster is fixed, and the open attempt."""
        return {
            "run_id": self.run_id,
            "run_seed": self.run_seed,
            "config": self.config.model_dump(),
            "advertisements": [ad.to_dict() for ad in self._advertisements.values()],
            "roster_fixed": self._roster is not None,
            "attempt": None if self._attempt is None else self._attempt.to_dict(),
        }

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SecAggCoordinator:
        """Rebuild a coordinator session saved by `state_dict()`."""
        try:
            coordinator = cls(
                str(state["run_id"]),
                SecureAggregationConfig.model_validate(state["config"]),
                run_seed=bytes(state["run_seed"]),
            )
            for advertisement in state["advertisements"]:
                coordinator.add_advertisement(SetupAdvertisement.from_dict(advertisement))
            if state["roster_fixed"]:
                coordinator.roster()
            if state["attempt"] is not None:
                coordinator._attempt = AttemptRecord.from_dict(state["attempt"])
        except (KeyError, TypeError, ValueError) as error:
            raise SecureAggregationError(f"unreadable SecAggCoordinator state: {error}") from None
        return coordinator
