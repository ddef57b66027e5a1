import pytest
import torch
from opacus.validators import ModuleValidator

from medfed.shared.config import ModelConfig
from medfed.shared.errors import ConfigError
from medfed.shared.models import MODELS, build_model

SHAPES = {"logistic": (13,), "mlp": (13,), "cnn": (3, 28, 28), "gru": (24, 4), "lstm": (24, 4)}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_passes_opacus_validation(name):
    model = build_model(ModelConfig(name=name), SHAPES[name], num_classes=3)
    assert ModuleValidator.validate(model, strict=False) == []


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_outputs_one_logit_per_class(name):
    model = build_model(ModelConfig(name=name, hidden_size=16), SHAPES[name], num_classes=3)
    assert model(torch.zeros(5, *SHAPES[name])).shape == (5, 3)


def test_cnn_accepts_one_channel_images():
    model = build_model(ModelConfig(name="cnn"), (1, 28, 28), num_classes=2)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 2)


def test_unknown_model_lists_the_choices():
    with pytest.raises(ConfigError, match="unknown model 'resnet'.*cnn"):
        build_model(ModelConfig(name="resnet"), (13,), 2)


def test_model_for_the_wrong_data_rank_is_a_config_error():
    with pytest.raises(ConfigError, match="expects samples of rank 3"):
        build_model(ModelConfig(name="cnn"), (13,), 2)
