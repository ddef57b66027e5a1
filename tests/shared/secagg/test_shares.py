"""Shamir t-of-k seed shares and their AES-256-GCM sealing."""

from __future__ import annotations

import os

import pytest
from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from medfed.shared.errors import SecureAggregationError
from medfed.shared.secagg.shares import (
    SeedShare,
    combine_seed,
    decrypt_share,
    encrypt_share,
    share_aad,
    split_seed,
)


@settings(max_examples=40, deadline=None)
@given(data=st.data(), num_shares=st.integers(2, 12))
def test_any_threshold_shares_rebuild_the_seed(data: st.DataObject, num_shares: int) -> None:
    threshold = data.draw(st.integers(1, num_shares))
    seed = os.urandom(32)
    shares = split_seed(seed, threshold, num_shares)
    chosen = data.draw(st.permutations(shares))[:threshold]
    assert combine_seed(chosen, threshold) == seed


def test_each_half_is_a_plain_pycryptodome_shamir_sharing() -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, 3, 5)
    low = Shamir.combine([(s.index, s.value[:16]) for s in shares[1:4]])
    high = Shamir.combine([(s.index, s.value[16:]) for s in shares[1:4]])
    assert low + high == seed


def test_fewer_than_threshold_shares_are_refused_and_reveal_nothing_useful() -> None:
    seed = os.urandom(32)
    shares = split_seed(seed, 4, 6)
    with pytest.raises(SecureAggregationError, match="4 needed"):
        combine_seed(shares[:3], 4)
    # Interpolating too few points gives an unrelated value, not the seed.
    assert combine_seed(shares[:3], 3) != seed


def test_duplicate_indices_do_not_count_twice() -> None:
    shares = split_seed(os.urandom(32), 3, 5)
    with pytest.raises(SecureAggregationError):
        combine_seed([shares[0], shares[0], shares[1]], 3)


def aad(sender: int = 1, receiver: int = 2, attempt: int = 0) -> bytes:
    return share_aad(run_id="r", round_number=3, attempt=attempt, sender=sender, receiver=receiver)


def test_sealed_share_is_standard_aes_gcm_with_the_binding_as_aad() -> None:
    key, share = os.urandom(32), SeedShare(index=5, value=os.urandom(32))
    sealed = encrypt_share(key, share, aad())
    plaintext = AESGCM(key).decrypt(sealed[:12], sealed[12:], aad())
    assert plaintext == (5).to_bytes(4, "big") + share.value
    assert decrypt_share(key, sealed, aad()) == share


@pytest.mark.parametrize("position", [0, 11, 12, 40, -1])
def test_tampered_sealed_share_is_rejected(position: int) -> None:
    key = os.urandom(32)
    sealed = bytearray(encrypt_share(key, SeedShare(1, os.urandom(32)), aad()))
    sealed[position] ^= 0x01
    with pytest.raises(SecureAggregationError, match="authentication"):
        decrypt_share(key, bytes(sealed), aad())


@pytest.mark.parametrize("other", [aad(sender=9), aad(receiver=9), aad(attempt=1)])
def test_share_sealed_for_another_binding_is_rejected(other: bytes) -> None:
    key = os.urandom(32)
    sealed = encrypt_share(key, SeedShare(1, os.urandom(32)), aad())
    with pytest.raises(SecureAggregationError):
        decrypt_share(key, sealed, other)


def test_truncated_sealed_share_is_rejected() -> None:
    with pytest.raises(SecureAggregationError, match="too short"):
        decrypt_share(os.urandom(32), b"\x00" * 20, aad())
