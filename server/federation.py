"""The coordinator's round loop: one message per hospital per round, then a final evaluation.

It reads like Flower's `Strategy.start`: `configure_train`, `send_and_receive`,
`aggregate_train`, keep the new arrays. medfed's rules (who is active, seeded sampling,
typed outcomes, update checks, secure aggregation) live in `MedfedStrategy`; this loop adds
the retries of a secure round, checkpoints, the run files and the reason a run stops.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from medfed.server.coordinator import MedfedStrategy
from medfed.server.identities import HospitalIdentities
from medfed.server.member_grid import MemberGrid
from medfed.server.membership import Membership, RunStopped, evaluation_sample
from medfed.server.replies import SortedReplies, sort_replies
from medfed.server.round_log import round_line
from medfed.server.run_dir import RunDirectory
from medfed.server.secure import SecureAggregator
from medfed.server.strategies import build_strategy
from medfed.shared.config.models import RunConfig
from medfed.shared.errors import SecureAggregationError
from medfed.shared.instruction import instruction_record
from medfed.shared.protocol import ARRAYS, CONFIG, arrays_to_state
from medfed.shared.secagg import UnmaskIncomplete

log = logging.getLogger("medfed.server")
RoundListener = Callable[[dict[str, Any]], None]
MAX_ATTEMPTS = 3  # unmasking retries (fresh masks each) before a round is given up


@dataclass
class FederationState:
    """What the coordinator keeps across rounds (privacy.json) and why the run stopped."""

    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    stop_reason: str = ""


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
        self.run, self.arrays, self.run_dir = run, initial, run_dir
        self.identities = identities or HospitalIdentities.trust_on_first_use()
        self.on_round = on_round or (lambda line: None)
        config = run.strategy
        self.membership = Membership(
            grid, config.min_hospitals, config.timeout_s, config.rejoin_wait_s
        )
        self.grid = MemberGrid(grid, self.membership.active)
        self.state = FederationState()
        self.run_id = run_id or uuid.uuid4().hex
        self.secure: SecureAggregator | None = None

    def _train_config(self, attempt: int) -> ConfigRecord:
        config = instruction_record(self.run, self.run_id)
        config["secagg-attempt"] = attempt
        return config

    def _train_round(self, strategy: MedfedStrategy, server_round: int) -> None:
        """One round; a secure round that loses a survivor while unmasking is retried with
        fresh masks.

        Raises:
            RunStopped: the round cannot complete; the run ends.
        """
        for attempt in range(MAX_ATTEMPTS):
            strategy.attempt = attempt
            train_replies = self.grid.send_and_receive(
                messages=strategy.configure_train(
                    server_round, self.arrays, self._train_config(attempt), self.grid
                ),
                timeout=self.run.strategy.timeout_s,
            )
            try:
                arrays, _ = strategy.aggregate_train(server_round, train_replies)
            except UnmaskIncomplete as error:
                log.warning("round %d attempt %d: %s; retrying", server_round, attempt, error)
                continue
            finally:
                self.run_dir.write_privacy(strategy.privacy)
            if arrays is not None:
                self.arrays = arrays
                self.run_dir.save_checkpoint(server_round, arrays_to_state(arrays))
            return
        raise RunStopped(f"round {server_round}: unmasking failed {MAX_ATTEMPTS} times")

    def _write_line(
        self, server_round: int, phase: str, seconds: float, replies: SortedReplies, exchanges: int
    ) -> None:
        line = round_line(server_round, phase, seconds, replies, exchanges, self.state.stop_reason)
        self.run_dir.append_metrics(line)
        self.on_round(line)

    def _evaluators(self) -> list[int]:
        """The nodes that score the final model: all online, or a seeded `fraction_evaluate`
        sample (at least one) when a federation is too large to ask everyone."""
        online = self.membership.online()
        return evaluation_sample(online, self.run.strategy.fraction_evaluate, self.run.seed)

    def _final_evaluation(self, last_round: int, nodes: list[int]) -> None:
        """The evaluate-only message to `nodes` (none when the run never started)."""
        started, before = time.perf_counter(), self.grid.exchanges
        config = instruction_record(self.run, self.run_id)
        config["server-round"] = max(last_round, 1)
        content = RecordDict({ARRAYS: self.arrays, CONFIG: ConfigRecord(dict(config))})
        messages = [
            Message(content=content, dst_node_id=node, message_type=MessageType.EVALUATE)
            for node in nodes
        ]
        replies = SortedReplies()
        if messages:
            sent = self.grid.send_and_receive(messages, timeout=self.run.strategy.timeout_s)
            replies = sort_replies(list(sent), self.arrays, self.identities)
        seconds = time.perf_counter() - started
        self._write_line(last_round, "final", seconds, replies, self.grid.exchanges - before)

    def _start_secure_aggregation(self, nodes: list[int]) -> None:
        config, timeout_s = self.run.secure_aggregation, self.run.strategy.timeout_s
        self.secure = SecureAggregator(self.grid, config, self.run_id, timeout_s)
        try:
            self.secure.setup(nodes)
        except SecureAggregationError as error:
            raise RunStopped(f"secure aggregation setup failed: {error}") from None
        self.membership.restrict_to(self.secure.members)

    def start(self, expected_hospitals: int, first_round: int = 1) -> FederationState:
        """Run rounds `first_round`.. (until too few hospitals remain), then score the final
        model. A resumed run passes the round after its last checkpoint."""
        last_round = first_round - 1
        try:
            nodes = self.membership.admit(expected_hospitals)
            self.identities.learn(nodes)
            if self.run.secure_aggregation.enabled:
                self._start_secure_aggregation(nodes)
        except RunStopped as stopped:
            self.state.stop_reason = stopped.reason
            log.warning(stopped.reason)
            self._final_evaluation(last_round, [])
            return self.state
        strategy = MedfedStrategy(
            build_strategy(self.run.strategy),
            self.run,
            self.membership,
            self.identities,
            self.secure,
            self.state.privacy,
        )
        if first_round == 1:
            self.run_dir.save_checkpoint(0, arrays_to_state(self.arrays))
        for current_round in range(first_round, self.run.rounds + 1):
            started, before = time.perf_counter(), self.grid.exchanges
            try:
                self._train_round(strategy, current_round)
            except RunStopped as stopped:
                self.state.stop_reason = stopped.reason
            last_round = current_round
            exchanges = self.grid.exchanges - before
            seconds = time.perf_counter() - started
            self._write_line(current_round, "train", seconds, strategy.replies, exchanges)
            if self.state.stop_reason:
                log.warning(self.state.stop_reason)
                break
        self._final_evaluation(last_round, self._evaluators())
        return self.state
