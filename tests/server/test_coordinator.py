"""medfed's strategy wrapper: rounds that cannot go on end with a reason, never an IndexError
or an endless wait; budget refusals drop a hospital; accepted updates are averaged."""

import numpy as np
import pytest
import torch
from flwr.app import ConfigRecord

from medfed.server.coordinator import MedfedStrategy
from medfed.server.identities import HospitalIdentities
from medfed.server.member_grid import MemberGrid
from medfed.server.membership import Membership, RunStopped, TooFewHospitals
from medfed.server.replies import as_reply
from medfed.server.strategies import build_strategy
from medfed.shared.config import RunConfig
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.protocol import Outcome, reply_content, state_to_arrays

REFERENCE = state_to_arrays({"w": torch.zeros(2, 3), "b": torch.zeros(2)})


class FixedGrid:
    def __init__(self, nodes):
        self.nodes = nodes

    def get_node_ids(self):
        return list(self.nodes)


def _strategy(nodes, min_hospitals=2):
    run = RunConfig(strategy={"min_hospitals": min_hospitals, "timeout_s": 0.2, "rejoin_wait_s": 0})
    membership = Membership(FixedGrid(nodes), min_hospitals, 0.2, 0.0)
    membership.members = set(nodes)
    inner = build_strategy(run.strategy)
    strategy = MedfedStrategy(inner, run, membership, HospitalIdentities.trust_on_first_use())
    return strategy, MemberGrid(membership.grid, membership.active)


def _update(name, node, value, examples):
    state = {"w": torch.full((2, 3), value), "b": torch.full((2,), value)}
    training = TrainingReport(num_examples=examples, epsilon=0.5)
    return as_reply(
        reply_content(
            Outcome(name, "ok"), state, training, EvaluationReport(accuracy=0.8, num_examples=4.0)
        ),
        node,
    )


def _refusal(name, node):
    outcome = Outcome(name, "refused", PrivacyBudgetExceeded.code, "max_epsilon reached")
    return as_reply(reply_content(outcome), node)


def test_an_empty_sample_ends_the_round_with_a_reason():
    strategy, grid = _strategy([1, 2])
    strategy.membership.drop([1, 2])  # every hospital refused earlier
    with pytest.raises(TooFewHospitals, match="0 active hospital"):
        strategy.configure_train(3, REFERENCE, ConfigRecord(), grid)
    assert strategy.replies.updates == []  # the round's line shows no stale replies


def test_too_few_updates_stop_the_run_and_refusals_drop_the_hospital():
    strategy, _ = _strategy([1, 2, 3])
    strategy.current_arrays = REFERENCE
    replies = [_update("A", 1, 1.0, 10.0), _refusal("B", 2)]
    with pytest.raises(RunStopped, match="1 hospital update"):
        strategy.aggregate_train(1, replies)
    assert strategy.membership.dropped == {2}
    assert strategy.privacy["B"]["status"] == "exhausted"
    assert strategy.membership.active() == [1, 3]


def test_accepted_updates_are_averaged_by_examples():
    strategy, _ = _strategy([1, 2])
    strategy.current_arrays = REFERENCE
    replies = [_update("A", 1, 1.0, 10.0), _update("B", 2, 4.0, 30.0)]
    arrays, _ = strategy.aggregate_train(1, replies)
    assert np.allclose(arrays["w"].numpy(), (1.0 * 10 + 4.0 * 30) / 40)
    assert sorted(strategy.replies.training) == ["A", "B"]
