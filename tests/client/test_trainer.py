import secrets

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from scipy import stats

from medfed.client.dp_sgd import (
    SecureDPOptimizer,
    SecureDPOptimizerFastGradientClipping,
    SecurePrivacyEngine,
)
from medfed.client.randomness import SecureRandom
from medfed.client.trainer import (
    LocalTraining,
    NoiseSettings,
    WeightedCrossEntropy,
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


def _noise(q, sigma=1.0, clip=1.0, expected_batch_size=None, n=64):
    return NoiseSettings(
        sigma, clip, q, "rdp", n * q if expected_batch_size is None else expected_batch_size
    )


def _train(
    mode="ghost",
    epochs=2,
    batch=16,
    history=(),
    mu=0.0,
    noise=True,
    randomness=None,
    n=64,
):
    x, y = _data(n=n)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    q, _ = poisson_plan(len(y), batch)
    settings = _noise(q, n=n) if noise else None
    training = LocalTraining(epochs, batch, 0.1, proximal_mu=mu, grad_sample_mode=mode)
    randomness = randomness or SecureRandom.from_seed("test_trainer", 0)
    return model, train_locally(model, x, y, training, settings, list(history), CPU, randomness)


def _differs(a, b):
    return any(not torch.equal(a[k], b[k]) for k in a)


def test_deployed_round_cannot_be_reproduced_from_torch_generator(monkeypatch):
    # An attacker who knows every seed torch or `secrets` could have used (and that torch keeps
    # only 32 bits of a seed) reruns the round: the noise and batches are not theirs to repeat.
    monkeypatch.setattr(secrets, "randbits", lambda bits: (123 << 40) | 4567)
    torch.manual_seed(secrets.randbits(63))
    _, released = _train(mode="hooks", randomness=SecureRandom.fresh())
    for guess in (secrets.randbits(63), 4567, 0):
        torch.manual_seed(guess)
        _, rerun = _train(mode="hooks", randomness=SecureRandom.from_seed(guess))
        assert _differs(released.state_dict, rerun.state_dict)


@pytest.mark.parametrize("mode", ["ghost", "hooks"])
def test_same_key_reproduces_a_round_and_another_key_does_not(mode):
    key = bytes(range(32))
    torch.manual_seed(1)
    _, first = _train(mode=mode, randomness=SecureRandom(key))
    torch.manual_seed(2)  # torch's generator plays no part
    _, again = _train(mode=mode, randomness=SecureRandom(key))
    _, other = _train(mode=mode, randomness=SecureRandom(key[:31] + b"\xff"))
    assert not _differs(first.state_dict, again.state_dict)
    assert _differs(first.state_dict, other.state_dict)


def test_training_draws_nothing_from_torchs_global_generator():
    x, y = _data()
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    before = torch.get_rng_state()
    train_locally(
        model, x, y, LocalTraining(2, 8, 0.1), _noise(1 / 8), [], CPU, SecureRandom.fresh()
    )
    assert torch.equal(torch.get_rng_state(), before)


def _spy_on_optimizer(monkeypatch):
    made = []
    prepare = SecurePrivacyEngine._prepare_optimizer

    def spy(self, **kwargs):
        made.append(prepare(self, **kwargs))
        return made[-1]

    monkeypatch.setattr(SecurePrivacyEngine, "_prepare_optimizer", spy)
    return made


@pytest.mark.parametrize(
    "mode, secure_class",
    [("hooks", SecureDPOptimizer), ("ghost", SecureDPOptimizerFastGradientClipping)],
)
def test_planned_rate_and_public_batch_size_reach_opacus(monkeypatch, mode, secure_class):
    made = _spy_on_optimizer(monkeypatch)
    x, y = _data(n=30)
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    q, steps = poisson_plan(33.6, 8)  # the released size, not the true 30
    noise = NoiseSettings(1.3, 1.0, q, "rdp", expected_batch_size=8.4)
    training = LocalTraining(3, 8, 0.1, grad_sample_mode=mode)
    outcome = train_locally(model, x, y, training, noise, [], CPU, SecureRandom.fresh())
    assert type(made[0]) is secure_class and made[0].expected_batch_size == 8.4
    assert outcome.steps == 3 * steps == 15
    expected = RDPAccountant()
    for _ in range(15):
        expected.step(noise_multiplier=1.3, sample_rate=0.2)
    assert outcome.history == expected.history == [(1.3, 0.2, 15)]


def test_sample_rate_that_is_not_one_over_steps_is_refused():
    x, y = _data()
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    with pytest.raises(ValueError, match="poisson_plan"):
        train_locally(
            model, x, y, LocalTraining(1, 8, 0.1), _noise(0.3), [], CPU, SecureRandom.fresh()
        )


def test_expected_batch_size_must_be_positive():
    x, y = _data()
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    noise = _noise(1 / 8, expected_batch_size=-0.5)
    with pytest.raises(ValueError, match="expected_batch_size"):
        train_locally(model, x, y, LocalTraining(1, 8, 0.1), noise, [], CPU, SecureRandom.fresh())


def test_ghost_noise_honours_the_adjusted_multiplier_of_adaptive_clipping():
    param = torch.nn.Parameter(torch.zeros(20_000))
    optimizer = SecureDPOptimizerFastGradientClipping(
        torch.optim.SGD([param], lr=1.0),
        noise_multiplier=1.0,
        max_grad_norm=0.5,
        expected_batch_size=1,
        randomness=SecureRandom.from_seed("adjusted"),
    )
    optimizer._adjusted_noise_multiplier = 3.0  # set by Opacus's adaptive clipping
    param.summed_grad = torch.zeros_like(param)
    optimizer.add_noise()
    assert float(param.grad.std()) == pytest.approx(1.5, rel=5 / np.sqrt(2 * 20_000))


@pytest.mark.parametrize("mode", ["hooks", "ghost", "ew"])
def test_noise_of_a_step_on_no_records_has_std_sigma_times_clip(mode):
    # An empty training set: every Poisson batch is empty, so each step adds noise only.
    sigma, clip, expected_batch, lr, features = 1.5, 0.4, 2.0, 1.0, 3000
    model = torch.nn.Linear(features, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = np.zeros((0, features), np.float32), np.zeros(0, np.int64)
    q, steps = poisson_plan(0.0, 8)
    noise = NoiseSettings(sigma, clip, q, "rdp", expected_batch)
    training = LocalTraining(1, 8, lr, grad_sample_mode=mode)
    outcome = train_locally(model, x, y, training, noise, [], CPU, SecureRandom.from_seed(mode))
    assert outcome.steps == steps == 1 and outcome.history == [(sigma, 1.0, 1)]
    moved = torch.cat([(start[k] - outcome.state_dict[k]).flatten() for k in start])
    added = moved.double().numpy() * expected_batch / lr  # the noise Opacus added to the sum
    assert stats.kstest(added, stats.norm(scale=sigma * clip).cdf).pvalue > 1e-3
    assert np.std(added) == pytest.approx(sigma * clip, rel=5 / np.sqrt(2 * len(added)))


def test_poisson_plan_takes_the_released_size():
    assert poisson_plan(200, 32) == (1 / 7, 7)
    assert poisson_plan(192.4, 32) == (1 / 7, 7)  # a DP-released size need not be whole
    assert poisson_plan(30, 256) == (1.0, 1)
    assert poisson_plan(-2.5, 16) == (1.0, 1)  # noise may push a tiny count below zero


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


@pytest.mark.parametrize("mode", ["hooks", "ghost"])
def test_empty_poisson_batches_are_noise_steps_and_still_counted(mode):
    x, y = _data(n=40)
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    q, steps = poisson_plan(len(y), 1)  # expected batch of 1: many empty batches
    training = LocalTraining(1, 1, 0.1, grad_sample_mode=mode)
    outcome = train_locally(model, x, y, training, _noise(q, n=40), [], CPU, SecureRandom.fresh())
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
    _, free = _train(mu=0.0, noise=False, epochs=5)
    _, held = _train(mu=5.0, noise=False, epochs=5)
    distance = lambda s: sum(float((s[k] - start[k]).norm()) for k in s)  # noqa: E731
    assert distance(held.state_dict) < distance(free.state_dict)


def test_non_private_training_adds_no_privacy_history():
    _, outcome = _train(noise=False)
    assert outcome.history == [] and outcome.steps == 2 * 4


def test_non_private_batches_are_a_permutation_drawn_from_the_key():
    _, first = _train(noise=False, randomness=SecureRandom.from_seed("order", 1))
    _, again = _train(noise=False, randomness=SecureRandom.from_seed("order", 1))
    _, other = _train(noise=False, randomness=SecureRandom.from_seed("order", 2))
    assert not _differs(first.state_dict, again.state_dict)
    assert _differs(first.state_dict, other.state_dict)


def test_class_weights_are_the_callers_values():
    # Zero weight on every class: no gradient at all, so the model must not move.
    x, y = _data()
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="logistic"), (5,), 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    training = LocalTraining(2, 16, 0.5, class_weights=(0.0, 0.0))
    outcome = train_locally(model, x, y, training, None, [], CPU, SecureRandom.fresh())
    assert not _differs(start, outcome.state_dict)


def test_weighted_cross_entropy_honours_reduction_none():
    logits, labels = torch.randn(4, 2), torch.tensor([0, 1, 1, 1])
    weights = torch.tensor([2.0, 2 / 3])
    criterion = WeightedCrossEntropy(weights)
    criterion.reduction = "none"
    per_sample = criterion(logits, labels)
    reference = (
        torch.nn.functional.cross_entropy(logits, labels, reduction="none") * weights[labels]
    )
    assert torch.allclose(per_sample, reference)


def _train_shaped(name, shape, mode, batch, noise_multiplier, max_grad_norm):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, *shape)).astype(np.float32)
    y = (x.reshape(40, -1)[:, 0] > 0).astype(np.int64)
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden_size=8), shape, 2)
    q, _ = poisson_plan(len(y), batch)
    training = LocalTraining(1, batch, 0.5, grad_sample_mode=mode)
    noise = NoiseSettings(noise_multiplier, max_grad_norm, q, "rdp", 40 * q)
    randomness = SecureRandom.from_seed("shaped", name)
    return train_locally(model, x, y, training, noise, [], CPU, randomness)


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


def test_the_transformer_takes_counted_dp_steps_with_hooks():
    from medfed.shared.models import MODELS

    assert MODELS["transformer"].grad_sample_mode == "hooks"
    torch.manual_seed(0)
    before = build_model(ModelConfig(name="transformer", hidden_size=8), (6, 3), 2).state_dict()
    q, steps = poisson_plan(40, 8)
    outcome = _train_shaped("transformer", (6, 3), "hooks", 8, 1.0, 1.0)
    assert outcome.steps == steps and outcome.history == [(1.0, q, steps)]
    assert all(torch.isfinite(v).all() for v in outcome.state_dict.values())
    assert any(not torch.equal(outcome.state_dict[k], before[k]) for k in before)
