"""The report's plots as inline SVG: ε against the budget, accuracy and AUROC per round.

Figures are drawn with `matplotlib.figure.Figure` (no pyplot state) and cleaned for inlining
in HTML: no XML prolog, no namespace URLs, and element ids renumbered per plot so that several
plots can share one page and rebuilding a report gives the same markup.
"""

from __future__ import annotations

import io
import re

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from medfed.server.report.schema import AuditReport

COLORS = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#17becf",
    "#bcbd22",
    "#7f7f7f",
    "#d62728",
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
NO_METADATA = {"Date": None, "Creator": None, "Format": None, "Type": None}


def inline_svg(figure: Figure, prefix: str, label: str) -> str:
    """`figure` as an `<svg>` element for an HTML page (ids prefixed with `prefix`, `label`
    for screen readers)."""
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", metadata=NO_METADATA, bbox_inches="tight")
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    svg = svg.replace("xlink:href=", "href=")
    svg = re.sub(r'\s(width|height)="[\d.]+pt"', "", svg, count=2)
    found = dict.fromkeys(re.findall(r'(?<=\s)id="([^"]+)"', svg))
    ids = {old: f"{prefix}-{number}" for number, old in enumerate(found)}
    svg = re.sub(r'(?<=\s)id="([^"]+)"', lambda m: f'id="{ids[m.group(1)]}"', svg)
    svg = re.sub(
        r'(href="#|url\(#)([^")]+)', lambda m: m.group(1) + ids.get(m.group(2), m.group(2)), svg
    )
    return svg.replace("<svg", f'<svg class="plot" role="img" aria-label="{label}"', 1)


def _style(axes: Axes, title: str, xlabel: str, ylabel: str) -> None:
    axes.set_title(title, fontsize=11, loc="left")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(True, color="#dddddd", linewidth=0.6)
    axes.spines[["top", "right"]].set_visible(False)
    axes.xaxis.get_major_locator().set_params(integer=True)


def epsilon_plot(report: AuditReport) -> str | None:
    """ε after each round per hospital, with each hospital's budget as a dashed line."""
    hospitals = [h for h in report.hospitals if h.epsilon_by_round or h.max_epsilon is not None]
    if not any(h.epsilon_by_round for h in hospitals):
        return None
    figure = Figure(figsize=(8, 3.8))
    axes = figure.subplots()
    budgets = {h.max_epsilon for h in hospitals if h.max_epsilon is not None}
    shared_budget = len(budgets) == 1
    for index, hospital in enumerate(hospitals):
        color = COLORS[index % len(COLORS)]
        rounds = [point.round for point in hospital.epsilon_by_round]
        values = [point.epsilon for point in hospital.epsilon_by_round]
        # decreasing marker sizes keep hospitals with identical ε visible on top of each other
        axes.plot(
            rounds,
            values,
            marker=MARKERS[index % len(MARKERS)],
            color=color,
            markersize=max(3, 10 - 1.5 * index),
            label=hospital.name,
        )
        if hospital.max_epsilon is not None and not shared_budget:
            axes.axhline(hospital.max_epsilon, color=color, linestyle="--", linewidth=1)
    if shared_budget:
        budget = budgets.pop()
        axes.axhline(
            budget,
            color="#d62728",
            linestyle="--",
            linewidth=1.2,
            label=f"budget max_epsilon = {budget:g}",
        )
    top = max(
        [p.epsilon for h in hospitals for p in h.epsilon_by_round]
        + [h.max_epsilon for h in hospitals if h.max_epsilon is not None]
    )
    axes.set_ylim(0, top * 1.12)
    _style(axes, "Cumulative ε per hospital (dashed: budget)", "round", "ε (lifetime)")
    axes.legend(fontsize=8, frameon=False, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return inline_svg(figure, "epsilon-plot", "Cumulative epsilon per hospital and round")


def metrics_plot(report: AuditReport) -> str | None:
    """Accuracy and AUROC of the global model after each round, per hospital and overall."""
    evaluations = sorted(report.rounds, key=lambda r: (r.after_round, r.phase == "final"))
    by_round = {r.after_round: r for r in evaluations}  # the final evaluation wins a tie
    if not by_round:
        return None
    rounds = sorted(by_round)
    figure = Figure(figsize=(10, 4), layout="constrained")
    panels = figure.subplots(1, 2)
    for axes, key, title in zip(panels, ("accuracy", "auroc"), ("Accuracy", "AUROC"), strict=True):
        for index, hospital in enumerate(report.hospitals):
            points = [
                (r, getattr(by_round[r].hospitals.get(hospital.name), key, None)) for r in rounds
            ]
            points = [(r, v) for r, v in points if v is not None]
            if points:
                axes.plot(
                    *zip(*points, strict=True),
                    marker=".",
                    linewidth=1,
                    color=COLORS[index % len(COLORS)],
                    label=hospital.name,
                )
        overall = [(r, getattr(by_round[r].global_, key)) for r in rounds]
        overall = [(r, v) for r, v in overall if v is not None]
        if overall:
            axes.plot(
                *zip(*overall, strict=True),
                marker="o",
                linewidth=2.4,
                color="#222222",
                label="all hospitals (weighted)",
            )
        if not axes.lines:
            axes.text(0.5, 0.5, "not defined in any round", ha="center", transform=axes.transAxes)
        axes.set_xlim(rounds[0] - 0.15, rounds[-1] + 0.15)
        axes.set_ylim(0, 1.02)
        _style(axes, title, "rounds of training of the evaluated model", title)
    legend = {}  # label → handle, over both panels
    for axes in panels:
        legend |= dict(zip(*reversed(axes.get_legend_handles_labels()), strict=True))
    if legend:
        figure.legend(
            list(legend.values()),
            list(legend),
            fontsize=8,
            frameon=False,
            loc="outside lower center",
            ncols=min(len(legend), 5),
        )
    return inline_svg(figure, "metrics-plot", "Accuracy and AUROC per round")
