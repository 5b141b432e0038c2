"""Block ciphers behind one small interface: single DES, 2-key 3DES (EDE) and SM4.

Backend: pyca/cryptography. The platform notes measured it several times faster per block than
pycryptodome 4.4, and unlike pycryptodome's DES3 it accepts keys whose halves are equal (the all-FF
transport key of blank test cards), which a card workbench must handle. 3DES goes through the
24-byte K1‖K2‖K1 form so cryptography neither warns nor guesses.

Creating a cipher object costs far more than one block, so objects are cached per key (bounded LRU).
The cache holds key bytes only in memory, as every cipher object does; nothing here logs or prints them.
"""
from __future__ import annotations

import functools
import warnings
from typing import Protocol

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES


class CipherKeyError(ValueError):
    """A key of the wrong length for the chosen cipher (the message never contains the key)."""


class BlockCipher(Protocol):
    """An ECB block primitive; modes (CBC-MAC, diversification) are built on top in this package."""

    block_size: int

    def encrypt(self, data: bytes) -> bytes:
        """Encrypt whole blocks independently (ECB)."""
        ...

    def decrypt(self, data: bytes) -> bytes:
        """Decrypt whole blocks independently (ECB)."""
        ...


class _EcbCipher:
    """One long-lived encryptor and decryptor: ECB keeps no state between blocks, so they are reusable."""

    __slots__ = ("block_size", "_cipher", "_enc", "_dec", "label", "encrypt_aligned")

    def __init__(self, algorithm: object, block_size: int, label: str) -> None:
        self._cipher = Cipher(algorithm, modes.ECB())  # type: ignore[arg-type]
        self._enc = self._cipher.encryptor()
        self._dec = None  # made on first use: session keys only ever encrypt
        self.block_size = block_size
        self.label = label
        # Unchecked fast path for callers inside this package that already hold whole blocks (CBC-MAC).
        self.encrypt_aligned = self._enc.update

    def encrypt(self, data: bytes) -> bytes:
        if len(data) % self.block_size:
            raise ValueError(f"{self.label}: data length {len(data)} is not a multiple of {self.block_size}")
        return self._enc.update(data)

    def decrypt(self, data: bytes) -> bytes:
        if len(data) % self.block_size:
            raise ValueError(f"{self.label}: data length {len(data)} is not a multiple of {self.block_size}")
        if self._dec is None:
            self._dec = self._cipher.decryptor()
        return self._dec.update(data)

    def __repr__(self) -> str:  # never the key
        return f"<{self.label} cipher>"


@functools.lru_cache(maxsize=512)
def des(key: bytes) -> BlockCipher:
    """Single DES (8-byte key), as PBOC session keys and the 3DES TAC key use it."""
    if len(key) != 8:
        raise CipherKeyError(f"DES key must be 8 bytes, got {len(key)}")
    return _EcbCipher(TripleDES(key * 3), 8, "DES")


@functools.lru_cache(maxsize=512)
def tdes(key: bytes) -> BlockCipher:
    """Two-key 3DES EDE (16-byte key K1‖K2, used as K1‖K2‖K1)."""
    if len(key) != 16:
        raise CipherKeyError(f"3DES key must be 16 bytes, got {len(key)}")
    return _EcbCipher(TripleDES(key + key[:8]), 8, "3DES")


@functools.lru_cache(maxsize=512)
def sm4(key: bytes) -> BlockCipher:
    """SM4 (GB/T 32907), 16-byte key and block: the national-crypto branch (algorithm ID 04)."""
    if len(key) != 16:
        raise CipherKeyError(f"SM4 key must be 16 bytes, got {len(key)}")
    return _EcbCipher(algorithms.SM4(key), 16, "SM4")
