"""`medfed export`: ONNX/TorchScript that reproduce PyTorch, a model card true to its sources."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnxruntime
import pytest
import torch
from scipy.stats import binomtest

from medfed.serve.bundle import load_bundle
from medfed.serve.export import export_model
from medfed.serve.intervals import wilson
from medfed.shared.models import build_model

pytestmark = pytest.mark.slow  # each module trains a run with `medfed simulate` (conftest.py)

MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]


def reference(run_dir, shape):
    bundle = load_bundle(run_dir)
    model = build_model(bundle.run.model, bundle.schema.input_shape, bundle.schema.num_classes)
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    inputs = torch.rand((7, *bundle.schema.input_shape), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        return inputs, model.eval()(inputs).numpy()


@pytest.mark.parametrize("run", ["heart_run", "image_run", "sequence_run"])
def test_onnx_and_torchscript_reproduce_pytorch(run, request, tmp_path):
    run_dir = request.getfixturevalue(run)
    inputs, expected = reference(run_dir, None)
    onnx = export_model(run_dir, "onnx", tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(onnx.model_file), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": inputs.numpy()})[0]
    assert np.max(np.abs(got - expected)) <= 1e-5
    script = export_model(run_dir, "torchscript", tmp_path / "ts")
    traced = torch.jit.load(str(script.model_file))
    with torch.no_grad():
        assert np.max(np.abs(traced(inputs).numpy() - expected)) <= 1e-5
    card = json.loads((tmp_path / "onnx" / "model-card.json").read_text())
    assert card["export"]["format"] == "onnx" and card["export"]["max_abs_diff"] <= 1e-5
    served = load_bundle(tmp_path / "onnx")  # an export folder serves like the run directory
    assert served.card()["export"]["file"] == "model.onnx"


def ledger_counts(run_dir) -> dict[str, list[float]]:
    counts = {}
    for path in (run_dir / "ledgers").glob("*.jsonl"):
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        released = [e["released"] for e in entries if e.get("type") == "count"]
        counts[entries[0]["hospital"]] = released[-1]
    return counts


def test_model_card_states_its_sources(heart_run, tmp_path):
    export_model(heart_run, "onnx", tmp_path)
    card = json.loads((tmp_path / "model-card.json").read_text())
    privacy = json.loads((heart_run / "privacy.json").read_text())
    counts = ledger_counts(heart_run)
    rows = {h["name"]: h for h in card["privacy"]["hospitals"]}
    assert set(rows) == set(privacy) == set(counts) == {
        "Cleveland", "Hungary", "Switzerland", "VA Long Beach"}  # fmt: skip
    for name, row in rows.items():
        assert row["epsilon"] == privacy[name]["epsilon"] and row["delta"] == 1e-5
        assert row["evaluation_epsilon"] == privacy[name]["evaluation_epsilon"]
        released = row["released_label_counts"]["by_class"]
        assert list(released.values()) == [round(c, 1) for c in counts[name]]
        assert "train stream" in row["covers"] and "test stream" in row["evaluation_covers"]
    exact = json.loads((heart_run / "exact_evaluation.json").read_text())["hospitals"]
    for name, scores in card["metrics"]["exact"]["hospitals"].items():
        n, accuracy = exact[name]["num_examples"], exact[name]["accuracy"]
        assert scores["accuracy"]["value"] == accuracy
        golden = binomtest(round(accuracy * n), int(n)).proportion_ci(method="wilson")
        assert scores["accuracy"]["ci95"] == pytest.approx([golden.low, golden.high], abs=1e-9)
        low, high = scores["sensitivity"]["ci95"]
        assert low <= exact[name]["sensitivity"] <= high
    final = [json.loads(x) for x in (heart_run / "metrics.jsonl").read_text().splitlines()][-1]
    released = card["metrics"]["released"]["hospitals"]
    assert {k: v["accuracy"]["value"] for k, v in released.items()} == {
        k: v["accuracy"] for k, v in final["hospitals"].items() if "accuracy" in v}  # fmt: skip
    assert card["config_sha256"] and card["versions"]["torch"] == torch.__version__
    assert {f["name"]: (f["low"], f["high"]) for f in card["input_schema"]["fields"]}["chol"] == (
        50.0, 650.0)  # fmt: skip
    page = (tmp_path / "model-card.html").read_text()
    assert "cost no privacy" in page and "<script" not in page and "://" not in page
    for name in rows:
        assert f"{privacy[name]['epsilon']:.4f}" in page


def test_wilson_matches_scipy():
    for k, n in [(0, 5), (3, 10), (52, 104), (89, 89)]:
        golden = binomtest(k, n).proportion_ci(method="wilson")
        assert wilson(k / n, n) == pytest.approx((golden.low, golden.high), abs=1e-12)


def test_cli_export_and_serve_refuse_bad_options_in_one_line(heart_run, tmp_path):
    args = ["export", str(heart_run), "--format", "onnx", "--out", str(tmp_path / "x")]
    ok = subprocess.run([*MEDFED, *args], capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0 and "model.onnx" in ok.stdout
    cases = [
        (["export", str(heart_run), "--format", "pickle"], "--format pickle"),
        (["export", str(tmp_path / "nothing")], "not a directory"),
        (["serve", str(heart_run), "--threshold", "1.5"], "--threshold"),
        (["serve", str(heart_run), "--api-key-file", str(tmp_path / "none")], "--api-key-file"),
    ]
    for args, words in cases:
        done = subprocess.run([*MEDFED, *args], capture_output=True, text=True, timeout=300)
        lines = (done.stdout + done.stderr).strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and words in lines[0], lines
