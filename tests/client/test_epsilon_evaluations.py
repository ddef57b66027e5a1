"""A hospital's round costs as few ε evaluations as it safely can, and never counts less."""

import pytest
from opacus.accountants import RDPAccountant

import medfed.client.hospital
import medfed.shared.privacy.accounting
import medfed.shared.privacy.ledger
from medfed.client.hospital import HospitalSettings, train_round
from medfed.shared.config import RunConfig
from medfed.shared.crypto.signing import load_or_create_signing_key
from medfed.shared.data import load_federation
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.accounting import RDP_ORDERS
from medfed.shared.privacy.ledger import PrivacyLedger

ROUNDS = [(1.2, 0.1, 30), (2.5, 0.25, 8), (0.9, 0.05, 100)]


def _opacus(history, delta):
    accountant = RDPAccountant()
    accountant.history = list(history)
    return accountant.get_epsilon(delta=delta, alphas=RDP_ORDERS)


def _ledger(tmp_path):
    key = load_or_create_signing_key(tmp_path / "keys", "Cleveland")
    ledger = PrivacyLedger.open(tmp_path / "Cleveland.jsonl", key, "Cleveland", "f" * 64)
    for number, (sigma, q, steps) in enumerate(ROUNDS, start=1):
        ledger.append_round(
            run_id="run-a" if number < 3 else "run-b",
            round=number,
            dataset_fingerprint="f" * 64,
            noise_multiplier=sigma,
            sample_rate=q,
            steps=steps,
            max_grad_norm=1.0,
            delta=1e-5,
            accountant="rdp",
        )
    return ledger


def test_epsilon_so_far_reuses_the_signed_value_only_at_the_same_delta(tmp_path):
    ledger = _ledger(tmp_path)
    assert ledger.epsilon_before_run("run-b", 1e-5, "rdp") == pytest.approx(
        _opacus(ROUNDS[:2], 1e-5), abs=1e-9
    )
    assert ledger.epsilon_of_first(len(ledger.entries), 1e-5, "rdp") == pytest.approx(
        _opacus(ROUNDS, 1e-5), abs=1e-9
    )
    # Recorded at δ = 1e-5: a question at another δ is recomputed, not answered from the entry.
    assert ledger.epsilon_of_first(len(ledger.entries), 1e-3, "rdp") == pytest.approx(
        _opacus(ROUNDS, 1e-3), abs=1e-9
    )
    assert ledger.epsilon_of_first(1, 1e-5, "rdp") == 0.0  # the header alone


@pytest.fixture()
def count_evaluations(monkeypatch):
    calls = []
    original = medfed.shared.privacy.accounting.epsilon_of

    def counted(history, delta, accountant):
        calls.append(len(history))
        return original(history, delta, accountant)

    for module in (medfed.shared.privacy.ledger, medfed.client.hospital):
        monkeypatch.setattr(module, "epsilon_of", counted)
    monkeypatch.setattr(medfed.shared.privacy.accounting, "epsilon_of", counted)
    return calls


def test_a_later_round_evaluates_epsilon_twice_and_records_the_same_epsilon(
    tmp_path, count_evaluations
):
    hungary = next(h for h in load_federation(RunConfig().data, 0) if h.name == "Hungary")
    settings = HospitalSettings("Hungary", 3.0, tmp_path / "H.jsonl", tmp_path / "keys")
    run = RunConfig(rounds=2)
    weights = build_model(run.model, (13,), 2).state_dict()
    for run_id in ("first", "second"):
        for server_round in (1, 2):
            record = dict(instruction_record(run, run_id)) | {"server-round": server_round}
            count_evaluations.clear()
            result = train_round(
                hungary, settings, RoundInstruction.model_validate(record), weights
            )
        assert len(count_evaluations) == 2  # the plan check and the ledger entry's ε
        ledger = settings.open_ledger(hungary.fingerprint)
        recomputed = _opacus(ledger.history(), settings.delta)
        assert result.train_metrics["epsilon"] == pytest.approx(recomputed, abs=1e-9)
        start = ledger.epsilon_before_run(run_id, settings.delta, settings.accountant)
        assert result.train_metrics["epsilon_at_run_start"] == start
