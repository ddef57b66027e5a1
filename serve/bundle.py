"""A servable model: a run directory (or `medfed export`'s folder) loaded for inference.

Both hold config.toml (the run's resolved configuration) and model.pt (the final global
state_dict); the model is rebuilt from the registry, so any model `medfed simulate` trains is
served the same way. The number of classes comes from the weights (their last tensor is the
head's bias), the input schema from the configuration: no data is read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from medfed.serve.inputs import InputSchema, input_schema
from medfed.serve.preprocess import Preprocessor
from medfed.shared.config.loader import read_toml, validate_tree
from medfed.shared.config.models import RunConfig
from medfed.shared.errors import DataError
from medfed.shared.models import build_model

CARD_JSON = "model-card.json"
HINT = "pass a run directory written by `medfed simulate` or a folder from `medfed export`"


@dataclass
class ModelBundle:
    root: Path
    run: RunConfig
    model: nn.Module
    schema: InputSchema
    preprocess: Preprocessor
    device: torch.device
    config_sha256: str
    model_sha256: str

    def card(self) -> dict[str, Any]:
        """The exported model card, or one built now from the run directory."""
        exported = self.root / CARD_JSON
        if exported.is_file():
            return json.loads(exported.read_text(encoding="utf-8"))
        from medfed.serve.model_card import build_card

        return build_card(self)


def device_for(run: RunConfig) -> torch.device:
    """CUDA when configured or (auto) present, as the hospitals choose it."""
    wants = run.training.device == "cuda" or (
        run.training.device == "auto" and torch.cuda.is_available()
    )
    return torch.device("cuda" if wants else "cpu")


def load_run_config(path: Path) -> tuple[RunConfig, str]:
    """RUN_DIR/config.toml exactly as written (no environment overrides) and its SHA-256."""
    run = validate_tree(read_toml(path, f"missing ({HINT})"), str(path))
    return run, hashlib.sha256(path.read_bytes()).hexdigest()


def load_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise DataError(f"{path}: missing ({HINT})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises pickle, zip and runtime errors here
        raise DataError(f"{path}: not a readable state_dict ({type(error).__name__})") from None
    if not isinstance(state, dict) or not state:
        raise DataError(f"{path}: not a model state_dict ({HINT})")
    return state


def load_bundle(root: Path) -> ModelBundle:
    """Load RUN_DIR or EXPORT_DIR for serving (eval mode, weights frozen).

    Raises:
        ConfigError: config.toml invalid, or a dataset/model pair serving does not know.
        DataError: the folder, config.toml or model.pt missing, or weights not matching.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory ({HINT})")
    run, config_sha = load_run_config(root / "config.toml")
    state = load_state(root / "model.pt")
    num_classes = int(next(reversed(state.values())).shape[0])
    schema = input_schema(run, num_classes)
    model = build_model(run.model, schema.input_shape, num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[1:2] or [str(error)]
        raise DataError(
            f"{root / 'model.pt'}: weights do not fit config.toml's model "
            f"'{run.model.name}' ({first[0].strip()[:160]})"
        ) from None
    device = device_for(run)
    model.to(device).eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model_sha = hashlib.sha256((root / "model.pt").read_bytes()).hexdigest()
    return ModelBundle(
        root, run, model, schema, Preprocessor(run, schema), device, config_sha, model_sha
    )
