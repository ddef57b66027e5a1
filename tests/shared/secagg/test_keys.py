"""Pair seeds: both sides agree, each round attempt gets its own, and HKDF binds the context."""

from __future__ import annotations

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from medfed.shared.secagg import keys


def test_both_hospitals_derive_the_same_pair_seed() -> None:
    alice, bob = keys.generate_private_key(), keys.generate_private_key()
    from_alice = keys.derive_pair_seed(
        keys.shared_secret(alice, keys.public_key(bob)),
        run_id="run",
        round_number=4,
        attempt=1,
        pair=(10, 20),
    )
    from_bob = keys.derive_pair_seed(
        keys.shared_secret(bob, keys.public_key(alice)),
        run_id="run",
        round_number=4,
        attempt=1,
        pair=(20, 10),
    )
    assert from_alice == from_bob and len(from_alice) == 32


def test_pair_seed_is_hkdf_sha256_of_the_x25519_secret_with_the_documented_info() -> None:
    alice_raw, bob_raw = keys.generate_private_key(), keys.generate_private_key()
    bob_public = X25519PrivateKey.from_private_bytes(bob_raw).public_key().public_bytes_raw()
    secret = X25519PrivateKey.from_private_bytes(alice_raw).exchange(
        X25519PublicKey.from_public_bytes(bob_public)
    )
    info = b"".join(
        len(chunk).to_bytes(4, "big") + chunk
        for chunk in (
            b"medfed/secagg/v1/pair-seed",
            b"run",
            (4).to_bytes(8, "big"),
            (1).to_bytes(8, "big"),
            (10).to_bytes(8, "big"),
            (20).to_bytes(8, "big"),
        )
    )
    golden = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(secret)
    ours = keys.derive_pair_seed(
        keys.shared_secret(alice_raw, keys.public_key(bob_raw)),
        run_id="run",
        round_number=4,
        attempt=1,
        pair=(20, 10),
    )
    assert ours == golden


def test_every_round_attempt_and_run_gets_a_different_pair_seed() -> None:
    secret = bytes(range(32))
    contexts = [
        ("run", 1, 0),
        ("run", 1, 1),
        ("run", 2, 0),
        ("run2", 1, 0),
    ]
    seeds = {
        keys.derive_pair_seed(secret, run_id=r, round_number=n, attempt=a, pair=(1, 2))
        for r, n, a in contexts
    }
    assert len(seeds) == len(contexts)


def test_share_key_differs_from_any_pair_seed() -> None:
    secret = bytes(range(32))
    share_key = keys.derive_share_key(secret, run_id="run", pair=(1, 2))
    seed = keys.derive_pair_seed(secret, run_id="run", round_number=0, attempt=0, pair=(1, 2))
    assert share_key != seed


def test_info_encoding_is_unambiguous() -> None:
    assert keys.encode_info("x", "ab", "c") != keys.encode_info("x", "a", "bc")
