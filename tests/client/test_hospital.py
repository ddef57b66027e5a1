import pytest
import torch
from medfed.client.hospital import HospitalSettings, PrivacyState, plan_noise, train_round
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy import epsilon_of


def _instruction(run, server_round):
    record = dict(instruction_record(run))
    record["server-round"] = server_round
    return RoundInstruction.model_validate(record)


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")


def test_a_full_run_stays_within_the_target_epsilon(hungary):
    run = RunConfig(rounds=3)
    settings = HospitalSettings("Hungary", max_epsilon=1.0)
    privacy = PrivacyState()
    weights = build_model(run.model, (13,), 2).state_dict()
    for server_round in (1, 2, 3):
        result = train_round(
            hungary, settings, _instruction(run, server_round), weights, privacy, run_id=7
        )
        weights = result.state_dict
    assert result.train_metrics["epsilon"] <= 1.0
    assert result.train_metrics["epsilon"] == pytest.approx(
        epsilon_of(privacy.history, 1e-5, "rdp")
    )
    assert result.train_metrics["epsilon"] > 0.98  # the budget is used, not wasted
    assert {"accuracy", "auroc", "sensitivity", "specificity", "loss", "num_examples"} <= set(
        result.evaluation
    )


def test_refuses_round_that_would_exceed_budget(hungary):
    run = RunConfig(rounds=5)
    settings = HospitalSettings("Hungary", max_epsilon=1.0)
    spent = PrivacyState(history=[(0.5, 1.0, 50)])
    with pytest.raises(PrivacyBudgetExceeded) as caught:
        plan_noise(settings, spent, _instruction(run, 1), run_id=1, num_train=hungary.num_train)
    assert caught.value.max_epsilon == 1.0 and caught.value.spent_epsilon > 1.0


def test_a_new_run_continues_from_the_spent_epsilon(hungary):
    run = RunConfig(rounds=2)
    run.privacy.target_epsilon = 0.5
    settings = HospitalSettings("Hungary", max_epsilon=2.0)
    privacy = PrivacyState(history=[(5.0, 1.0, 3)])
    spent = epsilon_of(privacy.history, 1e-5, "rdp")
    noise = plan_noise(
        settings, privacy, _instruction(run, 1), run_id=2, num_train=hungary.num_train
    )
    assert privacy.run_start_epsilon == pytest.approx(spent)
    projected = epsilon_of(
        [*privacy.history, (noise.noise_multiplier, noise.sample_rate, 2)], 1e-5, "rdp"
    )
    assert projected <= spent + 0.5


def test_privacy_state_round_trips():
    state = PrivacyState(
        [(1.0, 0.5, 3), (2.0, 0.25, 4)], run_id=3, run_start_epsilon=0.2, noise_multiplier=1.5
    )
    assert PrivacyState.from_state_dict(state.state_dict()) == state


def test_evaluation_scores_the_received_model_before_training(hungary):
    run = RunConfig(rounds=1)
    weights = {
        k: torch.zeros_like(v) for k, v in build_model(run.model, (13,), 2).state_dict().items()
    }
    result = train_round(
        hungary, HospitalSettings("Hungary", 1.0), _instruction(run, 1), weights, PrivacyState(), 1
    )
    assert result.evaluation["auroc"] == 0.5  # all-zero model: every score ties
