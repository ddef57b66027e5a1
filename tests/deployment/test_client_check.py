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
    assert len(lines) == 3, done.stderr
    assert "connection.root_certificates" in lines[0]
    assert "connection.private_key" in lines[1] and "medfed certs node" in lines[1]
    assert "data.path" in lines[2] and "missing.csv" in lines[2]
    assert "Traceback" not in done.stderr + done.stdout


def test_client_names_an_unknown_key(tmp_path):
    (tmp_path / "hospital.toml").write_text('name = "X"\nmax_epsilon = 1\n')
    done = _check(tmp_path)
    assert done.returncode == 2
    assert "hospital.toml" in done.stderr and "Traceback" not in done.stderr
