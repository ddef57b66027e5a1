"""Benchmark: time per optimizer step of Opacus DP-SGD against plain PyTorch, per model.

For every registered model and batch size: a non-private SGD step of the same model, then an
Opacus step (fixed batch, no Poisson sampling) in each grad-sample mode. Recurrent models are
also compared with plain `nn.GRU`/`nn.LSTM` of the same size (the issue's baseline: medfed's
Linear-built GRU/LSTM, which Opacus can clip, are slower even without privacy). Variants are
timed round-robin in one process so machine noise hits all. Each mode is also probed with an
empty batch, which medfed's Poisson-sampled trainer draws; the steps go through the trainer's
own `backward`, so a mode counts as safe exactly when medfed can take that step. Times are the
fastest of the interleaved repeats (as `timeit` advises): on a shared machine other processes
only ever add time, and they add it unevenly to the variants.
Run: python -m medfed.simulations.benchmarks.dp_cost [--quick] [--threads N] [--models a,b]
"""

from __future__ import annotations

import argparse
import copy
import math
import platform
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medfed.client.trainer import backward
from medfed.shared.config.models import ModelConfig
from medfed.shared.models import MODELS, build_model
from medfed.shared.models.recurrent import SequenceClassifier

MODES = ("hooks", "functorch", "ew", "ghost")
SEQUENCE = (48, 9)  # a vitals grid: 4 values, 4 observed indicators, the step mask
SHAPES = {
    "logistic": (13,),
    "mlp": (13,),
    "cnn": (1, 28, 28),
    "gru": SEQUENCE,
    "lstm": SEQUENCE,
    "transformer": SEQUENCE,
}
PLAIN_CELLS = {"gru": nn.GRU, "lstm": nn.LSTM}
# private / non-private (issues 6 and 13); the Transformer against its own non-private step
TARGETS = {"mlp": 2.0, "cnn": 1.5, "gru": 6.0, "lstm": 6.0, "transformer": 3.0}
HIDDEN = 32
NON_PRIVATE, PLAIN_RNN = "non-private", "plain nn.RNN"

BatchStep = Callable[[torch.Tensor, torch.Tensor], None]


def plain_cell(cell: type[nn.RNNBase]) -> type[nn.Module]:
    """`cell` (nn.GRU/nn.LSTM) taking medfed's encoder call (inputs, step mask): the baseline
    ignores the mask (every benchmark step is real), as a fused cell cannot carry state."""

    class Plain(cell):
        def forward(self, sequences, real=None):  # noqa: ARG002 - the mask is all ones here
            return super().forward(sequences)

    return Plain


@dataclass(frozen=True)
class Timing:
    """Fastest seconds per step of one variant, or why it could not run."""

    seconds: float | None = None
    error: str | None = None

    def ms(self) -> str:
        return f"{self.seconds * 1e3:.2f}" if self.seconds is not None else f"n/a ({self.error})"


@dataclass
class Row:
    """One model at one batch size: timings by variant, empty-batch failures by mode."""

    timings: dict[str, Timing] = field(default_factory=dict)
    empty_fails: dict[str, str] = field(default_factory=dict)

    def seconds(self, variant: str | None) -> float | None:
        return None if variant is None else self.timings[variant].seconds

    def ratio(self, mode: str | None, base: str = NON_PRIVATE) -> float | None:
        top, bottom = self.seconds(mode), self.seconds(base)
        return None if top is None or bottom is None else top / bottom

    def fastest(self, poisson_safe: bool) -> str | None:
        valid = [m for m in MODES if self.seconds(m) is not None]
        valid = [m for m in valid if not (poisson_safe and m in self.empty_fails)]
        return min(valid, key=self.seconds) if valid else None


def reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= 70 else text[:67] + "..."


def plain_step(model: nn.Module) -> BatchStep:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    criterion = nn.CrossEntropyLoss()

    def step(batch_x: torch.Tensor, batch_y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        backward(model, criterion, batch_x, batch_y, "none")
        optimizer.step()

    return step


def private_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str) -> BatchStep:
    """An Opacus DP-SGD step in `mode`, planned for fixed batches of len(y) samples."""
    loader = DataLoader(TensorDataset(x, y), batch_size=len(y))
    wrapped = PrivacyEngine().make_private(
        module=model,
        optimizer=torch.optim.SGD(model.parameters(), lr=0.01),
        criterion=nn.CrossEntropyLoss(),
        data_loader=loader,
        noise_multiplier=1.0,
        max_grad_norm=1.0,
        poisson_sampling=False,
        grad_sample_mode=mode,
    )
    if mode == "ghost":  # the criterion does both backward passes of ghost clipping
        private, optimizer, criterion, _ = wrapped
    else:
        (private, optimizer, _), criterion = wrapped, nn.CrossEntropyLoss()

    def step(batch_x: torch.Tensor, batch_y: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=True)
        backward(private, criterion, batch_x, batch_y, mode)
        optimizer.step()

    return step


def measure_row(name: str, batch: int, warmups: int, repeats: int) -> Row:
    """Build every variant, time them round-robin, then probe private ones with an empty batch."""
    torch.manual_seed(0)
    shape = SHAPES[name]
    x, y = torch.randn(batch, *shape), torch.randint(0, 2, (batch,))
    if shape == SEQUENCE:
        x[..., -1] = 1.0  # every step real (the step mask)
    model = build_model(ModelConfig(name=name, hidden_size=HIDDEN), shape, 2)
    row, steps = Row(), {NON_PRIVATE: plain_step(copy.deepcopy(model))}
    if name in PLAIN_CELLS:
        steps[PLAIN_RNN] = plain_step(
            SequenceClassifier(plain_cell(PLAIN_CELLS[name]), shape[-1], HIDDEN, 1, 2)
        )
    for mode in MODES:
        try:
            steps[mode] = private_step(copy.deepcopy(model), x, y, mode)
            for _ in range(warmups):
                steps[mode](x, y)
        except Exception as exc:  # noqa: BLE001 - a mode that fails is a result to report
            row.timings[mode] = Timing(error=reason(exc))
            steps.pop(mode, None)
    for _ in range(warmups):
        for variant in (NON_PRIVATE, PLAIN_RNN):
            if variant in steps:
                steps[variant](x, y)
    samples: dict[str, list[float]] = {variant: [] for variant in steps}
    for _ in range(repeats):  # interleaved, so drifting load hits every variant alike
        for variant, step in steps.items():
            start = time.perf_counter()
            step(x, y)
            samples[variant].append(time.perf_counter() - start)
    row.timings |= {variant: Timing(min(s)) for variant, s in samples.items()}
    for mode in MODES:
        if mode in steps:
            try:
                steps[mode](x[:0], y[:0])
            except Exception as exc:  # noqa: BLE001
                row.empty_fails[mode] = reason(exc)
    return row


def fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def overall(rows: dict[tuple[str, int], Row], name: str, poisson_safe: bool) -> str:
    """The mode with the smallest geometric-mean ratio over batch sizes (valid at all)."""
    mine = [row for (model, _), row in rows.items() if model == name]
    scores = {}
    for mode in MODES:
        ratios = [row.ratio(mode) for row in mine]
        unsafe = poisson_safe and any(mode in row.empty_fails for row in mine)
        if not unsafe and all(r is not None for r in ratios):
            scores[mode] = math.exp(statistics.mean(math.log(r) for r in ratios))
    if not scores:
        return "n/a"
    best = min(scores, key=scores.__getitem__)
    return f"{best} ({scores[best]:.2f}×)"


def report(rows: dict[tuple[str, int], Row]) -> str:
    heads = [NON_PRIVATE, "plain nn.GRU/LSTM", *MODES]
    lines = [
        "ms per optimizer step (fastest of the repeats):",
        "",
        "| model | batch | " + " | ".join(heads) + " |",
        "|---|---:|" + "---:|" * len(heads),
    ]
    for (name, batch), row in rows.items():
        plain = row.timings[PLAIN_RNN].ms() if PLAIN_RNN in row.timings else "—"
        cells = [row.timings[NON_PRIVATE].ms(), plain, *(row.timings[m].ms() for m in MODES)]
        lines.append(f"| {name} | {batch} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Private / non-private (same model). 'safe' = also steps on an empty batch, as Poisson "
        "sampling needs; the target is checked for the fastest safe mode against the issue's "
        "baseline (plain nn.GRU/LSTM for recurrent models):",
        "",
        "| model | batch | " + " | ".join(MODES) + " | empty batch fails | fastest | fastest "
        "safe | auto (registry) | auto is fastest safe? | target | fastest safe vs baseline "
        "| met |",
        "|---|---:|" + "---:|" * len(MODES) + "---|---|---|---|---|---:|---:|---|",
    ]
    for (name, batch), row in rows.items():
        safe, auto = row.fastest(poisson_safe=True), MODELS[name].grad_sample_mode
        auto_cell = "yes" if auto == safe else f"**no** ({fmt(row.ratio(auto, safe))} of it)"
        against = row.ratio(safe, PLAIN_RNN if PLAIN_RNN in row.timings else NON_PRIVATE)
        target = TARGETS.get(name)
        met = "—" if target is None or against is None else ("yes" if against <= target else "no")
        lines.append(
            f"| {name} | {batch} | "
            + " | ".join(fmt(row.ratio(m)) for m in MODES)
            + f" | {', '.join(row.empty_fails) or '—'} | {row.fastest(False) or 'n/a'} "
            + f"| {safe or 'n/a'} | {auto} | {auto_cell} | "
            + f"{'—' if target is None else f'≤ {target:g}×'} | {fmt(against)} | {met} |"
        )
    lines += [
        "",
        "| model | auto (registry) | fastest (geo-mean over batches) | fastest safe |",
        "|---|---|---|---|",
    ]
    for name in dict.fromkeys(name for name, _ in rows):
        lines.append(
            f"| {name} | {MODELS[name].grad_sample_mode} | {overall(rows, name, False)} "
            f"| {overall(rows, name, True)} |"
        )
    problems = {f"{m}: {why}" for row in rows.values() for m, why in row.empty_fails.items()}
    lines += ["", *(f"Empty batch — {problem}" for problem in sorted(problems))]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 64, 2 timed steps (smoke)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable on a shared machine)"
    )
    parser.add_argument(
        "--models", default=",".join(MODELS), help="comma-separated registry names (default all)"
    )
    args = parser.parse_args(argv)
    names = args.models.split(",")
    torch.set_num_threads(args.threads)
    batches, warmups, repeats = ((64,), 1, 2) if args.quick else ((64, 256), 3, 20)
    for notice in ("Secure RNG turned off", "Full backward hook is firing"):  # once per engine
        warnings.filterwarnings("ignore", message=notice)
    started = time.perf_counter()
    rows = {
        (name, batch): measure_row(name, batch, warmups, repeats)
        for name in names
        for batch in batches
    }
    print(
        f"DP cost per step: fastest of {repeats} after {warmups} warm-up(s), hidden {HIDDEN}, "
        f"2 classes, {torch.get_num_threads()} torch thread(s), {platform.machine()}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )
    print(report(rows))
    print(f"\nWall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
