"""Exact test-split metrics of a simulation's final model, computed by the researcher.

In a simulation one person holds every partition, so the final model can be scored exactly
on each test split. Hospitals never send these: what a coordinator receives (and
metrics.jsonl records) are the hospitals' DP evaluation releases. The file says so.
"""

from __future__ import annotations

import json

import torch

from medfed.client.trainer import predict
from medfed.server.run_dir import RunDirectory
from medfed.shared.config.models import RunConfig
from medfed.shared.data import HospitalData, load_federation
from medfed.shared.metrics import classification_metrics
from medfed.shared.models import build_model

EXACT_FILE = "exact_evaluation.json"
NOTE = (
    "simulation only: exact metrics of model.pt on each hospital's test split, computed by "
    "whoever ran the simulation (it holds every partition); no hospital sent these"
)


def exact_metrics(
    run: RunConfig, state: dict[str, torch.Tensor], hospitals: list[HospitalData]
) -> dict[str, dict[str, float]]:
    """Per hospital: accuracy, AUROC, sensitivity, specificity, loss, num_examples (and the
    number of positives of a binary task)."""
    shape, classes = hospitals[0].input_shape, hospitals[0].num_classes
    model = build_model(run.model, shape, classes)
    model.load_state_dict(state)
    scores = {}
    for hospital in hospitals:
        probabilities, loss = predict(model, hospital.x_test, hospital.y_test, torch.device("cpu"))
        metrics = classification_metrics(hospital.y_test, probabilities, loss)
        counts = {"num_examples": float(len(hospital.y_test))}
        if classes == 2:  # class sizes, for the model card's confidence intervals
            counts["positives"] = float((hospital.y_test == 1).sum())
        scores[hospital.name] = metrics | counts
    return scores


def write_exact_evaluation(
    run_dir: RunDirectory, run: RunConfig, hospitals: list[HospitalData] | None = None
) -> dict[str, dict[str, float]]:
    """Score RUN_DIR/model.pt exactly and write RUN_DIR/exact_evaluation.json."""
    state = torch.load(run_dir.root / "model.pt", weights_only=True)
    hospitals = hospitals if hospitals is not None else load_federation(run.data, run.seed)
    scores = exact_metrics(run, state, hospitals)
    text = json.dumps({"note": NOTE, "hospitals": scores}, indent=2) + "\n"
    (run_dir.root / EXACT_FILE).write_text(text, encoding="utf-8")
    return scores
