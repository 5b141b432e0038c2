"""Showing a code as the phone does: a QR symbol in the terminal, as PNG or as SVG (segno).

segno is a pure-Python, dependency-free QR encoder that writes terminal text, PNG and SVG itself. The code
goes in byte mode (it is binary), error correction level M, no automatic boost, so that one code gives
one symbol (version 14 for 332 bytes) byte for byte on every run.
"""
from __future__ import annotations

import io
from pathlib import Path

import segno

__all__ = ["symbol", "terminal_text", "save_png", "save_svg", "ERROR_LEVEL"]

ERROR_LEVEL = "m"


def symbol(code: bytes) -> segno.QRCode:
    """The QR symbol of a code's raw bytes."""
    return segno.make_qr(bytes(code), mode="byte", error=ERROR_LEVEL, boost_error=False)


def terminal_text(code: bytes) -> str:
    """The symbol drawn with half-block characters (two modules per line), as text for a terminal."""
    out = io.StringIO()
    symbol(code).terminal(out=out, compact=True)
    return out.getvalue()


def save_png(code: bytes, path: str | Path, scale: int = 4) -> None:
    """A PNG of the symbol, `scale` pixels per module, with the standard 4-module quiet zone."""
    symbol(code).save(str(path), kind="png", scale=scale, border=4)


def save_svg(code: bytes, path: str | Path, scale: int = 4) -> None:
    symbol(code).save(str(path), kind="svg", scale=scale, border=4)
