"""Ed25519 signing keys of a hospital: created on first use, private key 0600."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from medfed.shared.errors import LedgerError


def public_key_text(public_key: Ed25519PublicKey) -> str:
    """Raw 32-byte public key, base64 (how ledgers and .pub files carry it)."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_text(text: str) -> Ed25519PublicKey:
    """Parse a base64 raw Ed25519 public key.

    Raises:
        LedgerError: not a valid key.
    """
    try:
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text.strip(), validate=True))
    except ValueError as exc:
        raise LedgerError(f"not an Ed25519 public key ({exc})") from None


def load_or_create_signing_key(key_dir: Path, name: str) -> Ed25519PrivateKey:
    """The hospital's ledger key `KEY_DIR/NAME.ed25519` (PEM, 0600) and `NAME.ed25519.pub`.

    Raises:
        LedgerError: the key file exists but cannot be read as an Ed25519 private key.
    """
    key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    private_path = key_dir / f"{name}.ed25519"
    if private_path.exists():
        try:
            key = serialization.load_pem_private_key(private_path.read_bytes(), password=None)
        except ValueError as exc:
            raise LedgerError(f"{private_path}: unreadable ledger key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise LedgerError(f"{private_path}: not an Ed25519 key (delete it to create a new one)")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    descriptor = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
    (key_dir / f"{name}.ed25519.pub").write_text(public_key_text(key.public_key()) + "\n")
    return key


def signature_valid(public_key: Ed25519PublicKey, signature_b64: str, message: bytes) -> bool:
    try:
        public_key.verify(base64.b64decode(signature_b64, validate=True), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign(key: Ed25519PrivateKey, message: bytes) -> str:
    return base64.b64encode(key.sign(message)).decode()
