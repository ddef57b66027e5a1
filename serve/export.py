"""`medfed export`: the final global model as TorchScript or ONNX, with its model card.

EXPORT_DIR holds config.toml and model.pt (so `medfed serve EXPORT_DIR` works), the exported
model (`model.torchscript.pt` or `model.onnx`, input `input` N×…, output `logits` N×K, dynamic
batch), model-card.json and model-card.html. The export is checked before it is written as
good: its outputs on a seeded batch of public test inputs (uniform over the model's input
range, no patient data) must match PyTorch's within 1e-5 (ONNX: run by onnxruntime).
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import warnings
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from medfed.serve.bundle import CARD_JSON, load_bundle
from medfed.serve.card_page import render_card
from medfed.serve.inputs import InputSchema
from medfed.serve.model_card import build_card
from medfed.shared.errors import MedfedError

TOLERANCE = 1e-5
FILES = {"torchscript": "model.torchscript.pt", "onnx": "model.onnx"}
Format = Literal["torchscript", "onnx"]


class ExportError(MedfedError):
    """The exported model does not reproduce the PyTorch model."""

    code = "export_error"


@dataclass(frozen=True)
class Exported:
    directory: Path
    model_file: Path
    max_abs_diff: float


def check_inputs(schema: InputSchema, batch: int = 5) -> torch.Tensor:
    """Seeded public inputs over the model's input range: [0, 1] images, [-1, 1] records,
    vitals grids as `vitals_to_grid` lays them out (values in [-1, 1], 0/1 indicators, the
    step mask 0 on a padded prefix that grows from none to most of the grid over the batch)."""
    generator = torch.Generator().manual_seed(0)
    uniform = torch.rand((batch, *schema.input_shape), generator=generator)
    if schema.kind != "sequence":
        return uniform if schema.kind == "image" else 2 * uniform - 1
    length, count = schema.sequence_length, len(schema.channel_names)
    first = torch.arange(batch) * length // (batch + 1)  # first real step of each grid
    real = (torch.arange(length)[None, :] >= first[:, None]).float()[..., None]
    values = (2 * uniform[..., :count] - 1) * real
    observed = (uniform[..., count : 2 * count] < 0.5).float() * real
    return torch.cat([values, observed, real], 2)


def onnx_bytes(model: torch.nn.Module, example: torch.Tensor) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the TorchScript-based exporter announces its successor
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (example,), buffer, dynamo=False, input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )  # fmt: skip
    return buffer.getvalue()


def onnx_outputs(model_bytes: bytes, inputs: torch.Tensor) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": inputs.numpy()})[0]


def torchscript_module(model: torch.nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch.jit.trace announces its deprecation
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, (example,))


def export_model(run_dir: Path, fmt: Format = "torchscript", out: Path | None = None) -> Exported:
    """Write EXPORT_DIR (default RUN_DIR/export) and return where the model went.

    Raises:
        ConfigError, DataError: the run directory cannot be served (see load_bundle).
        ExportError: the exported model's outputs differ from PyTorch's by more than 1e-5.
    """
    bundle = load_bundle(run_dir)
    model = bundle.model.to("cpu")
    directory = Path(out) if out is not None else Path(run_dir) / "export"
    directory.mkdir(parents=True, exist_ok=True)
    example = check_inputs(bundle.schema, batch=2)
    inputs = check_inputs(bundle.schema)
    with torch.no_grad():
        expected = model(inputs).numpy()
        if fmt == "onnx":
            payload = onnx_bytes(model, example)
            got = onnx_outputs(payload, inputs)
            checked = f"onnxruntime {metadata.version('onnxruntime')}"
        else:
            traced = torchscript_module(model, example)
            got = traced(inputs).numpy()
            buffer = io.BytesIO()
            with warnings.catch_warnings():  # torch.jit.save announces its deprecation
                warnings.simplefilter("ignore")
                torch.jit.save(traced, buffer)
            payload = buffer.getvalue()
            checked = f"torch.jit {torch.__version__}"
    difference = float(np.max(np.abs(got - expected)))
    if not difference <= TOLERANCE:
        raise ExportError(
            f"{run_dir}: the {fmt} export differs from the PyTorch model by {difference:.3g} "
            f"(> {TOLERANCE:g}) on the check inputs; export as the other format or report it"
        )
    model_file = directory / FILES[fmt]
    model_file.write_bytes(payload)
    for name in ("config.toml", "model.pt"):
        if (Path(run_dir) / name).resolve() != (directory / name).resolve():
            shutil.copy2(Path(run_dir) / name, directory / name)
    record = export_record(fmt, model_file, payload, difference, checked, bundle.schema)
    card = build_card(bundle) | {"export": record}
    (directory / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    (directory / "model-card.html").write_text(render_card(card), encoding="utf-8")
    return Exported(directory, model_file, difference)


def export_record(
    fmt: str, model_file: Path, payload: bytes, difference: float, checked: str, schema: InputSchema
) -> dict[str, Any]:
    return {
        "format": fmt,
        "file": model_file.name,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "input": "input: float32 N×"
        + "×".join(map(str, schema.input_shape))
        + " (after the record-local preprocessing of medfed.serve)",
        "output": "logits: float32 N×K (softmax gives the class probabilities)",
        "max_abs_diff": difference,
        "check": f"outputs match PyTorch's within {difference:.2g} ≤ {TOLERANCE:g} on 5 seeded "
        f"public inputs ({checked})",
    }
