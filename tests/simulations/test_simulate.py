"""End to end: `medfed simulate` on Flower's simulation engine (multi-process, slow)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from medfed.simulations.synthetic_dicom import WINDOW_CENTER, WINDOW_WIDTH, write_dicom_folder

ROOT = Path(__file__).resolve().parents[2]
MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]


def _simulate(config, out, *overrides):
    args = [*MEDFED, "simulate", f"configs/{config}", "--out", str(out)]
    for override in overrides:
        args += ["--set", override]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.slow
def test_heart_disease_demo_writes_the_run_directory(tmp_path):
    out = tmp_path / "run"
    stdout = _simulate("heart_disease.toml", out, "rounds=2")
    assert {"config.toml", "metrics.jsonl", "privacy.json", "model.pt"} <= {
        p.name for p in out.iterdir()
    }
    assert {p.name for p in (out / "checkpoints").iterdir()} == {
        "round_0.pt",
        "round_1.pt",
        "round_2.pt",
    }
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(line["round"], line["phase"]) for line in lines] == [
        (1, "train"),
        (2, "train"),
        (2, "final"),
    ]
    hospitals = {"Cleveland", "Hungary", "Switzerland", "VA Long Beach"}
    for line in lines:
        assert set(line["hospitals"]) == hospitals
        assert {"accuracy", "auroc", "sensitivity", "specificity", "loss", "num_examples"} <= set(
            line["global"]
        )
    privacy = json.loads((out / "privacy.json").read_text())
    assert set(privacy) == hospitals
    for entry in privacy.values():
        assert (
            0.9 < entry["epsilon"] <= 1.0 and entry["delta"] == 1e-5 and entry["status"] == "active"
        )
        assert entry["steps"] == 2 and entry["accountant"] == "rdp"
    state = torch.load(out / "model.pt")
    assert set(state) == {"1.weight", "1.bias"}
    assert "rounds = 2" in (out / "config.toml").read_text()
    assert "Cleveland" in stdout and "ε / budget" in stdout
    exact = json.loads((out / "exact_evaluation.json").read_text())
    assert "no hospital sent these" in exact["note"] and set(exact["hospitals"]) == hospitals


@pytest.mark.slow
def test_imaging_cnn_runs(tmp_path):
    _simulate("imaging_cnn.toml", tmp_path / "img", "rounds=2", "data.samples=400")
    final = json.loads((tmp_path / "img" / "metrics.jsonl").read_text().splitlines()[-1])
    assert final["phase"] == "final" and len(final["hospitals"]) == 4


@pytest.mark.slow
def test_imaging_cnn_runs_on_a_dicom_folder(tmp_path):
    labels = write_dicom_folder(tmp_path / "export", samples=320, image_size=32, seed=0)
    out = tmp_path / "dicom-run"
    _simulate(
        "imaging_cnn.toml",
        out,
        "rounds=2",
        'data.image_format="dicom"',
        f'data.path="{tmp_path / "export"}"',
        f'data.labels_path="{labels}"',
        'data.classes=["normal", "lesion"]',
        f"data.window_center={WINDOW_CENTER}",
        f"data.window_width={WINDOW_WIDTH}",
    )
    exact = json.loads((out / "exact_evaluation.json").read_text())["hospitals"]
    assert len(exact) == 4 and sum(m["num_examples"] for m in exact.values()) > 0
    privacy = json.loads((out / "privacy.json").read_text())
    assert all(0 < entry["epsilon"] <= 3.0 for entry in privacy.values())
    assert 'image_format = "dicom"' in (out / "config.toml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("model", ["gru", "lstm", "transformer"])
def test_vitals_rnn_runs(tmp_path, model):
    out = tmp_path / model
    _simulate("vitals_rnn.toml", out, "rounds=1", "data.samples=300", f"model.name={model}")
    privacy = json.loads((out / "privacy.json").read_text())
    assert sorted(privacy) == ["hospital_0", "hospital_1", "hospital_2"]  # generated sites
    assert all(0 < entry["epsilon"] <= 3.0 for entry in privacy.values())
    exact = json.loads((out / "exact_evaluation.json").read_text())["hospitals"]
    assert all(0.0 <= scores["auroc"] <= 1.0 for scores in exact.values())


@pytest.mark.slow
def test_breast_cancer_runs_on_its_four_fixed_hospitals(tmp_path):
    _simulate("breast_cancer.toml", tmp_path / "bc", "rounds=2")
    lines = [
        json.loads(line) for line in (tmp_path / "bc" / "metrics.jsonl").read_text().splitlines()
    ]
    hospitals = {f"hospital_{i}" for i in range(4)}
    assert [line["phase"] for line in lines] == ["train", "train", "final"]
    assert all(set(line["hospitals"]) == hospitals for line in lines)
    privacy = json.loads((tmp_path / "bc" / "privacy.json").read_text())
    assert set(privacy) == hospitals and all(0.9 < e["epsilon"] <= 1.0 for e in privacy.values())
    exact = json.loads((tmp_path / "bc" / "exact_evaluation.json").read_text())["hospitals"]
    assert sum(m["num_examples"] for m in exact.values()) == 195  # 569 patients, 34 % tested


@pytest.mark.slow
def test_same_seed_reproduces_the_run(tmp_path):
    _simulate("heart_disease.toml", tmp_path / "a", "rounds=1")
    _simulate("heart_disease.toml", tmp_path / "b", "rounds=1")
    first = torch.load(tmp_path / "a" / "model.pt")
    second = torch.load(tmp_path / "b" / "model.pt")
    assert all(torch.allclose(first[k], second[k], atol=1e-6) for k in first)


@pytest.mark.slow
def test_secure_aggregation_matches_plaintext_with_one_extra_exchange(tmp_path):
    _simulate("heart_disease.toml", tmp_path / "secure", "rounds=2")
    _simulate(
        "heart_disease.toml", tmp_path / "plain", "rounds=2", "secure_aggregation.enabled=false"
    )
    secure, plain = (torch.load(tmp_path / name / "model.pt") for name in ("secure", "plain"))
    # Same seeds → same local training; only SecAgg's fixed-point quantisation differs.
    bound = 2 * 8.0 / 2**24 * 2  # clipping_range / 2^(bits-1) per round, two rounds
    for key in plain:
        assert torch.allclose(secure[key], plain[key], atol=bound)
    exchanges = {
        name: [
            json.loads(line)["exchanges"]
            for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()
        ]
        for name in ("secure", "plain")
    }
    assert exchanges == {"secure": [2, 2, 1], "plain": [1, 1, 1]}


@pytest.mark.slow
def test_fedadam_steps_from_the_secure_sum_as_from_the_plaintext_updates(tmp_path):
    adam = ("rounds=1", "strategy.name='fedadam'")
    _simulate("heart_disease.toml", tmp_path / "secure", *adam)
    _simulate("heart_disease.toml", tmp_path / "plain", *adam, "secure_aggregation.enabled=false")
    _simulate("heart_disease.toml", tmp_path / "fedavg", "rounds=1")
    secure, plain, fedavg = (  # FedAdam's numpy step returns float64 arrays
        {k: v.double() for k, v in torch.load(tmp_path / name / "model.pt").items()}
        for name in ("secure", "plain", "fedavg")
    )
    # Adam divides by sqrt(v) + tau (1e-3): quantisation error (≈ 1e-6) grows ≈ 0.1 × 0.1 / tau.
    for key in plain:
        assert torch.allclose(secure[key], plain[key], atol=1e-4)
    assert any(not torch.allclose(secure[k], fedavg[k], atol=1e-3) for k in secure)  # Adam ran


@pytest.mark.slow
def test_demo_twice_on_one_ledger_directory_continues_then_refuses(tmp_path):
    ledgers = tmp_path / "hospital-storage"
    _simulate("heart_disease.toml", tmp_path / "first", f"privacy.ledger_dir='{ledgers}'")
    _simulate("heart_disease.toml", tmp_path / "second", f"privacy.ledger_dir='{ledgers}'")
    first = json.loads((tmp_path / "first" / "privacy.json").read_text())
    second = json.loads((tmp_path / "second" / "privacy.json").read_text())
    for name, entry in second.items():
        assert entry["status"] == "exhausted"
        assert entry["epsilon_at_run_start"] == pytest.approx(first[name]["epsilon"], abs=1e-12)
        assert entry["epsilon"] <= 1.0
    lines = [
        json.loads(line)
        for line in (tmp_path / "second" / "metrics.jsonl").read_text().splitlines()
    ]
    assert "fewer than strategy.min_hospitals" in lines[0]["stopped"]
    report = json.loads((tmp_path / "second" / "report.json").read_text())
    assert {h["name"]: h["status"] for h in report["hospitals"]} == {n: "exhausted" for n in second}


@pytest.mark.slow
def test_demo_report_numbers_match_privacy_json_and_audit_epsilon(tmp_path):
    out = tmp_path / "run"
    _simulate("heart_disease.toml", out, "rounds=2")
    privacy = json.loads((out / "privacy.json").read_text())
    report = json.loads((out / "report.json").read_text())
    for hospital in report["hospitals"]:
        audited = subprocess.run(
            [
                *MEDFED,
                "audit",
                "epsilon",
                str(out / hospital["ledger"]["file"]),
                "--stream",
                "train",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
        )
        assert audited.returncode == 0, audited.stderr
        assert hospital["epsilon"] == pytest.approx(privacy[hospital["name"]]["epsilon"], abs=1e-6)
        assert float(audited.stdout) == pytest.approx(hospital["epsilon"], abs=1e-6)
    assert "report.html" in {p.name for p in out.iterdir()}
