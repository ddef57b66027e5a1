"""The final table a researcher sees after `medfed simulate`."""

from __future__ import annotations

from rich.table import Table

from medfed.server.run_dir import RunDirectory
from medfed.shared.config.models import RunConfig
from medfed.shared.metrics import weighted_means

METRICS = ("accuracy", "auroc", "sensitivity", "specificity")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def summary_table(run_dir: RunDirectory, run: RunConfig) -> Table:
    """Per-hospital final metrics and ε spent against the budget."""
    lines = run_dir.read_metrics()
    final = next(
        (line for line in reversed(lines) if line["phase"] == "final"),
        lines[-1] if lines else {"hospitals": {}, "global": {}},
    )
    privacy = run_dir.read_privacy() if run_dir.privacy_path.exists() else {}
    rounds = sum(line["phase"] == "train" for line in lines)
    table = Table(title=f"{run.name}: final model, {rounds} round(s)")
    for column in ("hospital", "accuracy", "AUROC", "sens.", "spec.", "ε / budget", "status"):
        table.add_column(column, justify="left" if column in {"hospital", "status"} else "right")
    names = sorted({*final["hospitals"], *privacy})
    for name in names:
        metrics, spent = final["hospitals"].get(name, {}), privacy.get(name, {})
        budget = (
            f"{_fmt(spent.get('epsilon'))} / {_fmt(spent.get('max_epsilon'), 2)}"
            if run.privacy.enabled
            else "no DP"
        )
        metric_cells = (_fmt(metrics.get(key)) for key in METRICS)
        table.add_row(name, *metric_cells, budget, spent.get("status", "—"))
    equal_weights = weighted_means(final["hospitals"], weight_key="(equal weights)")
    pooled = final.get("global", {})
    for label, metrics in (("mean of hospitals", equal_weights), ("pooled (weighted)", pooled)):
        table.add_row(f"[bold]{label}[/bold]", *(_fmt(metrics.get(k)) for k in METRICS), "", "")
    return table
