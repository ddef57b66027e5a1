"""A hospital that drops out gets one bounded wait to rejoin before the next round."""

import time

from medfed.server.membership import Membership


class ScriptedGrid:
    """A Grid whose connected nodes follow a script: (seconds from creation, node ids)."""

    def __init__(self, script):
        self.script, self.started = script, time.monotonic()

    def get_node_ids(self):
        elapsed = time.monotonic() - self.started
        return next(nodes for at, nodes in reversed(self.script) if elapsed >= at)


def _membership(grid, wait_s):
    membership = Membership(grid, minimum=2, timeout_s=60.0, rejoin_wait_s=wait_s)
    membership.members = {1, 2, 3}
    return membership


def test_round_waits_for_a_hospital_that_comes_back():
    membership = _membership(ScriptedGrid([(0.0, [1, 2]), (0.3, [1, 2, 3])]), 5.0)
    started = time.monotonic()
    membership.await_rejoining()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert membership.given_up == set()


def test_a_hospital_that_stays_away_costs_one_wait_only():
    membership = _membership(ScriptedGrid([(0.0, [1, 2])]), 0.3)
    started = time.monotonic()
    membership.await_rejoining()
    assert time.monotonic() - started >= 0.3 and membership.given_up == {3}
    started = time.monotonic()
    membership.await_rejoining()  # the next round does not wait for node 3 again
    assert time.monotonic() - started < 0.1


def test_dropped_hospitals_are_not_waited_for():
    membership = _membership(ScriptedGrid([(0.0, [1, 2])]), 5.0)
    membership.drop([3])  # refused on budget or policy: left out on purpose
    started = time.monotonic()
    membership.await_rejoining()
    assert time.monotonic() - started < 0.1
