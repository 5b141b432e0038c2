"""Rebuilding a key from the components a key ceremony hands over (XOR of two or three parts).

Each component arrives with its own KCV, so a mistyped component is caught before it is combined.
"""
from __future__ import annotations

from .algorithm import Algorithm
from .secret import SecretKey


class ComponentError(ValueError):
    """A component refused: names which one (1-based) and why, never its value."""


def parse_component(text: str, position: int) -> tuple[bytes, str]:
    """`HEX:KCV` → (bytes, KCV upper-case)."""
    value, sep, check = text.partition(":")
    if not sep:
        raise ComponentError(f"component {position}: expected HEX:KCV")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise ComponentError(f"component {position}: value is not hexadecimal") from None
    if len(raw) != 16:
        raise ComponentError(f"component {position}: must be 16 bytes, got {len(raw)}")
    if len(check) != 6:
        raise ComponentError(f"component {position}: KCV must be 6 hex digits")
    return raw, check.upper()


def compose(algorithm: Algorithm, components: list[str]) -> SecretKey:
    """XOR two or three KCV-checked components into one key."""
    if not 2 <= len(components) <= 3:
        raise ComponentError(f"a key is composed of 2 or 3 components, got {len(components)}")
    result = bytes(16)
    for position, text in enumerate(components, start=1):
        raw, check = parse_component(text, position)
        actual = SecretKey(algorithm, raw).kcv
        if actual != check:
            raise ComponentError(f"component {position}: KCV mismatch: given {check}, component gives {actual}")
        result = bytes(a ^ b for a, b in zip(result, raw))
    return SecretKey(algorithm, result)
