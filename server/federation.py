"""The coordinator's round loop: one message per hospital per round, then a final evaluation.

Flower's strategy samples hospitals and aggregates; medfed adds the typed outcomes (budget
refusals drop a hospital from later rounds), update checks, checkpoints and the run files.
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

from medfed.server.replies import SortedReplies, sort_replies
from medfed.server.run_dir import RunDirectory
from medfed.server.strategies import build_strategy
from medfed.shared.config.models import RunConfig
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.instruction import instruction_record
from medfed.shared.metrics import weighted_means
from medfed.shared.protocol import ARRAYS, CONFIG, arrays_to_state

log = logging.getLogger("medfed.server")
RoundListener = Callable[[dict[str, Any]], None]


@dataclass
class FederationState:
    """What the coordinator knows of each hospital across rounds."""

    privacy: dict[str, dict[str, Any]] = field(default_factory=dict)
    dropped_nodes: set[int] = field(default_factory=set)
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
    ):
        self.grid, self.run, self.arrays, self.run_dir = grid, run, initial, run_dir
        self.on_round = on_round or (lambda line: None)
        self.strategy = build_strategy(run.strategy)
        self.state = FederationState()
        self.run_id = uuid.uuid4().hex

    def _record_privacy(self, replies: SortedReplies) -> None:
        privacy = self.run.privacy
        for name, training in replies.training.items():
            entry = self.state.privacy.setdefault(name, {"status": "active"})
            entry.setdefault("epsilon_at_run_start", training.get("epsilon_at_run_start"))
            entry.update(
                epsilon=training.get("epsilon"),
                delta=privacy.delta if privacy.enabled else None,
                target_epsilon=privacy.target_epsilon,
                max_epsilon=privacy.budget_epsilon,
                noise_multiplier=training.get("noise_multiplier"),
                max_grad_norm=privacy.max_grad_norm if privacy.enabled else None,
                sample_rate=training.get("sample_rate"),
                steps=int(training.get("total_steps", training.get("steps", 0))),
                accountant=privacy.accountant if privacy.enabled else None,
            )
        for name, outcome in replies.refused.items():
            entry = self.state.privacy.setdefault(name, {})
            is_budget = outcome.code == PrivacyBudgetExceeded.code
            entry.update(status="exhausted" if is_budget else "refused", reason=outcome.message)
            spent = replies.training_refused.get(name, {})
            if "epsilon" in spent:
                entry.setdefault("epsilon_at_run_start", spent["epsilon"])
                entry.update(epsilon=spent["epsilon"], max_epsilon=spent.get("max_epsilon"))
                entry.setdefault("delta", privacy.delta)
                entry.setdefault("accountant", privacy.accountant)
        self.run_dir.write_privacy(self.state.privacy)

    def _train_round(self, server_round: int) -> bool:
        started = time.perf_counter()
        messages = [
            m
            for m in self.strategy.configure_train(
                server_round, self.arrays, instruction_record(self.run, self.run_id), self.grid
            )
            if m.metadata.dst_node_id not in self.state.dropped_nodes
        ]
        replies = sort_replies(
            list(self.grid.send_and_receive(messages, timeout=self.run.strategy.timeout_s)),
            self.arrays,
        )
        self.state.dropped_nodes |= {
            node for node, name in replies.names.items() if name in replies.refused
        }
        self._record_privacy(replies)
        minimum = self.run.strategy.min_hospitals
        if len(replies.updates) >= minimum:
            aggregated, _ = self.strategy.aggregate_train(server_round, replies.updates)
            if aggregated is not None:
                self.arrays = aggregated
                self.run_dir.save_checkpoint(server_round, arrays_to_state(aggregated))
        else:
            self.state.stop_reason = (
                f"round {server_round}: {len(replies.updates)} hospital update(s), fewer than "
                f"strategy.min_hospitals = {minimum}; the run ends here"
            )
        self._write_line(server_round, "train", time.perf_counter() - started, replies)
        return not self.state.stop_reason

    def _write_line(
        self, server_round: int, phase: str, seconds: float, replies: SortedReplies
    ) -> None:
        hospitals = {name: dict(metrics) for name, metrics in replies.evaluation.items()}
        for name, training in replies.training.items():
            hospitals.setdefault(name, {})["epsilon"] = training.get("epsilon")
            hospitals[name]["train_loss"] = training.get("train_loss")
        line: dict[str, Any] = {
            "round": server_round,
            "phase": phase,
            "seconds": round(seconds, 4),
            "hospitals": hospitals,
        }
        line["global"] = weighted_means(
            {
                n: {k: v for k, v in m.items() if k not in {"epsilon", "train_loss"}}
                for n, m in replies.evaluation.items()
            }
        )
        skipped = {
            name: f"{o.code}: {o.message}" for name, o in replies.refused.items()
        } | replies.failed
        if skipped:
            line["skipped"] = skipped
        if self.state.stop_reason:
            line["stopped"] = self.state.stop_reason
        self.run_dir.append_metrics(line)
        self.on_round(line)

    def _final_evaluation(self, last_round: int) -> None:
        started = time.perf_counter()
        config = instruction_record(self.run, self.run_id)
        config["server-round"] = max(last_round, 1)
        content = RecordDict({ARRAYS: self.arrays, CONFIG: ConfigRecord(dict(config))})
        messages = [
            Message(content=content, dst_node_id=node, message_type=MessageType.EVALUATE)
            for node in sorted(self.grid.get_node_ids())
        ]
        replies = sort_replies(
            list(self.grid.send_and_receive(messages, timeout=self.run.strategy.timeout_s)),
            self.arrays,
        )
        self._write_line(last_round, "final", time.perf_counter() - started, replies)

    def start(self, expected_hospitals: int) -> FederationState:
        """Run every round (or until too few hospitals remain), then score the final model."""
        wait_for_hospitals(
            self.grid,
            expected_hospitals,
            self.run.strategy.min_hospitals,
            self.run.strategy.timeout_s,
        )
        self.run_dir.save_checkpoint(0, arrays_to_state(self.arrays))
        last_round = 0
        for server_round in range(1, self.run.rounds + 1):
            completed = self._train_round(server_round)
            last_round = server_round
            if not completed:
                log.warning(self.state.stop_reason)
                break
        self._final_evaluation(last_round)
        return self.state
