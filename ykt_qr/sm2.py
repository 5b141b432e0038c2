"""SM2 signatures with SM3 (GB/T 32918), as the MOT QR code uses them: raw r‖s, Z over a user ID.

The curve arithmetic is gmalglib's (a C implementation of SM2/SM3/SM4 with a CPython interface, MIT):
it takes compressed (``02/03‖X``) and plain (``04‖X‖Y``) public keys, computes Z = SM3(ENTL ‖ ID ‖ a ‖ b
‖ xG ‖ yG ‖ xA ‖ yA) for any ID, signs and verifies raw 64-byte r‖s, and draws SM2's k from a function we
give it. pyca/cryptography has no SM2 curve; gmssl is pure Python (tens of verifications a second);
tongsuopy has no ID parameter and no way to make k repeatable. SM3 itself comes from hashlib (OpenSSL).

k: each signature draws it from an HMAC-SM3 DRBG seeded, as in RFC 6979 §3.2/§3.6, with the private key,
the digest e and 32 bytes of extra data: a seed-derived value under ``--seed`` (the TEST PKI repeats byte
for byte, Q13) or fresh OS randomness otherwise. Two different messages never share a k, seed or not.
"""
from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass

from gmalglib.sm2 import SM2, SM2_PCMODE_COMPRESS, SM2_PCMODE_RAW

__all__ = [
    "DEFAULT_UID", "PublicKey", "PrivateKey", "sm3", "z_value", "SIGNATURE_LENGTH", "generate",
]

DEFAULT_UID = b"1234567812345678"
"""GB/T 32918's default user ID (ENTL 0080), used for every MOT code unless an issuer says otherwise (Q1)."""
SIGNATURE_LENGTH = 64
N = int("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123", 16)


def sm3(data: bytes) -> bytes:
    """SM3 digest (32 bytes) through hashlib, i.e. OpenSSL."""
    return hashlib.new("sm3", data).digest()


@dataclass(frozen=True)
class PublicKey:
    """An SM2 public key, kept as the uncompressed point 04‖X‖Y (65 bytes)."""

    point: bytes

    @classmethod
    def parse(cls, data: bytes) -> "PublicKey":
        """From 02/03‖X (33 bytes, QR codes), 04‖X‖Y (65) or bare X‖Y (64, root records).

        A point that is not on the curve raises ValueError (the verifier reports it as a failed signature).
        """
        if len(data) == 64:
            data = b"\x04" + data
        if len(data) not in (33, 65) or data[0] not in ((2, 3) if len(data) == 33 else (4,)):
            raise ValueError(f"not an SM2 public key: {len(data)} bytes starting {data[:1].hex().upper()}")
        if not SM2.is_pk_valid(bytes(data)):
            raise ValueError("not a point of the SM2 curve")
        return cls(SM2.convert_pk(bytes(data), SM2_PCMODE_RAW))

    @property
    def xy(self) -> bytes:
        """X‖Y, 64 bytes, as the root-CA record holds it."""
        return self.point[1:]

    @property
    def compressed(self) -> bytes:
        """02/03‖X, 33 bytes, as the certificate and the code hold it."""
        return SM2.convert_pk(self.point, SM2_PCMODE_COMPRESS)

    @property
    def fingerprint(self) -> str:
        """First 4 bytes of SM3(X‖Y), hex: a short name for a key in listings."""
        return sm3(self.xy)[:4].hex().upper()

    def verifier(self, uid: bytes = DEFAULT_UID) -> "Verifier":
        """A verifier with Z for this key and `uid` computed once."""
        return Verifier(SM2(pk=self.point, uid=uid))

    def verify(self, message: bytes, signature: bytes, uid: bytes = DEFAULT_UID) -> bool:
        """True if `signature` (r‖s) signs `message` under this key with Z over `uid`."""
        return self.verifier(uid).verify(message, signature)

    def z(self, uid: bytes = DEFAULT_UID) -> bytes:
        """Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) as the library computes it."""
        return SM2(pk=self.point, uid=uid).get_entity_info()

    def __repr__(self) -> str:
        return f"<SM2 public key {self.fingerprint}>"


class Verifier:
    """One public key with one user ID, ready to check signatures (Z already computed)."""

    __slots__ = ("_sm2",)

    def __init__(self, sm2: SM2) -> None:
        self._sm2 = sm2

    def verify(self, message: bytes, signature: bytes) -> bool:
        if len(signature) != SIGNATURE_LENGTH:
            return False
        return bool(self._sm2.verify(message, signature))


class PrivateKey:
    """An SM2 private key that never shows itself: reprs, strings and pickles name only its public key."""

    __slots__ = ("_d", "public_key")

    def __init__(self, d: bytes) -> None:
        if len(d) != 32 or not SM2.is_sk_valid(bytes(d)):
            raise ValueError("not an SM2 private key (32 bytes, 1 <= d <= n-2)")
        self._d = bytes(d)
        self.public_key = PublicKey(SM2.get_pk(self._d, SM2_PCMODE_RAW))

    @property
    def value(self) -> bytes:
        """The 32 key bytes, for writing a TEST key file only. Never log or print this."""
        return self._d

    def sign(self, message: bytes, uid: bytes = DEFAULT_UID, extra: bytes | None = None) -> bytes:
        """r‖s over SM3(Z ‖ message); k from the DRBG of the module docstring (`extra`: 32 seed-derived bytes)."""
        drbg = _KDrbg()
        signer = SM2(sk=self._d, uid=uid, rnd_fn=drbg)
        e = sm3(signer.get_entity_info() + message)
        drbg.instantiate(self._d, e, extra if extra is not None else os.urandom(32))
        return signer.sign_digest(e)

    def __repr__(self) -> str:
        return f"<SM2 private key of {self.public_key.fingerprint}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PrivateKey):
            return NotImplemented
        return hmac.compare_digest(self._d, other._d)

    def __hash__(self) -> int:
        return hash(self.public_key)

    def __reduce__(self):  # pickling would copy the key into places we cannot see
        raise TypeError("PrivateKey cannot be pickled")


def generate(random: Callable[[int], bytes]) -> PrivateKey:
    """A new key pair, its private scalar drawn from `random` (a seeded RandomSource repeats it)."""
    d, _ = SM2(rnd_fn=random).generate_keypair()
    return PrivateKey(d)


def z_value(point: bytes, uid: bytes = DEFAULT_UID) -> bytes:
    """Z for a public key in any of the forms `PublicKey.parse` takes."""
    return PublicKey.parse(point).z(uid)


class _KDrbg:
    """HMAC_DRBG with SM3 (NIST SP 800-90A as RFC 6979 §3.2 uses it): the byte source of one signature's k."""

    def __init__(self) -> None:
        self._k = b""
        self._v = b""

    def instantiate(self, d: bytes, e: bytes, extra: bytes) -> None:
        h1 = (int.from_bytes(e, "big") % N).to_bytes(32, "big")
        self._k, self._v = b"\x00" * 32, b"\x01" * 32
        for marker in (b"\x00", b"\x01"):
            self._k = self._mac(self._k, self._v + marker + d + h1 + extra)
            self._v = self._mac(self._k, self._v)

    def __call__(self, n: int) -> bytes:
        if not self._k:
            raise RuntimeError("SM2 asked for randomness before the signature's DRBG was seeded")
        out = b""
        while len(out) < n:
            self._v = self._mac(self._k, self._v)
            out += self._v
        # Reseed-free update between requests, so a rejected candidate never repeats (RFC 6979 step h.3).
        self._k = self._mac(self._k, self._v + b"\x00")
        self._v = self._mac(self._k, self._v)
        return out[:n]

    @staticmethod
    def _mac(key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, "sm3").digest()
