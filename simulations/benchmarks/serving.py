"""Serving latency and throughput: medfed serve's /v1/predict and /v1/explain vs a bare floor.

For the heart-disease logistic model and the imaging CNN (each trained by `medfed simulate`,
one round), two uvicorn processes serve the same weights: medfed's app (validation from the
input schema, training's preprocessing, guard, request log to a file) and the floor, a bare
FastAPI endpoint taking the already-preprocessed tensor as a JSON list and calling the same
torch model (predict) or the same Captum attribution (explain). An httpx async client in this
process keeps 1 or 32 requests in flight; each row measures medfed and then the floor
back to back, so the ratio compares like with like on a shared machine. Predictions/s with
batching: 32 clients each sending 32 records per request.
Run: python -m medfed.simulations.benchmarks.serving [--quick] [--heart RUN] [--image RUN]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from pydantic import BaseModel

ROOT = Path(__file__).resolve().parents[2]
RECORD = {"age": 54, "sex": "male", "trestbps": 130, "chol": 246, "fbs": False, "thalch": 150,
          "exang": True, "oldpeak": 1.4, "cp": "asymptomatic", "restecg": "normal"}  # fmt: skip
RUNS = {
    "heart": ("heart_disease.toml", ["rounds=1"]),
    "image": ("imaging_cnn.toml", ["rounds=1", "data.samples=300", "data.num_hospitals=3"]),
}


class FloorBody(BaseModel):
    inputs: list  # the preprocessed N×… tensor


def floor_app(run_dir: Path):
    """The floor: FastAPI + the same model, tensor in, probabilities (or attributions) out."""
    import torch
    from fastapi import FastAPI

    from medfed.serve.bundle import load_bundle
    from medfed.serve.explain import Explainer

    bundle = load_bundle(run_dir)
    explainer = Explainer(bundle.model, bundle.schema, bundle.preprocess.feature_names)
    method = "gradcam" if bundle.schema.kind == "image" else "integrated_gradients"
    api = FastAPI()

    @api.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @api.post("/predict")
    async def predict(body: FloorBody) -> dict:
        with torch.inference_mode():
            logits = bundle.model(torch.tensor(body.inputs, dtype=torch.float32))
        return {"probabilities": torch.softmax(logits, 1).tolist()}

    @api.post("/explain")
    async def explain(body: FloorBody) -> dict:
        inputs = torch.tensor(body.inputs, dtype=torch.float32)
        with torch.no_grad():
            probabilities = torch.softmax(bundle.model(inputs), 1)
        return {"explanations": explainer.explain(inputs, probabilities, method)}

    return api


def serve_forever(which: str, run_dir: Path, port: int, log_file: Path) -> None:
    import torch
    import uvicorn

    torch.set_num_threads(1)  # as `medfed serve` does by default, for both servers
    if which == "medfed":
        from medfed.serve.app import create_app
        from medfed.serve.bundle import load_bundle

        handler = logging.FileHandler(log_file)
        access = logging.getLogger("medfed.serve.access")
        access.addHandler(handler)
        access.setLevel(logging.INFO)
        access.propagate = False
        app = create_app(load_bundle(run_dir))
    else:
        app = floor_app(run_dir)
    # Keep-alive past uvicorn's 5 s: on a loaded machine a client starved that long would race
    # the server closing its connection (a ReadError, not a measurement). Same for both servers.
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                ws="none", timeout_keep_alive=120)  # fmt: skip


def start(which: str, run_dir: Path, port: int, log_file: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "medfed.simulations.benchmarks.serving", "--serve", which,
               str(run_dir), str(port), str(log_file)]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"{which} server on port {port} did not start")


async def load(url: str, bodies: list[bytes], clients: int, total: int) -> tuple[list, float]:
    """`total` POSTs with `clients` in flight; (latencies in s, wall seconds)."""
    latencies: list[float] = []
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:
        for body in bodies[:3] * 5:  # warm-up
            (await client.post(url, content=body, headers=headers)).raise_for_status()

        async def worker() -> None:
            for index in counter:
                started = time.perf_counter()
                response = await client.post(url, content=bodies[index % len(bodies)],
                                             headers=headers)  # fmt: skip
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()

        began = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(clients)])
        return latencies, time.perf_counter() - began


def bodies_for(kind: str, run_dir: Path, batch: int) -> tuple[list[bytes], list[bytes]]:
    """(medfed request bodies, floor request bodies) for the same inputs."""
    from PIL import Image

    from medfed.serve.bundle import load_bundle
    from medfed.serve.schema import item_model

    bundle = load_bundle(run_dir)
    rng = np.random.default_rng(0)
    ours, floor = [], []
    for _ in range(8):
        if kind == "heart":
            ages, chols = rng.integers(30, 80, batch), rng.integers(150, 400, batch)
            records = [
                RECORD | {"age": float(a), "chol": float(c)}
                for a, c in zip(ages, chols, strict=True)
            ]
            items = [item_model(bundle.schema).model_validate(r) for r in records]
            body = {"records": records} if batch > 1 else {"record": records[0]}
        else:
            size = bundle.schema.image_size
            grey = rng.integers(0, 256, (size, size), dtype=np.uint8)
            buffer = io.BytesIO()
            Image.fromarray(grey).save(buffer, format="PNG")
            body = {"image": {"png": base64.b64encode(buffer.getvalue()).decode()}}
            items = [item_model(bundle.schema).model_validate(body["image"])]
        ours.append(json.dumps(body).encode())
        floor.append(json.dumps({"inputs": bundle.preprocess(items).tolist()}).encode())
    return ours, floor


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values) * 1000, q))


def run_dir_for(kind: str, given: Path | None, scratch: Path) -> Path:
    if given is not None:
        return given
    config, overrides = RUNS[kind]
    out = scratch / kind
    command = [sys.executable, "-c", "from medfed.simulations.cli import main; main()",
               "simulate", f"configs/{config}",
               "--out", str(out)] + [a for o in overrides for a in ("--set", o)]  # fmt: skip
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, timeout=1800)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests (a smoke test)")
    parser.add_argument("--heart", type=Path, help="a heart-disease run directory to reuse")
    parser.add_argument("--image", type=Path, help="an imaging run directory to reuse")
    parser.add_argument("--serve", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        which, run_dir, port, log_file = args.serve
        serve_forever(which, Path(run_dir), int(port), Path(log_file))
        return
    from medfed.shared.processes import free_port

    scale = 0.1 if args.quick else 1.0
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for kind in ("heart", "image"):
            run_dir = run_dir_for(kind, getattr(args, kind), Path(scratch))
            ports = {"medfed": free_port(), "floor": free_port()}
            log = Path(scratch) / f"{kind}-access.log"
            servers = {w: start(w, run_dir, p, log) for w, p in ports.items()}
            try:
                cases = [("predict", 1, 1, 300), ("predict", 32, 1, 2000), ("explain", 1, 1, 200),
                         ("explain", 32, 1, 600)]  # fmt: skip
                if kind == "heart":
                    cases.insert(2, ("predict", 32, 32, 600))
                for endpoint, clients, batch, total in cases:
                    ours, floor = bodies_for(kind, run_dir, batch)
                    count = max(20, int(total * scale))
                    row = {"model": kind, "endpoint": endpoint, "clients": clients, "batch": batch}
                    for which, bodies, path in (("medfed", ours, f"/v1/{endpoint}"),
                                                ("floor", floor, f"/{endpoint}")):  # fmt: skip
                        url = f"http://127.0.0.1:{ports[which]}{path}"
                        latencies, wall = asyncio.run(load(url, bodies, clients, count))
                        row[which] = (percentile(latencies, 50), percentile(latencies, 99),
                                      count * batch / wall)  # fmt: skip
                    rows.append(row)
                    print(table([row], header=len(rows) == 1), flush=True)
            finally:
                for server in servers.values():
                    os.killpg(server.pid, 15)
                    server.wait(timeout=30)


def table(rows: list[dict], header: bool = True) -> str:
    lines = []
    if header:
        lines += [
            "| model | endpoint | clients | inputs/request | medfed p50 ms | medfed p99 ms | "
            "medfed inputs/s | floor p50 ms | floor p99 ms | floor inputs/s | p99 ratio | "
            "throughput ratio |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
    for r in rows:
        (p50, p99, rate), (f50, f99, frate) = r["medfed"], r["floor"]
        lines.append(
            f"| {r['model']} | {r['endpoint']} | {r['clients']} | {r['batch']} | {p50:.2f} | "
            f"{p99:.2f} | {rate:.0f} | {f50:.2f} | {f99:.2f} | {frate:.0f} | {p99 / f99:.2f} | "
            f"{frate / rate:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
