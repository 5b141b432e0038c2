"""Decode a raw file, record or FCI from a dump or a sniffed trace: the logic behind ``ykt decode``.

Someone holding ``00B0950000`` output or a trace line pastes the hex; this picks the layout (EF1A by
the record number in byte 1, EF1E by the layout the user names), tolerates grouping characters and a
trailing status word, and returns plain data (the command line renders it, tools/render.py). Every fault
is a LayoutError that names the field (a wrong length, a bad BCD digit, a stray character in the hex),
never a traceback.
"""
from __future__ import annotations

import re
from typing import Any

from ykt_card.layouts import (EF15, EF16, EF17, EF18, EF1EA, EF1EB, AdfFci, FileLayout, LayoutError, PpseFci,
                              PsamEF15, PsamEF16, PsamEF17, for_1a_record, record_size)

__all__ = ["CHOICES", "parse_hex", "decode_bytes", "decode_ef"]

#: What ``ykt decode EF`` accepts (any case; an 'EF' prefix and '-'/'_' are ignored).
CHOICES = ("ppse", "fci", "15", "16", "17", "18", "1A", "1E", "psam15", "psam16", "psam17")

_FIXED: dict[str, type[FileLayout]] = {
    "ppse": PpseFci, "fci": AdfFci, "15": EF15, "16": EF16, "17": EF17, "18": EF18,
    "psam15": PsamEF15, "psam16": PsamEF16, "psam17": PsamEF17,
}
_SEPARATORS = re.compile(r"[\s:|]")
# Status words that may follow data in a response: 9000, and the warnings 62xx/63xx (a blocked
# application still returns its FCI with 6283).
_SW1_WITH_DATA = (0x90, 0x62, 0x63)


def parse_hex(text: str) -> bytes:
    """Hex digits, optionally grouped with spaces, colons or '|' (as the reference writes samples)."""
    if not isinstance(text, str):
        raise LayoutError("input", "hex", f"expected text, got {type(text).__name__}")
    digits = []
    for i, ch in enumerate(text):
        if _SEPARATORS.fullmatch(ch):
            continue
        if ch not in "0123456789abcdefABCDEF":
            raise LayoutError("input", "hex", f"not a hex digit {ch!r} at character {i + 1}")
        digits.append(ch)
    if not digits:
        raise LayoutError("input", "hex", "no hex digits")
    if len(digits) % 2:
        raise LayoutError("input", "hex", f"odd number of hex digits ({len(digits)})")
    return bytes.fromhex("".join(digits))


def _normalise(which: str) -> str:
    key = re.sub(r"[\s_\-]", "", str(which)).lower()
    if key.startswith("psam"):
        rest = key[4:].removeprefix("ef")
        return "psam" + rest
    return key.removeprefix("ef").removeprefix("0x")


def _layout_for(which: str, raw: bytes, layout: str) -> type[FileLayout]:
    key = _normalise(which)
    if key in _FIXED:
        return _FIXED[key]
    if key == "1a":
        if len(raw) < 2:
            raise LayoutError("EF1A", None, f"wrong length {len(raw)} bytes, expected "
                                            f"{record_size(0x01)} (or the size of its record number)")
        return for_1a_record(raw[1])
    if key == "1e":
        return EF1EA if layout == "A" else EF1EB
    raise LayoutError("decode", "EF", f"unknown file {which!r}; choose one of {', '.join(CHOICES)}")


def decode_bytes(which: str, raw: bytes, layout: str = "A") -> dict[str, Any]:
    """Decode ``raw`` as file ``which`` (see CHOICES); EF1E uses ``layout`` 'A' or 'B'.

    Returns ``{"file", "title", "length", "fields"}`` plus ``"sw"`` when a status word followed the
    data. Raises LayoutError naming the field at fault.
    """
    if not isinstance(layout, str) or layout.upper() not in ("A", "B"):
        raise LayoutError("decode", "layout", f"must be A or B, got {layout!r}")
    cls = _layout_for(which, raw, layout.upper())
    sw = None
    expected = cls.expected_size(raw)
    if expected is not None and len(raw) == expected + 2 and raw[-2] in _SW1_WITH_DATA:
        raw, sw = raw[:-2], raw[-2:].hex().upper()
    out: dict[str, Any] = {"file": cls.name, "title": cls.title, "length": len(raw),
                           "fields": cls.decode(raw)}
    if sw is not None:
        out["sw"] = sw
    return out


def decode_ef(which: str, hex_text: str, layout: str = "A") -> dict[str, Any]:
    """``ykt decode EF HEX [--layout A|B]``: decode_bytes on hex text (spaces and colons allowed)."""
    return decode_bytes(which, parse_hex(hex_text), layout)
