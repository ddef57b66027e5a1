"""Cryptographic keys and signatures (all primitives from `cryptography`)."""
