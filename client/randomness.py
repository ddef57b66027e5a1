"""Cryptographic randomness for every DP mechanism at a hospital: a ChaCha20 keystream as numbers.

Deployed hospitals use `SecureRandom.fresh()` (a 256-bit key from the OS), so no one, the
coordinator included, can reproduce the noise or the Poisson batches. `from_seed` derives the
key from public values for reproducible simulations: its output is then not a secret.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

KEY_BYTES = 32
_SEED_DOMAIN = b"medfed.client.randomness.from_seed.v1"


class SecureRandom:
    """Uniform, Gaussian and Bernoulli draws from one ChaCha20 keystream (key: 32 bytes).

    Successive draws continue the stream, so one object yields one reproducible sequence per key.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"SecureRandom: key must be {KEY_BYTES} bytes, got {len(key)}")
        # Nonce 0 is safe: each key drives one stream only. The 16 bytes are counter + nonce.
        self._stream = Cipher(algorithms.ChaCha20(bytes(key), bytes(16)), mode=None).encryptor()

    @classmethod
    def fresh(cls) -> SecureRandom:
        """A stream under a new key from the operating system (deployed hospitals)."""
        return cls(os.urandom(KEY_BYTES))

    @classmethod
    def from_seed(cls, *parts: int | str) -> SecureRandom:
        """A stream keyed by SHA-256 of `parts` (simulations only: anyone knowing them can
        reproduce every draw). Each part is length-prefixed and typed, so ("1", 2) != (1, "2")."""
        digest = hashlib.sha256(_SEED_DOMAIN)
        for part in parts:
            if isinstance(part, bool) or not isinstance(part, int | str):
                raise TypeError(f"SecureRandom.from_seed: parts must be int or str, got {part!r}")
            tag = b"i" if isinstance(part, int) else b"s"
            payload = str(part).encode()
            digest.update(tag + len(payload).to_bytes(8, "big") + payload)
        return cls(digest.digest())

    def random_bytes(self, count: int) -> bytes:
        """The next `count` bytes of the keystream."""
        return self._stream.update(bytes(count))

    def uniform(self, size: int | tuple[int, ...]) -> np.ndarray:
        """Doubles k·2⁻⁵³ with k uniform in 1 … 2⁵³−1: uniform on the open interval (0, 1)."""
        count = int(np.prod(size))
        values = self._unit_interval(count)
        zeros = np.flatnonzero(values == 0.0)
        while len(zeros):  # probability 2⁻⁵³ per value; redrawn so log(u) is always finite
            values[zeros] = self._unit_interval(len(zeros))
            zeros = zeros[values[zeros] == 0.0]
        return values.reshape(size)

    def standard_normal(self, size: int | tuple[int, ...]) -> np.ndarray:
        """N(0, 1) doubles by the Box–Muller transform of pairs of uniforms."""
        count = int(np.prod(size))
        pairs = (count + 1) // 2
        uniforms = self.uniform(2 * pairs)
        radius = np.log(uniforms[:pairs])
        np.sqrt(radius * -2.0, out=radius)
        angle = uniforms[pairs:]
        angle *= 2.0 * np.pi
        normals = np.empty(2 * pairs)
        np.multiply(np.cos(angle), radius, out=normals[:pairs])
        np.multiply(np.sin(angle), radius, out=normals[pairs:])
        return normals[:count].reshape(size)

    def gaussian(self, shape: int | tuple[int, ...], std: float) -> np.ndarray:
        """N(0, std²) as Opacus's secure_mode draws it: (sum of 4 standard normals) · std / 2,
        which hides the low bits a single sample leaks (arXiv 2107.10138, section 5.1)."""
        if std < 0:
            raise ValueError(f"SecureRandom.gaussian: std must be >= 0, got {std}")
        count = int(np.prod(shape))
        summed = self.standard_normal(count)
        for _ in range(3):
            summed += self.standard_normal(count)
        summed *= std / 2.0
        return summed.reshape(shape)

    def bernoulli(self, size: int | tuple[int, ...], p: float) -> np.ndarray:
        """Booleans, each True with probability `p` independently."""
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"SecureRandom.bernoulli: p must be in [0, 1], got {p}")
        return self.uniform(size) < p

    def _unit_interval(self, count: int) -> np.ndarray:
        words = np.frombuffer(self.random_bytes(8 * count), dtype="<u8")
        return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53
