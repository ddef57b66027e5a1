"""Tiny run directories trained by `medfed simulate`, and real uvicorn servers on 127.0.0.1.

Each run trains one round on little data (a real Flower simulation with DP, as a user runs
it); each server is uvicorn in a thread of the test process on a free port, torn down after.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import torch
import uvicorn

from medfed.serve.app import create_app
from medfed.serve.bundle import ModelBundle, load_bundle
from medfed.shared.config.loader import load_config, to_toml
from medfed.shared.models import build_model
from medfed.shared.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
MEDFED = [sys.executable, "-c", "from medfed.simulations.cli import main; main()"]
RECORD = {
    "age": 54, "sex": "male", "trestbps": 130, "chol": 246, "fbs": False, "thalch": 150,
    "exang": True, "oldpeak": 1.4, "cp": "asymptomatic", "restecg": "lv hypertrophy",
}  # fmt: skip
RUNS = {
    "heart": ("heart_disease.toml", ["rounds=1"]),
    "image": ("imaging_cnn.toml", ["rounds=1", "data.samples=150", "data.num_hospitals=3",
                                   "data.image_size=16"]),
    "sequence": ("vitals_rnn.toml", ["rounds=1", "data.samples=90", "data.num_hospitals=3",
                                     "data.sequence_length=8"]),
}  # fmt: skip


def simulate(kind: str, out: Path) -> Path:
    config, overrides = RUNS[kind]
    args = [*MEDFED, "simulate", f"configs/{config}", "--out", str(out)]
    for override in overrides:
        args += ["--set", override]
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


def untrained_run(out: Path, model: str, overrides: tuple[str, ...] = ()) -> Path:
    """A run directory of configs/vitals_rnn.toml with `model` at its seeded initial weights:
    config.toml and model.pt as `medfed simulate` writes them, without training (for what
    serving does with any weights: export, explanations)."""
    run = load_config(ROOT / "configs" / "vitals_rnn.toml", [f"model.name={model}", *overrides], {})
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.toml").write_text(to_toml(run), encoding="utf-8")
    torch.manual_seed(0)
    shape = (run.data.sequence_length, 2 * 4 + 1)  # the 4 configured channels
    torch.save(build_model(run.model, shape, 2).state_dict(), out / "model.pt")
    return out


@pytest.fixture(scope="session")
def heart_run(tmp_path_factory) -> Path:
    return simulate("heart", tmp_path_factory.mktemp("heart") / "run")


@pytest.fixture(scope="session")
def image_run(tmp_path_factory) -> Path:
    return simulate("image", tmp_path_factory.mktemp("image") / "run")


@pytest.fixture(scope="session")
def sequence_run(tmp_path_factory) -> Path:
    return simulate("sequence", tmp_path_factory.mktemp("sequence") / "run")


@dataclass
class Served:
    url: str
    bundle: ModelBundle
    client: httpx.Client


@contextmanager
def serving(directory: Path, **options) -> Iterator[Served]:
    """uvicorn on 127.0.0.1:<free port> serving `directory` until the block ends."""
    bundle = load_bundle(directory)
    port = free_port()
    config = uvicorn.Config(
        create_app(bundle, **options), host="127.0.0.1", port=port, access_log=False,
        log_level="warning", ws="none",
    )  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            yield Served(url, bundle, client)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def heart_server(heart_run) -> Iterator[Served]:
    with serving(heart_run, threshold=0.4, max_body_bytes=64 * 1024) as served:
        yield served


@pytest.fixture(scope="module")
def image_server(image_run) -> Iterator[Served]:
    with serving(image_run) as served:
        yield served


@pytest.fixture(scope="module")
def sequence_server(sequence_run) -> Iterator[Served]:
    with serving(sequence_run) as served:
        yield served


@pytest.fixture
def record() -> dict:
    """A plausible heart-disease record, as a clinician enters it."""
    return dict(RECORD)


@pytest.fixture
def serve_directory():
    """`serving(directory, **options)`: a context manager running uvicorn on a free port."""
    return serving
