"""Injectable randomness and clock, so a flow, a suite run or a report repeats byte for byte.

Every layer that needs a random challenge or the time takes one of these instead of calling `os.urandom`
or `datetime.now` itself: `--seed N` and `--clock YYYYMMDDhhmmss` on the command line become a
`RandomSource.seeded(N)` and a `SimulatedClock`.
"""
from __future__ import annotations

import datetime as _dt
import os
import random
from typing import Protocol

CHINA_TZ = _dt.timezone(_dt.timedelta(hours=8), "CST")
"""T-Union dates and times on cards and in clearing files are China Standard Time."""


class RandomSource:
    """Bytes for card challenges and transaction randoms: the OS by default, a seeded PRNG for repeatable runs."""

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self._prng = random.Random(seed) if seed is not None else None

    @classmethod
    def seeded(cls, seed: int) -> "RandomSource":
        return cls(seed)

    def __call__(self, n: int) -> bytes:
        if self._prng is None:
            return os.urandom(n)
        return self._prng.randbytes(n)

    def fork(self, label: str) -> "RandomSource":
        """An independent source for another part (card, PSAM) that still repeats under one seed."""
        if self.seed is None:
            return RandomSource()
        return RandomSource(random.Random(f"{self.seed}:{label}").getrandbits(64))

    def __repr__(self) -> str:
        return f"RandomSource(seed={self.seed})" if self.seed is not None else "RandomSource(os)"


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
