"""Request bodies validated straight from their bytes, and their place in the OpenAPI document.

pydantic-core parses and validates the JSON in one pass (`model_validate_json`): for a record
that is a few microseconds, against FastAPI's content-type parsing, `json.loads` and a second
walk over the parsed dict. Errors become FastAPI's `RequestValidationError`, so serve/app.py
answers them as before (422 naming the field, 400 for malformed JSON); the models stay in
`/docs` and `/openapi.json` under their own names.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

Model = TypeVar("Model", bound=BaseModel)
SCHEMAS = "#/components/schemas/"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


async def validated(request: Request, model: type[Model]) -> Model:
    """The body as `model`.

    Raises:
        RequestValidationError: not sent as JSON (no or another Content-Type), not valid
            JSON (`json_invalid`), or not valid for `model`; never with the input's values.
    """
    if not _is_json(request.headers.get("content-type", "")):
        problem = {"loc": ("body",), "type": "content_type",
                   "msg": "send the body as JSON, with Content-Type: application/json"}  # fmt: skip
        raise RequestValidationError([problem])
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as error:
        problems = error.errors(include_url=False, include_input=False, include_context=False)
        raise RequestValidationError([p | {"loc": ("body", *p["loc"])} for p in problems]) from None


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` of a route whose JSON body is `model` (see `document_bodies`)."""
    schema = {"$ref": SCHEMAS + model.__name__}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def document_bodies(api: FastAPI, models: list[type[BaseModel]]) -> None:
    """Add `models` (and the models they nest) to `api`'s OpenAPI components."""
    build = api.openapi

    def openapi() -> dict[str, Any]:
        document = build()  # FastAPI's, cached by FastAPI
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            if model.__name__ not in schemas:
                schema = model.model_json_schema(ref_template=SCHEMAS + "{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
        return document

    api.openapi = openapi  # type: ignore[method-assign]
