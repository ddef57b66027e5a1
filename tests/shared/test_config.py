import pytest

from medfed.shared.config import load_config, to_toml
from medfed.shared.config.loader import parse_value
from medfed.shared.errors import ConfigError


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('name = "t"\nrounds = 3\n[privacy]\ntarget_epsilon = 2.0\n')
    return path


def test_loads_file_and_fills_defaults(config_file):
    run = load_config(config_file, environ={})
    assert run.rounds == 3 and run.privacy.target_epsilon == 2.0 and run.privacy.delta == 1e-5


def test_set_overrides_win_over_environment_which_wins_over_file(config_file):
    environ = {"MEDFED_ROUNDS": "7", "MEDFED_PRIVACY__DELTA": "1e-6"}
    run = load_config(config_file, ["rounds=9", "model.name=mlp"], environ=environ)
    assert run.rounds == 9 and run.privacy.delta == 1e-6 and run.model.name == "mlp"


def test_unknown_key_names_file_and_key(config_file):
    with pytest.raises(ConfigError, match=r"run\.toml: unknown key 'privacy\.epsilon'"):
        load_config(config_file, ["privacy.epsilon=1"], environ={})


def test_wrong_type_names_file_and_key(config_file):
    with pytest.raises(ConfigError, match=r"run\.toml: rounds: .*got 'many'"):
        load_config(config_file, ["rounds=many"], environ={})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.toml", environ={})


def test_bad_toml_is_a_config_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("rounds = = 3")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(path, environ={})


def test_partition_other_than_natural_needs_hospital_count(config_file):
    with pytest.raises(ConfigError, match="num_hospitals"):
        load_config(config_file, ["data.partition=iid"], environ={})


def test_set_values_parse_like_toml():
    assert parse_value("3") == 3 and parse_value("1e-5") == 1e-5 and parse_value("true") is True
    assert parse_value("fedprox") == "fedprox"


def test_resolved_config_round_trips_through_toml(config_file, tmp_path):
    run = load_config(config_file, ["data.path=/tmp/x.csv"], environ={})
    written = tmp_path / "resolved.toml"
    written.write_text(to_toml(run))
    assert load_config(written, environ={}) == run


@pytest.mark.parametrize("name", ["heart_disease", "imaging_cnn", "vitals_rnn"])
def test_shipped_configs_load(name):
    from pathlib import Path

    load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.toml", environ={})


@pytest.mark.parametrize("mode", ["ew", "functorch"])
def test_grad_sample_modes_that_crash_on_empty_batches_are_rejected(config_file, mode):
    with pytest.raises(ConfigError, match="training.grad_sample_mode"):
        load_config(config_file, [f"training.grad_sample_mode={mode}"], environ={})


@pytest.mark.parametrize("address", ["ray://head:10001", "auto", "head", "head:port", "h:0"])
def test_ray_address_must_be_the_heads_host_and_port(config_file, address):
    with pytest.raises(ConfigError, match=r"run\.toml: simulation\.ray_address: .*host:port"):
        load_config(config_file, [f"simulation.ray_address='{address}'"], environ={})


def test_ray_address_round_trips_through_toml(config_file, tmp_path):
    run = load_config(config_file, ["simulation.ray_address='10.0.0.5:6379'"], environ={})
    resolved = tmp_path / "resolved.toml"
    resolved.write_text(to_toml(run))
    assert load_config(resolved, environ={}).simulation.ray_address == "10.0.0.5:6379"
