"""Coordinator + hospitals as separate processes over TLS with node authentication.

One federation serves several checks: three registered hospitals run two rounds, a fourth
(registered) hospital's policy refuses the run, an unregistered key and a plaintext client
try to join and are kept out.
"""

import json

import pytest

from medfed.shared.privacy.verify import verify_ledger

pytestmark = pytest.mark.slow
HOSPITALS = ["Cleveland", "Hungary", "VA"]


@pytest.fixture(scope="module")
def finished(deployment_in):
    deployment = deployment_in("tls")
    deployment.make_certs([*HOSPITALS, "Switzerland"], unregistered=["Intruder"])
    deployment.write_federation([*HOSPITALS, "Switzerland"], rounds=2, expected=4)
    for name in HOSPITALS:
        deployment.write_hospital(name)
    deployment.write_hospital("Switzerland", max_rounds=1)  # policy: refuses a 2-round run
    (deployment.root / "Intruder.csv").write_bytes((deployment.root / "Hungary.csv").read_bytes())
    deployment.write_hospital("Intruder", max_wait_s=60)
    (deployment.root / "Plain.csv").write_bytes((deployment.root / "VA.csv").read_bytes())
    deployment.write_hospital("Plain", key="VA", insecure=True, max_wait_s=30)
    server = deployment.start_server()
    clients = {name: deployment.start_hospital(name) for name in [*HOSPITALS, "Switzerland"]}
    intruder = deployment.start_hospital("Intruder")
    plain = deployment.start_hospital("Plain")
    assert deployment.wait_for(lambda: server.poll() is not None, 420), "run did not finish"
    deployment.server_code = server.returncode
    deployment.intruder, deployment.plain, deployment.clients = intruder, plain, clients
    return deployment


def _metrics(deployment):
    lines = (deployment.root / "run" / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_three_hospitals_over_tls_with_node_auth_complete_two_rounds(finished):
    assert finished.server_code == 0, finished.output("server.out")
    run = finished.root / "run"
    for name in ("config.toml", "metrics.jsonl", "privacy.json", "model.pt", "report.html"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "round_2.pt").is_file()
    lines = _metrics(finished)
    assert [(line["round"], line["phase"]) for line in lines] == [
        (1, "train"),
        (2, "train"),
        (2, "final"),
    ]
    assert set(lines[1]["hospitals"]) == set(HOSPITALS)
    privacy = json.loads((run / "privacy.json").read_text())
    for name in HOSPITALS:
        assert privacy[name]["status"] == "active"
        assert 0 < privacy[name]["epsilon"] <= 1.0
        ledger = finished.root / "state" / name / "ledger" / f"{name}.jsonl"
        assert verify_ledger(ledger).valid  # the ledger stayed at the hospital
    assert "round 2/2" in finished.output("server.out")


def test_policy_violation_is_refused_and_recorded(finished):
    first = _metrics(finished)[0]
    reason = first["skipped"]["Switzerland"]
    assert reason.startswith("policy_violation:") and "max_rounds" in reason
    assert "Traceback" not in reason
    entry = json.loads((finished.root / "run" / "privacy.json").read_text())["Switzerland"]
    assert entry["status"] == "refused" and "max_rounds" in entry["reason"]
    assert "Switzerland" not in _metrics(finished)[1].get("hospitals", {})
    assert not (finished.root / "state" / "Switzerland" / "ledger" / "Switzerland.jsonl").exists()


def test_unregistered_hospital_key_is_refused(finished):
    names = {name for line in _metrics(finished) for name in line.get("hospitals", {})}
    assert "Intruder" not in names
    assert "Intruder" not in (finished.root / "run" / "privacy.json").read_text()
    assert finished.wait_for(lambda: finished.intruder.poll() is not None, 90)
    assert finished.intruder.returncode != 0
    assert "failed to activate supernode" in finished.output("state/Intruder/supernode.log").lower()
    assert "not registered" in finished.output("Intruder.out")


def test_plaintext_client_against_tls_coordinator_is_refused(finished):
    assert finished.wait_for(lambda: finished.plain.poll() is not None, 60)
    assert finished.plain.returncode != 0
    assert "insecure" in finished.output("Plain.out").lower()  # it was warned
    names = {name for line in _metrics(finished) for name in line.get("hospitals", {})}
    assert "Plain" not in names
