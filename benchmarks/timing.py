"""One way to time a benchmark loop: best rate of three runs of a given duration (less noise on a shared machine)."""
from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], seconds: float, batch: int = 50, per_call: int = 1) -> float:
    """Operations per second: `fn` called in batches until `seconds` pass, `per_call` operations per call."""
    best = 0.0
    for _ in range(3):
        n, start = 0, time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            n += batch * per_call
            now = time.perf_counter()
            if now - start >= seconds:
                break
        best = max(best, n / (now - start))
    return best
