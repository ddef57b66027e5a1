import pytest
import torch
from opacus.validators import ModuleValidator

from medfed.shared.config import ModelConfig
from medfed.shared.errors import ConfigError
from medfed.shared.models import MODELS, build_model

SEQUENCE = (24, 9)  # vitals grid: 4 values, 4 observed indicators, the step mask
SHAPES = {
    "logistic": (13,),
    "mlp": (13,),
    "cnn": (3, 28, 28),
    "gru": SEQUENCE,
    "lstm": SEQUENCE,
    "transformer": SEQUENCE,
}
SEQUENCE_MODELS = ["gru", "lstm", "transformer"]


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


def _gate_rows(hidden, order):
    return torch.cat([torch.arange(g * hidden, (g + 1) * hidden) for g in order])


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_recurrent_layers_compute_what_torch_lstm_and_gru_compute_and_their_gradients(name):
    torch.manual_seed(0)
    hidden, layers = 6, 2
    reference = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[name](
        3, hidden, num_layers=layers, batch_first=True
    )
    model = build_model(ModelConfig(name=name, hidden_size=hidden, num_layers=layers), (7, 3), 2)
    rows = _gate_rows(hidden, [0, 1, 3, 2] if name == "lstm" else [0, 1, 2])  # i, f, o, g
    with torch.no_grad():
        for layer in range(layers):
            ih, hh = model.encoder.ih[layer], model.encoder.hh[layer]
            ih.weight.copy_(getattr(reference, f"weight_ih_l{layer}")[rows])
            hh.weight.copy_(getattr(reference, f"weight_hh_l{layer}")[rows])
            bias_ih = getattr(reference, f"bias_ih_l{layer}")
            bias_hh = getattr(reference, f"bias_hh_l{layer}")
            if hh.bias is None:
                ih.bias.copy_((bias_ih + bias_hh)[rows])
            else:
                ih.bias.copy_(bias_ih[rows])
                hh.bias.copy_(bias_hh[rows])
    sequences, weights = torch.randn(5, 7, 3), torch.randn(5, 7, hidden)
    (model.encoder(sequences)[0] * weights).sum().backward()
    (reference(sequences)[0] * weights).sum().backward()
    torch.testing.assert_close(model.encoder(sequences)[0], reference(sequences)[0])
    for layer in range(layers):  # the per-layer hidden-to-hidden call gives exact gradients
        ih, hh = model.encoder.ih[layer], model.encoder.hh[layer]
        torch.testing.assert_close(
            ih.weight.grad, getattr(reference, f"weight_ih_l{layer}").grad[rows]
        )
        torch.testing.assert_close(
            hh.weight.grad, getattr(reference, f"weight_hh_l{layer}").grad[rows]
        )


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_opacus_per_sample_gradients_of_recurrent_models_match_one_sample_at_a_time(name):
    from opacus import GradSampleModule

    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden_size=5, num_layers=2), (6, 3), 2)
    sequences, labels = torch.randn(4, 6, 3), torch.tensor([0, 1, 1, 0])
    sequences[..., -1] = (torch.arange(6) >= torch.tensor([[0], [2], [5], [1]])).float()
    wrapped = GradSampleModule(model, loss_reduction="sum")
    torch.nn.functional.cross_entropy(wrapped(sequences), labels, reduction="sum").backward()
    per_sample = {n: p.grad_sample.clone() for n, p in model.named_parameters()}
    wrapped._close()
    for i in range(len(labels)):
        model.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(sequences[i : i + 1]), labels[i : i + 1])
        loss.backward()
        for n, p in model.named_parameters():
            torch.testing.assert_close(per_sample[n][i], p.grad, atol=1e-6, rtol=1e-5)


def padded_batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random grids whose first `pad[i]` steps are padding (step mask 0), and that mask."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(6, *SEQUENCE, generator=generator)
    pad = torch.tensor([0, 3, 10, 23, 1, 12])
    real = torch.arange(SEQUENCE[0])[None, :] >= pad[:, None]
    x[..., -1] = real.float()
    return x, real


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_padded_steps_change_neither_output_nor_gradients(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden_size=8, num_layers=2), SEQUENCE, 2)
    x, real = padded_batch()
    noisy = x.clone()
    noisy[..., :-1] = torch.where(real[..., None], x[..., :-1], 1e3 * torch.randn_like(x[..., :-1]))
    outputs, grads = [], []
    for batch in (x, noisy):
        model.zero_grad()
        out = model(batch)
        out.sum().backward()
        outputs.append(out.detach())
        grads.append([p.grad.clone() for p in model.parameters()])
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    for first, second in zip(*grads, strict=True):
        torch.testing.assert_close(first, second, rtol=0, atol=0)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_the_mask_is_used_real_steps_do_change_the_output(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden_size=8), SEQUENCE, 2)
    x, real = padded_batch()
    changed = x.clone()
    changed[:, -2, :-1] += 1.0  # a real step of every sequence
    assert not torch.allclose(model(x), model(changed))
    unmasked = x.clone()
    unmasked[..., -1] = 1.0  # the same values read as real steps
    assert not torch.allclose(model(x)[1:], model(unmasked)[1:])  # row 0 has no padding


def test_transformer_of_a_sequence_with_no_real_step_is_finite():
    model = build_model(ModelConfig(name="transformer"), SEQUENCE, 2)
    assert torch.isfinite(model(torch.zeros(2, *SEQUENCE))).all()


def test_transformer_hidden_size_must_split_into_heads():
    with pytest.raises(ConfigError, match="model.hidden_size = 30.*multiple of 4"):
        build_model(ModelConfig(name="transformer", hidden_size=30), SEQUENCE, 2)


def test_opacus_per_sample_gradients_of_the_transformer_match_one_sample_at_a_time():
    from opacus import GradSampleModule

    torch.manual_seed(0)
    model = build_model(ModelConfig(name="transformer", hidden_size=8, num_layers=2), SEQUENCE, 2)
    x, _ = padded_batch()
    labels = torch.tensor([0, 1, 1, 0, 1, 0])
    wrapped = GradSampleModule(model, loss_reduction="sum")
    torch.nn.functional.cross_entropy(wrapped(x), labels, reduction="sum").backward()
    per_sample = {n: p.grad_sample.clone() for n, p in model.named_parameters()}
    wrapped._close()
    for i in range(len(labels)):
        model.zero_grad()
        torch.nn.functional.cross_entropy(model(x[i : i + 1]), labels[i : i + 1]).backward()
        for n, p in model.named_parameters():
            torch.testing.assert_close(per_sample[n][i], p.grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["gru", "lstm"])
def test_recurrent_state_does_not_move_on_padding_so_its_length_does_not_matter(name):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name=name, hidden_size=8, num_layers=2), SEQUENCE, 2)
    x, _ = padded_batch()
    shorter = torch.cat([x[:1, 5:], torch.zeros(1, 5, SEQUENCE[1])], 1)  # 19 real, 5 padded
    shorter = shorter.roll(5, dims=1)
    longer = torch.cat([torch.zeros(1, 5, SEQUENCE[1]), x[:1, 5:]], 1)
    torch.testing.assert_close(model(shorter), model(longer))
    padded_first = longer.clone()
    padded_first[0, :5, -1] = 1.0  # the same zeros read as real steps: a different state
    assert not torch.allclose(model(padded_first), model(longer))
