"""Benchmark: deterioration AUROC/AUPRC on synthetic vitals, without DP and at ε ∈ {1, 3, 8}.

configs/vitals_rnn.toml (3 hospitals with their own baselines, ~10 % prevalence; generator in
shared/data/vitals_synthetic.py). Rows: FedAvg with GRU, LSTM and the Transformer, trained
by medfed's own `train_round` exactly as utility.py's rows (DP label counts, ledgers, noise
planned within budget, Opacus); a logistic regression on per-patient summaries (last, mean,
slope per channel; scikit-learn, pooled, non-private: the issue's difficulty bound) and the
majority-class baseline. Training values are the config's, chosen on validation rows
carved from the training splits of tuning seed 100 (tuning.py's split; docs/benchmarks.md
lists the runs); `--tune` instead chooses learning rate per model on validation (GRID,
scored by mean validation AUROC), once without DP and once at ε = 3 (the target; it sets
every DP column). Test splits are scored once. Metric: mean over hospitals of the final
model's exact test AUROC and AUPRC, next to the test prevalence; mean ± std over seeds.
Run: python -m medfed.simulations.benchmarks.utility_vitals [--quick] [--models gru,...]
[--tune] [--seeds N]
"""

from __future__ import annotations

import argparse
import functools
import statistics
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from medfed.client.trainer import predict
from medfed.shared.config import DataConfig, RunConfig, load_config
from medfed.shared.data import HospitalData, load_federation
from medfed.shared.models import build_model
from medfed.simulations.benchmarks import tuning
from medfed.simulations.benchmarks.summaries import patient_summaries
from medfed.simulations.benchmarks.utility import cell, configured, federated, pooled

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "vitals_rnn.toml"
MODELS = ("gru", "lstm", "transformer")
EPSILONS = (1.0, 3.0, 8.0)
SEEDS = (0, 1, 2)
TUNE_AT = 3.0
TARGETS = {"gru": (0.90, 0.85), "transformer": (None, 0.85)}  # (no DP, ε = 3), the issue's
GRID = tuple(tuning.HyperParameters(rate, 5, False) for rate in (0.01, 0.03))  # Adam
TUNING_SEEDS = (100, 101)
LR_ROW, MAJORITY = "logistic regression on summaries (non-private)", "majority class"
Scores = dict[str, tuple[float, float, float]]  # hospital → (AUROC, AUPRC, prevalence)


def scores_of(probabilities: dict[str, np.ndarray], hospitals: Sequence[HospitalData]) -> Scores:
    return {
        h.name: (
            float(roc_auc_score(h.y_test, probabilities[h.name])),
            float(average_precision_score(h.y_test, probabilities[h.name])),
            float(h.y_test.mean()),
        )
        for h in hospitals
    }


def model_scores(
    run: RunConfig, state: dict[str, torch.Tensor], hospitals: Sequence[HospitalData]
) -> Scores:
    model = build_model(run.model, hospitals[0].input_shape, hospitals[0].num_classes)
    model.load_state_dict(state)
    cpu = torch.device("cpu")
    return scores_of(
        {h.name: predict(model, h.x_test, h.y_test, cpu)[0][:, 1] for h in hospitals}, hospitals
    )


def summary_scores(hospitals: Sequence[HospitalData]) -> Scores:
    pool = pooled(hospitals)
    fit = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    fit.fit(patient_summaries(pool.x_train), pool.y_train)
    return scores_of(
        {h.name: fit.predict_proba(patient_summaries(h.x_test))[:, 1] for h in hospitals},
        hospitals,
    )


def majority_scores(hospitals: Sequence[HospitalData]) -> Scores:
    return scores_of({h.name: np.zeros(len(h.y_test)) for h in hospitals}, hospitals)


def auroc_validation(epsilon: float | None) -> tuning.Scorer:
    """The tuning score: FedAvg's mean-over-hospitals validation AUROC at `epsilon`."""

    def score(run: RunConfig, hospitals: Sequence[HospitalData], scratch: Path) -> float:
        trained = federated(run, hospitals, epsilon, scratch)
        return statistics.mean(s[0] for s in model_scores(run, trained.state, hospitals).values())

    return score


def mean_of(scores: Scores, index: int) -> float:
    return statistics.mean(s[index] for s in scores.values())


def report(results: dict[str, dict[float | None, list[Scores]]]) -> str:
    settings = list(next(iter(results.values())))
    heads = ["no DP" if e is None else f"ε={e:g}" for e in settings]
    lines = [
        "| model | metric | " + " | ".join(heads) + " |",
        "|---|---|" + "---:|" * len(heads),
    ]
    for name, by_setting in results.items():
        for index, metric in enumerate(("AUROC", "AUPRC", "prevalence")):
            cells = [
                cell([mean_of(seed, index) for seed in by_setting[e]]) if e in by_setting else "—"
                for e in settings
            ]
            lines.append(f"| {name} | {metric} | " + " | ".join(cells) + " |")
    lines.append("")
    for name, (plain, private) in TARGETS.items():
        for target, setting in ((plain, None), (private, TUNE_AT)):
            if target is None or name not in results or setting not in results[name]:
                continue
            value = statistics.mean(mean_of(seed, 0) for seed in results[name][setting])
            verdict = "met" if value >= target else f"NOT met ({target - value:.4f} short)"
            label = "no DP" if setting is None else f"ε = {setting:g}"
            lines.append(f"- {name}, {label}: AUROC {value:.4f} vs target ≥ {target}: {verdict}")
    return "\n".join(lines)


def cached_federation(data: DataConfig, seed: int) -> list[HospitalData]:
    """`load_federation`, generated once per (data config, seed) in this process."""
    return _federation(data.model_dump_json(), seed)


@functools.lru_cache(maxsize=8)
def _federation(data_json: str, seed: int) -> list[HospitalData]:
    return load_federation(DataConfig.model_validate_json(data_json), seed)


def chosen_values(
    base: RunConfig, tune: bool, grid: Sequence[tuning.HyperParameters], seeds: Sequence[int]
) -> dict[float | None, tuning.Selection | None]:
    """Per privacy setting (None, TUNE_AT): the validation selection, or None (config's)."""
    if not tune:
        return {None: None, TUNE_AT: None}
    with tempfile.TemporaryDirectory() as scratch:
        return {
            epsilon: tuning.select(
                configured(base, 0, epsilon, "fedavg"),
                auroc_validation(epsilon),
                Path(scratch),
                grid,
                seeds,
                load=cached_federation,
            )
            for epsilon in (None, TUNE_AT)
        }


def scored_runs(
    base: RunConfig, epsilon: float | None, seeds: Sequence[int], root: Path
) -> list[Scores]:
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        hospitals = cached_federation(base.data, seed)
        run = configured(base, seed, epsilon, "fedavg")
        trained = federated(run, hospitals, epsilon, Path(tempfile.mkdtemp(dir=root)))
        runs.append(model_scores(run, trained.state, hospitals))
        print(
            f"  {base.model.name} ε={epsilon} seed {seed}: AUROC {mean_of(runs[-1], 0):.4f} "
            f"AUPRC {mean_of(runs[-1], 1):.4f} ε spent {trained.epsilon:.3f} "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="GRU, 1500 patients, 1 seed, no DP and ε=3"
    )
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--tune", action="store_true", help="choose lr and epochs per model on validation (GRID)"
    )
    parser.add_argument("--no-extras", action="store_true", help="skip the LR/majority rows")
    parser.add_argument("--seeds", default=",".join(map(str, SEEDS)), help="e.g. 0,1,2")
    parser.add_argument("--set", action="append", default=[], help="config override key=value")
    parser.add_argument(
        "--settings",
        default=",".join(["none", *(f"{e:g}" for e in EPSILONS)]),
        help="privacy settings: 'none' (no DP) or ε values",
    )
    parser.add_argument("--config", type=Path, default=CONFIG)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # stable on a shared machine; oversubscribed threads crawl
    base = load_config(args.config, args.set, environ={})
    seeds = tuple(int(seed) for seed in args.seeds.split(","))
    settings = tuple(None if e == "none" else float(e) for e in args.settings.split(","))
    models = [name for name in args.models.split(",") if name]  # "" = only the extras
    grid, tuning_seeds = GRID, TUNING_SEEDS
    if args.quick:
        base.data.samples, seeds, settings = 1500, SEEDS[:1], (None, TUNE_AT)
        models = ["gru"] if args.models == ",".join(MODELS) else models
        grid, tuning_seeds = GRID[:1], TUNING_SEEDS[:1]
    started = time.perf_counter()
    results: dict[str, dict[float | None, list[Scores]]] = {}
    selections: dict[str, tuning.Selection] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name in models:
            model_base = base.model_copy(deep=True)
            model_base.model.name = name
            chosen = chosen_values(model_base, args.tune, grid, tuning_seeds)
            selections |= {
                f"{name}, {'no DP' if e is None else f'ε = {e:g}'}": s
                for e, s in chosen.items()
                if s is not None
            }
            results[name] = {}
            for epsilon in settings:
                selection = chosen[None if epsilon is None else TUNE_AT]
                tuned = (
                    model_base
                    if selection is None
                    else tuning.with_hyperparameters(model_base, selection.chosen)
                )
                results[name][epsilon] = scored_runs(tuned, epsilon, seeds, Path(scratch))
    if not args.no_extras:
        federations = [cached_federation(base.data, seed) for seed in seeds]
        results[LR_ROW] = {None: [summary_scores(h) for h in federations]}
        results[MAJORITY] = {None: [majority_scores(h) for h in federations]}
    data, training = base.data, base.training
    print(
        f"\nSynthetic vitals: {data.samples} patients, {data.num_hospitals} hospitals "
        f"({data.partition}), {data.sequence_length} steps of {data.sequence_step:g} h; "
        f"FedAvg {base.rounds} rounds, batch {training.batch_size}, {training.optimizer}, "
        f"hidden {base.model.hidden_size}, clip {base.privacy.max_grad_norm:g}, "
        f"δ={base.privacy.delta:g}, {base.privacy.accountant}; {len(seeds)} seed(s); mean over "
        "hospitals of the exact test AUROC / AUPRC / prevalence\n"
    )
    print(report(results))
    if selections:
        print(f"\nChosen on validation ({len(tuning_seeds)} tuning seed(s), mean AUROC):\n")
    else:
        print(
            f"\nTraining values: the config's (lr {training.learning_rate:g}, "
            f"{training.local_epochs} local epoch(s)), chosen on validation rows (docs)."
        )
    for label, selection in selections.items():
        print(
            f"- {label}: {selection.chosen.label()} (validation AUROC "
            f"{selection.validation_accuracy:.4f}); grid: "
            + ", ".join(
                f"lr {p.learning_rate:g}/{p.local_epochs} ep {v:.4f}"
                for p, v in selection.accuracy.items()
            )
        )
    print(f"\nWall time: {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
