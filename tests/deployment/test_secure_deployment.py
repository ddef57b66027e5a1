"""A deployed federation with secure aggregation on: identity keys made with the documented
commands, a peers file, signed rosters and the consistency check, end to end over TLS."""

import json

import pytest

pytestmark = pytest.mark.slow
HOSPITALS = ["Cleveland", "Hungary", "VA"]


def test_three_hospitals_complete_a_masked_round_with_pinned_identity_keys(deployment_in):
    deployment = deployment_in("secure")
    deployment.make_certs(HOSPITALS)  # node keys, identity keys, peers.toml (checked)
    deployment.write_federation(HOSPITALS, rounds=1, timeout_s=120, secure=True)
    for name in HOSPITALS:
        deployment.write_hospital(name, secure=True)
    server = deployment.start_server()
    for name in HOSPITALS:
        deployment.start_hospital(name)
    assert deployment.wait_for(lambda: server.poll() is not None, 420), "run did not end"
    assert server.returncode == 0, deployment.output("server.out")
    first = deployment.metrics()[0]
    assert first["phase"] == "train" and set(first["hospitals"]) == set(HOSPITALS), first
    assert first["exchanges"] == 2  # the masked training replies plus one unmask exchange
    privacy = json.loads((deployment.root / "run" / "privacy.json").read_text())
    assert all(privacy[name]["status"] == "active" for name in HOSPITALS)
    for name in HOSPITALS:  # the identity key stayed at the hospital, owner-only
        key = deployment.root / "identity" / name / f"{name}.identity.key"
        assert key.stat().st_mode & 0o077 == 0
