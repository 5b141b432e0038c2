"""What every benchmark script shares (a helper, not a benchmark: files starting with `_` are not run).

`rate` times a benchmark loop: the best rate of three runs of a given duration (less noise on a shared
machine). `Upkeep` is what keeps a loop able to run for any duration: a loop refreshes what a long run
uses up (a fresh card before its counter reaches FFFF or its balance runs out, a fresh PSAM before its
terminal sequence does) inside `Upkeep.refresh`, which counts why and for how long; `rate` leaves that
time out, so the rate is the rate of the transactions alone.

`--near-limits` proves the refreshes: each card (or PSAM) is personalised at the last state its loop's
refresh check still lets through, found by asking that very check (`last_passing`), so a check that is
one transaction too lax makes the card refuse and the run fail. `standard_arguments` gives every
benchmark the same options (`--seconds`, `--near-limits`), which `make bench` and
tests/test_benchmarks.py use; `report_upkeep` prints the refreshes and checks that a near-limits run
crossed every one.
"""
from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["COUNTER_LIMIT", "Upkeep", "rate", "last_passing", "standard_arguments", "Loops", "report_upkeep"]

COUNTER_LIMIT = 0xFFFF
"""A card refuses INITIALIZE once its online or offline counter (2 bytes) has reached FFFF."""


class Upkeep:
    """Refreshes between transactions: how many for each reason (a limit's name), and the seconds spent."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.reasons: Counter[str] = Counter()

    @contextmanager
    def refresh(self, reason: str) -> Iterator[None]:
        """Time the refresh done in the `with` block and count it under `reason`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.reasons[reason] += 1

    def summary(self) -> str:
        """`offline counter 3, balance 2` (most frequent first), or `none`."""
        return ", ".join(f"{why} {n}" for why, n in self.reasons.most_common()) or "none"


def rate(fn: Callable[[], object], seconds: float, batch: int = 50, per_call: int = 1,
         upkeep: Upkeep | None = None) -> float:
    """Operations per second: `fn` called in batches until `seconds` pass, `per_call` operations per call.

    Time that `fn` spends in `upkeep.refresh` is left out of both the duration and the rate.
    """
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        paused = upkeep.seconds if upkeep is not None else 0.0
        while True:
            for _ in range(batch):
                fn()
            n += batch * per_call
            elapsed = time.perf_counter() - start - ((upkeep.seconds - paused) if upkeep is not None else 0.0)
            if elapsed >= seconds:
                break
        best = max(best, n / elapsed)
    return best


def last_passing(passes: Callable[[int], bool], lo: int, hi: int) -> int:
    """The largest x in lo..hi with passes(x), for a `passes` that holds up to some x and fails above it.

    Near-limits personalisation asks a loop's own refresh check where its boundary is (binary search).
    """
    if not passes(lo):
        raise ValueError(f"no value in {lo}..{hi} passes the check")
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if passes(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def standard_arguments(description: str, seconds: float) -> argparse.ArgumentParser:
    """The options every benchmark takes; `seconds` is the default duration of each timed run."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--seconds", type=_positive, default=seconds,
                    help=f"duration of each timed run (three per measurement; default {seconds})")
    ap.add_argument("--near-limits", action="store_true",
                    help="personalise every card and PSAM at the last state before a refresh (counters next "
                         "to FFFF, balances at their margins, cards about to expire), so that even a short "
                         "run crosses every refresh path; the rates then mean nothing")
    return ap


Loops = dict[str, tuple[Upkeep, tuple[str, ...]]]
"""A benchmark's loops by name: each loop's upkeep and the refresh reasons a long run of it needs."""


def report_upkeep(loops: Loops, near_limits: bool) -> int:
    """Print each loop's refreshes; with `near_limits`, check that each loop crossed every refresh it
    needs. Returns the exit status: 1 when a near-limits run left a refresh path uncrossed, else 0."""
    print("refreshes, left out of the rates:")
    width = max(map(len, loops), default=0)
    for name, (upkeep, _) in loops.items():
        print(f"  {name:{width}}  {upkeep.summary()}")
    if not near_limits:
        return 0
    paths = sum(len(reasons) for _, reasons in loops.values())
    missing = [f"{name}: {why}" for name, (upkeep, reasons) in loops.items() for why in reasons
               if upkeep.reasons[why] == 0]
    if missing:
        print(f"near limits: refresh paths NOT crossed: {'; '.join(missing)}")
        return 1
    if paths == 0:
        print("near limits: no refresh paths (nothing here runs out)")
    else:
        print(f"near limits: every refresh path crossed ({paths} paths in {len(loops)} loops)")
    return 0


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number of seconds above 0")
    return value
