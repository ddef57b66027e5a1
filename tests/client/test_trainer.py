import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from medfed.client.trainer import (
    LocalTraining,
    NoiseSettings,
    WeightedCrossEntropy,
    balanced_class_weights,
    poisson_plan,
    train_locally,
)
from medfed.shared.config import ModelConfig
from medfed.shared.models import build_model

CPU = torch.device("cpu")


def _data(n=64, features=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    return x, y


def _train(mode="ghost", epochs=2, batch=16, history=(), mu=0.0, noise=True, model_name="logistic"):
    x, y = _data()
    model = build_model(ModelConfig(name=model_name), (5,), 2)
    q, _ = poisson_plan(len(y), batch)
    settings = NoiseSettings(1.0, 1.0, q, "rdp") if noise else None
    training = LocalTraining(epochs, batch, 0.1, proximal_mu=mu, grad_sample_mode=mode)
    return model, train_locally(model, x, y, 2, training, settings, list(history), CPU, seed=0)


def test_poisson_plan_matches_opacus_dataloader():
    assert poisson_plan(200, 32) == (1 / 7, 7)
    assert poisson_plan(30, 256) == (1.0, 1)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_accountant_counts_every_optimizer_step(mode):
    _, outcome = _train(mode=mode, epochs=3, batch=16)
    assert outcome.steps == 3 * 4
    assert sum(n for _, _, n in outcome.history) == outcome.steps


def test_history_continues_from_previous_rounds_instead_of_resetting():
    earlier = [(2.0, 0.5, 10)]
    _, outcome = _train(history=earlier)
    assert outcome.history[0] == earlier[0]
    assert sum(n for _, _, n in outcome.history) == 10 + outcome.steps


def test_empty_poisson_batches_are_noise_steps_and_still_counted():
    x, y = _data(n=40)
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    q, steps = poisson_plan(len(y), 1)  # expected batch of 1: many empty batches
    outcome = train_locally(
        model, x, y, 2, LocalTraining(1, 1, 0.1), NoiseSettings(1.0, 1.0, q, "rdp"), [], CPU, 0
    )
    assert outcome.steps == steps == 40
    expected = RDPAccountant()
    for _ in range(40):
        expected.step(noise_multiplier=1.0, sample_rate=q)
    assert outcome.history == expected.history


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_returns_unwrapped_state_dict_and_leaves_no_hooks(mode):
    model, outcome = _train(mode=mode)
    assert set(outcome.state_dict) == set(
        build_model(ModelConfig(name="logistic"), (5,), 2).state_dict()
    )
    assert not any(k.startswith("_module.") for k in outcome.state_dict)
    assert not model._forward_hooks and not any(m._forward_hooks for m in model.modules())


def test_proximal_term_pulls_towards_the_global_model():
    torch.manual_seed(0)
    start = build_model(ModelConfig(name="logistic"), (5,), 2).state_dict()
    torch.manual_seed(0)
    _, free = _train(mu=0.0, noise=False, epochs=5)
    torch.manual_seed(0)
    _, held = _train(mu=5.0, noise=False, epochs=5)
    distance = lambda s: sum(float((s[k] - start[k]).norm()) for k in s)  # noqa: E731
    assert distance(held.state_dict) < distance(free.state_dict)


def test_non_private_training_adds_no_privacy_history():
    _, outcome = _train(noise=False)
    assert outcome.history == [] and outcome.steps == 2 * 4


def test_weighted_cross_entropy_honours_reduction_none():
    logits, labels = torch.randn(4, 2), torch.tensor([0, 1, 1, 1])
    weights = balanced_class_weights(labels.numpy(), 2)
    criterion = WeightedCrossEntropy(weights)
    criterion.reduction = "none"
    per_sample = criterion(logits, labels)
    reference = (
        torch.nn.functional.cross_entropy(logits, labels, reduction="none") * weights[labels]
    )
    assert torch.allclose(per_sample, reference)
    assert weights.tolist() == pytest.approx([2.0, 2 / 3])


def _train_shaped(name, shape, mode, batch, noise_multiplier, max_grad_norm):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, *shape)).astype(np.float32)
    y = (x.reshape(40, -1)[:, 0] > 0).astype(np.int64)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden_size=8), shape, 2)
    q, _ = poisson_plan(len(y), batch)
    training = LocalTraining(1, batch, 0.5, grad_sample_mode=mode)
    noise = NoiseSettings(noise_multiplier, max_grad_norm, q, "rdp")
    return train_locally(model, x, y, 2, training, noise, [], CPU, seed=0)


@pytest.mark.parametrize(
    "name, shape, mode",
    [
        ("cnn", (1, 8, 8), "ew"),
        ("cnn", (1, 8, 8), "ghost"),
        ("lstm", (6, 3), "ghost"),
        ("gru", (6, 3), "ghost"),
    ],
)
def test_other_modes_clip_per_sample_exactly_as_hooks(name, shape, mode):
    # No noise and a small clipping norm: the update is the sum of clipped per-sample gradients
    hooks = _train_shaped(name, shape, "hooks", 8, 0.0, 0.1).state_dict
    other = _train_shaped(name, shape, mode, 8, 0.0, 0.1).state_dict
    for key in hooks:
        torch.testing.assert_close(other[key], hooks[key], atol=1e-6, rtol=1e-5)


def test_ew_takes_empty_poisson_batches_as_counted_noise_steps():
    q, steps = poisson_plan(40, 1)
    outcome = _train_shaped("cnn", (1, 8, 8), "ew", 1, 1.0, 1.0)
    assert outcome.steps == steps == 40
    expected = RDPAccountant()
    for _ in range(40):
        expected.step(noise_multiplier=1.0, sample_rate=q)
    assert outcome.history == expected.history
