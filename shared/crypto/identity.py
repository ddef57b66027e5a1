"""Hospital identity keys and the pinned peers file (SSH known_hosts for a federation).

A hospital makes its Ed25519 identity key itself (`medfed certs hospital-identity`): the
private key stays at the hospital (0600); the public key and its fingerprint go to the other
hospitals, who compare the fingerprint out of band (phone, signed letter) and list it in their
peers file. Secure-aggregation setup messages are signed with this key, so a coordinator cannot
slip its own keys into a roster. Not the ledger's signing key: that one only signs the
hospital's own privacy ledger, and this one is what peers trust.

peers.toml, one table per federation member:

    [[hospitals]]
    name = "Cleveland"
    identity_public_key = "base64 of the raw 32-byte Ed25519 key"
    fingerprint = "SHA256:3f2a:9c01:…"   # 16 groups of 4 hex digits
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
import tomllib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medfed.shared.crypto.certs import write_private
from medfed.shared.errors import ConfigError

KEY_SUFFIX, PEER_SUFFIX = ".identity.key", ".peer.toml"
FINGERPRINT_PREFIX = "SHA256:"
PeerPins = dict[str, bytes]  # hospital name → raw Ed25519 identity public key


def public_bytes(key: Ed25519PublicKey) -> bytes:
    """The raw 32-byte form of an Ed25519 public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(raw_public_key: bytes) -> str:
    """`SHA256:` and the SHA-256 of the raw public key in colon-separated groups of 4 hex."""
    digest = hashlib.sha256(raw_public_key).hexdigest()
    return FINGERPRINT_PREFIX + ":".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def _normal(text: str) -> str:
    return text.strip().lower().replace(":", "").replace(" ", "")


def peer_entry(name: str, raw_public_key: bytes) -> str:
    """One `[[hospitals]]` table of a peers file, for `name`'s public key."""
    key_text = base64.b64encode(raw_public_key).decode()
    return (
        f'[[hospitals]]\nname = {json.dumps(name)}\nidentity_public_key = "{key_text}"\n'
        f'fingerprint = "{fingerprint(raw_public_key)}"\n'
    )


def file_stem(name: str) -> str:
    """A file-system-safe stem for a hospital name (`VA Long Beach` → `VA_Long_Beach`)."""
    if not name or '"' in name or "\\" in name or any(ord(c) < 32 for c in name):
        raise ConfigError(f"hospital name {name!r} is empty or has quotes or control characters")
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).lstrip(".") or "_"


def create_hospital_identity(out_dir: Path, name: str) -> tuple[Path, Path, str]:
    """Write OUT/NAME.identity.key (PEM, 0600) and OUT/NAME.peer.toml (its peers-file entry).

    Returns the two paths and the fingerprint to read out to the other hospitals.

    Raises:
        ConfigError: a bad name, or the key already exists (never overwritten).
    """
    stem = file_stem(name)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key_path, peer_path = out_dir / f"{stem}{KEY_SUFFIX}", out_dir / f"{stem}{PEER_SUFFIX}"
    write_private(key_path, pem)
    raw = public_bytes(key.public_key())
    peer_path.write_text(peer_entry(name, raw), encoding="utf-8")
    return key_path, peer_path, fingerprint(raw)


def load_identity_key(
    path: Path, where: str = "secure_aggregation.identity_key"
) -> Ed25519PrivateKey:
    """The hospital's identity private key.

    Raises:
        ConfigError: missing, readable by others than its owner, or not an Ed25519 PEM key.
    """
    if not path.is_file():
        raise ConfigError(
            f"{where}: {path} not found (make it at this hospital with `medfed certs "
            "hospital-identity --name NAME --out DIR`)"
        )
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ConfigError(f"{where}: {path} is readable by other users (chmod 600 {path})")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{where}: {path}: unreadable identity key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{where}: {path} is not an Ed25519 key (make a new identity)")
    return key


def load_or_create_identity_key(out_dir: Path, name: str) -> Ed25519PrivateKey:
    """Simulation only: the hospital's identity key in `out_dir`, made on first use."""
    path = out_dir / f"{file_stem(name)}{KEY_SUFFIX}"
    if not path.exists():
        out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        create_hospital_identity(out_dir, name)
    return load_identity_key(path, f"simulated hospital '{name}'")


def _entry(path: Path, position: int, table: object) -> tuple[str, bytes]:
    where = f"{path}: hospitals[{position}]"
    if not isinstance(table, dict) or set(table) != {"name", "identity_public_key", "fingerprint"}:
        raise ConfigError(f"{where}: needs exactly name, identity_public_key and fingerprint")
    name, key_text, printed = table["name"], table["identity_public_key"], table["fingerprint"]
    if not all(isinstance(value, str) for value in (name, key_text, printed)) or not name:
        raise ConfigError(f"{where}: name, identity_public_key and fingerprint must be text")
    try:
        raw = base64.b64decode(key_text, validate=True)
        Ed25519PublicKey.from_public_bytes(raw)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{where} ('{name}'): identity_public_key is not a base64 Ed25519 public key "
            f"(copy it from that hospital's {file_stem(name)}{PEER_SUFFIX})"
        ) from None
    if not printed.startswith(FINGERPRINT_PREFIX) or _normal(printed) != _normal(fingerprint(raw)):
        raise ConfigError(
            f"{where} ('{name}'): fingerprint {printed} does not match identity_public_key "
            f"(whose fingerprint is {fingerprint(raw)}); confirm the key with {name} out of "
            "band before pinning it"
        )
    return name, raw


def load_peers(path: Path, where: str = "secure_aggregation.peers_file") -> PeerPins:
    """The pinned identity keys of the federation, name → raw public key.

    Raises:
        ConfigError: missing or unreadable file, a bad entry, a fingerprint that does not
            match its key, or a name or key listed twice.
    """
    if not path.is_file():
        raise ConfigError(f"{where}: {path} not found (see docs/deployment.md, 'Identities')")
    try:
        tree = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: {path}: not valid TOML: {exc}") from None
    tables = tree.get("hospitals")
    if set(tree) != {"hospitals"} or not isinstance(tables, list) or not tables:
        raise ConfigError(f"{path}: expected only [[hospitals]] tables (name, key, fingerprint)")
    pins: PeerPins = {}
    for position, table in enumerate(tables):
        name, raw = _entry(path, position, table)
        if name in pins or raw in pins.values():
            raise ConfigError(f"{path}: hospitals[{position}] ('{name}'): name or key listed twice")
        pins[name] = raw
    return pins


def write_peers(path: Path, pins: PeerPins) -> None:
    """Write a peers file listing `pins` (atomically)."""
    text = "# Pinned identity keys of the federation (medfed certs hospital-identity).\n"
    text += "\n".join(peer_entry(name, raw) for name, raw in pins.items())
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
