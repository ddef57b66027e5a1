"""Local training at a hospital: DP-SGD with Opacus (Poisson sampling), or plain SGD.

Privacy is counted by Opacus's own accountant hook, once per optimizer step actually taken
(empty Poisson batches included: they are noise-only steps of the analysed mechanism).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from opacus import PrivacyEngine
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medfed.shared.privacy.accounting import History, make_accountant


@dataclass(frozen=True)
class LocalTraining:
    """How a hospital trains in one round (the coordinator's instruction, policy-checked)."""

    local_epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str = "sgd"
    momentum: float = 0.0
    class_weighted: bool = False
    proximal_mu: float = 0.0
    grad_sample_mode: str = "hooks"


@dataclass(frozen=True)
class NoiseSettings:
    """DP-SGD parameters for one round; `sample_rate` is the Poisson rate used."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    accountant: str


@dataclass(frozen=True)
class TrainOutcome:
    state_dict: dict[str, torch.Tensor]
    mean_loss: float
    steps: int
    history: History


def poisson_plan(num_samples: int, batch_size: int) -> tuple[float, int]:
    """(sample rate, steps per epoch) exactly as Opacus's DPDataLoader derives them."""
    batches = -(-num_samples // min(batch_size, num_samples))  # ceil
    return 1.0 / batches, batches


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


def balanced_class_weights(labels: np.ndarray, num_classes: int) -> torch.Tensor:
    """n / (k · count) per class (sklearn's "balanced"); absent classes get weight 1."""
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, len(labels) / (num_classes * np.maximum(counts, 1)), 1.0)
    return torch.tensor(weights, dtype=torch.float32)


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
    num_classes: int,
    training: LocalTraining,
    noise: NoiseSettings | None,
    history: History,
    device: torch.device,
    seed: int,
) -> TrainOutcome:
    """Train `model` in place for `training.local_epochs`; DP-SGD when `noise` is given.

    `history` is the accountant history before this round; the outcome's history adds the
    steps actually taken. Returns the unwrapped model's state_dict (no `_module.` prefix).
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.to(device).train()
    dataset = TensorDataset(torch.from_numpy(features), torch.from_numpy(labels))
    weights = (
        balanced_class_weights(labels, num_classes).to(device) if training.class_weighted else None
    )
    criterion = WeightedCrossEntropy(weights)
    optimizer = _optimizer(model, training)
    anchor = [p.detach().clone() for p in model.parameters()]
    loader = DataLoader(
        dataset,
        batch_size=min(training.batch_size, len(dataset)),
        shuffle=True,
        generator=generator,
    )
    engine = None
    if noise is not None:
        engine = PrivacyEngine(accountant=noise.accountant)
        engine.accountant = make_accountant(noise.accountant, history)
        wrapped = engine.make_private(
            module=model,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=noise.noise_multiplier,
            max_grad_norm=noise.max_grad_norm,
            poisson_sampling=True,
            grad_sample_mode=training.grad_sample_mode,
            noise_generator=generator,
        )
        if training.grad_sample_mode == "ghost":
            private_model, optimizer, criterion, loader = wrapped
        else:
            private_model, optimizer, loader = wrapped
        if abs(loader.sample_rate - noise.sample_rate) > 1e-12:
            raise RuntimeError(
                f"Opacus sample rate {loader.sample_rate} != planned {noise.sample_rate}"
            )
    else:
        private_model = model
    losses: list[float] = []
    steps = 0
    for _ in range(training.local_epochs):
        for batch_x, batch_y in loader:
            batch_x, batch_y = batch_x.to(device), batch_y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = backward(private_model, criterion, batch_x, batch_y, training.grad_sample_mode)
            if loss is not None:
                losses.append(loss)
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
    return TrainOutcome(
        state, float(np.mean(losses)) if losses else float("nan"), steps, new_history
    )


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
