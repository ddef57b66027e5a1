import json

import pytest
import torch

from medfed.client.hospital import HospitalSettings, plan_noise, train_round
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import LedgerError, PrivacyBudgetExceeded
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy import epsilon_of
from medfed.shared.privacy.verify import ledger_epsilon, verify_ledger


def _instruction(run, server_round, run_id="run1"):
    record = dict(instruction_record(run, run_id))
    record["server-round"] = server_round
    return RoundInstruction.model_validate(record)


def _settings(tmp_path, max_epsilon=1.0):
    return HospitalSettings("Hungary", max_epsilon, tmp_path / "Hungary.jsonl", tmp_path / "keys")


@pytest.fixture(scope="module")
def hungary():
    return next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")


def _run(hungary, settings, run, run_id):
    weights = build_model(run.model, (13,), 2).state_dict()
    result = None
    for server_round in range(1, run.rounds + 1):
        instruction = _instruction(run, server_round, run_id)
        result = train_round(hungary, settings, instruction, weights)
        weights = result.state_dict
    return result


def test_a_full_run_stays_within_the_target_and_is_in_the_ledger(hungary, tmp_path):
    settings = _settings(tmp_path)
    result = _run(hungary, settings, RunConfig(rounds=3), "run1")
    epsilon = result.train_metrics["epsilon"]
    assert 0.98 < epsilon <= 1.0  # the budget is used, not wasted
    assert epsilon == pytest.approx(ledger_epsilon(settings.ledger_path), abs=1e-12)
    assert verify_ledger(settings.ledger_path).valid
    expected = {"accuracy", "auroc", "sensitivity", "specificity", "loss", "num_examples"}
    assert expected <= set(result.evaluation)


def test_second_run_on_the_same_ledger_is_refused_once_the_budget_is_spent(hungary, tmp_path):
    settings = _settings(tmp_path)
    _run(hungary, settings, RunConfig(rounds=2), "first")
    with pytest.raises(PrivacyBudgetExceeded) as caught:
        _run(hungary, settings, RunConfig(rounds=2), "second")
    assert caught.value.spent_epsilon == pytest.approx(ledger_epsilon(settings.ledger_path))
    assert caught.value.max_epsilon == 1.0


def test_a_new_run_continues_from_the_spent_epsilon(hungary, tmp_path):
    settings = _settings(tmp_path, max_epsilon=3.0)
    first = _run(hungary, settings, RunConfig(rounds=2), "first").train_metrics["epsilon"]
    second = _run(hungary, settings, RunConfig(rounds=2), "second").train_metrics["epsilon"]
    assert first <= 1.0 < second <= min(first + 1.0, 3.0)
    assert second == pytest.approx(ledger_epsilon(settings.ledger_path), abs=1e-12)


def test_plan_refuses_round_that_would_exceed_budget(hungary, tmp_path):
    settings = _settings(tmp_path)
    ledger = settings.open_ledger(hungary.fingerprint)
    ledger.append_round(
        run_id="old",
        round=1,
        dataset_fingerprint=hungary.fingerprint,
        noise_multiplier=0.5,
        sample_rate=1.0,
        steps=50,
        max_grad_norm=1.0,
        delta=1e-5,
        accountant="rdp",
    )
    with pytest.raises(PrivacyBudgetExceeded, match="max_epsilon=1.0"):
        plan_noise(settings, ledger, _instruction(RunConfig(rounds=5), 1), hungary.num_train)


def test_refuses_to_train_on_a_ledger_that_does_not_verify(hungary, tmp_path):
    settings = _settings(tmp_path)
    _run(hungary, settings, RunConfig(rounds=1), "first")
    lines = settings.ledger_path.read_text().splitlines()
    entry = json.loads(lines[-1])
    entry["steps"] = 1  # a smaller spend, as someone hiding privacy loss might write
    settings.ledger_path.write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")
    with pytest.raises(LedgerError, match="does not verify"):
        _run(hungary, settings, RunConfig(rounds=1), "second")


def test_evaluation_scores_the_received_model_before_training(hungary, tmp_path):
    run = RunConfig(rounds=1)
    model = build_model(run.model, (13,), 2)
    weights = {k: torch.zeros_like(v) for k, v in model.state_dict().items()}
    result = train_round(hungary, _settings(tmp_path), _instruction(run, 1), weights)
    assert result.evaluation["auroc"] == 0.5  # all-zero model: every score ties


def test_private_training_off_writes_no_ledger(hungary, tmp_path):
    settings = HospitalSettings(
        "H", 1.0, tmp_path / "H.jsonl", tmp_path / "keys", privacy_enabled=False
    )
    run = RunConfig(rounds=1)
    result = train_round(
        hungary, settings, _instruction(run, 1), build_model(run.model, (13,), 2).state_dict()
    )
    assert "epsilon" not in result.train_metrics and not settings.ledger_path.exists()


def test_epsilon_of_ledger_history_matches_accountant(hungary, tmp_path):
    settings = _settings(tmp_path)
    _run(hungary, settings, RunConfig(rounds=2), "r")
    ledger = settings.open_ledger(hungary.fingerprint)
    assert epsilon_of(ledger.history(), 1e-5, "rdp") == pytest.approx(
        ledger.entries[-1]["epsilon_after"]
    )


@pytest.mark.parametrize("seeded", [True, False])
def test_noise_is_secret_unless_a_simulation_asks_for_seeded_noise(hungary, tmp_path, seeded):
    run = RunConfig(rounds=1)
    weights = build_model(run.model, (13,), 2).state_dict()
    results = []
    for copy in ("a", "b"):
        settings = HospitalSettings(
            "Hungary", 1.0, tmp_path / copy / "H.jsonl", tmp_path / copy / "k", seeded_noise=seeded
        )
        results.append(train_round(hungary, settings, _instruction(run, 1), weights).state_dict)
    same = all(torch.equal(results[0][k], results[1][k]) for k in results[0])
    assert same == seeded  # a coordinator knows the run's seed: it must not know the noise
