"""Benchmark: accuracy and AUROC of one federation config, without DP and at ε ∈ {1, 3, 8}.

Default configs/breast_cancer.toml (any config whose hospitals come from `load_federation`).
Rows: the majority class of each hospital's training split, pooled training, each hospital
alone, and FedAvg. The machinery is utility.py's (medfed's own `train_round` with DP label
counts, signed ledgers, noise planned within budget, Opacus; Flower's FedAvg aggregating; no
transport) and the hyper-parameters follow tuning.py's rule: chosen by FedAvg's validation
accuracy on rows carved from the training splits, at ε = 1 for every DP column and without DP
for the no-DP column; the test splits are scored once, with those values.
Metric: the final model's exact test accuracy and AUROC (the benchmark holds every split),
mean over hospitals, mean ± std over seeds.
Run: python -m medfed.simulations.benchmarks.utility_table [--config C] [--grid small]
    [--tuning-seeds N] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medfed.shared.config import RunConfig, load_config
from medfed.shared.data import HospitalData, load_federation
from medfed.shared.metrics import classification_metrics
from medfed.simulations.benchmarks import tuning
from medfed.simulations.benchmarks.utility import (
    EPSILONS,
    NO_DP,
    PRIVATE,
    Trained,
    centralised,
    configured,
    fedavg_validation,
    federated,
    pooled,
)
from medfed.simulations.exact import exact_metrics

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "breast_cancer.toml"
SEEDS = (0, 1, 2)
METRICS = ("accuracy", "auroc")
# `--grid small`: tuning.GRID's one-epoch points at learning rates 0.5-2 (for a loaded machine).
SMALL_GRID = tuple(p for p in tuning.GRID if p.local_epochs == 1 and p.learning_rate <= 2.0)


@dataclass(frozen=True)
class Scores:
    """Exact test metrics per scored hospital and the largest ε any hospital spent."""

    metrics: dict[str, dict[str, float]]
    epsilon: float

    def mean(self, metric: str) -> float:
        return statistics.mean(m.get(metric, float("nan")) for m in self.metrics.values())


def majority(hospitals: Sequence[HospitalData]) -> Scores:
    """Each hospital predicts its training split's most frequent class for every test row."""
    metrics = {}
    for h in hospitals:
        constant = np.zeros((len(h.y_test), h.num_classes))
        constant[:, np.bincount(h.y_train, minlength=h.num_classes).argmax()] = 1.0
        metrics[h.name] = classification_metrics(h.y_test, constant, float("nan"))
    return Scores(metrics, 0.0)


def one_seed(base: RunConfig, seed: int, epsilon: float | None, root: Path) -> dict[str, Scores]:
    """Every row's scores for one seed and privacy setting; `base` holds the tuned values."""
    hospitals = load_federation(base.data, seed)
    run = configured(base, seed, epsilon, "fedavg")
    scratch = Path(tempfile.mkdtemp(dir=root))

    def scored(trained: Trained, on: Sequence[HospitalData]) -> Scores:
        return Scores(exact_metrics(run, trained.state, list(on)), trained.epsilon)

    rows = {"majority class (each hospital's training split)": majority(hospitals)}
    rows["pooled"] = scored(
        centralised(run, pooled(hospitals), epsilon, scratch / "pool"), hospitals
    )
    local = {h.name: centralised(run, h, epsilon, scratch / "local") for h in hospitals}
    own = {h.name: scored(local[h.name], [h]) for h in hospitals}
    rows |= {f"local: {name}, own test": s for name, s in own.items()}
    spent = max(s.epsilon for s in own.values())
    count = len(hospitals)
    rows[f"local: mean of {count}, own test"] = Scores(
        {name: s.metrics[name] for name, s in own.items()}, spent
    )
    everywhere = {name: scored(trained, hospitals) for name, trained in local.items()}
    rows[f"local: mean of {count}, all {count} tests"] = Scores(
        {name: {m: s.mean(m) for m in METRICS} for name, s in everywhere.items()}, spent
    )
    rows["fedavg"] = scored(federated(run, hospitals, epsilon, scratch / "fedavg"), hospitals)
    return rows


def cell(values: Sequence[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def report(results: dict[float | None, list[dict[str, Scores]]]) -> str:
    """One Markdown table per metric, then the largest ε spent per row, as Markdown."""
    settings = list(results)
    heads = ["no DP" if e is None else f"ε={e:g}" for e in settings]
    rows = list(results[settings[0]][0])
    lines: list[str] = []
    for metric in METRICS:
        lines += [f"| {metric} | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
        for row in rows:
            cells = [cell([seed[row].mean(metric) for seed in results[e]]) for e in settings]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    private = [e for e in settings if e is not None]
    lines += [
        "| setting | " + " | ".join(f"max ε spent, target {e:g}" for e in private) + " |",
        "|---|" + "---:|" * len(private),
    ]
    for row in rows[1:]:  # the majority class spends nothing
        spent = {e: max(seed[row].epsilon for seed in results[e]) for e in private}
        cells = [f"{s:.4f}" + ("" if s <= e else " ✗ over") for e, s in spent.items()]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 seed, ε=1 only, a 2-point grid (smoke run)"
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    parser.add_argument("--grid", choices=("full", "small"), default="full")
    parser.add_argument("--tuning-seeds", type=int, default=len(tuning.TUNING_SEEDS))
    args = parser.parse_args(argv)
    base = load_config(args.config, environ={})
    seeds = SEEDS[:1] if args.quick else SEEDS
    settings: tuple[float | None, ...] = (None, 1.0) if args.quick else (None, *EPSILONS)
    grid = tuning.GRID[:2] if args.quick else SMALL_GRID if args.grid == "small" else tuning.GRID
    tuning_seeds = tuning.TUNING_SEEDS[: 1 if args.quick else args.tuning_seeds]
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        selections = {
            name: tuning.select(
                configured(base, 0, epsilon, "fedavg"),
                fedavg_validation(epsilon),
                root,
                grid,
                tuning_seeds,
            )
            for name, epsilon in ((NO_DP, None), (PRIVATE, 1.0))
        }
        tuned = {
            e: tuning.with_hyperparameters(base, selections[NO_DP if e is None else PRIVATE].chosen)
            for e in settings
        }
        tuned_seconds = time.perf_counter() - started
        results = {e: [one_seed(tuned[e], seed, e, root) for seed in seeds] for e in settings}
    print(
        f"{args.config.name}: exact test accuracy and AUROC, mean over hospitals, "
        f"{len(seeds)} seed(s); {base.model.name}, {base.rounds} rounds, batch "
        f"{base.training.batch_size}, δ={base.privacy.delta:g}, clip "
        f"{base.privacy.max_grad_norm:g}, label-count σ {base.privacy.count_noise_multiplier:g}, "
        f"{base.privacy.accountant} accountant; hyper-parameters chosen on validation (tuning.py)\n"
    )
    print(tuning.chosen_table(selections, len(tuning_seeds)))
    print()
    print(report(results))
    tuning.print_grid_and_wall_time(selections, len(tuning_seeds), started, tuned_seconds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
