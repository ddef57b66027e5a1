"""A coordinator that packs Python code into its app bundle (FAB) cannot run it at a hospital."""

import json

import pytest

pytestmark = pytest.mark.slow
HOSPITALS = ["Cleveland", "Hungary"]


def test_code_in_the_coordinators_app_bundle_never_runs_at_a_hospital(deployment_in):
    deployment = deployment_in("bundle")
    deployment.make_certs(HOSPITALS)
    deployment.write_federation(HOSPITALS, rounds=1, timeout_s=60)
    for name in HOSPITALS:
        deployment.write_hospital(name)
    marker = deployment.root / "bundle-code-ran"
    app_dir = deployment.root / "run" / "superlink" / "app"  # what `flwr run` packs into the FAB
    app_dir.mkdir(parents=True)
    (app_dir / "bundled.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n"
        "from medfed.client.deployed_app import app as _hospital_app\napp = _hospital_app\n"
    )
    server = deployment.start_server("--clientapp bundled:app")
    for name in HOSPITALS:
        deployment.start_hospital(name)
    assert deployment.wait_for(lambda: server.poll() is not None, 300), "run did not end"
    lines = [
        json.loads(t) for t in (deployment.root / "run" / "metrics.jsonl").read_text().splitlines()
    ]
    reasons = list(lines[0]["skipped"].values())
    assert len(reasons) == len(HOSPITALS) and lines[0]["hospitals"] == {}
    assert all("refused to import 'bundled'" in reason for reason in reasons)
    assert all("Traceback" not in reason and "state/" not in reason for reason in reasons)
    assert not marker.exists()
