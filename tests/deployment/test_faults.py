"""Faults in a deployed federation: a hospital SIGKILLed mid-round, then the coordinator."""

import json
import time

import pytest

from medfed.shared.privacy.chain import read_entries
from medfed.shared.privacy.verify import verify_ledger

pytestmark = pytest.mark.slow
HOSPITALS = ["Cleveland", "Hungary", "VA"]
# Above Flower's heartbeat window (2 × 30 s): a dead hospital is noticed by its missing
# heartbeat, which is also what lets its restarted SuperNode back in for the next round.
ROUND_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def survived(deployment_in):
    deployment = deployment_in("faults")
    deployment.make_certs(HOSPITALS)
    deployment.write_federation(HOSPITALS, rounds=5, timeout_s=ROUND_TIMEOUT_S)
    for name in HOSPITALS:
        deployment.write_hospital(name)
    server = deployment.start_server()
    clients = {name: deployment.start_hospital(name) for name in HOSPITALS}

    def rounds_done():
        return [line["round"] for line in deployment.metrics() if line["phase"] == "train"]

    def va_apps_started():
        return deployment.output("state/VA/executor.log").count("running task")

    # Kill VA while its ClientApp works on round 2 (its second message).
    assert deployment.wait_for(lambda: rounds_done() == [1], 300, 0.05), "round 1 missing"
    assert deployment.wait_for(lambda: va_apps_started() >= 2, 120, 0.05), "VA got no round 2"
    deployment.kill_tree(clients["VA"])
    time.sleep(5)
    clients["VA"] = deployment.start_hospital("VA")  # the hospital restarts, same command
    assert deployment.wait_for(lambda: len(rounds_done()) == 3, 400, 0.05), "round 3 missing"
    # The coordinator crashes right after round 3's checkpoint, while round 4 is under way:
    # hospitals may already have spent round 4, so the resumed round 4 is a second one.
    deployment.kill_tree(server)
    deployment.crashed_metrics = deployment.metrics()
    resumed = deployment.start("medfed-server --config federation.toml --resume run", "resume.out")
    assert deployment.wait_for(lambda: resumed.poll() is not None, 420), "resume did not finish"
    deployment.resumed_code = resumed.returncode
    return deployment


def _train_lines(lines):
    return {line["round"]: line for line in lines if line["phase"] == "train"}


def test_round_completes_without_a_hospital_killed_mid_round(survived):
    second = _train_lines(survived.crashed_metrics)[2]
    assert set(second["hospitals"]) == {"Cleveland", "Hungary"}
    assert "stopped" not in second


def test_killed_hospital_rejoins_after_restart_with_a_valid_ledger(survived):
    # Flower re-activates a killed node's key only once its heartbeat has expired, which is
    # also when round 2 gives up on it; round 3 waits (strategy.rejoin_wait_s) for it to return.
    assert "VA" in _train_lines(survived.crashed_metrics)[3]["hospitals"]
    ledger = survived.root / "state" / "VA" / "ledger" / "VA.jsonl"
    assert verify_ledger(ledger).valid


def test_coordinator_resumes_from_the_last_checkpoint(survived):
    assert survived.resumed_code == 0, survived.output("resume.out")
    assert "resuming" in survived.output("resume.out")
    lines = survived.metrics()
    assert [(line["round"], line["phase"]) for line in lines][-2:] == [(5, "train"), (5, "final")]
    assert sorted(_train_lines(lines)) == [1, 2, 3, 4, 5]  # 1-3 were not redone
    assert "stopped" not in lines[-1]
    assert (survived.root / "run" / "checkpoints" / "round_5.pt").is_file()
    privacy = json.loads((survived.root / "run" / "privacy.json").read_text())
    for name in HOSPITALS:
        ledger = survived.root / "state" / name / "ledger" / f"{name}.jsonl"
        assert verify_ledger(ledger).valid
        # Same run id after the resume: a repeated round still fits the run's ε target.
        assert privacy[name]["epsilon"] <= 1.0 + 1e-9
        # The round in flight at the crash is re-sent identically and answered from the
        # hospital's memory: no round of the run is counted twice.
        rounds = [
            (e["run_id"], e["round"]) for e in read_entries(ledger) if e.get("type") == "round"
        ]
        assert len(rounds) == len(set(rounds))
