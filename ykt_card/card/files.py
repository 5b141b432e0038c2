"""The three kinds of elementary file a T-Union card holds, the way its EEPROM holds them.

Their sizes and SFIs come from the layouts (ykt_card.layouts); these classes only keep bytes. A
`CyclicFile` keeps its physical slots and a head so that every write to it is absolute (slot N := data,
head := N), which the commit journal needs (D7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["BinaryFile", "CyclicFile", "RecordFile", "ElementaryFile"]


@dataclass(slots=True)
class BinaryFile:
    """A transparent EF of fixed size (EF15, EF16, EF17)."""

    sfi: int
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(slots=True)
class CyclicFile:
    """A cyclic EF of fixed-size records (EF18, EF1E): physical slots and a head.

    Record 1 is the newest (`slots[head]`), record 2 the one before, and so on. A new record goes to
    the slot after the head; when the file is full it overwrites the oldest.
    """

    sfi: int
    record_size: int
    capacity: int
    slots: list[bytes | None]
    head: int = -1
    count: int = 0

    @classmethod
    def empty(cls, sfi: int, record_size: int, capacity: int) -> CyclicFile:
        return cls(sfi, record_size, capacity, [None] * capacity)

    def record(self, number: int) -> bytes | None:
        """Record `number` (1 = newest), or None when the file holds fewer records."""
        if not 1 <= number <= self.count:
            return None
        return self.slots[(self.head - number + 1) % self.capacity]

    def slot_of(self, number: int) -> int:
        """The physical slot of record `number` (which must exist)."""
        return (self.head - number + 1) % self.capacity

    def records(self) -> list[bytes]:
        """All records, newest first."""
        return [self.record(n) for n in range(1, self.count + 1)]  # type: ignore[misc]

    def next_position(self, head: int, count: int) -> tuple[int, int]:
        """(slot, count) after appending one record to a file whose head and count are given."""
        return (head + 1) % self.capacity, min(count + 1, self.capacity)


@dataclass(slots=True)
class RecordFile:
    """A record EF whose records are addressed by record ID, each with its own fixed length (EF1A).

    Records exist from personalisation on (D9); UPDATE CAPP DATA CACHE and UPDATE RECORD replace a
    record with data of the same length and never create one.
    """

    sfi: int
    records: dict[int, bytes]


ElementaryFile = Union[BinaryFile, CyclicFile, RecordFile]
