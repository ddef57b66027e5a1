"""Pydantic request models built from the model's `InputSchema`.

Each kind takes one input or a batch: `record`/`records` (tabular), `image`/`images`,
`sequence`/`sequences` (serve/vitals.py). Unknown or missing fields, values outside the public
bounds, NaN or infinity, wrong lengths and undecodable images fail validation; FastAPI answers
422 and serve/app.py names the field (`records.0.chol`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, create_model, model_validator

from medfed.serve.images import decode_base64, dicom_pixels, png_pixels
from medfed.serve.inputs import FieldSpec, InputSchema
from medfed.serve.vitals import sequence_model

MAX_BATCH = 256
ITEM_KEYS = {"tabular": ("record", "records"), "image": ("image", "images"),
             "sequence": ("sequence", "sequences")}  # fmt: skip
METHODS = {
    "tabular": ("integrated_gradients",),
    "sequence": ("integrated_gradients",),
    "image": ("gradcam", "integrated_gradients"),
}
STRICT = ConfigDict(extra="forbid")


def _number(low: float | None, high: float | None, description: str) -> Any:
    return Annotated[float, Field(ge=low, le=high, allow_inf_nan=False, description=description)]


def _field_type(spec: FieldSpec) -> Any:
    if spec.type == "number":
        unit = f" ({spec.unit})" if spec.unit else ""
        return _number(spec.low, spec.high, f"{spec.description}{unit}")
    if spec.type == "boolean":
        return Annotated[bool, Field(strict=True, description=spec.description)]
    return Annotated[Literal[spec.choices], Field(description=spec.description)]


def _record_model(schema: InputSchema) -> type[BaseModel]:
    fields = {spec.name: (_field_type(spec), ...) for spec in schema.fields}
    return create_model("Record", __config__=STRICT, **fields)


def _image_model(schema: InputSchema) -> type[BaseModel]:
    size, channels = schema.image_size, schema.channels

    class Image(BaseModel):
        """One image: `png` or `dicom`, base64-encoded."""

        model_config = STRICT
        png: str | None = Field(None, description=f"base64 8-bit PNG, {size}×{size}")
        dicom: str | None = Field(None, description=f"base64 DICOM file, {size}×{size}")
        _pixels: np.ndarray = PrivateAttr()

        @model_validator(mode="after")
        def _decode(self) -> Image:
            given = [key for key in ("png", "dicom") if getattr(self, key) is not None]
            if len(given) != 1:
                raise ValueError("send exactly one of 'png' or 'dicom' (base64 file bytes)")
            data = decode_base64(getattr(self, given[0]))
            if given[0] == "png":
                self._pixels = png_pixels(data, size, channels)
            else:
                self._pixels = dicom_pixels(data, size, channels, schema.dicom_window)
            return self

        @property
        def pixels(self) -> np.ndarray:
            return self._pixels

    return Image


def item_model(schema: InputSchema) -> type[BaseModel]:
    build = {"tabular": _record_model, "image": _image_model, "sequence": sequence_model}
    return build[schema.kind](schema)


def request_models(schema: InputSchema) -> tuple[type[BaseModel], type[BaseModel]]:
    """(PredictRequest, ExplainRequest) for `schema`; `items(request)` lists their inputs."""
    item = item_model(schema)
    one, many = ITEM_KEYS[schema.kind]

    def exactly_one(request: BaseModel) -> BaseModel:
        if (getattr(request, one) is None) == (getattr(request, many) is None):
            raise ValueError(
                f"send exactly one of '{one}' (one input) or '{many}' (a list of 1 to {MAX_BATCH})"
            )
        return request

    fields: dict[str, Any] = {
        one: (item | None, None),
        many: (list[item] | None, Field(None, min_length=1, max_length=MAX_BATCH)),
    }
    validators = {"exactly_one": model_validator(mode="after")(exactly_one)}
    predict = create_model("PredictRequest", __config__=STRICT, __validators__=validators, **fields)
    methods = METHODS[schema.kind]
    explain = create_model(
        "ExplainRequest",
        __config__=STRICT,
        __validators__=validators,
        method=(Literal[methods], methods[0]),
        **fields,
    )
    return predict, explain


def items(request: BaseModel, schema: InputSchema) -> list[BaseModel]:
    one, many = ITEM_KEYS[schema.kind]
    batch = getattr(request, many)
    return list(batch) if batch is not None else [getattr(request, one)]
