"""A hospital's round costs as few ε evaluations as it safely can, and never counts less."""

import pytest
from opacus.accountants import RDPAccountant

import medfed.client.planning
import medfed.shared.privacy.accounting
import medfed.shared.privacy.ledger
from medfed.client.hospital import HospitalSettings, train_round
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.instruction import RoundInstruction, instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.accounting import RDP_ORDERS


def _opacus(history, delta):
    accountant = RDPAccountant()
    accountant.history = list(history)
    return accountant.get_epsilon(delta=delta, alphas=RDP_ORDERS)


@pytest.fixture()
def count_evaluations(monkeypatch):
    calls = []
    original = medfed.shared.privacy.accounting.epsilon_of

    def counted(history, delta, accountant):
        if (10.0, 1.0, 1) in [tuple(step) for step in history]:  # the train stream (its count)
            calls.append(len(history))
        return original(history, delta, accountant)

    for module in (medfed.shared.privacy.ledger, medfed.client.planning):
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
        with settings.locked_ledger(hungary.fingerprint) as ledger:
            recomputed = _opacus(ledger.history("train"), settings.delta)
            start = ledger.epsilon_before_run(run_id, settings.delta, settings.accountant)
        assert result.training.epsilon == pytest.approx(recomputed, abs=1e-9)
        assert result.training.epsilon_at_run_start == start
