"""`medfed export` of the vitals models (GRU, LSTM, Transformer) on the T × (2C + 1) grid."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime
import pytest
import torch

from medfed.serve.bundle import load_bundle
from medfed.serve.export import check_inputs, export_model

from .conftest import untrained_run


def padded_grids(bundle, batch: int = 7) -> torch.Tensor:
    """Grids of another seed and batch size than the export's own check: random readings on a
    suffix of real steps, the rest padding (as `vitals_to_grid` writes it)."""
    generator = torch.Generator().manual_seed(9)
    length, features = bundle.schema.input_shape
    count = (features - 1) // 2
    first = torch.randint(0, length, (batch,), generator=generator)
    real = (torch.arange(length)[None, :] >= first[:, None]).float()[..., None]
    values = torch.rand((batch, length, count), generator=generator) * 2 - 1
    observed = (torch.rand((batch, length, count), generator=generator) < 0.7).float()
    return torch.cat([values * real, observed * real, real], 2)


@pytest.mark.parametrize("model", ["gru", "lstm", "transformer"])
def test_sequence_models_export_with_dynamic_batch(model, tmp_path):
    run_dir = untrained_run(tmp_path / "run", model, ("data.sequence_length=6",))
    bundle = load_bundle(run_dir)
    inputs = padded_grids(bundle)
    with torch.no_grad():
        expected = bundle.model(inputs).numpy()
    onnx = export_model(run_dir, "onnx", tmp_path / "onnx")
    session = onnxruntime.InferenceSession(str(onnx.model_file), providers=["CPUExecutionProvider"])
    for batch in (1, 7):  # exported with a batch of 2: the batch axis is dynamic
        got = session.run(["logits"], {"input": inputs[:batch].numpy()})[0]
        assert np.max(np.abs(got - expected[:batch])) <= 1e-5
    script = export_model(run_dir, "torchscript", tmp_path / "ts")
    traced = torch.jit.load(str(script.model_file))
    with torch.no_grad():
        assert np.max(np.abs(traced(inputs).numpy() - expected)) <= 1e-5
    card = json.loads((tmp_path / "ts" / "model-card.json").read_text())
    assert card["input_schema"]["sequence_length"] == 6 and card["export"]["max_abs_diff"] <= 1e-5
    assert "midpoint" in card["explanations"]["baseline"]
    assert "observed" in card["input_schema"]["grid"]


def test_export_checks_padded_grids():
    """The export's own check inputs hold padding and real steps, as served grids do."""
    bundle_schema = type("S", (), {"kind": "sequence", "input_shape": (6, 9),
                                   "sequence_length": 6, "channel_names": ("a",) * 4})  # fmt: skip
    grids = check_inputs(bundle_schema)
    mask = grids[..., -1]
    assert set(mask.unique().tolist()) == {0.0, 1.0} and mask[0].all() and not mask[-1].all()
    assert torch.equal(grids[..., :-1] * (1 - mask[..., None]), torch.zeros_like(grids[..., :-1]))
