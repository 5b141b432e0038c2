"""Reading a code back from a photo or screenshot (zxing-cpp), and from text as scanners hand it over.

zxing-cpp is the maintained C++ port of ZXing with its own Python wheels; it finds a QR symbol in a
skewed, scaled or noisy picture and returns the raw bytes of a binary (byte-mode) symbol, where zbar
would re-encode them as text. Pillow opens the picture (PNG, JPEG, …).

Some apps put the code in base64 text instead of raw bytes (§1.1): `code_from_text` takes hex or
base64, and `decode_image` turns a base64 symbol into the raw code too.
"""
from __future__ import annotations

import base64
import binascii
import re
from pathlib import Path

__all__ = ["ScanError", "decode_image", "code_from_text"]


class ScanError(ValueError):
    """No usable code in a picture or a text: names the file or the argument and the reason."""


def code_from_text(text: str) -> bytes:
    """A code written as hex (spaces allowed) or as base64."""
    compact = re.sub(r"\s+", "", text)
    if compact and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", compact):
        return bytes.fromhex(compact)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        data = b""
    if not data:
        raise ScanError("CODE: neither hex nor base64")
    return data


def _maybe_base64(data: bytes) -> bytes:
    """Raw bytes of a symbol; a symbol that holds base64 text of a plausible code is decoded."""
    if data[:1] and data[0] >= 0x80:
        return data
    try:
        decoded = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return data
    return decoded if decoded[:1] and decoded[0] >= 0x80 else data


def decode_image(path: str | Path) -> bytes:
    """The code in the picture at `path`; ScanError naming the file when there is none (or two different)."""
    import zxingcpp
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    try:
        with Image.open(p) as image:
            image.load()
            found = zxingcpp.read_barcodes(image.convert("L"), formats=zxingcpp.BarcodeFormat.QRCode)
    except FileNotFoundError:
        raise ScanError(f"{p}: no such image file") from None
    except UnidentifiedImageError:
        raise ScanError(f"{p}: not an image Pillow can read") from None
    except OSError as exc:
        raise ScanError(f"{p}: cannot read: {exc}") from None
    codes = {bytes(b.bytes) for b in found if b.valid}
    if not codes:
        raise ScanError(f"{p}: no QR code found in the picture")
    if len(codes) > 1:
        raise ScanError(f"{p}: {len(codes)} different QR codes in the picture; crop it to one")
    return _maybe_base64(codes.pop())
