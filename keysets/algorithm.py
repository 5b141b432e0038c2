"""The two algorithm families of a T-Union application (decision D1) and their wire IDs."""
from __future__ import annotations

import enum

from .ciphers import BlockCipher, des, sm4, tdes


class Algorithm(str, enum.Enum):
    """`3des` (algorithm ID 00) or `sm4` (ID 04), as named in key sets and outcomes."""

    TDES = "3des"
    SM4 = "sm4"

    @property
    def wire_id(self) -> int:
        """The algorithm byte of INITIALIZE responses and of PSAM 8070 input."""
        return 0x00 if self is Algorithm.TDES else 0x04

    @property
    def block_size(self) -> int:
        return 8 if self is Algorithm.TDES else 16

    @classmethod
    def from_wire(cls, value: int) -> "Algorithm":
        """Map an INITIALIZE algorithm byte back; unknown bytes are refused by value."""
        if value == 0x00:
            return cls.TDES
        if value == 0x04:
            return cls.SM4
        raise ValueError(f"algorithm ID {value:02X} is neither 00 (3DES) nor 04 (SM4)")

    @classmethod
    def parse(cls, text: str) -> "Algorithm":
        try:
            return cls(text.lower())
        except ValueError:
            raise ValueError(f"algorithm {text!r} is neither '3des' nor 'sm4'") from None

    def cipher(self, key: bytes) -> BlockCipher:
        """The block cipher for a key of this family: 8-byte 3DES-family keys are single DES."""
        if self is Algorithm.SM4:
            return sm4(key)
        return des(key) if len(key) == 8 else tdes(key)

    def __str__(self) -> str:
        return self.value
