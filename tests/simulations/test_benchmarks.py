"""The benchmark scripts run (`--quick`) and print the tables they promise."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from medfed.shared.config import load_config
from medfed.shared.data import HospitalData
from medfed.shared.models import MODELS
from medfed.simulations.benchmarks import tuning
from medfed.simulations.benchmarks.gpu import SKIP
from medfed.simulations.benchmarks.run_all import benchmarks

ROOT = Path(__file__).resolve().parents[2]
MEAN_STD = re.compile(r"^(\d+\.\d+) ± (\d+\.\d+)$")


def _quick(name):
    command = [sys.executable, "-m", f"medfed.simulations.benchmarks.{name}", "--quick"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    return result.stdout


def _tables(stdout):
    """Every Markdown table in `stdout` as (header cells, [row cells]), separator dropped."""
    tables, current = [], []
    for line in [*stdout.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append((current[0], current[2:]))
            current = []
    return tables


@pytest.mark.slow
def test_utility_quick_prints_every_row_with_parsable_accuracies():
    stdout = _quick("utility")
    chosen, (header, rows), (spent_header, spent_rows), grid = _tables(stdout)
    assert chosen[0][:4] == [
        "selection (FedAvg on validation)",
        "learning rate",
        "epochs/round",
        "class-weighted",
    ]
    assert [row[0] for row in chosen[1]] == ["no DP", "ε=1 (sets every DP column)"]
    assert header == ["setting", "no DP", "ε=1", "FLamby (non-private, published)"]
    names = [row[0] for row in rows]
    hospitals = ["Cleveland", "Hungary", "Switzerland", "VA Long Beach", "mean of 4"]
    assert names == [
        "pooled",
        *(f"local: {name}, own test" for name in hospitals),
        *(f"local: {name}, 4 tests" for name in hospitals),
        "fedavg",
        "fedprox",
        "fedadam",
    ]
    for row in rows:
        for cell in row[1:3]:
            mean, std = map(float, MEAN_STD.match(cell).groups())
            assert 0.0 <= mean <= 1.0 and std == 0.0  # one seed
        assert row[3] == "—" if "own test" in row[0] else 0.5 < float(row[3]) < 0.8
    assert spent_header == ["setting", "max ε spent, target 1"]
    assert [row[0] for row in spent_rows] == names
    assert all(0.9 < float(row[1]) <= 1.0 for row in spent_rows)  # budget used, never exceeded
    assert re.search(r"at ε=1 ≥ 0\.735: (met|NOT met) \(mean \d\.\d{4}", stdout)
    assert len(grid[1]) == 2  # --quick tunes over two grid points
    for selection, row in enumerate(chosen[1], start=3):
        # the chosen point is the bold cell of its column, at the validation accuracy shown
        bold = [line for line in grid[1] if line[selection].startswith("**")]
        assert len(bold) == 1 and bold[0][selection].strip("*") == row[4]
        assert bold[0][:3] == row[1:4]  # learning rate, epochs, class-weighted


@pytest.mark.slow
def test_utility_table_quick_scores_accuracy_and_auroc_of_every_breast_cancer_row():
    stdout = _quick("utility_table")
    chosen, accuracy, auroc, (spent_header, spent_rows), grid = _tables(stdout)
    assert [row[0] for row in chosen[1]] == ["no DP", "ε=1 (sets every DP column)"]
    local = [f"local: hospital_{i}, own test" for i in range(4)]
    names = ["pooled", *local, "local: mean of 4, own test", "local: mean of 4, all 4 tests"]
    majority = "majority class (each hospital's training split)"
    for (header, rows), metric in ((accuracy, "accuracy"), (auroc, "auroc")):
        assert header == [metric, "no DP", "ε=1"]
        assert [row[0] for row in rows] == [majority, *names, "fedavg"]
        for row in rows:
            for cell in row[1:]:
                mean, std = map(float, MEAN_STD.match(cell).groups())
                assert 0.0 <= mean <= 1.0 and std == 0.0  # one seed
    assert auroc[1][0][1:] == ["0.5000 ± 0.0000"] * 2  # a constant score ranks nothing
    assert spent_header == ["setting", "max ε spent, target 1"]
    assert [row[0] for row in spent_rows] == [*names, "fedavg"]
    assert all(0.9 < float(row[1]) <= 1.0 for row in spent_rows)
    assert len(grid[1]) == 2


def _hospital(labels, test_size=10):
    features = np.arange(len(labels), dtype=np.float32)[:, None]
    test = np.full((test_size, 1), -1.0, dtype=np.float32)
    return HospitalData("H", features, np.array(labels), test, np.zeros(test_size, np.int64), 2)


@pytest.mark.slow
def test_imaging_utility_quick_prints_auroc_beside_a_majority_baseline():
    from medfed.simulations.benchmarks.imaging_utility import FEDAVG, MAJORITY

    stdout = _quick("imaging_utility")
    chosen, (auroc_header, auroc_rows), (accuracy_header, _), grid = _tables(stdout)
    assert [row[0] for row in chosen[1]] == ["no DP", "ε=1 (sets every DP column)"]
    assert auroc_header == ["mean hospital AUROC", "no DP", "ε=1"]
    assert accuracy_header[0] == "mean hospital accuracy"
    rows = {row[0]: row[1:] for row in auroc_rows}
    assert set(rows) == {MAJORITY, FEDAVG}
    assert all(MEAN_STD.match(cell) for cells in rows.values() for cell in cells)
    assert rows[MAJORITY] == ["0.5000 ± 0.0000"] * 2  # a constant score ranks nothing
    assert len(grid[1]) == 2 and "(target 1)" in stdout


def test_validation_split_takes_a_stratified_quarter_of_the_training_rows_only():
    hospital = _hospital([0] * 40 + [1] * 60)
    carved = tuning.validation_split(hospital)
    assert (len(carved.y_train), len(carved.y_test)) == (75, 25)
    assert np.bincount(carved.y_test).tolist() == [10, 15]  # the training split's 40/60
    rows = np.concatenate([carved.x_train, carved.x_test])[:, 0]
    assert sorted(rows.tolist()) == list(range(100))  # every training row once, no test row
    assert np.array_equal(tuning.validation_split(hospital).x_test, carved.x_test)  # fixed seed


def test_validation_split_of_a_single_class_hospital_does_not_fail():
    carved = tuning.validation_split(_hospital([1] * 30))  # Switzerland's training split
    assert (len(carved.y_train), len(carved.y_test)) == (22, 8)


def test_tuning_picks_the_best_mean_over_seeds_and_the_first_of_equals(tmp_path):
    grid = [tuning.HyperParameters(rate, 1, True) for rate in (1.0, 2.0, 4.0)]
    score_of = {(1.0, 7): 0.5, (1.0, 8): 1.0, (2.0, 7): 0.75, (2.0, 8): 0.75}
    scratch_dirs = []

    def score(run, hospitals, scratch):
        assert all(len(h.y_test) < len(h.y_train) for h in hospitals)  # validation rows
        assert not any(scratch.iterdir())  # a fresh ledger directory per grid point and seed
        scratch_dirs.append(scratch)
        return score_of.get((run.training.learning_rate, run.seed), 0.5)

    base = load_config(ROOT / "configs" / "heart_disease.toml", environ={})
    selection = tuning.select(base, score, tmp_path, grid, seeds=(7, 8))
    assert selection.chosen == grid[0]  # 0.75 = 0.75: the earlier point wins
    assert selection.accuracy == {grid[0]: 0.75, grid[1]: 0.75, grid[2]: 0.5}
    assert len(set(scratch_dirs)) == 6


@pytest.mark.slow
def test_demo_seeds_quick_reads_the_exact_test_metrics_of_a_real_simulation():
    stdout = _quick("demo_seeds")
    ((header, rows),) = _tables(stdout)
    assert header[1] == "mean exact test accuracy over hospitals"
    (seed, accuracy, epsilon, seconds), summary = rows
    assert seed == "0" and 0.5 < float(accuracy) <= 1.0 and 0.9 < float(epsilon) <= 1.0
    assert summary[1] == f"{accuracy} ± 0.0000"
    assert re.search(r"≥ 0\.72 at ε ≤ 1: (met|NOT met)", stdout)


@pytest.mark.slow
def test_utility_vitals_quick_prints_auroc_auprc_and_prevalence_rows():
    stdout = _quick("utility_vitals")
    ((header, rows),) = _tables(stdout)
    assert header == ["model", "metric", "no DP", "ε=3"]
    names = [(row[0], row[1]) for row in rows]
    models = ["gru", "logistic regression on summaries (non-private)", "majority class"]
    assert names == [(m, k) for m in models for k in ("AUROC", "AUPRC", "prevalence")]
    cells = {(row[0], row[1]): row[2:] for row in rows}
    prevalence = float(MEAN_STD.match(cells[("gru", "prevalence")][0]).group(1))
    assert 0.03 < prevalence < 0.2
    assert cells[("majority class", "AUROC")] == ["0.5000 ± 0.0000", "—"]
    assert MEAN_STD.match(cells[("majority class", "AUPRC")][0]).group(1) == f"{prevalence:.4f}"
    for value in cells[("gru", "AUROC")]:
        assert 0.0 <= float(MEAN_STD.match(value).group(1)) <= 1.0
    assert re.search(r"gru, ε = 3: AUROC \d\.\d{4} vs target ≥ 0\.85: (met|NOT met)", stdout)


def test_dp_cost_quick_times_every_model_and_mode():
    stdout = _quick("dp_cost")
    (times_header, times), (ratio_header, ratios), (_, summary) = _tables(stdout)[:3]
    modes = ["hooks", "functorch", "ew", "ghost"]
    assert times_header == ["model", "batch", "non-private", "plain nn.GRU/LSTM", *modes]
    assert [(row[0], row[1]) for row in times] == [(name, "64") for name in MODELS]
    for row in times:
        float(row[2])
        assert row[3] == "—" if row[0] not in {"gru", "lstm"} else float(row[3]) > 0
        for cell in row[4:]:
            assert cell.startswith("n/a (") or float(cell) > 0
    assert ratio_header[:6] == ["model", "batch", *modes]
    for row in ratios:
        auto = row[ratio_header.index("auto (registry)")]
        assert auto == MODELS[row[0]].grad_sample_mode
        for cell in row[2:6]:
            assert cell == "n/a" or float(cell.rstrip("×")) > 0
    assert [row[0] for row in summary] == list(MODELS)


def test_run_all_finds_every_benchmark_but_itself():
    names = {benchmark.name for benchmark in benchmarks()}
    assert {"utility", "dp_cost", "demo_seeds", "secagg_masks", "scale", "gpu"} <= names
    assert "run_all" not in names
    assert {b.name for b in benchmarks() if b.takes_quick} >= {"utility", "dp_cost", "scale"}
    assert "process_memory" not in names  # a helper, not a benchmark


@pytest.mark.skipif(torch.cuda.is_available(), reason="with a GPU it prints the table instead")
def test_gpu_benchmark_says_plainly_that_it_skipped_without_cuda():
    stdout = _quick("gpu")
    assert stdout.strip() == SKIP


@pytest.mark.slow
def test_scale_quick_simulates_20_hospitals_and_reports_round_time_and_memory():
    stdout = _quick("scale")
    ((header, rows),) = _tables(stdout)
    assert header[0] == "hospitals" and "peak PSS sum" in header
    ((hospitals, app, per_round, times, first, final, *_, rss, pss, verdict),) = rows
    assert hospitals == "20" and float(per_round) > 0 and float(first) > 0
    assert app == "medfed DP hospitals" and times == "—"  # no floor run without --floor
    assert final.endswith("(10)")  # the final model is scored by a sample, not all 20
    assert float(rss.removesuffix(" MB").replace(",", "")) > 0
    assert float(pss.removesuffix(" MB").replace(",", "")) > 0
    assert re.fullmatch(r"(yes|no) / (yes|no)", verdict)
