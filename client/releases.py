"""The hospital's DP releases besides training: its label counts and its evaluations.

Each checks the hospital's own limits against its locked ledger, commits the release's entry,
and only then returns what may leave the hospital.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from medfed.client.counts import ReleasedCounts, release_counts
from medfed.client.evaluation import (
    EVALUATION_SENSITIVITY,
    evaluation_statistic,
    metrics_from_release,
    release_statistic,
)
from medfed.client.planning import count_plan, evaluation_plan, window_epsilon
from medfed.client.policy import check_window
from medfed.client.trainer import predict
from medfed.shared.data.base import HospitalData, dataset_fingerprint
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.hospital_report import EvaluationReport
from medfed.shared.instruction import RoundInstruction
from medfed.shared.metrics import classification_metrics
from medfed.shared.privacy.accounting import epsilon_of
from medfed.shared.privacy.ledger import PrivacyLedger

if TYPE_CHECKING:  # hospital.py imports this module
    from medfed.client.hospital import HospitalSettings


def fingerprint_of_test_split(data: HospitalData) -> str:
    """The test split's fingerprint (its own ledger stream)."""
    return dataset_fingerprint(data.x_test, data.y_test)


def exact_evaluation(model: torch.nn.Module, data: HospitalData, device) -> EvaluationReport:
    """Exact metrics on the test split: only for a hospital whose privacy is disabled."""
    probabilities, loss = predict(model, data.x_test, data.y_test, device)
    metrics = classification_metrics(data.y_test, probabilities, loss)
    return EvaluationReport(num_examples=float(len(data.y_test)), **metrics)


def evaluate_privately(
    ledger: PrivacyLedger,
    model: torch.nn.Module,
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
) -> EvaluationReport:
    """One DP evaluation of `model` on the test split, committed to the test stream first.

    Raises:
        EvaluationBudgetExceeded: the hospital's evaluation cap or test-split budget is spent.
    """
    fingerprint = fingerprint_of_test_split(data)
    plan = evaluation_plan(settings, ledger, instruction, fingerprint, EVALUATION_SENSITIVITY)
    statistic = evaluation_statistic(model, data, settings.torch_device())
    randomness = settings.randomness(instruction, fingerprint, "evaluation", len(ledger.entries))
    released = release_statistic(statistic, plan.noise_multiplier, randomness)
    entry = ledger.commit(dataclasses.replace(plan, released=tuple(map(float, released))))
    metrics = metrics_from_release(released, data.num_classes)
    return EvaluationReport(**metrics, evaluation_epsilon=float(entry["epsilon_after"]))


def released_counts(
    ledger: PrivacyLedger, data: HospitalData, settings: HospitalSettings, instruction
) -> ReleasedCounts:
    """This dataset's released label counts: from the ledger, or released (and committed) now."""
    earlier = ledger.latest("count", data.fingerprint)
    if earlier is not None:
        return ReleasedCounts(tuple(float(c) for c in earlier["released"]))
    plan = count_plan(settings, instruction, data.fingerprint, (0.0,))
    delta, accountant = settings.delta, settings.accountant
    step = (plan.noise_multiplier, plan.sample_rate, plan.steps)
    after = epsilon_of([*ledger.history("train"), step], delta, accountant)
    before_run = ledger.epsilon_before_run(instruction.run_id, delta, accountant)
    allowance = min(before_run + instruction.target_epsilon, settings.max_epsilon)
    if after > allowance:
        raise PrivacyBudgetExceeded(
            f"hospital '{settings.name}': releasing its label counts would bring ε to "
            f"{after:.4f}, above this run's allowance {allowance:.4f} (max_epsilon="
            f"{settings.max_epsilon}, target_epsilon={instruction.target_epsilon}, δ={delta})",
            spent_epsilon=ledger.epsilon("train", delta, accountant),
            max_epsilon=settings.max_epsilon,
        )
    if settings.policy is not None:
        window = window_epsilon(ledger, plan, settings.policy.window_days)
        check_window(settings.policy, window, settings.name)
    randomness = settings.randomness(instruction, data.fingerprint, "count", len(ledger.entries))
    counts = release_counts(
        data.y_train, data.num_classes, settings.count_noise_multiplier, randomness
    )
    ledger.commit(dataclasses.replace(plan, released=counts.counts))
    return counts
