"""The model card's metrics: exact test-split scores (simulation) and the DP releases, with CIs.

`exact`: RUN_DIR/exact_evaluation.json, written by `medfed simulate` (it holds every partition);
these are not DP releases and exist only in simulation. Intervals: Wilson for accuracy (n),
sensitivity (positives) and specificity (negatives), Hanley–McNeil for AUROC; pooled over
hospitals from the summed counts. `released`: the hospitals' DP evaluation of the final model
(metrics.jsonl, phase "final"), what a coordinator has; their intervals are Wilson's at the
released n, sampling uncertainty only (the DP noise adds to it).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from medfed.serve.intervals import hanley_mcneil, wilson
from medfed.shared.metrics import METRIC_KEYS

EXACT_FILE = "exact_evaluation.json"
EXACT_NOTE = (
    "exact metrics of this model on each hospital's test split, computed in simulation by "
    "whoever held every partition; not a DP release (a deployment has only the released ones)"
)
RELEASED_NOTE = (
    "the hospitals' DP releases of the final model's test metrics (what the coordinator "
    "received); intervals are sampling uncertainty at the released n only, DP noise adds to it"
)


def _number(value: Any) -> float | None:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    return float(value) if ok else None


def _with_intervals(scores: dict[str, Any], counts: bool) -> dict[str, Any]:
    n = _number(scores.get("num_examples")) or 0.0
    positives = _number(scores.get("positives")) if counts else None
    negatives = n - positives if positives is not None else None
    sizes = {"accuracy": n, "sensitivity": positives, "specificity": negatives}
    result: dict[str, Any] = {}
    for key in METRIC_KEYS:
        value = _number(scores.get(key))
        if value is None:
            continue
        interval = None
        if key in sizes and sizes[key] is not None:
            interval = wilson(value, sizes[key])
        elif key == "auroc" and positives is not None and negatives is not None:
            interval = hanley_mcneil(value, positives, negatives)
        result[key] = {"value": value, "ci95": list(interval) if interval else None}
    result["num_examples"] = n
    return result


def _pooled(per_hospital: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Example-weighted means; counts summed (the intervals of the pooled proportions)."""
    pooled: dict[str, Any] = {}
    n = sum(_number(s.get("num_examples")) or 0.0 for s in per_hospital.values())
    has_counts = all(_number(s.get("positives")) is not None for s in per_hospital.values())
    if has_counts:
        pooled["positives"] = sum(float(s["positives"]) for s in per_hospital.values())
    for key in METRIC_KEYS:
        if key in ("sensitivity", "specificity") and has_counts:
            # pooled recall: correct positives over all positives (weights = class sizes)
            weight = (lambda s: s["positives"]) if key == "sensitivity" else (
                lambda s: s["num_examples"] - s["positives"])  # fmt: skip
        else:
            weight = lambda s: s["num_examples"]  # noqa: E731
        pairs = [(_number(s.get(key)), weight(s)) for s in per_hospital.values()]
        pairs = [(v, w) for v, w in pairs if v is not None and w]
        total = sum(w for _, w in pairs)
        if pairs and total > 0:
            pooled[key] = sum(v * w for v, w in pairs) / total
    pooled["num_examples"] = n
    card = _with_intervals(pooled, has_counts)
    if "auroc" in card:  # a weighted mean of AUROCs is not the AUROC of the pooled scores
        card["auroc"]["ci95"] = None
    return card


def exact_metrics(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / EXACT_FILE
    if not path.is_file():
        return None
    scores = json.loads(path.read_text(encoding="utf-8")).get("hospitals", {})
    return {
        "source": "exact (simulation)",
        "note": EXACT_NOTE,
        "hospitals": {name: _with_intervals(s, True) for name, s in scores.items()},
        "global": _pooled(scores),
    }


def released_metrics(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    final = [line for line in lines if line.get("phase") == "final"] or lines[-1:]
    if not final:
        return None
    hospitals = final[-1].get("hospitals", {})
    return {
        "source": "DP release (final evaluation)",
        "round": final[-1].get("round"),
        "note": RELEASED_NOTE,
        "hospitals": {name: _with_intervals(s, False) for name, s in hospitals.items()},
        "global": _with_intervals(final[-1].get("global", {}), False),
    }
