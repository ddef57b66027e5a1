"""The DP imaging recipe of configs/imaging_cnn.toml: valid for Opacus, and it learns under DP."""

from pathlib import Path

import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants.utils import get_noise_multiplier
from opacus.validators import ModuleValidator
from sklearn.metrics import roc_auc_score

from medfed.client.randomness import SecureRandom
from medfed.client.trainer import LocalTraining, NoiseSettings, predict, train_locally
from medfed.shared.config import ModelConfig, load_config
from medfed.shared.data.imaging import synthetic_lesions
from medfed.shared.models import build_model

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "imaging_cnn.toml"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def recipe():
    return load_config(CONFIG, environ={})


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("layers", [None, 2])
def test_recipe_model_passes_opacus_strict_validation(recipe, channels, layers):
    config = recipe.model if layers is None else ModelConfig(name="cnn", num_layers=layers)
    model = build_model(config, (channels, 28, 28), num_classes=2)
    assert ModuleValidator.validate(model, strict=True) == []
    assert model(torch.zeros(3, channels, 28, 28)).shape == (3, 2)


def test_opacus_per_sample_gradients_of_the_cnn_match_one_image_at_a_time():
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn", hidden_size=3, num_layers=2), (1, 12, 12), 2)
    images, labels = torch.rand(4, 1, 12, 12), torch.tensor([0, 1, 1, 0])
    wrapped = GradSampleModule(model, loss_reduction="sum")
    torch.nn.functional.cross_entropy(wrapped(images), labels, reduction="sum").backward()
    per_sample = {n: p.grad_sample.clone() for n, p in model.named_parameters()}
    wrapped._close()
    for i in range(len(labels)):
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(images[i : i + 1]), labels[i : i + 1])
        loss.backward()
        for n, p in model.named_parameters():
            torch.testing.assert_close(per_sample[n][i], p.grad, atol=1e-6, rtol=1e-5)


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # on a loaded 2-core machine two threads take 40× longer
    yield
    torch.set_num_threads(threads)


def test_recipe_learns_lesions_under_dp_at_epsilon_3(recipe, one_thread):
    # One data holder, the config's model and step count, σ from Opacus's own calibration.
    images, labels = synthetic_lesions(600, 28, 1, seed=7)
    torch.manual_seed(0)
    model = build_model(recipe.model, (1, 28, 28), 2)
    steps = recipe.rounds * recipe.training.local_epochs
    sigma = get_noise_multiplier(
        target_epsilon=3.0, target_delta=1e-5, sample_rate=1.0, steps=steps, accountant="rdp"
    )
    training = LocalTraining(
        local_epochs=steps,
        batch_size=recipe.training.batch_size,
        learning_rate=recipe.training.learning_rate,
        optimizer=recipe.training.optimizer,
        momentum=recipe.training.momentum,
        grad_sample_mode="ew",
    )
    noise = NoiseSettings(sigma, recipe.privacy.max_grad_norm, 1.0, "rdp", 400.0)
    randomness = SecureRandom.from_seed("imaging recipe")
    outcome = train_locally(model, images[:400], labels[:400], training, noise, [], CPU, randomness)
    assert outcome.steps == steps
    probabilities, _ = predict(model, images[400:], labels[400:], CPU)
    assert roc_auc_score(labels[400:], probabilities[:, 1]) >= 0.9
