"""A hospital leaves for good after round 1 while `strategy.min_hospitals` needs every
hospital: the run ends within a bound, with a status and a reason, instead of waiting forever."""

import json
import signal
import time

import pytest

from medfed.shared.privacy.chain import read_entries

pytestmark = pytest.mark.slow
HOSPITALS = ["Cleveland", "Hungary", "VA"]
# Flower marks a node that left offline once it misses heartbeats (2 × 30 s); until then a
# round still asks it and times out. The test holds round 1 open until VA is marked offline,
# so round 2 finds 2 hospitals online where strategy.min_hospitals needs 3.
OFFLINE_AFTER_S = 70
TIMEOUT_S = OFFLINE_AFTER_S + 60  # strategy.timeout_s: round 1 must outlast the hold
BOUND_S = TIMEOUT_S + 120  # after the hold: one wait for hospitals, the final evaluation
EXECUTOR = "medfed.client.executor"  # the hospital's ClientApp runner (its SuperNode runs on)


def _trained_rounds(deployment, name: str) -> int:
    path = deployment.root / "state" / name / "ledger" / f"{name}.jsonl"
    return sum("round" in entry for entry in read_entries(path)) if path.is_file() else 0


@pytest.fixture(scope="module")
def ended(deployment_in):
    deployment = deployment_in("leaves")
    deployment.make_certs(HOSPITALS)
    deployment.write_federation(
        HOSPITALS,
        rounds=3,
        timeout_s=TIMEOUT_S,
        min_hospitals=3,
        strategy_extra="rejoin_wait_s = 1\n",
    )
    for name in HOSPITALS:
        deployment.write_hospital(name)
    server = deployment.start_server()
    clients = {name: deployment.start_hospital(name) for name in HOSPITALS}

    def tasks(name: str) -> int:
        return deployment.output(f"state/{name}/executor.log").count("running task")

    # Hold Cleveland's ClientApp inside round 1 (its SuperNode keeps its heartbeat) while VA
    # answers round 1 and leaves for good.
    assert deployment.wait_for(lambda: tasks("Cleveland") >= 1, 300, 0.05), "no round 1"
    deployment.signal_tree(clients["Cleveland"], signal.SIGSTOP, only=EXECUTOR)
    try:
        assert deployment.wait_for(lambda: _trained_rounds(deployment, "VA") >= 1, 120, 0.1)
        time.sleep(3)  # its reply leaves right after the ledger entry
        deployment.signal_tree(clients["VA"], signal.SIGTERM)
        clients["VA"].wait(timeout=30)
        time.sleep(OFFLINE_AFTER_S)
    finally:
        deployment.signal_tree(clients["Cleveland"], signal.SIGCONT, only=EXECUTOR)
    left_at = time.monotonic()
    finished = deployment.wait_for(lambda: server.poll() is not None, BOUND_S)
    deployment.seconds_after_leaving = time.monotonic() - left_at
    assert finished, f"the run did not end within {BOUND_S} s of VA leaving (it hangs)"
    deployment.server_code = server.returncode
    return deployment


def test_run_ends_with_a_status_and_reason_when_too_few_hospitals_remain(ended):
    assert ended.server_code == 0, ended.output("server.out")
    lines = ended.metrics()
    train = {line["round"]: line for line in lines if line["phase"] == "train"}
    assert set(train[1]["hospitals"]) == set(HOSPITALS)  # VA answered round 1, then left
    assert "stopped" not in train[1]
    last = lines[-1]
    assert last["phase"] == "final" and last["status"] == "stopped"
    assert "strategy.min_hospitals = 3" in last["stopped"]
    assert any(line.get("status") == "stopped" for line in train.values())


def test_report_shows_that_the_run_stopped_and_why(ended):
    report = json.loads((ended.root / "run" / "report.json").read_text())
    assert report["status"] == "stopped"
    assert "strategy.min_hospitals = 3" in report["stopped"]
    page = (ended.root / "run" / "report.html").read_text()
    assert "stopped early" in page and "strategy.min_hospitals = 3" in page
