"""What a trained model takes, from the run's configuration alone (no data is read).

One `InputSchema` drives the request validation (serve/schema.py), the preprocessing
(serve/preprocess.py), the clinician page and the model card's input section, so the four
cannot disagree. Bounds are the public constants training clips to (heart disease:
`FEATURE_BOUNDS` + `data.feature_bounds`; sequences: `CHANNEL_RANGES` + `data.channel_ranges`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from medfed.shared.config.models import RunConfig
from medfed.shared.data.heart_disease import FEATURE_BOUNDS
from medfed.shared.data.sequences import CHANNEL_RANGES
from medfed.shared.errors import ConfigError
from medfed.shared.models.registry import model_spec

Kind = Literal["tabular", "image", "sequence"]


@dataclass(frozen=True)
class FieldSpec:
    """One input of a tabular record."""

    name: str
    type: Literal["number", "boolean", "category"]
    description: str
    unit: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class InputSchema:
    kind: Kind
    dataset: str
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    fields: tuple[FieldSpec, ...] = ()  # tabular
    image_size: int = 0  # image: square side in pixels
    channels: int = 0  # image: 1 grey, 3 RGB
    window: str = ""  # image: intensity window
    dicom_window: tuple[float, float] | None = None  # image: training's fixed (center, width)
    channel_names: tuple[str, ...] = ()  # sequence: request keys, in the grid's order
    channel_ranges: dict[str, tuple[float, float]] = field(default_factory=dict)
    channel_units: dict[str, str] = field(default_factory=dict)
    sequence_length: int = 0  # sequence: grid steps (the last one holds the newest reading)
    sequence_step: float = 0.0  # sequence: time units per grid step
    time_unit: str = ""  # sequence: the unit of `time` (training data's)
    grid: str = ""  # sequence: how measurements become the model's grid

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict[str, Any]:
        """JSON form for the model card and the page."""
        keep = {
            "tabular": ("fields",),
            "image": ("image_size", "channels", "window"),
            "sequence": (
                "channel_names",
                "channel_ranges",
                "channel_units",
                "sequence_length",
                "sequence_step",
                "time_unit",
                "grid",
            ),  # fmt: skip
        }[self.kind]
        full = asdict(self)
        described = {key: full[key] for key in ("kind", "dataset", "input_shape", "classes")}
        return described | {key: full[key] for key in keep}


HEART_FIELDS = (
    ("age", "number", "age", "years"),
    ("sex", "category", "sex", ""),
    ("trestbps", "number", "resting systolic blood pressure", "mmHg"),
    ("chol", "number", "serum total cholesterol", "mg/dl"),
    ("fbs", "boolean", "fasting blood sugar > 120 mg/dl", ""),
    ("thalch", "number", "maximum heart rate in the exercise test", "bpm"),
    ("exang", "boolean", "exercise-induced angina", ""),
    ("oldpeak", "number", "exercise-induced ST depression", "mm"),
    ("cp", "category", "chest-pain type", ""),
    ("restecg", "category", "resting ECG", ""),
)
HEART_CHOICES = {
    "sex": ("female", "male"),
    "cp": ("typical angina", "atypical angina", "non-anginal", "asymptomatic"),
    "restecg": ("normal", "st-t abnormality", "lv hypertrophy"),
}


def heart_fields(run: RunConfig) -> tuple[FieldSpec, ...]:
    bounds = {**FEATURE_BOUNDS, **(run.data.feature_bounds or {})}
    specs = []
    for name, kind, description, unit in HEART_FIELDS:
        low, high = bounds.get(name, (None, None))
        choices = HEART_CHOICES.get(name, ())
        specs.append(FieldSpec(name, kind, description, unit, low, high, choices))  # type: ignore[arg-type]
    return tuple(specs)


Ranges = dict[str, tuple[float, float]]
# Units of CHANNEL_RANGES (shared/data/sequences.py); a configured channel is in the units of
# its data.channel_ranges entry.
CHANNEL_UNITS = {"heart_rate": "bpm", "resp_rate": "breaths/min", "spo2": "%",
                 "systolic_bp": "mmHg"}  # fmt: skip
GRID = (
    "The readings become a grid of {length} steps of {step:g} {unit} ending at the newest reading "
    "(the prediction time), as training built it (shared/data/sequences.py, vitals_to_grid). "
    "Per step and channel: the latest reading in the step, else the last earlier one carried "
    "forward (0 before the channel's first reading), clipped to the channel's range and mapped "
    "onto [-1, 1]; an 'observed' indicator (1 when the channel was read in that step); per step "
    "a 'real step' mask (0 on the padding before the first reading). Features: 2 × {channels} "
    "+ 1 = {features} per step ({names} values, then their indicators, then the mask)."
)


def sequence_channels(run: RunConfig) -> tuple[list[str], Ranges]:
    """(channels in the grid's order, their ranges) as training built the grid.

    Training's grid holds every configured channel, sorted, for CSV and synthetic data alike
    (`sequences.vitals_frame_to_grids`): `CHANNEL_RANGES` extended or overridden by
    `data.channel_ranges`.
    """
    ranges = {**CHANNEL_RANGES, **(run.data.channel_ranges or {})}
    channels = sorted(ranges)
    return channels, {name: tuple(ranges[name]) for name in channels}  # type: ignore[misc]


def input_schema(run: RunConfig, num_classes: int) -> InputSchema:
    """The schema of the run's model. `num_classes` comes from the trained weights.

    Raises:
        ConfigError: a dataset or model serving does not know.
    """
    data, rank = run.data, model_spec(run.model.name).input_rank
    if data.dataset == "heart_disease" and rank == 1:
        fields = heart_fields(run)
        return InputSchema(
            "tabular", data.dataset, (13,), ("no heart disease", "heart disease"), fields
        )
    if data.dataset == "imaging":
        shape = (data.image_channels, data.image_size, data.image_size)
        classes = (
            ("no lesion", "lesion")
            if data.path is None and num_classes == 2
            else tuple(f"class {i}" for i in range(num_classes))
        )
        window = "8-bit intensities ÷ 255, clipped to [0, 1] (shared/data/imaging.py)"
        dicom_window = None
        if data.image_format == "dicom":  # trained on a DICOM folder: its fixed window
            dicom_window = (float(data.window_center), float(data.window_width))
            window = (
                f"DICOM: modality rescale, then the fixed window center {dicom_window[0]:g}, "
                f"width {dicom_window[1]:g} (shared/data/dicom.py, as in training)"
            )
        if data.classes and len(data.classes) == num_classes:
            classes = tuple(data.classes)
        return InputSchema(
            "image", data.dataset, shape, classes, image_size=data.image_size,
            channels=data.image_channels, window=window, dicom_window=dicom_window,
        )  # fmt: skip
    if data.dataset == "sequences" and rank == 2:
        names, ranges = sequence_channels(run)
        features = 2 * len(names) + 1
        unit = "hours" if data.path is None else "time units of the training CSV"
        grid = GRID.format(
            length=data.sequence_length, step=data.sequence_step, unit=unit, channels=len(names),
            features=features, names=", ".join(names),
        )  # fmt: skip
        return InputSchema(
            "sequence", data.dataset, (data.sequence_length, features),
            ("stable", "deteriorating"), channel_names=tuple(names), channel_ranges=ranges,
            channel_units={n: CHANNEL_UNITS.get(n, "units of data.channel_ranges") for n in names},
            sequence_length=data.sequence_length, sequence_step=data.sequence_step, time_unit=unit,
            grid=grid,
        )  # fmt: skip
    raise ConfigError(
        f"data.dataset = '{data.dataset}' with model.name = '{run.model.name}': serving knows "
        "heart_disease (tabular models), imaging (image models) and sequences (gru, lstm, "
        "transformer)"
    )
