"""Hospital identity keys and the pinned peers file: made at the hospital, checked on load."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from medfed.shared.crypto.identity import (
    create_hospital_identity,
    fingerprint,
    load_identity_key,
    load_peers,
    public_bytes,
)
from medfed.shared.errors import ConfigError
from medfed.shared.secagg.authentication import HospitalIdentity

MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]
# SHA-256 of 32 zero bytes (a published test value, e.g. `head -c 32 /dev/zero | sha256sum`).
ZEROS_SHA256 = "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"


def _federation(tmp_path, names=("Cleveland", "VA Long Beach", "Hungary")):
    made = {name: create_hospital_identity(tmp_path / "identity", name) for name in names}
    peers = tmp_path / "peers.toml"
    peers.write_text("\n".join(entry.read_text() for _, entry, _ in made.values()))
    return made, peers


def test_fingerprint_is_the_grouped_sha256_of_the_raw_key():
    printed = fingerprint(bytes(32))
    assert printed.startswith("SHA256:")
    assert printed[len("SHA256:") :].replace(":", "") == ZEROS_SHA256
    assert all(len(group) == 4 for group in printed[len("SHA256:") :].split(":"))


def test_identity_key_is_owner_only_and_its_entry_loads_as_a_pin(tmp_path):
    made, peers = _federation(tmp_path)
    key_path, _, printed = made["VA Long Beach"]
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    key = load_identity_key(key_path)
    pins = load_peers(peers)
    assert list(pins) == ["Cleveland", "VA Long Beach", "Hungary"]
    assert pins["VA Long Beach"] == public_bytes(key.public_key())
    assert fingerprint(pins["VA Long Beach"]) == printed
    HospitalIdentity("VA Long Beach", key, pins)  # pinned to its own key: accepted


def test_a_fingerprint_that_does_not_match_its_key_is_a_config_error(tmp_path):
    made, peers = _federation(tmp_path)
    wrong = fingerprint(public_bytes(Ed25519PrivateKey.generate().public_key()))
    peers.write_text(peers.read_text().replace(made["Hungary"][2], wrong))
    with pytest.raises(ConfigError, match=r"peers.toml: hospitals\[2\] \('Hungary'\): fingerprint"):
        load_peers(peers)


def test_a_substituted_key_with_its_old_fingerprint_is_a_config_error(tmp_path):
    made, peers = _federation(tmp_path)
    other = create_hospital_identity(tmp_path / "other", "Hungary")[1].read_text()
    key_line = next(line for line in other.splitlines() if line.startswith("identity_public_key"))
    original = made["Hungary"][1].read_text()
    old_line = next(line for line in original.splitlines() if line.startswith("identity_public"))
    peers.write_text(peers.read_text().replace(old_line, key_line))
    with pytest.raises(ConfigError, match="does not match identity_public_key"):
        load_peers(peers)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('[[hospitals]]\nname = "A"\n', "exactly name, identity_public_key and fingerprint"),
        (
            '[[hospitals]]\nname = "A"\nidentity_public_key = "bm90IGEga2V5"\nfingerprint = "x"\n',
            "not a base64 Ed25519 public key",
        ),
        ("hospitals = 3\n", "only \\[\\[hospitals\\]\\] tables"),
        ("not toml [", "not valid TOML"),
    ],
)
def test_malformed_peers_files_name_the_problem(tmp_path, text, reason):
    peers = tmp_path / "peers.toml"
    peers.write_text(text)
    with pytest.raises(ConfigError, match=reason):
        load_peers(peers)


def test_a_name_listed_twice_is_refused(tmp_path):
    made, peers = _federation(tmp_path)
    peers.write_text(peers.read_text() + made["Cleveland"][1].read_text())
    with pytest.raises(ConfigError, match="listed twice"):
        load_peers(peers)


def test_a_world_readable_or_missing_identity_key_is_refused(tmp_path):
    made, _ = _federation(tmp_path)
    key_path = made["Cleveland"][0]
    key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_identity_key(key_path)
    with pytest.raises(ConfigError, match="medfed certs hospital-identity"):
        load_identity_key(tmp_path / "absent.identity.key")


def test_a_peers_file_pinning_another_key_for_this_hospital_is_refused(tmp_path):
    _, peers = _federation(tmp_path)
    with pytest.raises(ConfigError, match="does not pin 'Cleveland'"):
        HospitalIdentity("Cleveland", Ed25519PrivateKey.generate(), load_peers(peers))


def test_cli_makes_an_identity_and_checks_a_peers_file(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from medfed.simulations.cli import app

    monkeypatch.chdir(tmp_path)
    made = CliRunner().invoke(app, ["certs", "hospital-identity", "--name", "Hungary"])
    assert made.exit_code == 0, made.output
    entry = (tmp_path / "identity" / "Hungary.peer.toml").read_text()
    printed = next(line for line in made.output.splitlines() if "SHA256:" in line)
    (tmp_path / "peers.toml").write_text(entry)
    listed = CliRunner().invoke(app, ["certs", "fingerprints", "peers.toml"])
    assert listed.exit_code == 0 and listed.output.split()[0] in printed
    fingerprint_line = next(line for line in entry.splitlines() if line.startswith("fingerprint"))
    (tmp_path / "peers.toml").write_text(
        entry.replace(fingerprint_line, 'fingerprint = "SHA256:0"')
    )
    broken = subprocess.run(  # the console entry point: one line, exit 2
        [*MEDFED, "certs", "fingerprints", "peers.toml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert broken.returncode == 2 and "does not match" in broken.stderr + broken.stdout
