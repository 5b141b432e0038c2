"""Time in the QR code: Unix seconds UTC in the code (Q3), China time for MMYY dates (Q5) and for people.

A code's 授权过期时间 and 二维码生成时间 are Unix seconds and are compared as such. Certificate and root
expiry dates are MMYY and hold through the last day of that month in China time. On the command line a
time is either Unix seconds or ``YYYYMMDDhhmmss`` China time (the project's ``--clock`` form).
"""
from __future__ import annotations

import datetime as _dt

from ykt_card.clock import CHINA_TZ, parse_datetime14

__all__ = ["parse_time", "china_month", "month_not_before", "format_unix", "mmyy_text"]


def parse_time(text: str) -> int:
    """Unix seconds from `text`: 14 digits are YYYYMMDDhhmmss China time, other digits are Unix seconds."""
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"time {text!r}: expected Unix seconds or YYYYMMDDhhmmss (China time)")
    if len(text) == 14:
        return int(parse_datetime14(text).timestamp())
    if len(text) > 11:
        raise ValueError(f"time {text!r}: expected Unix seconds or YYYYMMDDhhmmss (China time)")
    return int(text)


def china_month(unix: int) -> tuple[int, int]:
    """(year, month) of a Unix time in China time."""
    t = _dt.datetime.fromtimestamp(unix, CHINA_TZ)
    return t.year, t.month


def month_not_before(expiry: tuple[int, int], unix: int) -> bool:
    """Q5: an MMYY date is valid through the last day of its month, China time."""
    return expiry >= china_month(unix)


def format_unix(unix: int) -> str:
    """`2020-06-23 14:18:20 CST (1592893100)`: for people, next to the number the code holds."""
    t = _dt.datetime.fromtimestamp(unix, CHINA_TZ)
    return f"{t:%Y-%m-%d %H:%M:%S} CST ({unix})"


def mmyy_text(raw: bytes) -> str:
    """`06/2020` for BCD 0620."""
    text = raw.hex().upper()
    return f"{text[:2]}/20{text[2:]}"
