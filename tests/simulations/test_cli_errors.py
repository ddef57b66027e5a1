"""Bad input: exit code 2 and one clear line naming the file and key/column."""

import socket
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medfed.shared.data.heart_disease import packaged_csv

ROOT = Path(__file__).resolve().parents[2]
MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]


def _simulate(*args, cwd=ROOT):
    result = subprocess.run(
        [*MEDFED, "simulate", *args], capture_output=True, text=True, cwd=cwd, timeout=120
    )
    return result.returncode, (result.stdout + result.stderr).strip()


def _one_line(output):
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def test_missing_config_file(tmp_path):
    code, output = _simulate(str(tmp_path / "absent.toml"), "--out", str(tmp_path / "run"))
    assert code == 2 and "absent.toml: config file not found" in _one_line(output)


def test_unknown_key(tmp_path):
    code, output = _simulate(
        "configs/heart_disease.toml", "--set", "privacy.budget=3", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "unknown key 'privacy.budget'" in _one_line(output)


def test_wrong_type(tmp_path):
    code, output = _simulate(
        "configs/heart_disease.toml", "--set", "rounds=ten", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "heart_disease.toml: rounds:" in _one_line(output)


def test_missing_data_file(tmp_path):
    code, output = _simulate(
        "configs/heart_disease.toml",
        "--set",
        f"data.path='{tmp_path}/none.csv'",
        "--out",
        str(tmp_path / "r"),
    )
    assert code == 2 and "none.csv: data file not found" in _one_line(output)


def test_csv_missing_required_column(tmp_path):
    csv = tmp_path / "heart.csv"
    pd.read_csv(packaged_csv()).drop(columns=["oldpeak"]).to_csv(csv, index=False)
    code, output = _simulate(
        "configs/heart_disease.toml", "--set", f"data.path='{csv}'", "--out", str(tmp_path / "r")
    )
    assert code == 2 and "heart.csv: no column 'oldpeak'" in _one_line(output)


def test_empty_hospital_partition(tmp_path):
    csv = tmp_path / "heart.csv"
    frame = pd.read_csv(packaged_csv())
    frame.loc[frame.dataset == "Switzerland", "chol"] = None  # every Swiss row incomplete
    frame.to_csv(csv, index=False)
    overrides = [
        "--set",
        f"data.path='{csv}'",
        "--set",
        "data.partition='iid'",
        "--set",
        "data.num_hospitals=2000",
    ]
    code, output = _simulate("configs/heart_disease.toml", *overrides, "--out", str(tmp_path / "r"))
    assert code == 2 and "num_hospitals = 2000 exceeds" in _one_line(output)


def test_ray_address_where_no_cluster_answers(tmp_path):
    with socket.socket() as probe:  # a port this machine just freed: nothing listens there
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "r"
    code, output = _simulate(
        "configs/heart_disease.toml",
        "--set",
        f"simulation.ray_address='127.0.0.1:{port}'",
        "--out",
        str(out),
    )
    line = _one_line(output)
    assert code == 2 and f"simulation.ray_address = '127.0.0.1:{port}'" in line
    assert "no Ray cluster answers" in line and "ray start --head" in line
    assert not (out / "config.toml").exists()  # nothing of a run was written


@pytest.mark.parametrize("args", [["--help"], ["simulate", "--help"]])
def test_help_exits_zero(args):
    result = subprocess.run([*MEDFED, *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0 and "Usage" in result.stdout
