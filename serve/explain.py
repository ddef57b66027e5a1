"""Explanations with Captum: integrated gradients (records, sequences, images), Grad-CAM (images).

What is explained is the log-odds of the target class (class 1 for a binary model, else the
predicted class): z_t − logsumexp of the other logits, so integrated-gradient attributions add
up to log-odds(input) − log-odds(baseline). The baseline is never a statistic of training data:
records and images start from the all-zero model input (every numeric feature at the midpoint
of its public range, every indicator absent; a black image). A vitals grid starts from the
patient's own grid with every value and "observed" indicator at 0 and the step mask kept:
each channel at its range's midpoint and never observed — how training encodes a channel not
yet read — over the patient's real steps. Not the all-zero grid: that is all padding, and the
models threshold the step mask (`step_mask`: > 0.5), so the path from it jumps where the mask
crosses 0.5 and no gradient sees the jump (the attributions would not add up). The mask's own
attribution is then exactly 0. Per channel, its value and indicator features are summed, per
step and in total. An explanation reads the request and the model's weights only:
post-processing of the DP model, no privacy cost.
"""

from __future__ import annotations

from typing import Any

import torch
from captum.attr import IntegratedGradients, LayerAttribution, LayerGradCam
from torch import nn

from medfed.serve.inputs import InputSchema

IG_STEPS = {"tabular": 50, "sequence": 32, "image": 32}
BASELINES = {
    "tabular": "numeric features at the midpoint of their public range, indicators absent "
    "(all-zero model input)",
    "sequence": "the patient's grid with every channel at the midpoint of its public range "
    "and never observed (value and indicator features 0), real steps kept: how training "
    "encodes a channel not yet read; the all-zero grid is all padding, a step the models "
    "threshold, so integrated gradients from it would not add up",
    "image": "a black image (all-zero model input)",
}


def baseline(inputs: torch.Tensor, kind: str) -> torch.Tensor:
    """The integrated-gradients starting point for `inputs` (module docstring)."""
    if kind != "sequence":
        return torch.zeros_like(inputs)
    start = torch.zeros_like(inputs)
    start[..., -1] = inputs[..., -1]  # the step mask: the patient's real steps stay real
    return start


class NoConvolution(ValueError):
    """Grad-CAM asked of a model without a convolution layer."""


def log_odds(logits: torch.Tensor) -> torch.Tensor:
    """N×K: for each class k, z_k − logsumexp(z_j, j ≠ k)."""
    classes = logits.shape[1]
    mask = torch.eye(classes, dtype=torch.bool, device=logits.device)
    spread = logits.unsqueeze(1).expand(-1, classes, -1).masked_fill(mask, float("-inf"))
    return logits - spread.logsumexp(-1)


def last_convolution(model: nn.Module) -> nn.Module | None:
    found = None
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            found = module
    return found


class Explainer:
    def __init__(self, model: nn.Module, schema: InputSchema, feature_names: list[str]) -> None:
        self.model, self.schema, self.feature_names = model, schema, feature_names
        self.integrated = IntegratedGradients(self.forward)
        conv = last_convolution(model)
        self.gradcam = LayerGradCam(self.forward, conv) if conv is not None else None

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return log_odds(self.model(inputs))

    def targets(self, probabilities: torch.Tensor) -> torch.Tensor:
        if probabilities.shape[1] == 2:
            return torch.ones(len(probabilities), dtype=torch.long, device=probabilities.device)
        return probabilities.argmax(1)

    def explain(
        self, inputs: torch.Tensor, probabilities: torch.Tensor, method: str
    ) -> list[dict[str, Any]]:
        targets = self.targets(probabilities)
        if method == "gradcam":
            return self._gradcam(inputs, targets)
        kind = self.schema.kind
        attributions, delta = self.integrated.attribute(
            inputs,
            baselines=baseline(inputs, kind),
            target=targets,
            n_steps=IG_STEPS[kind],
            # midpoint rule: exact for a linear model (step sizes sum to 1); Gauss-Legendre
            # recomputes its nodes on every call (a third of a tabular explanation here)
            method="riemann_middle",
            return_convergence_delta=True,
        )
        out = []
        for index, target in enumerate(targets.tolist()):
            common = {
                "method": method,
                "target": self.schema.classes[target],
                "explained": f"log-odds of '{self.schema.classes[target]}'",
                "baseline": BASELINES[kind],
                "convergence_delta": round(float(delta[index]), 6),
            }
            shape = {"tabular": self._fields, "sequence": self._channels, "image": self._heatmap}
            out.append(common | shape[kind](attributions[index]))
        return out

    def _fields(self, attribution: torch.Tensor) -> dict[str, Any]:
        per_feature = dict(zip(self.feature_names, attribution.tolist(), strict=True))
        fields = [spec.name for spec in self.schema.fields]
        grouped = dict.fromkeys(fields, 0.0)
        for name, value in per_feature.items():
            field = name if name in grouped else name.rsplit("_", 1)[0]
            grouped[field] += value
        return {
            "attributions": {k: round(v, 6) for k, v in grouped.items()},
            "feature_attributions": {k: round(v, 6) for k, v in per_feature.items()},
        }

    def _channels(self, attribution: torch.Tensor) -> dict[str, Any]:
        names, schema = self.schema.channel_names, self.schema
        count = len(names)
        # T×F: values, indicators, mask → per channel value + indicator, T×C
        columns = (attribution[:, :count] + attribution[:, count : 2 * count]).T.tolist()
        pairs = list(zip(names, columns, strict=True))
        length, step = schema.sequence_length, schema.sequence_step
        return {
            "attributions": {name: [round(v, 6) for v in column] for name, column in pairs},
            "channel_totals": {name: round(sum(column), 6) for name, column in pairs},
            "step_mask_total": round(float(attribution[:, -1].sum()), 6),
            "steps_before_prediction": [(length - 1 - k) * step for k in range(length)],
        }

    def _heatmap(self, attribution: torch.Tensor) -> dict[str, Any]:
        return {"heatmap": _normalised(attribution.abs().sum(0))}

    def _gradcam(self, inputs: torch.Tensor, targets: torch.Tensor) -> list[dict[str, Any]]:
        if self.gradcam is None:
            raise NoConvolution(
                "method 'gradcam' needs a convolutional model; use 'integrated_gradients'"
            )
        maps = self.gradcam.attribute(inputs, target=targets, relu_attributions=True)
        maps = LayerAttribution.interpolate(maps, tuple(inputs.shape[-2:]), "bilinear")
        return [
            {
                "method": "gradcam",
                "target": self.schema.classes[target],
                "explained": f"log-odds of '{self.schema.classes[target]}'",
                "layer": "last convolution",
                "heatmap": _normalised(maps[index, 0]),
            }
            for index, target in enumerate(targets.tolist())
        ]


def _normalised(grid: torch.Tensor) -> list[list[float]]:
    """H×W scaled to [0, 1] by its maximum (all zeros stays zeros), 4 decimals."""
    grid = grid.detach()
    peak = float(grid.max())
    scaled = grid / peak if peak > 0 else torch.zeros_like(grid)
    return [[round(v, 4) for v in row] for row in scaled.clamp(0, 1).tolist()]
