"""What a hospital will spend before it spends it: plans for its ledger, from facts it holds.

Each function reads the (locked, verified) ledger and the hospital's own settings and returns
a `LedgerPlan` to commit; none trains or sends anything. The coordinator's instruction only
proposes the plan's shape (rounds, epochs, batch size, target): the limits are the
hospital's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from medfed.client.counts import COUNT_SENSITIVITY
from medfed.client.trainer import NoiseSettings, poisson_plan
from medfed.shared.errors import EvaluationBudgetExceeded, PolicyViolation, PrivacyBudgetExceeded
from medfed.shared.instruction import RoundInstruction
from medfed.shared.privacy.accounting import epsilon_of
from medfed.shared.privacy.chain import stream_of
from medfed.shared.privacy.ledger import LedgerPlan, PrivacyLedger

MAX_EVALUATION_NOISE = 1e4


@dataclass(frozen=True)
class TrainingPlan:
    """A round's ledger plan and the DP-SGD settings that carry it out."""

    ledger: LedgerPlan
    noise: NoiseSettings
    round_steps: int


def count_plan(settings, instruction: RoundInstruction, fingerprint: str, released) -> LedgerPlan:
    """The ledger plan of a label-count release (one Gaussian step, sensitivity 1)."""
    return LedgerPlan(
        type="count",
        run_id=instruction.run_id,
        round=instruction.server_round,
        dataset_fingerprint=fingerprint,
        noise_multiplier=settings.count_noise_multiplier,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=COUNT_SENSITIVITY,
        delta=settings.delta,
        accountant=settings.accountant,
        released=tuple(released),
    )


def plan_training(
    settings, ledger: PrivacyLedger, instruction: RoundInstruction, size: float, fingerprint: str
) -> TrainingPlan:
    """Noise and step count for this round so that every planned remaining step of the run
    fits the budget. The run may bring ε to min(ε before the run + target_epsilon,
    max_epsilon); σ is calibrated at the run's first round and re-checked against the
    remaining plan each round (one accountant evaluation; recalibrated, starting from that σ,
    only when the plan no longer fits). `size` is the
    released (DP) training-set size: the Poisson rate and Opacus's expected batch size
    follow from it, never from the true n.

    Raises:
        PolicyViolation: the round number is past the run's planned rounds.
        PrivacyBudgetExceeded: no σ up to `max_noise_multiplier` keeps the plan in budget.
    """
    if instruction.server_round > instruction.rounds:
        raise PolicyViolation(
            f"hospital '{settings.name}': server round {instruction.server_round} is past the "
            f"run's {instruction.rounds} planned rounds (the noise was calibrated for those)"
        )
    sample_rate, steps_per_epoch = poisson_plan(size, instruction.batch_size)
    round_steps = steps_per_epoch * instruction.local_epochs
    remaining_steps = round_steps * (instruction.rounds - instruction.server_round + 1)
    delta, accountant = settings.delta, settings.accountant
    history = ledger.history("train")
    before_run = ledger.epsilon_before_run(instruction.run_id, delta, accountant)
    target = min(before_run + instruction.target_epsilon, settings.max_epsilon)

    earlier = ledger.rounds_of_run(instruction.run_id)
    sigma = settings.calibrator.noise_for(
        history,
        target,
        delta,
        sample_rate,
        remaining_steps,
        accountant,
        settings.max_noise_multiplier,
        keep=float(earlier[-1]["noise_multiplier"]) if earlier else None,
    )
    if sigma is None:
        spent = ledger.epsilon("train", delta, accountant)
        raise PrivacyBudgetExceeded(
            f"hospital '{settings.name}': {remaining_steps} more steps would exceed the "
            f"privacy budget (spent ε={spent:.4f}, max_epsilon={settings.max_epsilon}, "
            f"δ={delta}) even at the largest allowed noise",
            spent_epsilon=spent,
            max_epsilon=settings.max_epsilon,
        )
    plan = LedgerPlan(
        type="round",
        run_id=instruction.run_id,
        round=instruction.server_round,
        dataset_fingerprint=fingerprint,
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps=round_steps,
        max_grad_norm=instruction.max_grad_norm,
        delta=delta,
        accountant=accountant,
    )
    noise = NoiseSettings(
        sigma, instruction.max_grad_norm, sample_rate, accountant, size * sample_rate
    )
    return TrainingPlan(plan, noise, round_steps)


def window_epsilon(ledger: PrivacyLedger, plan: LedgerPlan, window_days: float) -> float:
    """ε of the training-stream entries of the last `window_days` composed with `plan`."""
    since = time.time() - window_days * 86400
    recent = [
        (float(e["noise_multiplier"]), float(e["sample_rate"]), int(e["steps"]))
        for e in ledger.entries
        if stream_of(e) == "train" and float(e.get("time", 0)) >= since
    ]
    step = (plan.noise_multiplier, plan.sample_rate, plan.steps)
    return epsilon_of([*recent, step], plan.delta, plan.accountant)


def evaluation_noise(settings) -> float:
    """σ such that `max_evaluations` releases fit `max_evaluation_epsilon` exactly (the same
    question every round: the hospital's calibrator answers it from its cache)."""
    sigma = settings.calibrator.noise_for(
        [],
        settings.max_evaluation_epsilon,
        settings.delta,
        1.0,
        settings.max_evaluations,
        settings.accountant,
        MAX_EVALUATION_NOISE,
    )
    return MAX_EVALUATION_NOISE if sigma is None else sigma


def evaluation_plan(
    settings,
    ledger: PrivacyLedger,
    instruction: RoundInstruction,
    fingerprint: str,
    sensitivity: float,
) -> LedgerPlan:
    """The plan of one DP evaluation on the test split, within the hospital's own cap.

    Raises:
        EvaluationBudgetExceeded: `max_evaluations` reached, or the test-split ε would pass
            `max_evaluation_epsilon`.
    """
    done = ledger.count("evaluation")
    sigma = evaluation_noise(settings)
    plan = LedgerPlan(
        type="evaluation",
        run_id=instruction.run_id,
        round=instruction.server_round,
        dataset_fingerprint=fingerprint,
        noise_multiplier=sigma,
        sample_rate=1.0,
        steps=1,
        max_grad_norm=sensitivity,
        delta=settings.delta,
        accountant=settings.accountant,
    )
    after = epsilon_of(
        [*ledger.history("test"), (sigma, 1.0, 1)], settings.delta, settings.accountant
    )
    if done >= settings.max_evaluations or after > settings.max_evaluation_epsilon + 1e-12:
        raise EvaluationBudgetExceeded(
            f"hospital '{settings.name}': it has scored {done} model(s) on its test split "
            f"(max_evaluations = {settings.max_evaluations}, max_evaluation_epsilon = "
            f"{settings.max_evaluation_epsilon}); it evaluates no more models"
        )
    return plan
