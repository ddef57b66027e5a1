"""Local training at a hospital: DP-SGD (Opacus, see `dp_sgd`) or plain SGD, and prediction.

Every random choice comes from the hospital's `SecureRandom`. Nothing here is computed from the
labels or the size of the data as a whole: such values come in, already released.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset

from medfed.client.dp_sgd import make_private
from medfed.client.randomness import SecureRandom
from medfed.shared.privacy.accounting import History


@dataclass(frozen=True)
class LocalTraining:
    """How a hospital trains in one round (the coordinator's instruction, policy-checked).

    `class_weights`: per-class loss weights from public or DP-released values, or None.
    """

    local_epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "sgd"
    momentum: float = 0.0
    class_weights: tuple[float, ...] | None = None
    proximal_mu: float = 0.0
    grad_sample_mode: str = "hooks"


@dataclass(frozen=True)
class NoiseSettings:
    """DP-SGD parameters for one round: `sample_rate` is the Poisson rate (1/steps per epoch,
    from `poisson_plan`), `expected_batch_size` the public divisor of the noised gradient sum."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    accountant: str
    expected_batch_size: float


@dataclass(frozen=True)
class TrainOutcome:
    state_dict: dict[str, torch.Tensor]
    steps: int
    history: History


def poisson_plan(num_samples: float, batch_size: int) -> tuple[float, int]:
    """(sample rate, steps per epoch) for a released, possibly non-integer, training-set size."""
    batches = max(1, math.ceil(num_samples / batch_size))
    return 1.0 / batches, batches


class ShuffledBatches(Sampler[list[int]]):
    """Minibatches of a fresh random permutation each epoch (non-private training)."""

    def __init__(self, num_records: int, batch_size: int, randomness: SecureRandom):
        self.num_records, self.batch_size, self.randomness = num_records, batch_size, randomness

    def __len__(self) -> int:
        return math.ceil(self.num_records / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = np.argsort(self.randomness.uniform(self.num_records), kind="stable")
        for start in range(0, self.num_records, self.batch_size):
            yield order[start : start + self.batch_size].tolist()


class WeightedCrossEntropy(nn.Module):
    """Cross-entropy with optional per-class weights, averaged over samples (not weights),
    honouring `reduction` so Opacus's ghost clipping can ask for per-sample losses."""

    def __init__(self, class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        self.class_weights = class_weights
        self.reduction = "mean"

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        per_sample = F.cross_entropy(logits, labels, reduction="none")
        if self.class_weights is not None:
            per_sample = per_sample * self.class_weights[labels]
        if self.reduction == "none":
            return per_sample
        return per_sample.sum() if self.reduction == "sum" else per_sample.mean()


def _optimizer(model: nn.Module, training: LocalTraining) -> torch.optim.Optimizer:
    if training.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=training.learning_rate)
    return torch.optim.SGD(
        model.parameters(), lr=training.learning_rate, momentum=training.momentum
    )


def _add_proximal_term(model: nn.Module, anchor: list[torch.Tensor], mu: float) -> None:
    """FedProx: add mu·(w − w_global) to each gradient. Data-independent, so applied after
    the private gradient is formed (Opacus's per-sample hooks would not see it in the loss)."""
    for param, start in zip(model.parameters(), anchor, strict=True):
        if param.grad is not None:
            param.grad.add_(param.detach() - start, alpha=mu)


def backward(
    model: nn.Module,
    criterion: nn.Module,
    batch_x: torch.Tensor,
    batch_y: torch.Tensor,
    grad_sample_mode: str,
) -> float | None:
    """Forward and backward one batch; the loss, or None for an empty batch.

    `ew` cannot run a batch of 0 samples, so an empty Poisson batch gets empty per-sample
    gradients instead: Opacus's step then adds noise only, as it does in the other modes.
    """
    if not len(batch_y) and grad_sample_mode == "ew":
        for param in model.parameters():
            if param.requires_grad:
                param.grad_sample = param.new_zeros((0, *param.shape))
        return None
    loss = criterion(model(batch_x), batch_y)
    loss.backward()
    return float(loss.item()) if len(batch_y) else None


def train_locally(
    model: nn.Module,
    features: np.ndarray,
    labels: np.ndarray,
    training: LocalTraining,
    noise: NoiseSettings | None,
    history: History,
    device: torch.device,
    randomness: SecureRandom,
) -> TrainOutcome:
    """Train `model` in place for `training.local_epochs`; DP-SGD when `noise` is given.

    Every random choice (Poisson batches, noise, shuffling) is drawn from `randomness`.
    `history` is the accountant history before this round; the outcome's history adds the
    steps actually taken. Returns the unwrapped model's state_dict (no `_module.` prefix).

    Raises:
        ValueError: `noise.sample_rate` is not 1/k for a whole number of steps k, or
            `noise.expected_batch_size` is not positive.
    """
    model.to(device).train()
    dataset = TensorDataset(torch.from_numpy(features), torch.from_numpy(labels))
    weights = training.class_weights
    criterion = WeightedCrossEntropy(
        None if weights is None else torch.tensor(weights, dtype=torch.float32, device=device)
    )
    optimizer = _optimizer(model, training)
    anchor = [p.detach().clone() for p in model.parameters()]
    engine = None
    if noise is None:
        batches = ShuffledBatches(len(dataset), training.batch_size, randomness)
        # A private generator for the worker seed torch draws per epoch (unused: no workers), so
        # training leaves torch's global generator as it found it.
        loader = DataLoader(dataset, batch_sampler=batches, generator=torch.Generator())
        private_model = model
    else:
        private_model, optimizer, criterion, loader, engine = make_private(
            model,
            optimizer,
            criterion,
            dataset,
            noise,
            history,
            randomness,
            grad_sample_mode=training.grad_sample_mode,
        )
    steps = 0
    for _ in range(training.local_epochs):
        for batch_x, batch_y in loader:
            batch_x, batch_y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad(set_to_none=True)
            backward(private_model, criterion, batch_x, batch_y, training.grad_sample_mode)
            if training.proximal_mu > 0:
                if noise is not None:
                    if optimizer.pre_step():  # clip + noise → p.grad, counted by the accountant
                        _add_proximal_term(model, anchor, training.proximal_mu)
                        optimizer.original_optimizer.step()
                else:
                    _add_proximal_term(model, anchor, training.proximal_mu)
                    optimizer.step()
            else:
                optimizer.step()
            steps += 1
    new_history = list(engine.accountant.history) if engine is not None else list(history)
    if engine is not None:
        private_model._close()  # remove Opacus hooks from the hospital's model
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainOutcome(state, steps, new_history)


@torch.no_grad()
def predict(
    model: nn.Module, features: np.ndarray, labels: np.ndarray, device: torch.device
) -> tuple[np.ndarray, float]:
    """Class probabilities N×K and the mean cross-entropy of `model` on the given data."""
    model.to(device).eval()
    x = torch.from_numpy(features).to(device)
    y = torch.from_numpy(labels).to(device)
    logits = (
        torch.cat([model(chunk) for chunk in torch.split(x, 1024)]) if len(x) else torch.empty(0)
    )
    loss = float(F.cross_entropy(logits, y)) if len(y) else float("nan")
    return torch.softmax(logits, dim=1).cpu().numpy(), loss
