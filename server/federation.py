"""The coordinator's round loop: one message per hospital per round, then a final evaluation.

Flower's strategy samples hospitals and aggregates; medfed adds the typed outcomes (budget
refusals drop a hospital from later rounds), update checks, checkpoints and the run files.
"""

from __future__ import annotations

import logging
import math
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid

from medfed.server.identities import HospitalIdentities
from medfed.server.replies import SortedReplies, as_reply, sort_replies
from medfed.server.round_log import record_privacy, round_line
from medfed.server.run_dir import RunDirectory
from medfed.server.secure import SecureAggregator
from medfed.server.strategies import build_strategy
from medfed.shared.config.models import RunConfig
from medfed.shared.errors import SecureAggregationError
from medfed.shared.instruction import instruction_record
from medfed.shared.protocol import ARRAYS, CONFIG, WEIGHT_KEY, arrays_to_state
from medfed.shared.secagg import UnmaskIncomplete

log = logging.getLogger("medfed.server")
RoundListener = Callable[[dict[str, Any]], None]
MAX_ATTEMPTS = 3  # unmasking retries (fresh masks each) before a round is given up


@dataclass
class FederationState:
    """What the coordinator knows of each hospital across rounds."""

    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped_nodes: set[int] = field(default_factory=set)
    members: set[int] = field(default_factory=set)  # connected when the run started
    given_up: set[int] = field(default_factory=set)  # missing after a full rejoin wait
    stop_reason: str = ""


def wait_for_hospitals(grid: Grid, expected: int, minimum: int, timeout_s: float) -> list[int]:
    """Node ids once `expected` are connected, or `minimum` when `timeout_s` runs out."""
    deadline = time.monotonic() + timeout_s
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected or (time.monotonic() > deadline and len(nodes) >= minimum):
            return nodes
        if time.monotonic() > deadline + timeout_s:
            raise TimeoutError(f"only {len(nodes)} of {minimum} required hospitals connected")
        time.sleep(0.05)


class Federation:
    """Runs `run.rounds` rounds on `grid` and writes the run directory."""

    def __init__(
        self,
        grid: Grid,
        run: RunConfig,
        initial: ArrayRecord,
        run_dir: RunDirectory,
        on_round: RoundListener | None = None,
        run_id: str | None = None,
        identities: HospitalIdentities | None = None,
    ):
        """`identities` names each node's replies (default: trust on first use, for setups
        without node authentication; see medfed.server.identities)."""
        self.grid, self.run, self.arrays, self.run_dir = grid, run, initial, run_dir
        self.identities = identities or HospitalIdentities.trust_on_first_use()
        self.on_round = on_round or (lambda line: None)
        self.strategy = build_strategy(run.strategy)
        self.state = FederationState()
        self.run_id = run_id or uuid.uuid4().hex
        self.secure: SecureAggregator | None = None
        self.exchanges = 0

    def _send_training(self, server_round: int, attempt: int) -> SortedReplies:
        """One training message per active hospital; refusals drop it from later rounds."""
        config = instruction_record(self.run, self.run_id)
        config["secagg-attempt"] = attempt
        messages = [
            m
            for m in self.strategy.configure_train(server_round, self.arrays, config, self.grid)
            if m.metadata.dst_node_id not in self.state.dropped_nodes
            and (self.secure is None or m.metadata.dst_node_id in self.secure.members)
        ]
        if self.secure is not None:
            for name, record in self.secure.roster_records.items():
                messages[0].content[name] = record  # the strategy shares one content record
        self.exchanges += 1
        sent = self.grid.send_and_receive(messages, timeout=self.run.strategy.timeout_s)
        replies = sort_replies(
            list(sent), self.arrays, self.identities, self.run.strategy.max_update_norm
        )
        refused = {node for node, name in replies.names.items() if name in replies.refused}
        self.state.dropped_nodes |= refused
        record_privacy(self.state.privacy, replies, self.run.privacy)
        self.run_dir.write_privacy(self.state.privacy)
        return replies

    def _updates(self, server_round: int, attempt: int, replies: SortedReplies) -> list[Message]:
        """What the strategy aggregates: plain updates, or one securely aggregated update."""
        if self.secure is None:
            return replies.updates
        arrays, weight = self.secure.aggregate(server_round, attempt, replies.uploads, self.arrays)
        content = RecordDict({ARRAYS: arrays, "metrics": MetricRecord({WEIGHT_KEY: float(weight)})})
        return [as_reply(content, node=0)]

    def _await_rejoining(self) -> None:
        """Give hospitals that vanished (a crash, a restart) `strategy.rejoin_wait_s` to come
        back before the round starts; wait once per loss, not every round."""
        deadline = time.monotonic() + self.run.strategy.rejoin_wait_s
        while True:
            online = set(self.grid.get_node_ids())
            self.state.given_up -= online
            missing = self.state.members - online - self.state.dropped_nodes
            if not missing - self.state.given_up:
                return
            if time.monotonic() > deadline:
                log.warning("hospital node(s) %s still away; the round starts without", missing)
                self.state.given_up |= missing
                return
            time.sleep(0.1)

    def _train_round(self, server_round: int) -> bool:
        self._await_rejoining()
        started = time.perf_counter()
        exchanges_before = self.exchanges + (self.secure.exchanges if self.secure else 0)
        minimum = self.run.strategy.min_hospitals
        for attempt in range(MAX_ATTEMPTS):
            replies = self._send_training(server_round, attempt)
            contributors = len(replies.updates) + len(replies.uploads)
            if contributors < minimum:
                self.state.stop_reason = (
                    f"round {server_round}: {contributors} hospital update(s), fewer than "
                    f"strategy.min_hospitals = {minimum}; the run ends here"
                )
                break
            try:
                updates = self._updates(server_round, attempt, replies)
            except UnmaskIncomplete as error:
                log.warning("round %d attempt %d: %s; retrying", server_round, attempt, error)
                continue
            except SecureAggregationError as error:
                self.state.stop_reason = f"round {server_round}: secure aggregation failed: {error}"
                break
            aggregated, _ = self.strategy.aggregate_train(server_round, updates)
            if aggregated is not None:
                self.arrays = aggregated
                self.run_dir.save_checkpoint(server_round, arrays_to_state(aggregated))
            break
        else:
            self.state.stop_reason = f"round {server_round}: unmasking failed {MAX_ATTEMPTS} times"
        exchanges = self.exchanges + (self.secure.exchanges if self.secure else 0)
        seconds = time.perf_counter() - started
        self._write_line(server_round, "train", seconds, replies, exchanges - exchanges_before)
        return not self.state.stop_reason

    def _write_line(
        self, server_round: int, phase: str, seconds: float, replies: SortedReplies, exchanges: int
    ) -> None:
        line = round_line(server_round, phase, seconds, replies, exchanges, self.state.stop_reason)
        self.run_dir.append_metrics(line)
        self.on_round(line)

    def _evaluators(self) -> list[int]:
        """The nodes that score the final model: all, or a seeded `fraction_evaluate` sample
        (at least one) when a federation is too large to ask everyone."""
        nodes = sorted(self.grid.get_node_ids())
        fraction = self.run.strategy.fraction_evaluate
        if fraction >= 1.0:
            return nodes
        count = min(len(nodes), max(1, math.ceil(fraction * len(nodes))))
        return sorted(random.Random(self.run.seed).sample(nodes, count))

    def _final_evaluation(self, last_round: int) -> None:
        started = time.perf_counter()
        config = instruction_record(self.run, self.run_id)
        config["server-round"] = max(last_round, 1)
        content = RecordDict({ARRAYS: self.arrays, CONFIG: ConfigRecord(dict(config))})
        messages = [
            Message(content=content, dst_node_id=node, message_type=MessageType.EVALUATE)
            for node in self._evaluators()
        ]
        self.exchanges += 1
        sent = self.grid.send_and_receive(messages, timeout=self.run.strategy.timeout_s)
        replies = sort_replies(list(sent), self.arrays, self.identities)
        self._write_line(last_round, "final", time.perf_counter() - started, replies, 1)

    def start(self, expected_hospitals: int, first_round: int = 1) -> FederationState:
        """Run rounds `first_round`.. (until too few hospitals remain), then score the final
        model. A resumed run passes the round after its last checkpoint."""
        nodes = wait_for_hospitals(
            self.grid,
            expected_hospitals,
            self.run.strategy.min_hospitals,
            self.run.strategy.timeout_s,
        )
        self.state.members = set(nodes)
        self.identities.learn(nodes)
        if self.run.secure_aggregation.enabled:
            config, timeout_s = self.run.secure_aggregation, self.run.strategy.timeout_s
            self.secure = SecureAggregator(self.grid, config, self.run_id, timeout_s)
            self.secure.setup(nodes)
        if first_round == 1:
            self.run_dir.save_checkpoint(0, arrays_to_state(self.arrays))
        last_round = first_round - 1
        for server_round in range(first_round, self.run.rounds + 1):
            completed = self._train_round(server_round)
            last_round = server_round
            if not completed:
                log.warning(self.state.stop_reason)
                break
        self._final_evaluation(last_round)
        return self.state
