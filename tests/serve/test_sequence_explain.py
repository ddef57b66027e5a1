"""Integrated gradients over the vitals grid: why the baseline keeps the patient's step mask."""

from __future__ import annotations

import pytest
import torch
from captum.attr import IntegratedGradients

from medfed.serve.bundle import load_bundle
from medfed.serve.explain import Explainer, baseline

from .conftest import untrained_run


@pytest.mark.parametrize("model", ["gru", "transformer"])
def test_sequence_attributions_add_up_from_the_mask_keeping_baseline(model, tmp_path):
    bundle = load_bundle(untrained_run(tmp_path, model, ("data.sequence_length=8",)))
    generator = torch.Generator().manual_seed(1)
    values = torch.rand(3, 8, 4, generator=generator) * 2 - 1
    observed = (torch.rand(3, 8, 4, generator=generator) < 0.7).float()
    grid = torch.cat([values, observed, torch.ones(3, 8, 1)], 2)
    grid[1, :3] = 0  # a short stay: 3 padded steps
    explainer = Explainer(bundle.model, bundle.schema, [])
    probabilities = torch.softmax(bundle.model(grid), 1)
    explained = explainer.explain(grid, probabilities, "integrated_gradients")
    start = baseline(grid, "sequence")
    assert torch.equal(start[..., -1], grid[..., -1]) and not start[..., :-1].any()
    gaps = explainer.forward(grid)[:, 1] - explainer.forward(start)[:, 1]
    for row, gap in zip(explained, gaps.tolist(), strict=True):
        assert sum(row["channel_totals"].values()) == pytest.approx(gap, abs=1e-3)
        assert abs(row["convergence_delta"]) < 1e-3 and row["step_mask_total"] == 0
    # From the all-zero grid (all padding) the path crosses the models' mask threshold: the
    # attributions miss the jump there and do not add up.
    _, delta = IntegratedGradients(explainer.forward).attribute(
        grid, torch.zeros_like(grid), target=1, n_steps=32, method="riemann_middle",
        return_convergence_delta=True,
    )  # fmt: skip
    assert delta.abs().max() > 10 * max(abs(row["convergence_delta"]) for row in explained)
