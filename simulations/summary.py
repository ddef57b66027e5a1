"""The final table a researcher sees after `medfed simulate`."""

from __future__ import annotations

from rich.table import Table

from medfed.server.run_dir import RunDirectory
from medfed.shared.config.models import RunConfig
from medfed.shared.metrics import weighted_means

METRICS = ("accuracy", "auroc", "sensitivity", "specificity")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def summary_table(
    run_dir: RunDirectory, run: RunConfig, exact: dict[str, dict[str, float]]
) -> Table:
    """Per hospital: the final model's exact test metrics (the simulation holds the data), the
    accuracy the hospital released under DP (what a coordinator sees), ε against the budget."""
    lines = run_dir.read_metrics()
    final = next(
        (line for line in reversed(lines) if line["phase"] == "final"),
        lines[-1] if lines else {"hospitals": {}, "global": {}},
    )
    privacy = run_dir.read_privacy() if run_dir.privacy_path.exists() else {}
    rounds = sum(line["phase"] == "train" for line in lines)
    table = Table(
        title=f"{run.name}: final model, {rounds} round(s)",
        caption="acc. … spec.: exact, on each test split (simulation only); "
        "DP acc.: what the hospital released",
    )
    columns = ("hospital", "acc.", "AUROC", "sens.", "spec.", "DP acc.", "ε / budget")
    for column in (*columns, "status"):
        table.add_column(column, justify="left" if column in {"hospital", "status"} else "right")
    for name in sorted({*exact, *final["hospitals"], *privacy}):
        released, spent = final["hospitals"].get(name, {}), privacy.get(name, {})
        budget = (
            f"{_fmt(spent.get('epsilon'))} / {_fmt(spent.get('max_epsilon'), 2)}"
            if run.privacy.enabled
            else "no DP"
        )
        metric_cells = (_fmt(exact.get(name, {}).get(key)) for key in METRICS)
        table.add_row(
            name, *metric_cells, _fmt(released.get("accuracy")), budget, spent.get("status", "—")
        )
    equal_weights = weighted_means(exact, weight_key="(equal weights)")
    pooled = weighted_means(exact)
    for label, metrics in (("mean of hospitals", equal_weights), ("pooled (weighted)", pooled)):
        cells = (_fmt(metrics.get(k)) for k in METRICS)
        table.add_row(f"[bold]{label}[/bold]", *cells, "", "", "")
    return table
