"""Who takes part in a run: the one place that decides which hospitals are online and active.

A hospital is *active* when its node is connected, it has not been dropped (a budget or
policy refusal), and, with secure aggregation, it is on the run's roster. Everything that
samples, waits for or counts hospitals asks a `Membership`.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Iterable

from flwr.serverapp import Grid

log = logging.getLogger("medfed.server")
POLL_S = 0.05


class RunStopped(Exception):
    """The run cannot go on; `reason` goes into metrics.jsonl and the report."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TooFewHospitals(RunStopped):
    """Fewer than `strategy.min_hospitals` hospitals are active."""


def seeded_sample(nodes: Iterable[int], count: int, seed: int | str) -> list[int]:
    """`count` of `nodes` (all when fewer), drawn reproducibly from `seed` whatever order
    the nodes were discovered in."""
    ordered = sorted(nodes)
    return sorted(random.Random(seed).sample(ordered, min(count, len(ordered))))


def training_sample(
    active: list[int], fraction: float, minimum: int, seed: int, server_round: int
) -> list[int]:
    """Who trains in `server_round`: `fraction` of the active hospitals (at least `minimum`),
    as Flower's FedAvg counts it, drawn from the run's seed and the round."""
    count = max(int(len(active) * fraction), minimum)
    return seeded_sample(active, count, f"{seed}:train:{server_round}")


def evaluation_sample(online: list[int], fraction: float, seed: int) -> list[int]:
    """Who scores the final model: all, or a seeded `fraction` (at least one)."""
    if fraction >= 1.0:
        return sorted(online)
    return seeded_sample(online, max(1, math.ceil(fraction * len(online))), seed)


class Membership:
    """The members of one run on `grid` (the nodes connected when it started)."""

    def __init__(self, grid: Grid, minimum: int, timeout_s: float, rejoin_wait_s: float) -> None:
        self.grid, self.minimum = grid, minimum
        self.timeout_s, self.rejoin_wait_s = timeout_s, rejoin_wait_s
        self.members: set[int] = set()
        self.dropped: set[int] = set()  # refused (budget or policy): left out on purpose
        self.given_up: set[int] = set()  # missing after a full rejoin wait
        self.roster: set[int] | None = None  # secure aggregation: only these can contribute

    def online(self) -> list[int]:
        """Connected nodes, as the grid reports them now."""
        return sorted(self.grid.get_node_ids())

    def active(self) -> list[int]:
        """Online nodes that may train this round."""
        eligible = set(self.online()) - self.dropped
        if self.roster is not None:
            eligible &= self.roster
        return sorted(eligible)

    def drop(self, nodes: Iterable[int]) -> None:
        self.dropped |= set(nodes)

    def restrict_to(self, roster: Iterable[int]) -> None:
        self.roster = set(roster)

    def admit(self, expected: int) -> list[int]:
        """Wait for `expected` nodes, or `minimum` once `timeout_s` has passed; they are the
        run's members.

        Raises:
            TooFewHospitals: fewer than `minimum` connected within twice `timeout_s`.
        """
        deadline = time.monotonic() + self.timeout_s
        while True:
            nodes = self.online()
            if len(nodes) >= expected or (
                time.monotonic() > deadline and len(nodes) >= self.minimum
            ):
                self.members = set(nodes)
                return nodes
            if time.monotonic() > deadline + self.timeout_s:
                raise TooFewHospitals(
                    f"only {len(nodes)} hospital(s) connected within "
                    f"{2 * self.timeout_s:g} s, fewer than strategy.min_hospitals = {self.minimum}"
                )
            time.sleep(POLL_S)

    def await_rejoining(self) -> None:
        """Give members that vanished (a crash, a restart) `rejoin_wait_s` to come back;
        wait once per loss, not every round."""
        deadline = time.monotonic() + self.rejoin_wait_s
        while True:
            online = set(self.online())
            self.given_up -= online
            missing = self.members - online - self.dropped
            if not missing - self.given_up:
                return
            if time.monotonic() > deadline:
                log.warning("hospital node(s) %s still away; the round starts without", missing)
                self.given_up |= missing
                return
            time.sleep(2 * POLL_S)

    def await_quorum(self, server_round: int) -> list[int]:
        """The active nodes once at least `minimum` are, waiting up to `timeout_s`.

        Raises:
            TooFewHospitals: still fewer after `timeout_s`; the run cannot go on.
        """
        deadline = time.monotonic() + self.timeout_s
        while len(active := self.active()) < self.minimum:
            if time.monotonic() > deadline:
                raise TooFewHospitals(
                    f"round {server_round}: {len(active)} active hospital(s) after waiting "
                    f"strategy.timeout_s = {self.timeout_s:g} s, fewer than "
                    f"strategy.min_hospitals = {self.minimum}; the run ends here"
                )
            time.sleep(POLL_S)
        return active
