"""The request model of one patient's vital signs, built from the model's `InputSchema`.

A patient is a chart: `time` (strictly increasing, in the training data's time unit) and per
channel one value per time, `null` where that channel was not measured; a channel never
measured may be left out. Readings outside a channel's range are refused (422), as the
heart-disease fields are outside their bounds: the model only ever saw such values clipped to
the range's edge, so it cannot tell them apart from the edge. The range is the run's own
(`CHANNEL_RANGES` + `data.channel_ranges`), the one training scales with.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from medfed.serve.inputs import InputSchema

MAX_TIMES = 1000  # measurement times per patient
TIME = Annotated[float, Field(allow_inf_nan=False)]


def _time_field(schema: InputSchema) -> Any:
    description = (
        f"measurement times in {schema.time_unit}, strictly increasing, 1 to {MAX_TIMES}; "
        f"the model reads the last {schema.sequence_length} steps of "
        f"{schema.sequence_step:g} before the newest time (the prediction time)"
    )
    return Annotated[list[TIME], Field(min_length=1, max_length=MAX_TIMES, description=description)]


def _channel_field(name: str, low: float, high: float) -> Any:
    reading = Annotated[float, Field(ge=low, le=high, allow_inf_nan=False)]
    description = (
        f"{name}: one value in [{low:g}, {high:g}] per time, null where not measured "
        "(leave the channel out if it never was)"
    )
    values = Field(max_length=MAX_TIMES, description=description)
    return Annotated[list[reading | None] | None, values]


def _known_channels(names: tuple[str, ...]) -> Any:
    def check(cls: type[BaseModel], data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [key for key in data if key != "time" and key not in names]
            if unknown:
                raise ValueError(
                    f"unknown channel '{unknown[0]}': this model reads {', '.join(names)} "
                    "(one list per channel, next to 'time')"
                )
        return data

    return model_validator(mode="before")(check)


def _same_length(cls: type[BaseModel], values: list | None, info: Any) -> list | None:
    times = info.data.get("time")
    if values is not None and times is not None and len(values) != len(times):
        raise ValueError(
            f"{len(values)} values for {len(times)} times: send one per time, null where "
            "the channel was not measured"
        )
    return values


def _increasing(cls: type[BaseModel], times: list[float]) -> list[float]:
    for index in range(1, len(times)):
        if not times[index] > times[index - 1]:
            raise ValueError(
                f"times must be strictly increasing: time {index} ({times[index]:g}) follows "
                f"{times[index - 1]:g} (send one entry per measurement time, oldest first)"
            )
    return times


def _every_time_read(names: tuple[str, ...]) -> Any:
    def check(patient: BaseModel) -> BaseModel:
        columns = [getattr(patient, name) for name in names]
        for index in range(len(patient.time)):  # type: ignore[attr-defined]
            if all(column is None or column[index] is None for column in columns):
                raise ValueError(
                    f"time {index} has no reading: drop that time or give at least one channel"
                )
        return patient

    return model_validator(mode="after")(check)


def sequence_model(schema: InputSchema) -> type[BaseModel]:
    """The pydantic model of one patient (see the module docstring)."""
    names = schema.channel_names
    fields: dict[str, Any] = {"time": (_time_field(schema), ...)}
    for name in names:
        low, high = schema.channel_ranges[name]
        fields[name] = (_channel_field(name, low, high), None)
    validators = {
        "known_channels": _known_channels(names),
        "increasing": field_validator("time")(_increasing),
        "same_length": field_validator(*names)(_same_length),
        "every_time_read": _every_time_read(names),
    }
    model = create_model(
        "Sequence", __config__=ConfigDict(extra="forbid"), __validators__=validators, **fields
    )
    model.__doc__ = (
        f"One patient's vital signs as a chart: 'time' and per channel ({', '.join(names)}) "
        "one value per time, null where not measured; a reading outside the channel's range "
        "is refused (training clipped it to the edge). " + schema.grid
    )
    return model
