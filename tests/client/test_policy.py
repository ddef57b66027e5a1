import json

import pytest

from medfed.client.hospital import HospitalSettings, train_round
from medfed.client.policy import HospitalPolicy, check_instruction, check_noise
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import PolicyViolation
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model


def _instruction(run, server_round=1):
    record = dict(instruction_record(run, "run1"))
    record["server-round"] = server_round
    return RoundInstruction.model_validate(record)


def test_an_instruction_within_every_limit_passes():
    policy = HospitalPolicy(
        allowed_models=("logistic",), max_local_epochs=2, max_epsilon_per_window=1.0, max_rounds=5
    )
    check_instruction(policy, _instruction(RunConfig(rounds=5)), "Hungary")


@pytest.mark.parametrize(
    ("policy", "run", "key"),
    [
        (HospitalPolicy(allowed_models=("logistic",)), RunConfig(model={"name": "mlp"}), "model"),
        (HospitalPolicy(max_local_epochs=1), RunConfig(training={"local_epochs": 3}), "epochs"),
        (HospitalPolicy(max_rounds=2), RunConfig(rounds=3), "max_rounds"),
        (
            HospitalPolicy(max_epsilon_per_window=0.5),
            RunConfig(privacy={"target_epsilon": 2.0}),
            "max_epsilon_per_window",
        ),
    ],
)
def test_refuses_an_instruction_that_breaks_a_limit(policy, run, key):
    with pytest.raises(PolicyViolation, match=key) as caught:
        check_instruction(policy, _instruction(run), "Hungary")
    assert "Hungary" in str(caught.value)


def test_refuses_a_server_round_past_the_runs_planned_rounds():
    with pytest.raises(PolicyViolation, match="past the run's 2 planned rounds"):
        check_instruction(HospitalPolicy(), _instruction(RunConfig(rounds=2), 3), "Hungary")


def test_refuses_noise_below_the_floor():
    check_noise(HospitalPolicy(min_noise_multiplier=1.0), 1.2, "Hungary")
    with pytest.raises(PolicyViolation, match="min_noise_multiplier"):
        check_noise(HospitalPolicy(min_noise_multiplier=1.0), 0.8, "Hungary")


def test_unknown_policy_keys_are_errors():
    with pytest.raises(ValueError, match="max_epoch"):
        HospitalPolicy.model_validate({"max_epoch": 2})


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")


def test_train_round_refuses_before_touching_the_ledger(hungary, tmp_path):
    policy = HospitalPolicy(min_noise_multiplier=50.0)  # no budget of 1.0 needs that much noise
    settings = HospitalSettings(
        "Hungary", 1.0, tmp_path / "Hungary.jsonl", tmp_path / "keys", policy=policy
    )
    run = RunConfig(rounds=2)
    weights = build_model(run.model, (13,), 2).state_dict()
    with pytest.raises(PolicyViolation, match="min_noise_multiplier"):
        train_round(hungary, settings, _instruction(run), weights)
    # The noise floor needs σ, σ needs the released size: only the label counts were spent.
    lines = settings.ledger_path.read_text().splitlines() if settings.ledger_path.exists() else []
    assert [json.loads(line)["type"] for line in lines] in ([], ["header", "count"])
    strict = HospitalSettings(
        "Hungary",
        1.0,
        tmp_path / "H2.jsonl",
        tmp_path / "keys2",
        policy=HospitalPolicy(max_rounds=1),
    )
    with pytest.raises(PolicyViolation, match="max_rounds"):
        train_round(hungary, strict, _instruction(run), weights)
    assert not strict.ledger_path.exists()


def test_new_run_ids_do_not_reset_the_window_allowance(hungary, tmp_path):
    """A coordinator inventing a run id per round still meets the hospital's window cap."""
    policy = HospitalPolicy(max_epsilon_per_window=1.5)
    settings = HospitalSettings(
        "Hungary", 10.0, tmp_path / "H.jsonl", tmp_path / "keys", policy=policy
    )
    run = RunConfig(rounds=1, privacy={"target_epsilon": 1.0})
    weights = build_model(run.model, (13,), 2).state_dict()
    record = dict(instruction_record(run, "first")) | {"server-round": 1}
    train_round(hungary, settings, RoundInstruction.model_validate(record), weights)
    record["run-id"] = "second"
    with pytest.raises(PolicyViolation, match="max_epsilon_per_window"):
        train_round(hungary, settings, RoundInstruction.model_validate(record), weights)


def test_a_round_past_the_plan_is_refused_without_a_policy(hungary, tmp_path):
    settings = HospitalSettings("Hungary", 10.0, tmp_path / "H.jsonl", tmp_path / "keys")
    run = RunConfig(rounds=1)
    weights = build_model(run.model, (13,), 2).state_dict()
    with pytest.raises(PolicyViolation, match="planned rounds"):
        train_round(hungary, settings, _instruction(run, server_round=7), weights)
