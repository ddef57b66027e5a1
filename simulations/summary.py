"""The final table a researcher sees after `medfed simulate`."""

from __future__ import annotations

from rich.table import Table

from medfed.server.run_dir import RunDirectory
from medfed.shared.config.models import RunConfig


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
    names = list(dict.fromkeys([*final["hospitals"], *privacy]))
    for name in names:
        metrics, spent = final["hospitals"].get(name, {}), privacy.get(name, {})
        budget = (
            f"{_fmt(spent.get('epsilon'))} / {_fmt(spent.get('max_epsilon'), 2)}"
            if run.privacy.enabled
            else "no DP"
        )
        table.add_row(
            name,
            _fmt(metrics.get("accuracy")),
            _fmt(metrics.get("auroc")),
            _fmt(metrics.get("sensitivity")),
            _fmt(metrics.get("specificity")),
            budget,
            spent.get("status", "—"),
        )
    per_hospital = [m for m in final["hospitals"].values()]
    plain_mean = {
        key: sum(m[key] for m in per_hospital if key in m)
        / max(1, sum(key in m for m in per_hospital))
        for key in ("accuracy", "auroc", "sensitivity", "specificity")
        if any(key in m for m in per_hospital)
    }
    table.add_row(
        "[bold]mean of hospitals[/bold]",
        _fmt(plain_mean.get("accuracy")),
        _fmt(plain_mean.get("auroc")),
        _fmt(plain_mean.get("sensitivity")),
        _fmt(plain_mean.get("specificity")),
        "",
        "",
    )
    overall = final.get("global", {})
    table.add_row(
        "[bold]pooled (weighted)[/bold]",
        _fmt(overall.get("accuracy")),
        _fmt(overall.get("auroc")),
        _fmt(overall.get("sensitivity")),
        _fmt(overall.get("specificity")),
        "",
        "",
    )
    return table
