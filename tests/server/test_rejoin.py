"""A hospital that drops out gets one bounded wait to rejoin before the next round."""

import time

from flwr.app import ArrayRecord

from medfed.server.federation import Federation
from medfed.shared.config import RunConfig


class ScriptedGrid:
    """A Grid whose connected nodes follow a script: (seconds from creation, node ids)."""

    def __init__(self, script):
        self.script, self.started = script, time.monotonic()

    def get_node_ids(self):
        elapsed = time.monotonic() - self.started
        return next(nodes for at, nodes in reversed(self.script) if elapsed >= at)


def _federation(grid, wait_s):
    run = RunConfig(strategy={"rejoin_wait_s": wait_s})
    federation = Federation(grid, run, ArrayRecord(), run_dir=None)
    federation.state.members = {1, 2, 3}
    return federation


def test_round_waits_for_a_hospital_that_comes_back():
    grid = ScriptedGrid([(0.0, [1, 2]), (0.3, [1, 2, 3])])
    federation = _federation(grid, 5.0)
    started = time.monotonic()
    federation._await_rejoining()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert federation.state.given_up == set()


def test_a_hospital_that_stays_away_costs_one_wait_only():
    grid = ScriptedGrid([(0.0, [1, 2])])
    federation = _federation(grid, 0.3)
    started = time.monotonic()
    federation._await_rejoining()
    assert time.monotonic() - started >= 0.3 and federation.state.given_up == {3}
    started = time.monotonic()
    federation._await_rejoining()  # the next round does not wait for node 3 again
    assert time.monotonic() - started < 0.1


def test_dropped_hospitals_are_not_waited_for():
    federation = _federation(ScriptedGrid([(0.0, [1, 2])]), 5.0)
    federation.state.dropped_nodes = {3}  # refused on budget or policy: left out on purpose
    started = time.monotonic()
    federation._await_rejoining()
    assert time.monotonic() - started < 0.1
