"""The FastAPI app: /v1/predict, /v1/explain, /v1/model-card, /v1/schema, /healthz, the page.

Request models come from the model's input schema (serve/schema.py); a rejected request gets
422 naming each bad field (`records.0.chol`) without echoing its value, malformed JSON 400, and
an unexpected error 500 with a code and no traceback. Predictions and explanations read the
request and the DP model only: post-processing, no privacy cost.
"""

import logging
from importlib import resources
from typing import Any

import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from medfed.serve.bodies import document_bodies, json_body, validated
from medfed.serve.bundle import ModelBundle
from medfed.serve.explain import Explainer, NoConvolution
from medfed.serve.guards import Guard
from medfed.serve.schema import items, request_models

LOG = logging.getLogger("medfed.serve")
DEFAULT_MAX_BODY = 4 * 1024 * 1024
ASSETS = {"page.js": "text/javascript", "page.css": "text/css"}


def _field(location: tuple[Any, ...]) -> str:
    parts = [str(part) for part in location]
    return ".".join(parts[1:] if parts[:1] == ["body"] else parts) or "body"


def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    problems = error.errors()
    if any(problem["type"] == "json_invalid" for problem in problems):
        return JSONResponse(
            {"error": "malformed_json", "detail": "the body is not valid JSON"}, status_code=400
        )
    detail = [
        {"field": _field(problem["loc"]), "message": problem["msg"], "type": problem["type"]}
        for problem in problems
    ]
    summary = "; ".join(f"{item['field']}: {item['message']}" for item in detail[:3])
    return JSONResponse({"error": "invalid_input", "message": summary, "detail": detail}, 422)


def internal_error(_: Request, error: Exception) -> JSONResponse:
    LOG.error("internal error: %s", type(error).__name__)  # never the request's values
    return JSONResponse({"error": "internal_error", "detail": "the server failed"}, 500)


class Predictor:
    """Probabilities and decisions for a batch of inputs."""

    def __init__(self, bundle: ModelBundle, threshold: float) -> None:
        self.bundle, self.threshold = bundle, threshold
        self.classes = bundle.schema.classes

    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return torch.softmax(self.bundle.model(inputs.to(self.bundle.device)), 1).cpu()

    def describe(self, probabilities: torch.Tensor) -> list[dict[str, Any]]:
        rows = []
        for row in probabilities.tolist():
            named = {name: round(p, 6) for name, p in zip(self.classes, row, strict=True)}
            if len(row) == 2:
                positive = row[1] >= self.threshold
                rows.append(
                    {"probability": round(row[1], 6), "decision": self.classes[int(positive)],
                     "positive": positive, "probabilities": named}
                )  # fmt: skip
            else:
                best = max(range(len(row)), key=row.__getitem__)
                rows.append({"decision": self.classes[best], "probabilities": named})
        return rows


def create_app(
    bundle: ModelBundle,
    threshold: float = 0.5,
    api_key: str | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
) -> Guard:
    """The ASGI app (FastAPI behind `Guard`) serving `bundle`."""
    schema = bundle.schema
    predict_request, explain_request = request_models(schema)
    predictor = Predictor(bundle, threshold)
    explainer = Explainer(bundle.model, schema, bundle.preprocess.feature_names)
    card = bundle.card()
    described = schema.describe() | {"threshold": threshold, "methods": _methods(explainer)}
    api = FastAPI(
        title=f"medfed model: {bundle.run.name}",
        description="Predictions and explanations of a federated, differentially private "
        "model. Both are post-processing of the released model: no privacy cost.",
        version=card.get("medfed_version", "0"),
    )
    api.add_exception_handler(RequestValidationError, validation_error)
    api.add_exception_handler(Exception, internal_error)

    @api.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "model_sha256": bundle.model_sha256}

    @api.get("/v1/model-card")
    async def model_card() -> dict[str, Any]:
        return card

    @api.get("/v1/schema")
    async def input_schema() -> dict[str, Any]:
        return described

    # The bodies are validated from their bytes and the answers are plain JSON (serve/bodies.py):
    # no second pass over the request, no response model to check a dict against.
    @api.post("/v1/predict", openapi_extra=json_body(predict_request))
    async def predict(request: Request) -> JSONResponse:
        body = await validated(request, predict_request)
        inputs = bundle.preprocess(items(body, schema))
        rows = predictor.describe(predictor.probabilities(inputs))
        return JSONResponse({"predictions": rows, "threshold": threshold})

    @api.post("/v1/explain", openapi_extra=json_body(explain_request))
    async def explain(request: Request) -> JSONResponse:
        body = await validated(request, explain_request)
        inputs = bundle.preprocess(items(body, schema)).to(bundle.device)
        probabilities = predictor.probabilities(inputs)
        try:
            explained = explainer.explain(inputs, probabilities.to(bundle.device), body.method)
        except NoConvolution as error:
            detail = [{"field": "method", "message": str(error), "type": "value_error"}]
            problem = {"error": "invalid_input", "message": str(error), "detail": detail}
            return JSONResponse(problem, 422)
        rows = predictor.describe(probabilities)
        return JSONResponse(
            {"predictions": rows, "explanations": explained, "threshold": threshold}
        )

    page = resources.files("medfed.serve") / "page"

    @api.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        return HTMLResponse((page / "index.html").read_text(encoding="utf-8"))

    @api.get("/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name not in ASSETS:
            return JSONResponse({"error": "not_found", "detail": f"no asset '{name}'"}, 404)
        return Response((page / name).read_text(encoding="utf-8"), media_type=ASSETS[name])

    document_bodies(api, [predict_request, explain_request])
    return Guard(api, max_body_bytes, api_key)


def _methods(explainer: Explainer) -> list[str]:
    kind = explainer.schema.kind
    if kind != "image":
        return ["integrated_gradients"]
    return (["gradcam"] if explainer.gradcam is not None else []) + ["integrated_gradients"]
