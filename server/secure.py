"""The coordinator's side of secure aggregation on a Flower grid.

One setup exchange per run (public keys → roster); per round the masked uploads arrive in
the training replies and one unmask exchange recovers only their weighted sum.
"""

from __future__ import annotations

import logging

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from medfed.shared.errors import SecureAggregationError
from medfed.shared.protocol import (
    OUTCOME,
    SECAGG_ROSTER,
    SECAGG_SETUP,
    SECAGG_UNMASK,
    SECAGG_UPLOAD,
    Outcome,
)
from medfed.shared.secagg import SecAggCoordinator, SecureAggregationConfig
from medfed.shared.secagg.records import array_values, from_records, to_array, to_records

log = logging.getLogger("medfed.server")
QUERY = MessageType.QUERY


def _ok(reply: Message, record: str) -> bool:
    if reply.has_error() or OUTCOME not in reply.content.config_records:
        return False
    outcome = Outcome.from_record(reply.content.config_records[OUTCOME])
    return outcome.status == "ok" and record in reply.content.config_records


def unflatten(vector: np.ndarray, reference: ArrayRecord) -> dict[str, np.ndarray]:
    """Split a flat vector into arrays shaped like `reference` (its key order)."""
    arrays, offset = {}, 0
    for key, array in reference.items():
        shape = array_values(array).shape
        size = int(np.prod(shape))
        arrays[key] = vector[offset : offset + size].reshape(shape)
        offset += size
    if offset != len(vector):
        raise SecureAggregationError(f"aggregate has {len(vector)} values, the model {offset}")
    return arrays


class SecureAggregator:
    """SecAgg+ for one run: `setup` once, then `aggregate` each round's masked uploads."""

    def __init__(self, grid: Grid, config: SecureAggregationConfig, run_id: str, timeout_s: float):
        self.grid, self.config, self.timeout_s = grid, config, timeout_s
        self.coordinator = SecAggCoordinator(run_id, config)
        self.members: set[int] = set()
        self.roster_records = RecordDict()

    def _exchange(self, messages: list[Message]) -> list[Message]:
        return list(self.grid.send_and_receive(messages, timeout=self.timeout_s))

    def setup(self, nodes: list[int]) -> None:
        """Collect every hospital's public keys and fix the roster.

        Raises:
            SecureAggregationError: too few hospitals answered to aggregate securely.
        """
        request = ConfigRecord({"request": "keys", "run-id": self.coordinator.run_id})
        content = RecordDict({SECAGG_SETUP: request})
        messages = [Message(content, dst_node_id=n, message_type=QUERY) for n in nodes]
        for reply in self._exchange(messages):
            if _ok(reply, SECAGG_SETUP):
                self.coordinator.add_advertisement(from_records(reply.content, SECAGG_SETUP))
            else:
                log.warning("node %s gave no secure-aggregation keys", reply.metadata.src_node_id)
        roster = self.coordinator.roster()
        self.members = set(roster.hospital_ids)
        self.roster_records = to_records(roster.to_dict(), SECAGG_ROSTER)

    def aggregate(
        self,
        server_round: int,
        attempt: int,
        uploads: dict[int, RecordDict],
        reference: ArrayRecord,
    ) -> tuple[ArrayRecord, int]:
        """The new global weights (reference + weighted mean update) and the weight sum.

        Raises:
            UnmaskIncomplete: a survivor vanished during unmasking; retry with attempt + 1.
            SecureAggregationError: too few survivors; the round cannot complete safely.
        """
        self.coordinator.begin_round(server_round, attempt)
        for node, content in uploads.items():
            try:
                self.coordinator.receive_upload(from_records(content, SECAGG_UPLOAD))
            except SecureAggregationError as error:
                log.warning("round %d: upload from node %s rejected: %s", server_round, node, error)
        requests = self.coordinator.unmask_requests()
        messages = [
            Message(
                to_records(r.to_dict(), SECAGG_UNMASK),
                dst_node_id=r.hospital_id,
                message_type=QUERY,
            )
            for r in requests
        ]
        for reply in self._exchange(messages):
            if _ok(reply, SECAGG_UNMASK):
                try:
                    answer = from_records(reply.content, SECAGG_UNMASK)
                    self.coordinator.receive_unmask_response(answer)
                except SecureAggregationError as error:
                    log.warning("round %d: unmask answer rejected: %s", server_round, error)
        result = self.coordinator.aggregate()
        update = unflatten(result.weighted_average, reference)
        weights = {}
        for key, array in reference.items():
            values = array_values(array)
            new = np.add(values, update[key], dtype=np.float64).astype(values.dtype)
            weights[key] = to_array(new)
        return ArrayRecord(weights), result.total_weight
