"""One hospital's round: evaluate the received model, plan noise within budget, train.

Plain functions over plain data, so tests call them without Flower.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medfed.client.policy import HospitalPolicy, check_instruction, check_noise
from medfed.client.trainer import LocalTraining, NoiseSettings, poisson_plan, predict, train_locally
from medfed.shared.config.models import ModelConfig
from medfed.shared.crypto.signing import load_or_create_signing_key
from medfed.shared.data.base import HospitalData
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.instruction import RoundInstruction
from medfed.shared.metrics import classification_metrics
from medfed.shared.models import build_model, model_spec
from medfed.shared.privacy.accounting import calibrate_noise, epsilon_of
from medfed.shared.privacy.ledger import PrivacyLedger
from medfed.shared.secagg.config import SecureAggregationConfig


@dataclass(frozen=True)
class HospitalSettings:
    """What the hospital decides for itself, whatever the coordinator asks."""

    name: str
    max_epsilon: float
    ledger_path: Path
    key_dir: Path
    delta: float = 1e-5
    accountant: str = "rdp"
    privacy_enabled: bool = True
    max_noise_multiplier: float = 20.0
    device: str = "auto"
    secure_aggregation: SecureAggregationConfig = field(default_factory=SecureAggregationConfig)
    policy: HospitalPolicy | None = None
    # Simulation only: sampling and DP noise drawn from the run's seed (reproducible, but anyone
    # holding the seed and the ledger's fingerprint could regenerate the noise). A deployed
    # hospital draws a fresh secret seed from the OS for every round.
    seeded_noise: bool = False

    def torch_device(self) -> torch.device:
        wants_cuda = self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
        return torch.device("cuda" if wants_cuda else "cpu")

    def open_ledger(self, fingerprint: str) -> PrivacyLedger:
        key = load_or_create_signing_key(self.key_dir, self.ledger_path.stem)
        return PrivacyLedger.open(self.ledger_path, key, self.name, fingerprint)


@dataclass(frozen=True)
class RoundResult:
    state_dict: dict[str, torch.Tensor]
    train_metrics: dict[str, float]
    evaluation: dict[str, float]


def evaluate(model: torch.nn.Module, data: HospitalData, device: torch.device) -> dict[str, float]:
    """Metrics of `model` on the hospital's test split (plus `num_examples`)."""
    probabilities, loss = predict(model, data.x_test, data.y_test, device)
    metrics = classification_metrics(data.y_test, probabilities, loss)
    metrics["num_examples"] = float(len(data.y_test))
    return metrics


def model_for(
    instruction: RoundInstruction, data: HospitalData, global_state: dict[str, torch.Tensor]
) -> torch.nn.Module:
    """The instructed architecture loaded with the coordinator's weights."""
    config = ModelConfig(
        name=instruction.model_name,
        hidden_size=instruction.hidden_size,
        num_layers=instruction.num_layers,
    )
    model = build_model(config, data.input_shape, data.num_classes)
    model.load_state_dict(global_state)
    return model


def plan_noise(
    settings: HospitalSettings, ledger: PrivacyLedger, instruction: RoundInstruction, num_train: int
) -> tuple[NoiseSettings, int]:
    """Noise and step count for this round so that every planned remaining step of the run
    fits the budget. The run may bring ε to min(ε before the run + target_epsilon,
    max_epsilon); σ is calibrated at the run's first round and re-checked against the
    remaining plan each round (recalibrated only when the plan no longer fits). One ε
    evaluation per round after the first: the plan check (ε so far comes from the ledger).

    Raises:
        PrivacyBudgetExceeded: no σ up to `max_noise_multiplier` keeps the plan in budget.
    """
    sample_rate, steps_per_epoch = poisson_plan(num_train, instruction.batch_size)
    round_steps = steps_per_epoch * instruction.local_epochs
    remaining_steps = round_steps * max(1, instruction.rounds - instruction.server_round + 1)
    history = ledger.history()
    before_run = ledger.epsilon_before_run(instruction.run_id, settings.delta, settings.accountant)
    target = min(before_run + instruction.target_epsilon, settings.max_epsilon)

    def projected(sigma: float) -> float:
        plan = [*history, (sigma, sample_rate, remaining_steps)]
        return epsilon_of(plan, settings.delta, settings.accountant)

    earlier = ledger.rounds_of_run(instruction.run_id)
    sigma = float(earlier[-1]["noise_multiplier"]) if earlier else 0.0
    if sigma <= 0 or projected(sigma) > target:
        found = calibrate_noise(
            history,
            target,
            settings.delta,
            sample_rate,
            remaining_steps,
            settings.accountant,
            settings.max_noise_multiplier,
        )
        if found is None:
            spent = ledger.epsilon_of_first(
                len(ledger.entries), settings.delta, settings.accountant
            )
            raise PrivacyBudgetExceeded(
                f"hospital '{settings.name}': {remaining_steps} more steps would exceed the "
                f"privacy budget (spent ε={spent:.4f}, max_epsilon={settings.max_epsilon}, "
                f"δ={settings.delta}) even at the largest allowed noise",
                spent_epsilon=spent,
                max_epsilon=settings.max_epsilon,
            )
        sigma = found
    noise = NoiseSettings(sigma, instruction.max_grad_norm, sample_rate, settings.accountant)
    return noise, round_steps


def train_round(
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
    global_state: dict[str, torch.Tensor],
) -> RoundResult:
    """Evaluate the received model, then train on it under the hospital's ledger.

    The round's steps are signed into the ledger and fsync'd before training starts, so a
    crash can only over-count.

    Raises:
        PrivacyBudgetExceeded: the round would push ε over `settings.max_epsilon`.
        PolicyViolation: the instruction (or the noise it needs) breaks `settings.policy`.
        LedgerError: the hospital's ledger does not verify.
        ConfigError: the instructed model does not fit this hospital's data.
    """
    if settings.policy is not None:
        check_instruction(settings.policy, instruction, settings.name)
    device = settings.torch_device()
    model = model_for(instruction, data, global_state)
    evaluation = evaluate(model, data, device)
    noise, entry, ledger = None, None, None
    if settings.privacy_enabled:
        ledger = settings.open_ledger(data.fingerprint)
        noise, round_steps = plan_noise(settings, ledger, instruction, data.num_train)
        if settings.policy is not None:
            check_noise(settings.policy, noise.noise_multiplier, settings.name)
        entry = ledger.append_round(
            run_id=instruction.run_id,
            round=instruction.server_round,
            dataset_fingerprint=data.fingerprint,
            noise_multiplier=noise.noise_multiplier,
            sample_rate=noise.sample_rate,
            steps=round_steps,
            max_grad_norm=noise.max_grad_norm,
            delta=settings.delta,
            accountant=settings.accountant,
        )
    mode = instruction.grad_sample_mode
    training = LocalTraining(
        local_epochs=instruction.local_epochs,
        batch_size=instruction.batch_size,
        learning_rate=instruction.learning_rate,
        optimizer=instruction.optimizer,
        momentum=instruction.momentum,
        class_weighted=instruction.class_weighted,
        proximal_mu=instruction.proximal_mu,
        grad_sample_mode=model_spec(instruction.model_name).grad_sample_mode
        if mode == "auto"
        else mode,
    )
    if settings.seeded_noise:
        parts = [instruction.seed, instruction.server_round, int(data.fingerprint[:8], 16)]
        seed = int(np.random.SeedSequence(parts).generate_state(1)[0])
    else:
        seed = secrets.randbits(63)
    started = time.perf_counter()
    outcome = train_locally(
        model, data.x_train, data.y_train, data.num_classes, training, noise, [], device, seed
    )
    train_metrics = {
        "num-examples": float(data.num_train),
        "train_loss": outcome.mean_loss,
        "steps": float(outcome.steps),
        "train_seconds": time.perf_counter() - started,
    }
    if entry is not None and ledger is not None:
        counted = sum(n for _, _, n in outcome.history)  # Opacus's own count of this round
        if counted > entry["steps"]:  # cannot happen with Poisson loaders; never under-count
            raise RuntimeError(f"took {counted} DP steps but the ledger holds {entry['steps']}")
        start = ledger.epsilon_before_run(instruction.run_id, settings.delta, settings.accountant)
        train_metrics |= {
            "epsilon": entry["epsilon_after"],
            "epsilon_at_run_start": start,
            "max_epsilon": settings.max_epsilon,
            "noise_multiplier": entry["noise_multiplier"],
            "sample_rate": entry["sample_rate"],
            "total_steps": float(sum(n for _, _, n in ledger.history())),
        }
    return RoundResult(outcome.state_dict, train_metrics, evaluation)
