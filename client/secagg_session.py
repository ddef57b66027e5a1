"""The hospital's secure-aggregation session in the ClientApp's Context, and its identity.

The session (X25519 private keys, roster, open attempt) lives in the Context's state as
JSON; the identity key and pinned peers are read from the hospital's files each time, never
stored in the session.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from flwr.app import ConfigRecord, Context

from medfed.client.hospital import HospitalSettings
from medfed.client.secagg_journal import SecAggJournal
from medfed.shared.crypto.identity import load_identity_key, load_peers
from medfed.shared.errors import ConfigError, SecureAggregationError, SecureAggregationRefused
from medfed.shared.secagg import SecAggHospital
from medfed.shared.secagg.authentication import HospitalIdentity

SESSION = "medfed.secagg.session"


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"__bytes__": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: _encode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__bytes__"}:
            return base64.b64decode(value["__bytes__"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def save_session(context: Context, session: SecAggHospital, run_id: str) -> None:
    blob = json.dumps(_encode(session.state_dict())).encode()
    context.state[SESSION] = ConfigRecord({"state": blob, "run_id": run_id})


def load_identity(
    name: str, identity_key: Path | None, peers_file: Path | None
) -> HospitalIdentity:
    """Hospital `name`'s identity key and the peers it pinned (which must include itself).

    Raises:
        ConfigError: a path is unset, or the key or peers file is unusable (named).
    """
    if identity_key is None or peers_file is None:
        raise ConfigError(
            f"hospital '{name}': secure aggregation needs secure_aggregation.identity_key and "
            "secure_aggregation.peers_file (make the key here with `medfed certs "
            "hospital-identity`, pin the federation's keys in peers.toml; see "
            "docs/deployment.md)"
        )
    return HospitalIdentity(name, load_identity_key(identity_key), load_peers(peers_file))


def identity_of(settings: HospitalSettings) -> HospitalIdentity:
    """`load_identity` for the hospital's settings."""
    return load_identity(settings.name, settings.identity_key, settings.peers_file)


def load_session(
    context: Context, journal: SecAggJournal, run_id: str, identity: HospitalIdentity
) -> SecAggHospital:
    """The hospital's session of run `run_id`.

    Raises:
        SecureAggregationRefused: the run had its setup here but the session is gone (the
            hospital restarted); the run's secure aggregation goes on without this hospital.
        SecureAggregationError: no setup happened in this run (the coordinator skipped it).
    """
    record = context.state.config_records.get(SESSION)
    if record is not None and str(record.get("run_id", "")) == run_id:
        state = _decode(json.loads(bytes(record["state"])))
        return SecAggHospital.from_state_dict(state, identity)
    if journal.load(run_id).setup:
        raise SecureAggregationRefused(
            f"run '{run_id}': this hospital's secure-aggregation session is lost (it restarted "
            "since the run's setup); it takes no further part in this run's secure aggregation",
            code="secure_aggregation_session_lost",
        )
    raise SecureAggregationError(
        f"no secure-aggregation setup for run '{run_id}'; expected one first"
    )
