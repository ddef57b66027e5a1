"""GPU: training samples per second of the DP CNN, private and non-private, batch 64 and 256.

The same steps as dp_cost (its `plain_step` and `private_step`, medfed's trainer `backward`) on
the CUDA device, timed with the device synchronised after each step; fastest of the repeats.
Private rows use the grad-sample modes medfed's trainer runs safely on Poisson's empty batches
(hooks, ew, ghost; `auto` picks ew for the CNN, see shared/models/registry.py). Without a CUDA
device it prints one line saying so and exits 0.
Run: python -m medfed.simulations.benchmarks.gpu [--quick]
"""

from __future__ import annotations

import argparse
import copy
import time
import warnings
from collections.abc import Sequence

import torch

from medfed.shared.config.models import ModelConfig
from medfed.shared.models import MODELS, build_model
from medfed.simulations.benchmarks.dp_cost import (
    HIDDEN,
    SHAPES,
    BatchStep,
    plain_step,
    private_step,
    reason,
)

SKIP = "GPU benchmark skipped: no CUDA device (torch.cuda.is_available() is False)"
MODEL = "cnn"
SAFE_MODES = ("hooks", "ew", "ghost")  # functorch crashes on Poisson's empty batches


def samples_per_second(
    step: BatchStep, x: torch.Tensor, y: torch.Tensor, warmups: int, repeats: int
) -> float:
    """Samples per second of the fastest of `repeats` synchronised steps."""
    for _ in range(warmups):
        step(x, y)
    torch.cuda.synchronize()
    fastest = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        step(x, y)
        torch.cuda.synchronize()
        fastest = min(fastest, time.perf_counter() - started)
    return len(y) / fastest


def measure(batch: int, device: torch.device, warmups: int, repeats: int) -> dict[str, str]:
    """Formatted samples/s of the non-private and each private variant at `batch`."""
    torch.manual_seed(0)
    shape = SHAPES[MODEL]
    x = torch.randn(batch, *shape, device=device)
    y = torch.randint(0, 2, (batch,), device=device)
    model = build_model(ModelConfig(name=MODEL, hidden_size=HIDDEN), shape, 2).to(device)
    plain = samples_per_second(plain_step(copy.deepcopy(model)), x, y, warmups, repeats)
    cells = {"non-private": f"{plain:,.0f}"}
    for mode in SAFE_MODES:
        try:
            step = private_step(copy.deepcopy(model), x, y, mode)
            private = samples_per_second(step, x, y, warmups, repeats)
            cells[mode] = f"{private:,.0f} ({plain / private:.2f}× slower)"
        except Exception as exc:  # noqa: BLE001 - a mode that fails is a result to report
            cells[mode] = f"n/a ({reason(exc)})"
    return cells


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 64, few repeats (smoke)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(SKIP)
        return 0
    batches, warmups, repeats = ((64,), 2, 5) if args.quick else ((64, 256), 10, 50)
    for notice in ("Secure RNG turned off", "Full backward hook is firing"):
        warnings.filterwarnings("ignore", message=notice)
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    auto = MODELS[MODEL].grad_sample_mode
    print(
        f"DP CNN (hidden {HIDDEN}, 1×28×28 inputs, 2 classes) on {name}, torch {torch.__version__}"
        f", CUDA {torch.version.cuda}: training samples/s, fastest of {repeats} after {warmups} "
        f"warm-ups; medfed's mode for the CNN: {auto}"
    )
    print(
        "| device | batch | non-private samples/s | "
        + " | ".join(f"private ({mode}) samples/s" for mode in SAFE_MODES)
        + " |"
    )
    print("|---|---:|---:|" + "---:|" * len(SAFE_MODES))
    for batch in batches:
        cells = measure(batch, device, warmups, repeats)
        row = [name, str(batch), cells["non-private"], *(cells[m] for m in SAFE_MODES)]
        print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
