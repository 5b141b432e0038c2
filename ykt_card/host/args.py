"""Argument checks of the host APIs: precise errors naming the argument, before anything is sent to a card."""
from __future__ import annotations

from typing import Any


def int_in(value: Any, name: str, low: int = 0, high: int = 0xFF) -> int:
    """An int (not a bool) within low..high."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{name} {value} out of range {low}..{high}")
    return value


def bytes_of(value: Any, name: str, *sizes: int) -> bytes:
    """Bytes (or a bytes-like object) of one of the given lengths (any length when none is given)."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError(f"{name} must be bytes, not {type(value).__name__}")
    value = bytes(value)
    if sizes and len(value) not in sizes:
        raise ValueError(f"{name} must be {' or '.join(map(str, sizes))} bytes, got {len(value)}")
    return value
