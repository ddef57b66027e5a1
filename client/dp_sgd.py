"""Opacus DP-SGD with medfed's cryptographic randomness: Poisson batches and Gaussian noise from
SecureRandom, averaging by the public expected batch size. Opacus computes per-sample gradients,
clips and counts; the two random parts come from the hospital's `SecureRandom` (torch's generator
keeps 32 bits of its seed, so a search over seeds would reproduce them), and the noised gradient
sum is divided by the released expected batch size (Opacus's own, int(n·q), reveals n). Privacy
is counted by Opacus's accountant hook once per optimizer step actually taken, empty Poisson
batches included: they are noise-only steps of the analysed mechanism.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
import torch
from opacus import PrivacyEngine
from opacus.accountants import IAccountant
from opacus.data_loader import wrap_collate_with_empty
from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping, get_optimizer_class
from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed
from torch import nn
from torch.utils.data import DataLoader, Sampler, TensorDataset, default_collate

from medfed.client.randomness import SecureRandom
from medfed.shared.privacy.accounting import History, make_accountant

if TYPE_CHECKING:
    from medfed.client.trainer import NoiseSettings


class PoissonBatches(Sampler[list[int]]):
    """`steps` batches per epoch, each holding every record independently with probability
    `sample_rate` (Poisson sampling), membership drawn from `randomness`."""

    def __init__(self, num_records: int, sample_rate: float, steps: int, randomness: SecureRandom):
        self.num_records, self.sample_rate, self.steps = num_records, sample_rate, steps
        self.randomness = randomness

    def __len__(self) -> int:
        return self.steps

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.steps):
            chosen = self.randomness.bernoulli(self.num_records, self.sample_rate)
            yield np.flatnonzero(chosen).tolist()


class _SecureNoise:
    """Mixin for Opacus's DP optimizers: the Gaussian noise of a step from `randomness`."""

    def __init__(self, *args, randomness: SecureRandom, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.randomness = randomness

    def clip_and_accumulate(self) -> None:
        """Opacus's clipping, after zeroing every per-sample gradient that is not finite.

        A coordinator can send a model whose output overflows for some records only: their
        gradients are NaN or inf, which clipping (C / (norm + 1e-6)) does not bound, so one
        record could turn the whole update into NaN. Zeroing such a record's whole gradient
        depends on that record alone, so the clipped sum still moves by at most C.
        """
        samples = [p.grad_sample for p in self.params if p.grad_sample is not None]
        if samples and len(samples[0]):
            finite = torch.stack(
                [g.reshape(len(g), -1).isfinite().all(dim=1) for g in samples]
            ).all(dim=0)
            if not bool(finite.all()):
                for p in self.params:
                    if p.grad_sample is not None:
                        mask = finite.view(-1, *([1] * (p.grad_sample.dim() - 1)))
                        p.grad_sample = torch.where(mask, p.grad_sample, 0.0)
        super().clip_and_accumulate()

    def add_noise(self) -> None:
        # As DPOptimizerFastGradientClipping.add_noise: an adjusted multiplier, when set, is
        # for the noise only (the accountant keeps noise_multiplier).
        multiplier = getattr(self, "_adjusted_noise_multiplier", self.noise_multiplier)
        for p in self.params:
            _check_processed_flag(p.summed_grad)
            summed = p.summed_grad
            noise = self.randomness.gaussian(tuple(summed.shape), multiplier * self.max_grad_norm)
            noise = torch.from_numpy(noise).to(dtype=summed.dtype, device=summed.device)
            p.grad = (summed + noise).view_as(p)
            _mark_as_processed(p.summed_grad)


class SecureDPOptimizer(_SecureNoise, DPOptimizer):
    """Opacus's DPOptimizer (hooks, ew, functorch modes) with noise from SecureRandom."""


class SecureDPOptimizerFastGradientClipping(_SecureNoise, DPOptimizerFastGradientClipping):
    """Opacus's ghost-clipping optimizer with noise from SecureRandom."""


_SECURE_OPTIMIZERS: dict[type[DPOptimizer], type[DPOptimizer]] = {
    DPOptimizer: SecureDPOptimizer,
    DPOptimizerFastGradientClipping: SecureDPOptimizerFastGradientClipping,
}


class SecurePrivacyEngine(PrivacyEngine):
    """Opacus's PrivacyEngine whose optimizer draws its noise from `randomness` and averages
    the noised sum over the public `expected_batch_size` (Opacus's own, int(n·q), reveals n)."""

    def __init__(
        self, *, accountant: IAccountant, randomness: SecureRandom, expected_batch_size: float
    ) -> None:
        with warnings.catch_warnings():  # it warns that torch's RNG is not secure: we do not use it
            warnings.filterwarnings("ignore", message="Secure RNG turned off")
            super().__init__(accountant=accountant.mechanism())
        self.accountant = accountant
        self.randomness = randomness
        self.expected_batch_size = expected_batch_size

    def _prepare_optimizer(
        self,
        *,
        optimizer: torch.optim.Optimizer,
        noise_multiplier: float,
        max_grad_norm: float | list[float],
        expected_batch_size: int,
        loss_reduction: str = "mean",
        distributed: bool = False,
        clipping: str = "flat",
        noise_generator=None,
        grad_sample_mode: str = "hooks",
        **kwargs,
    ) -> DPOptimizer:
        if isinstance(optimizer, DPOptimizer):
            optimizer = optimizer.original_optimizer
        chosen = get_optimizer_class(
            clipping=clipping, distributed=distributed, grad_sample_mode=grad_sample_mode
        )
        if chosen not in _SECURE_OPTIMIZERS or noise_generator is not None:
            raise ValueError(f"SecurePrivacyEngine: no secure-noise version of {chosen.__name__}")
        return _SECURE_OPTIMIZERS[chosen](
            optimizer=optimizer,
            noise_multiplier=noise_multiplier,
            max_grad_norm=max_grad_norm,
            expected_batch_size=self.expected_batch_size,
            loss_reduction=loss_reduction,
            randomness=self.randomness,
            **kwargs,
        )


def make_private(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    criterion: nn.Module,
    dataset: TensorDataset,
    noise: NoiseSettings,
    history: History,
    randomness: SecureRandom,
    grad_sample_mode: str,
) -> tuple[nn.Module, DPOptimizer, nn.Module, DataLoader, SecurePrivacyEngine]:
    """Opacus's private model, optimizer, criterion over our Poisson loader, and the engine.

    `history` is the accountant history before this round; the engine's accountant extends it.

    Raises:
        ValueError: `noise.sample_rate` is not 1/k for a whole number of steps k, or
            `noise.expected_batch_size` is not positive.
    """
    steps_per_epoch = round(1.0 / noise.sample_rate)
    if not math.isclose(steps_per_epoch * noise.sample_rate, 1.0, rel_tol=1e-9):
        raise ValueError(f"sample_rate {noise.sample_rate} is not 1/steps (use poisson_plan)")
    if not noise.expected_batch_size > 0:  # a noisy released size can be ≤ 0: clamp it first
        raise ValueError(f"expected_batch_size must be > 0, got {noise.expected_batch_size}")
    features, labels = dataset.tensors
    collate = wrap_collate_with_empty(
        collate_fn=default_collate,
        sample_empty_shapes=[(0, *features.shape[1:]), (0, *labels.shape[1:])],
        dtypes=[features.dtype, labels.dtype],
    )
    batches = PoissonBatches(len(dataset), noise.sample_rate, steps_per_epoch, randomness)
    # A private generator for the worker seed torch draws per epoch (unused: no workers), so
    # training leaves torch's global generator as it found it.
    loader = DataLoader(
        dataset, batch_sampler=batches, collate_fn=collate, generator=torch.Generator()
    )
    engine = SecurePrivacyEngine(
        accountant=make_accountant(noise.accountant, history),
        randomness=randomness,
        expected_batch_size=noise.expected_batch_size,
    )
    wrapped = engine.make_private(
        module=model,
        optimizer=optimizer,
        criterion=criterion,
        data_loader=loader,
        noise_multiplier=noise.noise_multiplier,
        max_grad_norm=noise.max_grad_norm,
        poisson_sampling=False,  # the loader above samples; Opacus must not re-wrap it
        grad_sample_mode=grad_sample_mode,
    )
    if grad_sample_mode == "ghost":
        private_model, dp_optimizer, criterion, loader = wrapped
    else:
        private_model, dp_optimizer, loader = wrapped
    private_model.forbid_grad_accumulation()  # what poisson_sampling=True would have set
    # Opacus derived q = 1/len(loader); the hook records the planned q itself, bit for bit.
    dp_optimizer.attach_step_hook(engine.accountant.get_optimizer_hook_fn(noise.sample_rate))
    return private_model, dp_optimizer, criterion, loader, engine
