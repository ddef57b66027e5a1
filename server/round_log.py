"""What the coordinator writes about a round: the metrics line and the privacy summary."""

from __future__ import annotations

from typing import Any

from medfed.server.replies import SortedReplies
from medfed.shared.config.models import PrivacyConfig
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.metrics import weighted_means

TRAINING_ONLY = {"epsilon"}


def round_line(
    server_round: int,
    phase: str,
    seconds: float,
    replies: SortedReplies,
    exchanges: int,
    stop_reason: str = "",
) -> dict[str, Any]:
    """One metrics.jsonl line: per-hospital evaluation (+ ε), weighted means, who was skipped,
    which node claimed a name other than its own (`identity`), and the run's `status`
    ("stopped" with the reason in `stopped`; "completed" on a finished run's final line)."""
    hospitals = {name: dict(metrics) for name, metrics in replies.evaluation.items()}
    for name, training in replies.training.items():
        hospitals.setdefault(name, {})["epsilon"] = training.get("epsilon")
    evaluation = {
        name: {k: v for k, v in metrics.items() if k not in TRAINING_ONLY}
        for name, metrics in replies.evaluation.items()
    }
    line: dict[str, Any] = {
        "round": server_round,
        "phase": phase,
        "seconds": round(seconds, 4),
        "exchanges": exchanges,
        "hospitals": hospitals,
        "global": weighted_means(evaluation),
    }
    refused = {name: f"{o.code}: {o.message}" for name, o in replies.refused.items()}
    if refused | replies.failed:
        line["skipped"] = refused | replies.failed
    if replies.identity:
        line["identity"] = dict(replies.identity)
    if stop_reason:
        line["status"], line["stopped"] = "stopped", stop_reason
    elif phase == "final":
        line["status"] = "completed"
    return line


def record_privacy(
    summary: dict[str, dict[str, Any]], replies: SortedReplies, privacy: PrivacyConfig
) -> None:
    """Update privacy.json's per-hospital entries from one round's replies (in place).

    δ, accountant, budget and clipping norm are each hospital's own, as its report says: the
    coordinator's configuration only proposes them.
    """
    for name, training in replies.training.items():
        entry = summary.setdefault(name, {"status": "active"})
        entry.setdefault("epsilon_at_run_start", training.get("epsilon_at_run_start"))
        entry.update(
            epsilon=training.get("epsilon"),
            delta=training.get("delta"),
            target_epsilon=privacy.target_epsilon,
            max_epsilon=training.get("max_epsilon"),
            noise_multiplier=training.get("noise_multiplier"),
            max_grad_norm=training.get("max_grad_norm"),
            sample_rate=training.get("sample_rate"),
            steps=int(training.get("total_steps", training.get("steps", 0))),
            accountant=training.get("accountant"),
            evaluation_epsilon=training.get("evaluation_epsilon"),
            max_evaluation_epsilon=training.get("max_evaluation_epsilon"),
        )
        if training.get("privacy") == "off":
            entry["privacy"] = "off"
    for name, outcome in replies.refused.items():
        entry = summary.setdefault(name, {})
        is_budget = outcome.code == PrivacyBudgetExceeded.code
        entry.update(status="exhausted" if is_budget else "refused", reason=outcome.message)
        spent = replies.training_refused.get(name, {})
        if "epsilon" in spent:
            entry.setdefault("epsilon_at_run_start", spent["epsilon"])
            entry.update(epsilon=spent["epsilon"], max_epsilon=spent.get("max_epsilon"))
