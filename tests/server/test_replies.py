import numpy as np
import torch
from flwr.app import ConfigRecord, Message, RecordDict

from medfed.server.identities import HospitalIdentities
from medfed.server.replies import as_reply, sort_replies, update_problem
from medfed.server.round_log import record_privacy
from medfed.shared.config.models import PrivacyConfig
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.hospital_report import EvaluationReport, TrainingReport
from medfed.shared.protocol import Outcome, reply_content, state_to_arrays

REFERENCE = state_to_arrays({"w": torch.zeros(2, 3), "b": torch.zeros(2)})
ONES = {"w": torch.ones(2, 3), "b": torch.ones(2)}


def _reply(content: RecordDict, node: int) -> Message:
    return as_reply(content, node)


def _ok(name, state, node, examples=10.0):
    content = reply_content(
        Outcome(name, "ok"),
        state,
        TrainingReport(num_examples=examples, epsilon=0.5),
        EvaluationReport(accuracy=0.8, num_examples=4.0),
    )
    return _reply(content, node)


def test_accepts_well_formed_updates_and_keeps_metrics():
    result = sort_replies(
        [_ok("A", {"w": torch.ones(2, 3), "b": torch.ones(2)}, 1)], REFERENCE, HospitalIdentities()
    )
    assert len(result.updates) == 1 and result.evaluation["A"]["accuracy"] == 0.8
    assert result.training["A"]["epsilon"] == 0.5 and result.names == {1: "A"}


def test_rejects_nan_wrong_shape_and_wrong_keys_with_a_reason():
    replies = [
        _ok("nan", {"w": torch.full((2, 3), float("nan")), "b": torch.ones(2)}, 1),
        _ok("shape", {"w": torch.ones(3, 2), "b": torch.ones(2)}, 2),
        _ok("keys", {"w": torch.ones(2, 3)}, 3),
        _ok("weight", {"w": torch.ones(2, 3), "b": torch.ones(2)}, 4, examples=0.0),
    ]
    result = sort_replies(replies, REFERENCE, HospitalIdentities())
    assert result.updates == []
    assert "NaN" in result.failed["nan"] and "shape" in result.failed["shape"]
    assert "names" in result.failed["keys"] and "num_examples" in result.failed["weight"]


def test_budget_refusal_is_recorded_not_aggregated():
    error = PrivacyBudgetExceeded("over budget", spent_epsilon=1.0, max_epsilon=1.0)
    result = sort_replies(
        [_reply(reply_content(Outcome.from_error("A", error)), 5)], REFERENCE, HospitalIdentities()
    )
    assert result.refused["A"].code == "privacy_budget_exceeded" and result.names == {5: "A"}


def test_a_reply_with_an_undeclared_field_is_a_failure_not_a_crash():
    content = reply_content(Outcome("A", "ok"), {"w": torch.ones(2, 3), "b": torch.ones(2)})
    content["training"] = ConfigRecord({"num_examples": 3.0, "train_loss": 0.2})
    result = sort_replies([_reply(content, 3)], REFERENCE, HospitalIdentities())
    assert result.updates == [] and "train_loss" in result.failed["A"]


def test_reply_without_outcome_is_a_failure_not_a_crash():
    result = sort_replies([_reply(RecordDict(), 9)], REFERENCE, HospitalIdentities())
    assert "outcome" in result.failed["node 9"]


def test_update_problem_accepts_matching_update():
    assert (
        update_problem(
            state_to_arrays({"w": torch.ones(2, 3), "b": torch.tensor(np.ones(2, np.float32))}),
            REFERENCE,
        )
        is None
    )


def test_update_farther_than_the_norm_bound_is_rejected_and_logged(caplog):
    # Distance from REFERENCE (zeros): sqrt(6 * 1² + 2 * 1²) = sqrt(8) ≈ 2.83.
    near = _ok("near", {"w": torch.full((2, 3), 0.5), "b": torch.zeros(2)}, 1)  # sqrt(1.5)
    far = _ok("far", {"w": torch.ones(2, 3), "b": torch.ones(2)}, 2)
    with caplog.at_level("WARNING", logger="medfed.server"):
        result = sort_replies([near, far], REFERENCE, HospitalIdentities(), max_update_norm=2.0)
    assert [m.metadata.src_node_id for m in result.updates] == [1]
    assert "2.828" in result.failed["far"] and "max_update_norm = 2" in result.failed["far"]
    assert "far" in caplog.text and "2.828" in caplog.text


def test_without_a_norm_bound_large_updates_are_accepted():
    far = _ok("far", {"w": torch.full((2, 3), 1e6), "b": torch.ones(2)}, 2)
    assert len(sort_replies([far], REFERENCE, HospitalIdentities()).updates) == 1


def test_a_reply_that_claims_another_hospitals_name_is_attributed_to_its_own_node():
    identities = HospitalIdentities(lookup={1: "Cleveland", 2: "Hungary"}.get)
    first = sort_replies([_ok("Cleveland", ONES, 1, examples=10.0)], REFERENCE, identities)
    privacy = {}
    record_privacy(privacy, first, PrivacyConfig())
    cleveland = dict(privacy["Cleveland"])

    liar = reply_content(
        Outcome("Cleveland", "ok"),
        ONES,
        TrainingReport(num_examples=999.0, epsilon=0.9),
        EvaluationReport(accuracy=0.1, num_examples=4.0),
    )
    second = sort_replies([_reply(liar, 2)], REFERENCE, identities)
    record_privacy(privacy, second, PrivacyConfig())

    assert privacy["Cleveland"] == cleveland
    assert privacy["Hungary"]["epsilon"] == 0.9
    assert set(second.training) == set(second.evaluation) == {"Hungary"}
    assert second.names == {2: "Hungary"}
    assert second.identity == {"Hungary": "node 2 (Hungary) claimed to be 'Cleveland'"}
    [update] = second.updates
    assert update.metadata.src_node_id == 2


def test_a_node_unknown_to_the_registry_is_a_failure_and_files_nothing():
    identities = HospitalIdentities(lookup={1: "Cleveland"}.get)
    result = sort_replies([_ok("Cleveland", ONES, 7)], REFERENCE, identities)
    assert result.updates == [] and result.training == {} and result.names == {}
    assert "not a registered hospital" in result.failed["node 7"]


def test_without_authentication_a_name_is_bound_to_the_first_node_that_claims_it():
    identities = HospitalIdentities.trust_on_first_use()
    sort_replies([_ok("Cleveland", ONES, 1)], REFERENCE, identities)
    result = sort_replies(
        [_ok("Cleveland", ONES, 2), _ok("Hungary", ONES, 1)], REFERENCE, identities
    )
    assert result.names == {1: "Cleveland"} and set(result.training) == {"Cleveland"}
    assert "already bound to node 1" in result.failed["node 2"]
    assert result.identity == {"Cleveland": "node 1 (Cleveland) claimed to be 'Hungary'"}
