"""privacy.json and the audit report use each hospital's own δ and accountant."""

import json
import shutil

import pytest
from flwr.app import ConfigRecord, Context, RecordDict
from opacus.accountants import PRVAccountant, RDPAccountant

from medfed.client.client_app import answer
from medfed.client.hospital import HospitalSettings
from medfed.server.identities import HospitalIdentities
from medfed.server.replies import as_reply, sort_replies
from medfed.server.report import build_report
from medfed.server.round_log import record_privacy
from medfed.shared.config import RunConfig
from medfed.shared.data import load_federation
from medfed.shared.instruction import instruction_record
from medfed.shared.models import build_model
from medfed.shared.privacy.accounting import RDP_ORDERS
from medfed.shared.privacy.verify import ledger_epsilon
from medfed.shared.protocol import ARRAYS, CONFIG, state_to_arrays
from medfed.shared.secagg import SecureAggregationConfig

# The coordinator proposes δ = 1e-5 and RDP; the hospitals decide otherwise.
OWN = {"Hungary": (1e-7, "rdp"), "Cleveland": (1e-5, "prv")}


def _opacus_epsilon(history, delta, accountant):
    """Golden ε straight from Opacus's accountant (no medfed code)."""
    if accountant == "rdp":
        rdp = RDPAccountant()
        rdp.history = list(history)
        return rdp.get_epsilon(delta=delta, alphas=RDP_ORDERS)
    prv = PRVAccountant()
    prv.history = list(history)
    return prv.get_epsilon(delta=delta)


@pytest.fixture(scope="module")
def federation():
    return {h.name: h for h in load_federation(RunConfig().data, 0) if h.name in OWN}


def test_privacy_json_and_report_carry_each_hospitals_delta_and_accountant(federation, tmp_path):
    run = RunConfig(rounds=1, training={"batch_size": 512})
    weights = build_model(run.model, (13,), 2).state_dict()
    config = dict(instruction_record(run, "run1")) | {"server-round": 1}
    content = RecordDict({ARRAYS: state_to_arrays(weights), CONFIG: ConfigRecord(config)})
    run_dir = tmp_path / "run"
    (run_dir / "ledgers" / "keys").mkdir(parents=True)
    replies = []
    for node, (name, data) in enumerate(sorted(federation.items()), start=1):
        delta, accountant = OWN[name]
        storage = tmp_path / name
        settings = HospitalSettings(
            name,
            5.0,
            storage / f"{name}.jsonl",
            storage / "keys",
            delta,
            accountant,
            secure_aggregation=SecureAggregationConfig(enabled=False),
        )
        context = Context(run_id=1, node_id=node, node_config={}, state=RecordDict(), run_config={})
        reply = answer("train", content, context, lambda _, d=data, s=settings: (d, s))
        replies.append(as_reply(reply, node))
        shutil.copy(settings.ledger_path, run_dir / "ledgers" / f"{name}.jsonl")
        shutil.copy(storage / "keys" / f"{name}.ed25519.pub", run_dir / "ledgers" / "keys")
    sorted_replies = sort_replies(replies, state_to_arrays(weights), HospitalIdentities())
    privacy: dict = {}
    record_privacy(privacy, sorted_replies, run.privacy)
    for name, (delta, accountant) in OWN.items():
        assert privacy[name]["delta"] == delta and privacy[name]["accountant"] == accountant
        ledger = run_dir / "ledgers" / f"{name}.jsonl"
        entries = [json.loads(line) for line in ledger.read_text().splitlines()[1:]]
        history = [
            (e["noise_multiplier"], e["sample_rate"], e["steps"])
            for e in entries
            if e["type"] in {"count", "round"}
        ]
        golden = _opacus_epsilon(history, delta, accountant)
        assert privacy[name]["epsilon"] == pytest.approx(golden, rel=1e-9)
        assert ledger_epsilon(ledger, delta, accountant) == pytest.approx(golden, rel=1e-9)
    (run_dir / "config.toml").write_text('name = "own"\nrounds = 1\n[privacy]\nenabled = true\n')
    (run_dir / "privacy.json").write_text(json.dumps(privacy))
    (run_dir / "metrics.jsonl").write_text("")
    report = build_report(run_dir)
    for hospital in report.hospitals:
        assert (hospital.delta, hospital.accountant) == OWN[hospital.name]
        assert hospital.epsilon_matches_ledger is True, hospital
    assert {v.name for v in report.coordinator_sees} >= {"num_examples", "accuracy", "update"}
    assert 'id="coordinator-sees"' in (run_dir / "report.html").read_text()
