"""hospital.toml: who the hospital is, where the coordinator is, its data, budget and policy.

Relative paths are relative to the file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from medfed.client.policy import HospitalPolicy
from medfed.shared.config.loader import first_problem, read_toml
from medfed.shared.config.models import (
    CountNoiseMultiplier,
    DataConfig,
    MaxEvaluationEpsilon,
    MaxEvaluations,
)
from medfed.shared.errors import ConfigError
from medfed.shared.secagg.config import SecureAggregationConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ConnectionConfig(_Strict):
    superlink: str = Field(description="coordinator address host:port")
    root_certificates: Path | None = Field(default=None, description="the federation's ca.crt")
    private_key: Path | None = Field(default=None, description="this hospital's node key")
    insecure: bool = False
    clientappio_port: int = Field(default=9094, ge=1, le=65535)
    max_wait_s: float | None = Field(
        default=None, gt=0, description="give up when the coordinator is unreachable this long"
    )


# The simulate config's `[data]` keys a hospital's own data uses: DataConfig's definition of
# each (type, default, description), so one name means one thing in both files.
LOADER_KEYS = (
    "feature_bounds",
    "channel_ranges",
    "image_format",
    "labels_path",
    "id_column",
    "id_attribute",
    "file_column",
    "label_column",
    "classes",
    "window_center",
    "window_width",
    "image_size",
    "image_channels",
    "resize",
    "sequence_length",
    "sequence_step",
    "test_fraction",
)


class _HospitalData(_Strict):
    dataset: Literal["heart_disease", "breast_cancer", "sequences", "imaging"] = "heart_disease"
    path: Path = Field(
        description="this hospital's CSV (heart_disease, breast_cancer, sequences), or for "
        "imaging its DICOM or PNG/JPEG folder (or MedMNIST .npz), as data.image_format says"
    )

    @model_validator(mode="after")
    def _images_say_their_format(self) -> _HospitalData:
        if self.dataset == "imaging" and "image_format" not in self.model_fields_set:
            raise ValueError(
                "dataset = 'imaging' needs data.image_format: 'dicom' or 'png' (a folder with "
                "data.labels_path) or 'medmnist' (one .npz file); see docs/imaging.md"
            )
        return self

    def loader_config(self) -> DataConfig:
        """The shared loaders' settings for this hospital's data (validated there too).

        Raises:
            ValidationError: a combination DataConfig refuses (e.g. a DICOM folder without
                window_center); load_hospital_config reports it as a ConfigError.
        """
        return DataConfig.model_validate(self.model_dump(include={"dataset", "path", *LOADER_KEYS}))


HospitalDataConfig = create_model(
    "HospitalDataConfig",
    __base__=_HospitalData,
    __doc__="hospital.toml's [data]: the dataset, its file or folder, and the loaders' keys.",
    **{
        key: (DataConfig.model_fields[key].annotation, DataConfig.model_fields[key])
        for key in LOADER_KEYS
    },
)


class HospitalPrivacyConfig(_Strict):
    enabled: bool = True
    max_epsilon: float = Field(gt=0, description="lifetime budget for this dataset")
    delta: float = Field(default=1e-5, gt=0, lt=1)
    accountant: Literal["rdp", "prv"] = "rdp"
    ledger_dir: Path = Path("ledger")
    head_dir: Path = Field(
        default=Path("ledger-head"),
        description="the ledger's signed head file; keep it out of the ledger's backups",
    )
    count_noise_multiplier: CountNoiseMultiplier = 10.0
    max_evaluation_epsilon: MaxEvaluationEpsilon = 3.0
    max_evaluations: MaxEvaluations = 30


class HospitalSecureAggregationConfig(SecureAggregationConfig):
    """The federation's `[secure_aggregation]` settings plus this hospital's own identity."""

    identity_key: Path | None = Field(
        default=None, description="this hospital's identity key (medfed certs hospital-identity)"
    )
    peers_file: Path | None = Field(
        default=None, description="the federation's pinned identity keys (peers.toml)"
    )

    def shared(self) -> SecureAggregationConfig:
        """The settings both sides must agree on (without this hospital's paths)."""
        return SecureAggregationConfig.model_validate(
            self.model_dump(exclude={"identity_key", "peers_file"})
        )


class HospitalConfig(_Strict):
    name: str = Field(min_length=1)
    state_dir: Path = Path("state")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    threads: int = Field(default=1, ge=1)
    connection: ConnectionConfig
    data: HospitalDataConfig
    privacy: HospitalPrivacyConfig
    policy: HospitalPolicy = HospitalPolicy()
    secure_aggregation: HospitalSecureAggregationConfig = HospitalSecureAggregationConfig()


def _absolute(path: Path | None, base: Path) -> Path | None:
    return None if path is None else (base / path.expanduser()).resolve()


def load_hospital_config(path: Path) -> HospitalConfig:
    """Read hospital.toml; relative paths are relative to its folder.

    Raises:
        ConfigError: missing file, bad TOML, unknown key or bad value (named).
    """
    tree = read_toml(path, "hospital config not found (see configs/hospital.example.toml)")
    try:
        config = HospitalConfig.model_validate(tree)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {first_problem(exc)}") from None
    base = path.resolve().parent
    data = config.data.model_copy(
        update={
            "path": _absolute(config.data.path, base),
            "labels_path": _absolute(config.data.labels_path, base),
        }
    )
    try:
        data.loader_config()
    except ValidationError as exc:
        raise ConfigError(f"{path}: {first_problem(exc, ('data',))}") from None
    connection = config.connection.model_copy(
        update={
            "root_certificates": _absolute(config.connection.root_certificates, base),
            "private_key": _absolute(config.connection.private_key, base),
        }
    )
    secure = config.secure_aggregation
    resolved = config.model_copy(
        update={
            "secure_aggregation": secure.model_copy(
                update={
                    "identity_key": _absolute(secure.identity_key, base),
                    "peers_file": _absolute(secure.peers_file, base),
                }
            ),
            "state_dir": _absolute(config.state_dir, base),
            "connection": connection,
            "data": data,
            "privacy": config.privacy.model_copy(
                update={
                    "ledger_dir": _absolute(config.privacy.ledger_dir, base),
                    "head_dir": _absolute(config.privacy.head_dir, base),
                }
            ),
        }
    )
    _state_outside_data(resolved, path)
    return resolved


def _state_outside_data(config: HospitalConfig, source: Path) -> None:
    """The hospital's own files are kept out of its image folder: the cache and ledger would
    change the very folder the data is read (and fingerprinted) from."""
    data = config.data
    for key, value in (
        ("state_dir", config.state_dir),
        ("privacy.ledger_dir", config.privacy.ledger_dir),
        ("privacy.head_dir", config.privacy.head_dir),
    ):
        if value.is_relative_to(data.path):
            raise ConfigError(
                f"{source}: {key}: {value} is inside data.path {data.path}; keep the "
                "hospital's state outside its image folder"
            )
