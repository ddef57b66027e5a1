"""X25519 key pairs and the HKDF-SHA256 derivations of per-round pair seeds and share keys."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from medfed.shared.errors import SecureAggregationError

KEY_BYTES = 32
MAX_ID = 2**64 - 1
PAIR_SEED_LABEL = "medfed/secagg/v1/pair-seed"
SHARE_KEY_LABEL = "medfed/secagg/v1/share-key"


def generate_private_key() -> bytes:
    """A fresh X25519 private key as 32 raw bytes."""
    return X25519PrivateKey.generate().private_bytes(
        Encoding.Raw, PrivateFormat.Raw, NoEncryption()
    )


def public_key(private_key: bytes) -> bytes:
    """The raw 32-byte X25519 public key of `private_key`."""
    key = X25519PrivateKey.from_private_bytes(private_key)
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def check_public_key(key: object, what: str) -> bytes:
    """`key` if it is a loadable raw X25519 public key, else `SecureAggregationError`."""
    if not isinstance(key, bytes) or len(key) != KEY_BYTES:
        raise SecureAggregationError(f"{what} must be {KEY_BYTES} raw bytes")
    try:
        X25519PublicKey.from_public_bytes(key)
    except ValueError as error:
        raise SecureAggregationError(f"{what} is not an X25519 public key: {error}") from None
    return key


def shared_secret(private_key: bytes, peer_public_key: bytes) -> bytes:
    """X25519(private, peer); a low-order peer key raises `SecureAggregationError`."""
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public_key)
        return X25519PrivateKey.from_private_bytes(private_key).exchange(peer)
    except ValueError as error:
        raise SecureAggregationError(f"X25519 key agreement failed: {error}") from None


def encode_info(label: str, *parts: str | int) -> bytes:
    """Unambiguous HKDF info: the label and each part, length-prefixed (ints as 8 bytes)."""
    chunks = [label.encode()]
    for part in parts:
        if isinstance(part, str):
            chunks.append(part.encode())
        elif isinstance(part, int) and 0 <= part <= MAX_ID:
            chunks.append(part.to_bytes(8, "big"))
        else:
            raise SecureAggregationError(f"cannot bind {part!r} into a key derivation")
    return b"".join(len(chunk).to_bytes(4, "big") + chunk for chunk in chunks)


def hkdf_sha256(secret: bytes, info: bytes) -> bytes:
    """32 bytes of HKDF-SHA256(secret, no salt, info)."""
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=info).derive(secret)


def derive_pair_seed(
    secret: bytes, *, run_id: str, round_number: int, attempt: int, pair: tuple[int, int]
) -> bytes:
    """The pairwise mask seed of one round attempt; revealing it exposes no other round."""
    low, high = sorted(pair)
    info = encode_info(PAIR_SEED_LABEL, run_id, round_number, attempt, low, high)
    return hkdf_sha256(secret, info)


def derive_share_key(secret: bytes, *, run_id: str, pair: tuple[int, int]) -> bytes:
    """The AES-256-GCM key that carries Shamir shares between two hospitals in a run."""
    low, high = sorted(pair)
    return hkdf_sha256(secret, encode_info(SHARE_KEY_LABEL, run_id, low, high))
