"""The changes a card commits (D7): one small immutable type per kind of write.

A write is absolute (slot N := data, head := N, balance := 1200), so applying it twice is harmless, which
is what lets the journal roll a torn commit forward after a power cut. Each kind knows three things:

- ``apply(state)``: make the change (the card OS's commit path; nothing is checked there);
- ``problem(state)``: why it could not apply to ``state`` (a journal read from an image is checked
  with it before it is trusted, so recovery can never fail half-way), or None;
- ``to_doc()``: its JSON form in the image's journal, ``[tag, ...]``; the image loader
  (ykt_card.card.image) reads that form back into the same type.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from keysets import KeyEntry, KeySet, SecretKey

from ykt_card.card.files import BinaryFile, CyclicFile, RecordFile
from ykt_card.proof import PROOF_KINDS, PROOF_TYPES, Proof

if TYPE_CHECKING:
    from ykt_card.card.state import CardState, Lock

__all__ = [
    "Write", "PurseWrite", "BinaryWrite", "SlotWrite", "RingWrite", "RecordWrite", "ProofWrite",
    "PinTriesWrite", "LockWrite", "KeyWrite", "TransportKeyWrite", "WRITE_KINDS", "PURSE_FIELDS",
    "proof_doc", "key_doc",
]

PURSE_FIELDS = ("balance", "overdraft_limit", "max_balance", "online_counter", "offline_counter")


def _hex(data: bytes) -> str:
    return data.hex().upper()


def proof_doc(proof: Proof) -> dict[str, Any]:
    """A proof as images write it: type as 2 hex digits, counter, MAC2 and TAC as hex."""
    return {"type": f"{proof.tx_type:02X}", "counter": proof.counter, "mac2": _hex(proof.mac2),
            "tac": _hex(proof.tac)}


def key_doc(key: SecretKey) -> dict[str, Any]:
    """A key as images write it (in clear: test cards only, D15) with its KCV."""
    return {"algorithm": key.algorithm.value, "value": _hex(key.value), "kcv": key.kcv}


_W = TypeVar("_W", bound=type)


def _write(cls: _W) -> _W:
    """`@dataclass(frozen=True, slots=True)`, built faster: __init__ stores each field through its slot's
    own descriptor instead of `object.__setattr__`.

    A DEBIT commits eight writes; a frozen dataclass's __init__ costs about three times a tuple's, and
    storing through the slot descriptors takes most of that back (the card's commit stays fast, D7).
    Fields, equality, repr and immutability are the dataclass's own.
    """
    cls = dataclass(frozen=True, slots=True)(cls)
    names = [f.name for f in fields(cls)]
    env = {f"_set_{name}": getattr(cls, name).__set__ for name in names}
    body = "".join(f"    _set_{name}(self, {name})\n" for name in names)
    exec(f"def __init__(self, {', '.join(names)}):\n{body}", env)  # noqa: S102 - as dataclasses does
    env["__init__"].__qualname__ = f"{cls.__qualname__}.__init__"
    cls.__init__ = env["__init__"]  # type: ignore[misc]
    return cls


class Write:
    """One absolute change of a card state (see the module docstring)."""

    __slots__ = ()
    tag: ClassVar[str]

    def apply(self, state: CardState) -> None:
        raise NotImplementedError

    def problem(self, state: CardState) -> str | None:
        raise NotImplementedError

    def to_doc(self) -> list[Any]:
        raise NotImplementedError


@_write
class PurseWrite(Write):
    """A purse field := value (balance, counters, limits)."""

    tag: ClassVar[str] = "purse"
    field: str
    value: int

    def apply(self, state: CardState) -> None:
        setattr(state.purse, self.field, self.value)

    def problem(self, state: CardState) -> str | None:
        if self.field not in PURSE_FIELDS:
            return f"purse field {self.field!r} unknown (known: {', '.join(PURSE_FIELDS)})"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.field, self.value]


@_write
class BinaryWrite(Write):
    """Bytes of a binary file from `offset` on."""

    tag: ClassVar[str] = "binary"
    sfi: int
    offset: int
    data: bytes

    def apply(self, state: CardState) -> None:
        f = state.files[self.sfi]
        old = f.data  # type: ignore[union-attr]
        f.data = old[:self.offset] + self.data + old[self.offset + len(self.data):]  # type: ignore[union-attr]

    def problem(self, state: CardState) -> str | None:
        f = state.files.get(self.sfi)
        if not isinstance(f, BinaryFile):
            return f"binary write needs a binary file at SFI {self.sfi:02X}"
        if self.offset + len(self.data) > f.size:
            return f"binary write of {len(self.data)} bytes at {self.offset} runs past the {f.size}-byte file"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.sfi, self.offset, _hex(self.data)]


@_write
class SlotWrite(Write):
    """A physical slot of a cyclic file := one record."""

    tag: ClassVar[str] = "slot"
    sfi: int
    slot: int
    data: bytes

    def apply(self, state: CardState) -> None:
        state.files[self.sfi].slots[self.slot] = self.data  # type: ignore[union-attr]

    def problem(self, state: CardState) -> str | None:
        f = state.files.get(self.sfi)
        if not isinstance(f, CyclicFile):
            return f"slot write needs a cyclic file at SFI {self.sfi:02X}"
        if not self.slot < f.capacity or len(self.data) != f.record_size:
            return f"slot write outside the {f.capacity} slots or not {f.record_size} bytes"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.sfi, self.slot, _hex(self.data)]


@_write
class RingWrite(Write):
    """The head slot and the record count of a cyclic file."""

    tag: ClassVar[str] = "ring"
    sfi: int
    head: int
    count: int

    def apply(self, state: CardState) -> None:
        f = state.files[self.sfi]
        f.head = self.head  # type: ignore[union-attr]
        f.count = self.count  # type: ignore[union-attr]

    def problem(self, state: CardState) -> str | None:
        f = state.files.get(self.sfi)
        if not isinstance(f, CyclicFile):
            return f"ring write needs a cyclic file at SFI {self.sfi:02X}"
        if not self.head < f.capacity or not 1 <= self.count <= f.capacity:
            return f"ring head {self.head} or count {self.count} outside the file's {f.capacity} slots"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.sfi, self.head, self.count]


@_write
class RecordWrite(Write):
    """A record of a record-ID file (EF1A) := data of its length."""

    tag: ClassVar[str] = "record"
    sfi: int
    record_id: int
    data: bytes

    def apply(self, state: CardState) -> None:
        state.files[self.sfi].records[self.record_id] = self.data  # type: ignore[union-attr]

    def problem(self, state: CardState) -> str | None:
        f = state.files.get(self.sfi)
        if not isinstance(f, RecordFile):
            return f"record write needs a record-ID file at SFI {self.sfi:02X}"
        old = f.records.get(self.record_id)
        if old is None or len(old) != len(self.data):
            return f"record write to a missing record {self.record_id:02X} or of the wrong size"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.sfi, self.record_id, _hex(self.data)]


@_write
class ProofWrite(Write):
    """The latest proof of a kind ("load" or "purchase")."""

    tag: ClassVar[str] = "proof"
    kind: str
    proof: Proof

    def apply(self, state: CardState) -> None:
        state.proofs[self.kind] = self.proof

    def problem(self, state: CardState) -> str | None:
        if self.kind not in PROOF_KINDS:
            return f"proof kind {self.kind!r} unknown (known: {', '.join(PROOF_KINDS)})"
        if self.proof.tx_type not in PROOF_TYPES[self.kind]:
            return f"a {self.kind} proof of transaction type {self.proof.tx_type:02X}"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.kind, proof_doc(self.proof)]


@_write
class PinTriesWrite(Write):
    """The PIN try counter."""

    tag: ClassVar[str] = "pin_tries"
    tries_left: int

    def apply(self, state: CardState) -> None:
        state.pin.tries_left = self.tries_left

    def problem(self, state: CardState) -> str | None:
        if not 0 <= self.tries_left <= state.pin.max_tries:
            return f"PIN tries {self.tries_left} outside 0..{state.pin.max_tries}"
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.tries_left]


@_write
class LockWrite(Write):
    """The application lock flag."""

    tag: ClassVar[str] = "lock"
    lock: Lock

    def apply(self, state: CardState) -> None:
        state.lock = self.lock

    def problem(self, state: CardState) -> str | None:
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, self.lock.value]


@_write
class KeyWrite(Write):
    """One key of the key set at `index` (the set is created, with the key's algorithm, if new)."""

    tag: ClassVar[str] = "key"
    index: int
    entry: KeyEntry

    def apply(self, state: CardState) -> None:
        ks = state.key_sets.get(self.index)
        entry = self.entry
        if ks is None:
            state.key_sets[self.index] = KeySet(f"card key set {self.index:02X}", True, entry.key.algorithm, (),
                                                {entry.role: entry}, "WRITE KEY")
        else:
            keys = dict(ks.keys)
            keys[entry.role] = entry
            state.key_sets[self.index] = KeySet(ks.name, ks.test_only, ks.algorithm, (), keys, ks.source)

    def problem(self, state: CardState) -> str | None:
        ks = state.key_sets.get(self.index)
        if ks is not None and ks.algorithm is not self.entry.key.algorithm:
            return f"key algorithm differs from key set {self.index:02X}"
        return None

    def to_doc(self) -> list[Any]:
        e = self.entry
        return [self.tag, self.index, {"role": e.role, "index": e.index, "version": e.version, **key_doc(e.key)}]


@_write
class TransportKeyWrite(Write):
    """The card transport key (protects WRITE KEY where a key set has no card_master)."""

    tag: ClassVar[str] = "transport_key"
    key: SecretKey

    def apply(self, state: CardState) -> None:
        state.transport_key = self.key

    def problem(self, state: CardState) -> str | None:
        return None

    def to_doc(self) -> list[Any]:
        return [self.tag, key_doc(self.key)]


WRITE_KINDS: dict[str, type[Write]] = {
    cls.tag: cls for cls in (PurseWrite, BinaryWrite, SlotWrite, RingWrite, RecordWrite, ProofWrite,
                             PinTriesWrite, LockWrite, KeyWrite, TransportKeyWrite)
}
"""Every kind of write by its journal tag."""
