"""One hospital's round: evaluate the received model, plan noise within budget, train.

Plain functions over plain data, so tests call them without Flower.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from medfed.client.trainer import LocalTraining, NoiseSettings, poisson_plan, predict, train_locally
from medfed.shared.config.models import ModelConfig
from medfed.shared.data.base import HospitalData
from medfed.shared.errors import PrivacyBudgetExceeded
from medfed.shared.instruction import RoundInstruction
from medfed.shared.metrics import classification_metrics
from medfed.shared.models import build_model, model_spec
from medfed.shared.privacy.accounting import History, calibrate_noise, epsilon_of


@dataclass(frozen=True)
class HospitalSettings:
    """What the hospital decides for itself, whatever the coordinator asks."""

    name: str
    max_epsilon: float
    delta: float = 1e-5
    accountant: str = "rdp"
    privacy_enabled: bool = True
    max_noise_multiplier: float = 20.0
    device: str = "auto"

    def torch_device(self) -> torch.device:
        wants_cuda = self.device == "cuda" or (self.device == "auto" and torch.cuda.is_available())
        return torch.device("cuda" if wants_cuda else "cpu")


@dataclass
class PrivacyState:
    """Accountant history of this hospital's dataset and this run's calibrated noise."""

    history: History = field(default_factory=list)
    run_id: int = -1
    run_start_epsilon: float = 0.0
    noise_multiplier: float = 0.0

    def state_dict(self) -> dict:
        return {
            "sigma": [s for s, _, _ in self.history],
            "sample_rate": [q for _, q, _ in self.history],
            "steps": [n for _, _, n in self.history],
            "run_id": self.run_id,
            "run_start_epsilon": self.run_start_epsilon,
            "noise_multiplier": self.noise_multiplier,
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> PrivacyState:
        history = list(zip(state["sigma"], state["sample_rate"], state["steps"], strict=True))
        return cls(
            history,
            int(state["run_id"]),
            float(state["run_start_epsilon"]),
            float(state["noise_multiplier"]),
        )


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
    settings: HospitalSettings,
    privacy: PrivacyState,
    instruction: RoundInstruction,
    run_id: int,
    num_train: int,
) -> NoiseSettings:
    """Noise for this round so that every planned remaining step of the run fits the budget.

    The run may bring ε to min(ε at run start + target_epsilon, max_epsilon). σ is calibrated
    once per run and re-checked each round against the remaining plan; it is recalibrated
    only when the plan no longer fits.

    Raises:
        PrivacyBudgetExceeded: no σ up to `max_noise_multiplier` keeps the plan in budget.
    """
    sample_rate, steps_per_epoch = poisson_plan(num_train, instruction.batch_size)
    round_steps = steps_per_epoch * instruction.local_epochs
    remaining_steps = round_steps * max(1, instruction.rounds - instruction.server_round + 1)
    spent = epsilon_of(privacy.history, settings.delta, settings.accountant)
    if privacy.run_id != run_id:
        privacy.run_id, privacy.run_start_epsilon, privacy.noise_multiplier = run_id, spent, 0.0
    target = min(privacy.run_start_epsilon + instruction.target_epsilon, settings.max_epsilon)

    def projected(sigma: float) -> float:
        return epsilon_of(
            [*privacy.history, (sigma, sample_rate, remaining_steps)],
            settings.delta,
            settings.accountant,
        )

    sigma = privacy.noise_multiplier
    if sigma <= 0 or projected(sigma) > target:
        found = calibrate_noise(
            privacy.history,
            target,
            settings.delta,
            sample_rate,
            remaining_steps,
            settings.accountant,
            settings.max_noise_multiplier,
        )
        if found is None:
            raise PrivacyBudgetExceeded(
                f"hospital '{settings.name}': {remaining_steps} more steps would exceed the "
                f"privacy budget (spent ε={spent:.4f}, max_epsilon={settings.max_epsilon}, "
                f"δ={settings.delta}) even at the largest allowed noise",
                spent_epsilon=spent,
                max_epsilon=settings.max_epsilon,
            )
        sigma = privacy.noise_multiplier = found
    return NoiseSettings(sigma, instruction.max_grad_norm, sample_rate, settings.accountant)


def train_round(
    data: HospitalData,
    settings: HospitalSettings,
    instruction: RoundInstruction,
    global_state: dict[str, torch.Tensor],
    privacy: PrivacyState,
    run_id: int,
) -> RoundResult:
    """Evaluate the received model, then train on it; `privacy` is updated in place.

    Raises:
        PrivacyBudgetExceeded: the round would push ε over `settings.max_epsilon`.
        ConfigError: the instructed model does not fit this hospital's data.
    """
    device = settings.torch_device()
    model = model_for(instruction, data, global_state)
    evaluation = evaluate(model, data, device)
    noise = (
        plan_noise(settings, privacy, instruction, run_id, data.num_train)
        if settings.privacy_enabled
        else None
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
    seed = int(
        np.random.SeedSequence(
            [instruction.seed, instruction.server_round, int(data.fingerprint[:8], 16)]
        ).generate_state(1)[0]
    )
    outcome = train_locally(
        model,
        data.x_train,
        data.y_train,
        data.num_classes,
        training,
        noise,
        privacy.history,
        device,
        seed,
    )
    privacy.history = outcome.history
    train_metrics = {
        "num-examples": float(data.num_train),
        "train_loss": outcome.mean_loss,
        "steps": float(outcome.steps),
    }
    if noise is not None:
        train_metrics |= {
            "epsilon": epsilon_of(privacy.history, settings.delta, settings.accountant),
            "noise_multiplier": noise.noise_multiplier,
            "sample_rate": noise.sample_rate,
            "total_steps": float(sum(n for _, _, n in privacy.history)),
        }
    return RoundResult(outcome.state_dict, train_metrics, evaluation)
