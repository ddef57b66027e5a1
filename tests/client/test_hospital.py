import json

import pytest
import torch

from medfed.client.hospital import HospitalSettings, train_round
from medfed.client.planning import plan_training
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.errors import LedgerError, PrivacyBudgetExceeded
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy import epsilon_of
from medfed.shared.privacy.ledger import LedgerPlan
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


def _entries(settings):
    return [json.loads(line) for line in settings.ledger_path.read_text().splitlines()]


def test_a_full_run_stays_within_the_target_and_is_in_the_ledger(hungary, tmp_path):
    settings = _settings(tmp_path)
    result = _run(hungary, settings, RunConfig(rounds=3), "run1")
    epsilon = result.training.epsilon
    assert 0.98 < epsilon <= 1.0  # the budget is used, not wasted
    assert epsilon == pytest.approx(ledger_epsilon(settings.ledger_path), abs=1e-12)
    assert verify_ledger(settings.ledger_path).valid
    assert result.evaluation is not None and result.evaluation.accuracy is not None
    types = [e["type"] for e in _entries(settings)]
    assert types == ["header", "count", *(["evaluation", "round"] * 3)]


def test_the_label_counts_are_released_once_and_every_size_follows_from_them(hungary, tmp_path):
    settings = _settings(tmp_path, max_epsilon=3.0)
    first = _run(hungary, settings, RunConfig(rounds=2), "first")
    second = _run(hungary, settings, RunConfig(rounds=1), "second")
    counts = [e for e in _entries(settings) if e["type"] == "count"]
    assert len(counts) == 1 and counts[0]["stream"] == "train"
    released = max(1, round(sum(max(c, 0.0) for c in counts[0]["released"])))
    assert first.training.num_examples == second.training.num_examples == released
    assert released != hungary.num_train  # the exact n never leaves


def test_second_run_on_the_same_ledger_is_refused_once_the_budget_is_spent(hungary, tmp_path):
    settings = _settings(tmp_path)
    _run(hungary, settings, RunConfig(rounds=2), "first")
    with pytest.raises(PrivacyBudgetExceeded) as caught:
        _run(hungary, settings, RunConfig(rounds=2), "second")
    assert caught.value.spent_epsilon == pytest.approx(ledger_epsilon(settings.ledger_path))
    assert caught.value.max_epsilon == 1.0


def test_a_new_run_continues_from_the_spent_epsilon(hungary, tmp_path):
    settings = _settings(tmp_path, max_epsilon=3.0)
    first = _run(hungary, settings, RunConfig(rounds=2), "first").training.epsilon
    second = _run(hungary, settings, RunConfig(rounds=2), "second").training.epsilon
    assert first <= 1.0 < second <= min(first + 1.0, 3.0)
    assert second == pytest.approx(ledger_epsilon(settings.ledger_path), abs=1e-12)


def test_plan_refuses_round_that_would_exceed_budget(hungary, tmp_path):
    settings = _settings(tmp_path)
    with settings.locked_ledger(hungary.fingerprint) as ledger:
        ledger.commit(
            LedgerPlan("round", "old", 1, hungary.fingerprint, 0.5, 1.0, 50, 1.0, 1e-5, "rdp")
        )
        with pytest.raises(PrivacyBudgetExceeded, match="max_epsilon=1.0"):
            plan_training(
                settings, ledger, _instruction(RunConfig(rounds=5), 1), 171.0, hungary.fingerprint
            )


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
    settings = _settings(tmp_path)
    train_round(hungary, settings, _instruction(run, 1), weights)
    evaluation = next(e for e in _entries(settings) if e["type"] == "evaluation")
    # All-zero model: P(class 1) = 0.5 for everyone, so every record sits in bin 5 of its class
    # (the released histogram is that plus noise of σ·√2).
    released = evaluation["released"]
    assert evaluation["stream"] == "test" and len(released) == 21


def test_private_training_off_writes_no_ledger(hungary, tmp_path):
    settings = HospitalSettings(
        "H", 1.0, tmp_path / "H.jsonl", tmp_path / "keys", privacy_enabled=False
    )
    run = RunConfig(rounds=1)
    result = train_round(
        hungary, settings, _instruction(run, 1), build_model(run.model, (13,), 2).state_dict()
    )
    assert result.training.epsilon is None and not settings.ledger_path.exists()
    assert result.training.num_examples == hungary.num_train


def test_epsilon_of_ledger_history_matches_accountant(hungary, tmp_path):
    settings = _settings(tmp_path)
    _run(hungary, settings, RunConfig(rounds=2), "r")
    entries = [e for e in _entries(settings) if e.get("stream") == "train"]
    history = [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in entries]
    assert epsilon_of(history, 1e-5, "rdp") == pytest.approx(entries[-1]["epsilon_after"])


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
