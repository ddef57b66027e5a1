"""Shamir t-of-k shares of 32-byte seeds, sealed with AES-256-GCM for one neighbour."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.keys import encode_info

SEED_BYTES = 32
HALF = 16
NONCE_BYTES = 12
SHARE_AAD_LABEL = "medfed/secagg/v1/self-mask-share"
PLAINTEXT_BYTES = 4 + SEED_BYTES
SEALED_BYTES = NONCE_BYTES + PLAINTEXT_BYTES + 16


@dataclass(frozen=True)
class SeedShare:
    """One Shamir share of a 32-byte seed: its x-coordinate and two 16-byte GF(2^128) values."""

    index: int
    value: bytes


def split_seed(seed: bytes, threshold: int, num_shares: int) -> list[SeedShare]:
    """`num_shares` shares of `seed`, any `threshold` of which rebuild it (two 16-byte halves)."""
    if len(seed) != SEED_BYTES:
        raise SecureAggregationError(f"seeds are {SEED_BYTES} bytes, got {len(seed)}")
    if not 1 <= threshold <= num_shares:
        raise SecureAggregationError(f"need 1 ≤ threshold ≤ shares, got {threshold}/{num_shares}")
    low = Shamir.split(threshold, num_shares, seed[:HALF])
    high = Shamir.split(threshold, num_shares, seed[HALF:])
    return [
        SeedShare(index=index, value=low_value + high_value)
        for (index, low_value), (_, high_value) in zip(low, high, strict=True)
    ]


def combine_seed(shares: Sequence[SeedShare], threshold: int) -> bytes:
    """Rebuild a seed from at least `threshold` distinct shares (exactly `threshold` are used)."""
    distinct = {share.index: share for share in shares}
    if len(distinct) < threshold:
        raise SecureAggregationError(f"{len(distinct)} distinct shares, {threshold} needed")
    chosen = [distinct[index] for index in sorted(distinct)[:threshold]]
    low = Shamir.combine([(share.index, share.value[:HALF]) for share in chosen])
    high = Shamir.combine([(share.index, share.value[HALF:]) for share in chosen])
    return low + high


def share_aad(*, run_id: str, round_number: int, attempt: int, sender: int, receiver: int) -> bytes:
    """What a sealed share is bound to: run, round, attempt, sender and receiver."""
    return encode_info(SHARE_AAD_LABEL, run_id, round_number, attempt, sender, receiver)


def encrypt_share(key: bytes, share: SeedShare, aad: bytes) -> bytes:
    """nonce ‖ AES-256-GCM(index ‖ value) under `aad`; a fresh random 96-bit nonce each time."""
    nonce = os.urandom(NONCE_BYTES)
    plaintext = share.index.to_bytes(4, "big") + share.value
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt_share(key: bytes, sealed: bytes, aad: bytes) -> SeedShare:
    """Open a sealed share; a wrong tag, binding or length raises `SecureAggregationError`."""
    if len(sealed) < NONCE_BYTES + 16:
        raise SecureAggregationError("sealed share is too short to be an AES-GCM ciphertext")
    try:
        plaintext = AESGCM(key).decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], aad)
    except InvalidTag:
        raise SecureAggregationError(
            "a sealed share failed AES-GCM authentication (tampered, or bound to another "
            "run, round, attempt, sender or receiver)"
        ) from None
    if len(plaintext) != PLAINTEXT_BYTES:
        raise SecureAggregationError(f"a sealed share holds {len(plaintext)} bytes, not 36")
    return SeedShare(index=int.from_bytes(plaintext[:4], "big"), value=plaintext[4:])
