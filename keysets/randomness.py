"""Injectable randomness for card challenges, transaction randoms and test keys.

Every part that needs random bytes takes a `RandomSource` instead of calling `os.urandom` itself, so that
`--seed N` on the command line makes a flow, a suite run or a report repeat byte for byte. It lives with
the cryptography because what it feeds (challenges, INITIALIZE randoms, session keys) is cryptographic.
"""
from __future__ import annotations

import os
import random

__all__ = ["RandomSource"]


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
