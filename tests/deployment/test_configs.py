from pathlib import Path

from medfed.client.hospital_config import load_hospital_config
from medfed.server.deployment.config import load_federation_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_example_federation_config_loads():
    federation = load_federation_config(CONFIGS / "federation.example.toml")
    assert [h.name for h in federation.deployment.hospitals] == ["Cleveland", "Hungary", "VA"]
    assert federation.deployment.ca_certificate == (CONFIGS / "certs" / "ca.crt").resolve()
    assert federation.run.secure_aggregation.enabled is True


def test_example_hospital_config_loads_with_its_policy():
    hospital = load_hospital_config(CONFIGS / "hospital.example.toml")
    assert hospital.policy.allowed_models == ("logistic",)
    assert hospital.data.path == (CONFIGS / "Cleveland.csv").resolve()
    assert hospital.secure_aggregation.enabled is True
    identity = CONFIGS / "identity" / "Cleveland" / "Cleveland.identity.key"
    assert hospital.secure_aggregation.identity_key == identity.resolve()
    assert hospital.secure_aggregation.peers_file == (CONFIGS / "peers.toml").resolve()
    assert "identity_key" not in hospital.secure_aggregation.shared().model_dump()


def test_unknown_deployment_key_names_the_key(tmp_path):
    import pytest

    from medfed.shared.errors import ConfigError

    path = tmp_path / "federation.toml"
    path.write_text("[deployment]\nadress = '127.0.0.1:1'\n")
    with pytest.raises(ConfigError, match="deployment.adress"):
        load_federation_config(path)


def test_a_model_that_cannot_take_the_declared_input_shape_is_named_before_starting(tmp_path):
    from medfed.server.deployment.config import check_model

    path = tmp_path / "federation.toml"
    path.write_text('[model]\nname = "cnn"\n[deployment]\ninput_shape = [13]\n')
    [line] = check_model(load_federation_config(path), path)
    assert "deployment.input_shape = [13]" in line and "model.name = 'cnn'" in line
    assert "[image_channels, image_size, image_size]" in line
    path.write_text('[model]\nname = "cnn"\n[deployment]\ninput_shape = [1, 28, 28]\n')
    assert check_model(load_federation_config(path), path) == []
