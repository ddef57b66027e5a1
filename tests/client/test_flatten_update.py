"""The update a hospital masks is new − old in float64, in the global model's key order."""

from __future__ import annotations

import numpy as np
import torch

from medfed.client.secure import flatten_update


def test_flat_update_is_the_exact_float64_difference_in_key_order():
    generator = torch.Generator().manual_seed(0)
    old = {
        "layer.weight": torch.randn(30, 20, generator=generator),
        "layer.bias": torch.randn(30, generator=generator),
        "norm.num_batches_tracked": torch.tensor(7),
        "head.weight": torch.randn(2, 30, generator=generator).to(torch.bfloat16),
    }
    new = {
        key: (value + 1e-3 * torch.randn(value.shape, generator=generator).to(value.dtype))
        if value.is_floating_point()
        else value + 1
        for key, value in old.items()
    }
    new = dict(reversed(new.items()))  # the global model's order decides, not the reply's
    golden = []
    for key in old:
        for a, b in zip(new[key].reshape(-1).tolist(), old[key].reshape(-1).tolist(), strict=True):
            golden.append(float(a) - float(b))  # the same IEEE float64 subtraction
    update = flatten_update(new, old)
    assert update.dtype == np.float64
    assert update.tolist() == golden
