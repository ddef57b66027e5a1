"""A deployed hospital's settings and data, as `medfed-client` passed them in node config.

The data is preprocessed once and cached on disk (`.npz`, no pickle) under the SHA-256 of the
preprocessing settings and the file's bytes: a changed file or setting is a new cache entry,
never a stale one. The warm executor also keeps
it in memory while the file's size and modification time stay the same.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from flwr.app import Context

from medfed.client.hospital import HospitalSettings
from medfed.client.policy import HospitalPolicy
from medfed.shared.config.models import DataConfig
from medfed.shared.data.base import HospitalData
from medfed.shared.data.store import load_hospital_data, save_hospital_data
from medfed.shared.errors import ConfigError, DataError

CACHE_VERSION = "2"  # bump when preprocessing changes (2: record-local scaling)


def file_fingerprint(path: Path, data: DataConfig) -> str:
    """SHA-256 of the preprocessing settings and the file's bytes (names the cache entry)."""
    digest = hashlib.sha256(CACHE_VERSION.encode())
    digest.update(data.model_dump_json(exclude={"path"}).encode())
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(data_path: Path) -> os.stat_result:
    """The data file's stat (size and mtime name its in-memory copy).

    Raises:
        DataError: no such file.
    """
    if not data_path.is_file():
        raise DataError(f"data.path: {data_path} not found (point it at this hospital's CSV)")
    return data_path.stat()


def preprocess(data: DataConfig, name: str) -> HospitalData:
    """Read and split the hospital's own file (the simulation's loaders, one hospital).

    Raises:
        DataError: unreadable data, or a file holding several hospitals.
    """
    from medfed.shared.data import load_federation

    hospitals = load_federation(data.model_copy(update={"partition": "natural"}), 0)
    if len(hospitals) != 1:
        names = ", ".join(h.name for h in hospitals)
        raise DataError(
            f"data.path: {data.path} holds {len(hospitals)} hospitals ({names}); "
            "give this hospital a file with its own patients only"
        )
    only = hospitals[0]
    return HospitalData(
        name, only.x_train, only.y_train, only.x_test, only.y_test, only.num_classes
    )


def cached_data(data: DataConfig, name: str, cache_dir: Path) -> HospitalData:
    """The preprocessed data, from CACHE_DIR/<sha256>.npz when present (written atomically).

    Raises:
        DataError: the file is missing or unusable.
    """
    require_file(data.path)
    cache_path = cache_dir / f"{file_fingerprint(data.path, data)}.npz"
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
        stat = require_file(data.path)
        key = (data.model_dump_json(), stat.st_size, stat.st_mtime_ns, settings.name)
        if key not in self._loaded:
            cache_dir = Path(_required(node_config, "cache-dir"))
            self._loaded = {key: cached_data(data, settings.name, cache_dir)}
        return self._loaded[key], settings
