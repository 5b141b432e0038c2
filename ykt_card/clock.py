"""T-Union time: China Standard Time, the injectable clock, and BCD date-times as cards carry them.

Cards, records and clearing files date everything in China time as BCD `YYYYMMDDhhmmss`. Every layer
that needs the time takes a `Clock` instead of calling `datetime.now` itself: `--clock YYYYMMDDhhmmss`
on the command line becomes a `SimulatedClock`, so that a run repeats byte for byte.
"""
from __future__ import annotations

import datetime as _dt
from typing import Protocol

__all__ = ["CHINA_TZ", "Clock", "SystemClock", "SimulatedClock", "parse_datetime14", "bcd_datetime"]

CHINA_TZ = _dt.timezone(_dt.timedelta(hours=8), "CST")
"""T-Union dates and times on cards and in clearing files are China Standard Time."""


class Clock(Protocol):
    """China-time wall clock of a terminal, a load host or a card tool."""

    def now(self) -> _dt.datetime:
        ...

    def advance(self, seconds: float) -> None:
        ...


class SystemClock:
    """The real clock, in China time."""

    def now(self) -> _dt.datetime:
        return _dt.datetime.now(CHINA_TZ).replace(microsecond=0)

    def advance(self, seconds: float) -> None:
        """Real time cannot be moved; waiting is the caller's business."""


class SimulatedClock:
    """A fixed start time that advances by `step` seconds on every reading and on explicit `advance` calls."""

    def __init__(self, start: _dt.datetime, step: float = 1.0) -> None:
        if start.tzinfo is None:
            start = start.replace(tzinfo=CHINA_TZ)
        self._t = start
        self.step = step

    @classmethod
    def parse(cls, text: str, step: float = 1.0) -> "SimulatedClock":
        """From `YYYYMMDDhhmmss` (the --clock option)."""
        return cls(parse_datetime14(text), step)

    def now(self) -> _dt.datetime:
        t = self._t
        self._t = t + _dt.timedelta(seconds=self.step)
        return t

    def peek(self) -> _dt.datetime:
        return self._t

    def advance(self, seconds: float) -> None:
        self._t += _dt.timedelta(seconds=seconds)

    def __repr__(self) -> str:
        return f"SimulatedClock({self._t:%Y%m%d%H%M%S})"


def parse_datetime14(text: str) -> _dt.datetime:
    """`YYYYMMDDhhmmss` → aware datetime in China time; a precise error otherwise."""
    if len(text) != 14 or not text.isdigit():
        raise ValueError(f"clock {text!r}: expected 14 digits YYYYMMDDhhmmss")
    try:
        return _dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=CHINA_TZ)
    except ValueError as exc:
        raise ValueError(f"clock {text!r}: {exc}") from None


def bcd_datetime(t: _dt.datetime) -> bytes:
    """7 BCD bytes YYYYMMDDhhmmss, as APDUs and records carry date-times."""
    return bytes.fromhex(t.astimezone(CHINA_TZ).strftime("%Y%m%d%H%M%S"))
