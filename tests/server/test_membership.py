"""Who takes part: one Membership decides who is online and active; sampling is seeded; a
hospital that drops out gets one bounded wait to rejoin before the next round."""

import time

import pytest

from medfed.server.membership import Membership, TooFewHospitals, training_sample


class ScriptedGrid:
    """A Grid whose connected nodes follow a script: (seconds from creation, node ids)."""

    def __init__(self, script):
        self.script, self.started = script, time.monotonic()

    def get_node_ids(self):
        elapsed = time.monotonic() - self.started
        return next(nodes for at, nodes in reversed(self.script) if elapsed >= at)


def _membership(nodes, minimum=2, timeout_s=0.3):
    membership = Membership(ScriptedGrid([(0.0, list(nodes))]), minimum, timeout_s, 0.0)
    membership.members = set(nodes)
    return membership


def test_same_seed_and_round_draw_the_same_sample_and_rounds_differ():
    active = list(range(1, 101))
    first = training_sample(active, 0.1, 2, seed=7, server_round=1)
    assert len(first) == 10 and set(first) <= set(active)
    assert first == training_sample(list(reversed(active)), 0.1, 2, seed=7, server_round=1)
    rounds = {tuple(training_sample(active, 0.1, 2, seed=7, server_round=r)) for r in range(1, 6)}
    assert len(rounds) == 5  # a new draw every round
    assert first != training_sample(active, 0.1, 2, seed=8, server_round=1)


def test_a_dropped_hospital_takes_no_sampling_slot():
    membership = _membership(range(1, 11))
    membership.drop([3])  # refused on budget: left out of every later round
    assert membership.active() == [1, 2, 4, 5, 6, 7, 8, 9, 10]
    for server_round in range(1, 30):
        sample = training_sample(membership.active(), 0.5, 2, seed=0, server_round=server_round)
        assert len(sample) == 4 and 3 not in sample  # int(9 × 0.5) of the 9 active


def test_at_least_min_hospitals_are_sampled():
    assert len(training_sample([1, 2, 3, 4], 0.1, 3, seed=0, server_round=1)) == 3


def test_secure_roster_limits_who_is_active():
    membership = _membership([1, 2, 3, 4])
    membership.restrict_to([1, 2, 4])
    assert membership.active() == [1, 2, 4]


def test_quorum_wait_ends_with_a_reason_instead_of_waiting_forever():
    membership = _membership([1, 2, 3], minimum=3, timeout_s=0.3)
    membership.grid = ScriptedGrid([(0.0, [1, 2])])  # node 3 left for good
    started = time.monotonic()
    with pytest.raises(TooFewHospitals) as raised:
        membership.await_quorum(2)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert "round 2: 2 active hospital(s)" in raised.value.reason
    assert "strategy.min_hospitals = 3" in raised.value.reason


def test_quorum_wait_returns_once_a_hospital_is_back():
    membership = _membership([1, 2, 3], minimum=3, timeout_s=5.0)
    membership.grid = ScriptedGrid([(0.0, [1, 2]), (0.2, [1, 2, 3])])
    assert membership.await_quorum(1) == [1, 2, 3]


def test_admission_stops_with_a_reason_when_too_few_connect():
    membership = Membership(ScriptedGrid([(0.0, [1])]), 2, 0.1, 0.0)
    with pytest.raises(TooFewHospitals, match="strategy.min_hospitals = 2"):
        membership.admit(expected=3)


def test_admission_takes_the_minimum_once_the_timeout_passes():
    membership = Membership(ScriptedGrid([(0.0, [1, 2])]), 2, 0.1, 0.0)
    assert membership.admit(expected=3) == [1, 2] and membership.members == {1, 2}


def _rejoining(grid, wait_s):
    membership = Membership(grid, minimum=2, timeout_s=60.0, rejoin_wait_s=wait_s)
    membership.members = {1, 2, 3}
    return membership


def test_round_waits_for_a_hospital_that_comes_back():
    membership = _rejoining(ScriptedGrid([(0.0, [1, 2]), (0.3, [1, 2, 3])]), 5.0)
    started = time.monotonic()
    membership.await_rejoining()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert membership.given_up == set()


def test_a_hospital_that_stays_away_costs_one_wait_only():
    membership = _rejoining(ScriptedGrid([(0.0, [1, 2])]), 0.3)
    started = time.monotonic()
    membership.await_rejoining()
    assert time.monotonic() - started >= 0.3 and membership.given_up == {3}
    started = time.monotonic()
    membership.await_rejoining()  # the next round does not wait for node 3 again
    assert time.monotonic() - started < 0.1


def test_dropped_hospitals_are_not_waited_for():
    membership = _rejoining(ScriptedGrid([(0.0, [1, 2])]), 5.0)
    membership.drop([3])  # refused on budget or policy: left out on purpose
    started = time.monotonic()
    membership.await_rejoining()
    assert time.monotonic() - started < 0.1
