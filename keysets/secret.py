"""A key value that cannot leak by accident: no repr, str or format shows it, only its KCV."""
from __future__ import annotations

import hmac

from .algorithm import Algorithm
from .derive import kcv


class SecretKey:
    """Key bytes plus the algorithm they belong to; printing one shows `<3des key KCV 1A2B3C>`."""

    __slots__ = ("_value", "algorithm")

    def __init__(self, algorithm: Algorithm, value: bytes) -> None:
        if len(value) != 16:
            raise ValueError(f"{algorithm.value} key must be 16 bytes, got {len(value)}")
        self._value = bytes(value)
        self.algorithm = algorithm

    @property
    def value(self) -> bytes:
        """The key bytes, for the crypto functions only. Never log or print this."""
        return self._value

    @property
    def kcv(self) -> str:
        """Key check value as 6 upper-case hex digits."""
        return kcv(self.algorithm, self._value).hex().upper()

    def __repr__(self) -> str:
        return f"<{self.algorithm.value} key KCV {self.kcv}>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretKey):
            return NotImplemented
        return self.algorithm is other.algorithm and hmac.compare_digest(self._value, other._value)

    def __hash__(self) -> int:
        return hash((self.algorithm, self.kcv))

    def __reduce__(self):  # pickling would copy the key into places we cannot see
        raise TypeError("SecretKey cannot be pickled")
