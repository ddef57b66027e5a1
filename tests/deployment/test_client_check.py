import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def _check(folder: Path) -> subprocess.CompletedProcess:
    """`medfed-client --config hospital.toml --check` run in `folder`."""
    return subprocess.run(
        [str(BIN / "medfed-client"), "--config", "hospital.toml", "--check"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_client_reports_every_problem_on_its_own_line_before_connecting(tmp_path):
    (tmp_path / "hospital.toml").write_text(
        'name = "Cleveland"\n'
        "[connection]\n"
        'superlink = "127.0.0.1:9"\n'
        'root_certificates = "missing/ca.crt"\n'
        'private_key = "missing/Cleveland"\n'
        "[data]\n"
        'path = "missing.csv"\n'
        "[privacy]\n"
        "max_epsilon = 1.0\n"
    )
    done = _check(tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 4, done.stderr
    assert "connection.root_certificates" in lines[0]
    assert "connection.private_key" in lines[1] and "medfed certs node" in lines[1]
    assert "data.path" in lines[2] and "missing.csv" in lines[2]
    assert "secure_aggregation.identity_key" in lines[3]  # secure aggregation is on by default
    assert "medfed certs hospital-identity" in lines[3]
    assert "Traceback" not in done.stderr + done.stdout


def test_client_names_an_unknown_key(tmp_path):
    (tmp_path / "hospital.toml").write_text('name = "X"\nmax_epsilon = 1\n')
    done = _check(tmp_path)
    assert done.returncode == 2
    assert "hospital.toml" in done.stderr and "Traceback" not in done.stderr


def test_client_check_names_a_peers_file_whose_fingerprint_does_not_match(tmp_path):
    from medfed.shared.crypto.identity import create_hospital_identity

    _, entry, printed = create_hospital_identity(tmp_path / "identity", "Cleveland")
    (tmp_path / "peers.toml").write_text(entry.read_text().replace(printed, "SHA256:00"))
    (tmp_path / "hospital.toml").write_text(
        'name = "Cleveland"\n'
        "[connection]\n"
        'superlink = "127.0.0.1:9"\n'
        "insecure = true\n"
        "[data]\n"
        'path = "missing.csv"\n'
        "[privacy]\n"
        "max_epsilon = 1.0\n"
        "[secure_aggregation]\n"
        'identity_key = "identity/Cleveland.identity.key"\n'
        'peers_file = "peers.toml"\n'
    )
    done = _check(tmp_path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 2, done.stderr  # the data file, then the peers file
    assert "peers.toml" in lines[1] and "('Cleveland'): fingerprint SHA256:00" in lines[1]
