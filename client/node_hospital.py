"""A deployed hospital's settings and data, as `medfed-client` passed them in node config.

The data is preprocessed once and cached on disk (`.npz`, no pickle) under the SHA-256 of the
preprocessing settings and the bytes of its file, or of every file in its image folder and the
labels CSV (`medfed.client.data_files`): a changed file or setting is a new cache entry, never
a stale one. The warm executor also keeps it in memory while the files' sizes and modification
times stay the same.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from flwr.app import Context

from medfed.client.data_files import data_fingerprint, data_version
from medfed.client.hospital import HospitalSettings
from medfed.client.policy import HospitalPolicy
from medfed.shared.config.models import DataConfig
from medfed.shared.data.base import HospitalData
from medfed.shared.data.store import load_hospital_data, save_hospital_data
from medfed.shared.errors import ConfigError, DataError

CACHE_VERSION = "2"  # bump when preprocessing changes (2: record-local scaling)


def preprocess(data: DataConfig, name: str) -> HospitalData:
    """Read and split the hospital's own file or image folder (the simulation's loaders, one
    hospital; images split over patients).

    Raises:
        DataError: unreadable data, or data holding several hospitals.
    """
    from medfed.shared.data import load_federation

    if data.dataset in ("imaging", "breast_cancer"):
        return _own_records(data, name)
    hospitals = load_federation(data.model_copy(update={"partition": "natural"}), 0)
    _one_hospital(data, [h.name for h in hospitals])
    only = hospitals[0]
    return HospitalData(
        name, only.x_train, only.y_train, only.x_test, only.y_test, only.num_classes
    )


def _own_records(data: DataConfig, name: str) -> HospitalData:
    """Images or breast-cancer rows, which need no site column: all of them this hospital's,
    split as the simulation splits one hospital's (images by patient)."""
    from medfed.shared.data.base import split_train_test
    from medfed.shared.data.breast_cancer import SPLIT_SEED, load_breast_cancer_records
    from medfed.shared.data.registry import load_images

    if data.dataset == "breast_cancer":
        features, labels, sites = load_breast_cancer_records(
            data.path, data.hospital_column, data.feature_bounds
        )
        num_classes, patients, seed = 2, None, SPLIT_SEED
    else:
        images = load_images(data, 0)
        features, labels, sites = images.images, images.labels, images.sites
        num_classes, patients, seed = images.num_classes, images.patients, 0
    if sites is not None:  # the file has data.hospital_column
        _one_hospital(data, sorted(set(sites.tolist())))
    return split_train_test(name, features, labels, num_classes, data.test_fraction, seed, patients)


def _one_hospital(data: DataConfig, names: list[str]) -> None:
    if len(names) != 1:
        raise DataError(
            f"data.path: {data.path} holds {len(names)} hospitals ({', '.join(names)}); "
            "give this hospital a file with its own patients only"
        )


def cached_data(data: DataConfig, name: str, cache_dir: Path) -> HospitalData:
    """The preprocessed data, from CACHE_DIR/<sha256>.npz when present (written atomically).

    Raises:
        DataError: the file is missing or unusable.
    """
    cache_path = cache_dir / f"{data_fingerprint(data, CACHE_VERSION)}.npz"
    if cache_path.is_file():
        with contextlib.suppress(DataError):  # unreadable: preprocess again below
            cached = load_hospital_data(cache_path, "")
            if cached.name == name:
                return cached
    prepared = preprocess(data, name)
    save_hospital_data(prepared, cache_path)
    return prepared


def data_config(node_config: dict[str, Any]) -> DataConfig:
    """The data settings medfed-client passed (dataset, file, public scaling bounds)."""
    fields = json.loads(_required(node_config, "data"))
    return DataConfig.model_validate(fields | {"path": _required(node_config, "data-path")})


def _required(node_config: dict[str, Any], key: str) -> str:
    if key not in node_config:
        raise ConfigError(f"SuperNode --node-config lacks '{key}' (start it with medfed-client)")
    return str(node_config[key])


def settings_from_node_config(node_config: dict[str, Any]) -> HospitalSettings:
    """The hospital's own settings as `medfed-client` passed them in --node-config."""
    from medfed.shared.secagg.config import SecureAggregationConfig

    ledger_dir = Path(_required(node_config, "ledger-dir"))
    name = _required(node_config, "name")
    policy_text = str(node_config.get("policy", "{}"))
    return HospitalSettings(
        name=name,
        max_epsilon=float(_required(node_config, "max-epsilon")),
        ledger_path=ledger_dir / f"{_ledger_stem(name)}.jsonl",
        key_dir=ledger_dir / "keys",
        delta=float(node_config.get("delta", 1e-5)),
        accountant=str(node_config.get("accountant", "rdp")),
        count_noise_multiplier=float(node_config.get("count-noise-multiplier", 10.0)),
        max_evaluation_epsilon=float(node_config.get("max-evaluation-epsilon", 3.0)),
        max_evaluations=int(node_config.get("max-evaluations", 30)),
        witness_path=Path(_required(node_config, "head-dir")) / f"{_ledger_stem(name)}.head",
        privacy_enabled=bool(node_config.get("privacy-enabled", True)),
        device=str(node_config.get("device", "cpu")),
        secure_aggregation=SecureAggregationConfig.model_validate(
            json.loads(str(node_config.get("secure-aggregation", "{}")))
        ),
        policy=HospitalPolicy.model_validate(json.loads(policy_text)),
        identity_key=_optional_path(node_config, "identity-key"),
        peers_file=_optional_path(node_config, "peers-file"),
    )


def _optional_path(node_config: dict[str, Any], key: str) -> Path | None:
    value = str(node_config.get(key, ""))
    return Path(value) if value else None


def _ledger_stem(name: str) -> str:
    from medfed.shared.privacy.ledger import ledger_file_name

    return ledger_file_name(name)


class NodeHospital:
    """Loader for `answer`: settings from the node's config, data from the cache (kept in
    memory between messages while the file is unchanged)."""

    def __init__(self) -> None:
        self._loaded: dict[tuple, HospitalData] = {}

    def __call__(self, context: Context) -> tuple[HospitalData, HospitalSettings]:
        node_config = dict(context.node_config)
        settings = settings_from_node_config(node_config)
        data = data_config(node_config)
        key = (data.model_dump_json(), data_version(data), settings.name)
        if key not in self._loaded:
            cache_dir = Path(_required(node_config, "cache-dir"))
            self._loaded = {key: cached_data(data, settings.name, cache_dir)}
        return self._loaded[key], settings
