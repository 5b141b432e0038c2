"""Which PSAM terminal sequences have been seen: one bit per sequence number, per terminal.

The duplicate check by terminal and terminal sequence is the one check across cards, so it cannot live in a
card's partition. A set of (terminal, sequence) pairs would grow by some 60 bytes a record; a PSAM counts its
sequence up by one per purchase, so a bitmap over each terminal's range costs one bit a record and finds the
pairs seen twice — within a worker as the bits are set, between workers and earlier runs by AND-ing bitmaps.
Only those few candidate pairs then go to the store, which decides which record is the original.

A sequence far outside a terminal's range (more than `MAX_SPAN` away: a broken or hostile record) is kept in
a small set instead, so no record can make a bitmap large.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = ["SeqBits", "SeqMap", "collisions", "merge"]

MAX_SPAN = 1 << 24            # bits per terminal window (2 MB); beyond it, the overflow set


class SeqBits:
    """The sequences of one terminal: a bit window [base, base + 8 * len(bits)) and an overflow set."""

    __slots__ = ("base", "bits", "extra")

    def __init__(self, base: int | None = None, bits: bytes = b"", extra: Iterable[int] = ()) -> None:
        self.base = base
        self.bits = bytearray(bits)
        self.extra = set(extra)

    def add(self, seq: int) -> bool:
        """Mark `seq`; True when it was marked already."""
        if self.base is None:
            self.base = max(0, (seq >> 3 << 3) - 4096)
        off = seq - self.base
        if off < 0 or off >= len(self.bits) << 3:
            if not self._reach(seq):
                if seq in self.extra:
                    return True
                self.extra.add(seq)
                return False
            off = seq - self.base
        byte, bit = off >> 3, 1 << (off & 7)
        if self.bits[byte] & bit:
            return True
        self.bits[byte] |= bit
        return False

    def _reach(self, seq: int) -> bool:
        """Grow the window to cover `seq` (in steps, both ways) unless the span would pass MAX_SPAN."""
        low = min(self.base, max(0, (seq >> 3 << 3) - 4096))
        high = max(self.base + (len(self.bits) << 3), seq + 1)
        high = low + ((high - low + 8191) >> 13 << 13)      # whole 1 KB steps
        if high - low > MAX_SPAN:
            return False
        grown = bytearray((high - low) >> 3)
        start = (self.base - low) >> 3
        grown[start:start + len(self.bits)] = self.bits
        self.base, self.bits = low, grown
        return True

    def as_int(self) -> int:
        """The window as an integer whose bit (seq - base) is set for each sequence seen."""
        return int.from_bytes(self.bits, "little")

    def sequences(self) -> Iterator[int]:
        value = self.as_int()
        while value:
            low = value & -value
            yield self.base + low.bit_length() - 1
            value ^= low
        yield from sorted(self.extra)

    def state(self) -> tuple[int | None, bytes, list[int]]:
        return self.base, bytes(self.bits), sorted(self.extra)


SeqMap = dict[str, SeqBits]


def _overlap(a: SeqBits, b: SeqBits) -> set[int]:
    """Sequences marked in both."""
    found = a.extra & b.extra
    found |= {s for s in a.extra if _has(b, s)} | {s for s in b.extra if _has(a, s)}
    if a.base is None or b.base is None or not a.bits or not b.bits:
        return found
    low = min(a.base, b.base)
    both = (a.as_int() << (a.base - low)) & (b.as_int() << (b.base - low))
    while both:
        bit = both & -both
        found.add(low + bit.bit_length() - 1)
        both ^= bit
    return found


def _has(m: SeqBits, seq: int) -> bool:
    if seq in m.extra:
        return True
    if m.base is None:
        return False
    off = seq - m.base
    return 0 <= off < len(m.bits) << 3 and bool(m.bits[off >> 3] & (1 << (off & 7)))


def collisions(maps: list[Mapping[str, SeqBits]]) -> set[tuple[str, int]]:
    """(terminal, sequence) pairs marked in more than one of the maps (workers, earlier runs)."""
    found: set[tuple[str, int]] = set()
    for i, a in enumerate(maps):
        for b in maps[i + 1:]:
            small, large = (a, b) if len(a) <= len(b) else (b, a)
            for terminal, bits in small.items():
                other = large.get(terminal)
                if other is not None:
                    found |= {(terminal, s) for s in _overlap(bits, other)}
    return found


def merge(into: dict[str, SeqBits], other: Mapping[str, SeqBits]) -> None:
    """Add every sequence of `other` to `into` (bitmaps OR-ed whole where the windows allow)."""
    for terminal, bits in other.items():
        target = into.get(terminal)
        if target is None or target.base is None:
            into[terminal] = SeqBits(bits.base, bits.bits, bits.extra)
            continue
        target.extra |= bits.extra
        if bits.base is None:
            continue
        low = min(target.base, bits.base)
        high = max(target.base + (len(target.bits) << 3), bits.base + (len(bits.bits) << 3))
        if high - low <= MAX_SPAN:
            value = (target.as_int() << (target.base - low)) | (bits.as_int() << (bits.base - low))
            target.base, target.bits = low, bytearray(value.to_bytes((high - low + 7) >> 3, "little"))
        else:
            for seq in bits.sequences():
                target.add(seq)
