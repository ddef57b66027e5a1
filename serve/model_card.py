"""The model card (model-card.json): what the model is, was trained on, scores and may be used for.

Sources, all in the run directory: config.toml (task, model, input schema, fingerprint),
privacy.json (ε, δ per hospital), ledgers/*.jsonl (the DP label counts each hospital released;
its exact n is never known outside it), exact_evaluation.json and metrics.jsonl (metrics, see
serve/card_metrics.py). Nothing here reads a hospital's data.
"""

from __future__ import annotations

import datetime
import json
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medfed.serve.card_metrics import exact_metrics, released_metrics
from medfed.serve.explain import BASELINES
from medfed.server.report.ledgers import find_ledgers
from medfed.shared.privacy.chain import read_entries

if TYPE_CHECKING:
    from medfed.serve.bundle import ModelBundle

DEPENDENCIES = ("torch", "flwr", "opacus", "numpy", "captum", "onnx", "onnxruntime",
                "fastapi", "uvicorn", "pydantic", "pydicom")  # fmt: skip
POST_PROCESSING = (
    "Predictions and explanations are post-processing of the released DP model: computing "
    "them reads only the request and the model's weights, so they cost no privacy and need no "
    "ledger entry. Explanations never read training data: integrated-gradient baselines are "
    "public constants, Grad-CAM uses the request's own activations."
)
TRAIN_COVERS = (
    "the hospital's training split: its one-time DP label-count release and every DP-SGD "
    "optimizer step of this and earlier runs (the ledger's train stream)"
)
TEST_COVERS = "the hospital's test split: its DP evaluation releases (the ledger's test stream)"
TASKS = {
    "heart_disease": "binary classification: heart disease (UCI num > 0) from one visit's "
    "clinical record (FLamby Fed-Heart-Disease features)",
    "imaging": "image classification",
    "sequences": "binary classification: deterioration from a window of vital signs",
}
LIMITATIONS = [
    "Decision support only: a clinician decides. Not a certified medical device.",
    "Valid for inputs inside the schema's public bounds; the API rejects values outside them.",
    "Trained on the listed hospitals' populations; performance elsewhere is unknown until "
    "measured there.",
    "DP noise lowers accuracy: compare the intervals, not the point values, across hospitals.",
    "Explanations describe the model, not causes in the patient.",
]
DATASET_LIMITATIONS = {
    "heart_disease": [
        "UCI data, 1980s cohorts (Cleveland, Hungary, Switzerland, VA Long Beach); "
        "cholesterol was not recorded for Switzerland and part of VA (coded 0, seen by the "
        "model as the lower bound 50 mg/dl).",
    ],
    "imaging": ["Synthetic lesion images unless data.path named a MedMNIST file."],
    "sequences": ["Synthetic vital signs unless data.path named a vitals CSV."],
}


def versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in ("medfed", *DEPENDENCIES):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def released_counts(run_dir: Path, hospitals: list[str], classes: tuple[str, ...]) -> dict:
    """Per hospital, its latest DP label-count release from its ledger (None when absent)."""
    paths, _ = find_ledgers(run_dir / "ledgers", hospitals)
    counts: dict[str, Any] = {}
    for name in hospitals:
        entries = read_entries(paths[name]) if name in paths else []
        released = [e for e in entries if e.get("type") == "count" and "released" in e]
        if not released:
            counts[name] = None
            continue
        values = [float(v) for v in released[-1]["released"]]
        counts[name] = {
            "by_class": {cls: round(v, 1) for cls, v in zip(classes, values, strict=False)},
            "total": round(sum(values), 1),
            "noise_multiplier": released[-1].get("noise_multiplier"),
        }
    return counts


def privacy_section(run_dir: Path, classes: tuple[str, ...], enabled: bool) -> dict[str, Any]:
    path = run_dir / "privacy.json"
    privacy = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    counts = released_counts(run_dir, list(privacy), classes)
    hospitals = []
    for name, record in privacy.items():
        hospitals.append({
            "name": name, "status": record.get("status"),
            "epsilon": record.get("epsilon"), "delta": record.get("delta"),
            "max_epsilon": record.get("max_epsilon"), "accountant": record.get("accountant"),
            "covers": TRAIN_COVERS,
            "evaluation_epsilon": record.get("evaluation_epsilon"),
            "evaluation_covers": TEST_COVERS,
            "released_label_counts": counts.get(name),
        })  # fmt: skip
    return {
        "enabled": enabled,
        "unit": "sample-level (ε, δ)-DP per hospital dataset (docs/privacy.md)",
        "hospitals": hospitals,
        "post_processing": POST_PROCESSING,
        "training_counts_note": "training-set sizes are the hospitals' DP label-count "
        "releases (noisy, may be fractional); their exact n is never sent",
    }


def build_card(bundle: ModelBundle) -> dict[str, Any]:
    """The card of the bundle's run directory."""
    run, schema, root = bundle.run, bundle.schema, bundle.root
    exact, released = exact_metrics(root), released_metrics(root)
    parameters = sum(p.numel() for p in bundle.model.parameters())
    task = TASKS.get(run.data.dataset, run.data.dataset)
    return {
        "card_version": 1,
        "name": run.name,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "medfed_version": versions()["medfed"],
        "versions": versions(),
        "task": {"description": task, "dataset": run.data.dataset, "classes": list(schema.classes)},
        "model": {
            "name": run.model.name,
            "hidden_size": run.model.hidden_size,
            "num_layers": run.model.num_layers,
            "parameters": parameters,
            "model_sha256": bundle.model_sha256,
        },  # fmt: skip
        "config_sha256": bundle.config_sha256,
        "training": {
            "rounds": run.rounds,
            "strategy": run.strategy.name,
            "partition": run.data.partition,
            "seed": run.seed,
        },  # fmt: skip
        "input_schema": schema.describe(),
        "privacy": privacy_section(root, schema.classes, run.privacy.enabled),
        "metrics": {
            "exact": exact,
            "released": released,
            "shown": "exact" if exact else "released",
        },  # fmt: skip
        "explanations": {
            "methods": "integrated gradients (records, sequences, images); "
            "Grad-CAM (images, last convolution)",
            "baseline": BASELINES[schema.kind],
        },
        "intended_use": "Decision support for clinicians: the probability of "
        f"'{schema.classes[-1]}' for one {schema.kind} input, with an explanation, within "
        "the hospitals' populations it was trained on.",
        "limitations": LIMITATIONS + DATASET_LIMITATIONS.get(run.data.dataset, []),
    }
