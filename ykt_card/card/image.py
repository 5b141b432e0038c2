"""Card images: everything a virtual card holds, as a versioned JSON file written atomically.

Format (`"format": 1, "kind": "card"`), hex upper case everywhere:

    application  aid, app_version, ats_interface (T0 TA TB TC), ats_historical, ppse [{aid, label, priority}]
    files        {"15": {"type": "binary", "data"}, "18": {"type": "cyclic", "record_size", "capacity",
                  "head", "count", "slots": [hex | null]}, "1A": {"type": "records", "records": {"01": hex}}}
    purse        balance (real, signed), overdraft_limit, max_balance, online_counter, offline_counter
    key_sets     {"01": {"name", "source", "test_only", "algorithm", "keys": {role: {index, version, value, kcv}}}}
    transport_key null | {algorithm, value, kcv}
    pin          value (digits), tries_left, max_tries, required_for_load
    lock         "none" | "temporary" | "permanent"
    proofs       {"load" | "purchase": {type, counter, mac2, tac}}
    journal      {complete, writes: [[tag, ...]]}   (non-empty only if saved between a torn commit and recovery)
    uid          the chip's ISO 14443-3 UID, 4, 7 or 10 bytes; absent means the default 08594B54 (older
                 images have none, and a card with the default is saved without it, byte for byte as before)
    card_no      informational: EF15's card number (checked against EF15 on load)

Keys are stored in clear because these are TEST cards (D15: only test key sets go into images); each
key carries its KCV, checked on load. A key set may hold only some roles: WRITE KEY adds one key at a
time, so a card saved in the middle of its personalisation holds a partial key set.

Loading is the schema layer's (ykt_files.schema): the models below check every field (types, ranges,
hex lengths, KCVs, unknown fields), then the state's own rules run (`CardState.validate`: file sizes per
layout, the purse within its limits, each journal write fitting the files). A bad image is refused with
one `ImageError` (`<file>: <field>: <reason>`) and never half-loaded; no message contains a key value.
`read_image` checks only the envelope and is shared with the PSAM image (ykt_card.psam.issue).
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Union

from pydantic import BeforeValidator, ConfigDict, ValidationInfo, field_validator, model_validator

from apdu.iso14443 import DEFAULT_UID
from keysets import ALL_ROLES, Algorithm, KeyEntry, KeySet, SecretKey
from keysets.keyset import Role
from ykt_files.atomic import write_json_atomic
from ykt_files.schema import (Byte, DocumentError, HexBytes, HexString, IntRange, Model, parse_document, problem,
                              read_text, validate)

from ykt_card.card.files import BinaryFile, CyclicFile, ElementaryFile, RecordFile
from ykt_card.card.state import CardState, Lock, Pin, Purse, StateError, pin_bcd
from ykt_card.card.writes import (PURSE_FIELDS, WRITE_KINDS, BinaryWrite, KeyWrite, LockWrite, PinTriesWrite,
                                  ProofWrite, PurseWrite, RecordWrite, RingWrite, SlotWrite, TransportKeyWrite,
                                  Write, key_doc, proof_doc)
from ykt_card.layouts.fci import PpseEntry
from ykt_card.persistence import image_saver
from ykt_card.proof import PROOF_KINDS, Proof

__all__ = [
    "FORMAT", "KINDS", "ImageError", "read_image", "card_to_doc", "card_from_doc", "save_card", "load_card",
    "saver", "KeyDoc",
]

FORMAT = 1
KINDS = ("card", "psam")


class ImageError(DocumentError):
    """An image refused: `source`, the dotted `field` of the culprit (e.g. "purse.balance") and `reason`."""


# --- the envelope, shared with PSAM images ---------------------------------------------------------------

def _format_one(value: Any) -> int:
    if value != FORMAT or isinstance(value, bool) or not isinstance(value, int):
        raise problem(f"must be {FORMAT}, got {value!r}")
    return value


FormatOne = Annotated[int, BeforeValidator(_format_one)]


class Envelope(Model):
    """What every image starts with: the format version and the kind (the rest is the kind's)."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True, hide_input_in_errors=True)

    format: FormatOne
    kind: str

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str, info: ValidationInfo) -> str:
        expected = (info.context or {}).get("kind")
        if expected is not None and value != expected:
            raise problem(f"must be {expected!r}, got {value!r}")
        return value


def read_image(path: str | os.PathLike[str], kind: str = "card") -> dict[str, Any]:
    """Read a JSON image and check its envelope (`format` 1, `kind`); the body is the caller's."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    source = str(path)
    what = "card image" if kind == "card" else "PSAM image"
    doc = parse_document(read_text(path, what, ImageError), "json", source, ImageError)
    check_envelope(doc, kind, source)
    return doc


def check_envelope(doc: Any, kind: str, source: str = "<image>") -> None:
    """Refuse a document that is not an image of `kind` in format 1 (the field and the reason)."""
    validate(Envelope, doc, source, ImageError, {"kind": kind})


# --- field types and parts shared with the PSAM image -----------------------------------------------------

def _two_hex(lo: int, hi: int, what: str) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if not isinstance(value, str) or len(value) != 2 or value != value.upper():
            raise problem(f"{what} must be 2 upper-case hex digits {lo:02X}..{hi:02X}, got {value!r}")
        try:
            number = int(value, 16)
        except ValueError:
            raise problem(f"{what} must be 2 upper-case hex digits {lo:02X}..{hi:02X}, got {value!r}") from None
        if not lo <= number <= hi:
            raise problem(f"{what} {value} out of range {lo:02X}..{hi:02X}")
        return number
    return parse


SfiKey = Annotated[int, BeforeValidator(_two_hex(0x01, 0x1E, "SFI"))]
RecordKey = Annotated[int, BeforeValidator(_two_hex(0x01, 0xFE, "record ID"))]
KeyIndexKey = Annotated[int, BeforeValidator(_two_hex(0x01, 0xFF, "key index"))]
AlgorithmName = Literal["3des", "sm4"]
ProofKind = Literal[PROOF_KINDS]
LockName = Literal[tuple(lock.value for lock in Lock)]
Key16 = HexBytes(16)


def _kcv_problem(algorithm: str, value: bytes, kcv: str) -> None:
    actual = SecretKey(Algorithm.parse(algorithm), value).kcv
    if kcv != actual:
        raise problem(f"KCV mismatch: image says {kcv}, key gives {actual}", at="kcv")


class KeyDoc(Model):
    """A key with its algorithm and KCV (transport key, a key in the journal)."""

    algorithm: AlgorithmName
    value: Key16
    kcv: HexString(6)

    @model_validator(mode="after")
    def _kcv(self) -> "KeyDoc":
        _kcv_problem(self.algorithm, self.value, self.kcv)
        return self

    def build(self) -> SecretKey:
        return SecretKey(Algorithm.parse(self.algorithm), self.value)


class ProofDoc(Model):
    type: HexBytes(1)
    counter: IntRange(0, 0xFFFF)
    mac2: HexBytes(4)
    tac: HexBytes(4)

    def build(self) -> Proof:
        return Proof(self.type[0], self.counter, self.mac2, self.tac)


# --- the card image's parts -----------------------------------------------------------------------------

class PpseEntryDoc(Model):
    aid: HexBytes(lo=5, hi=16)
    label: str
    priority: Byte

    @field_validator("label")
    @classmethod
    def _ascii(cls, value: str) -> str:
        if not value.isascii():
            raise problem("must be ASCII")
        return value


class ApplicationDoc(Model):
    aid: HexBytes(lo=5, hi=16)
    app_version: Byte
    ats_interface: HexBytes(lo=1, hi=4)
    ats_historical: HexBytes(lo=0, hi=15)
    ppse: list[PpseEntryDoc]


class BinaryFileDoc(Model):
    type: Literal["binary"]
    data: HexBytes(lo=1, hi=0x7FFF)

    def build(self, sfi: int) -> ElementaryFile:
        return BinaryFile(sfi, self.data)


class CyclicFileDoc(Model):
    type: Literal["cyclic"]
    record_size: IntRange(1, 255)
    capacity: IntRange(1, 254)
    head: IntRange(-1, 253)
    count: IntRange(0, 254)
    slots: list[Union[HexBytes(lo=1, hi=255), None]]

    @model_validator(mode="after")
    def _fits(self) -> "CyclicFileDoc":
        if len(self.slots) != self.capacity:
            raise problem(f"must list {self.capacity} slots, got {len(self.slots)}", at="slots")
        for i, slot in enumerate(self.slots):
            if slot is not None and len(slot) != self.record_size:
                raise problem(f"must be {self.record_size} bytes, got {len(slot)}", at=f"slots[{i}]")
        if self.head >= self.capacity:
            raise problem(f"{self.head} out of range -1..{self.capacity - 1}", at="head")
        if self.count > self.capacity:
            raise problem(f"{self.count} out of range 0..{self.capacity}", at="count")
        return self

    def build(self, sfi: int) -> ElementaryFile:
        return CyclicFile(sfi, self.record_size, self.capacity, list(self.slots), self.head, self.count)


class RecordsFileDoc(Model):
    type: Literal["records"]
    records: dict[RecordKey, HexBytes(lo=1, hi=255)]

    def build(self, sfi: int) -> ElementaryFile:
        return RecordFile(sfi, dict(self.records))


def _tagged(models: Mapping[str, type[Model]], tag: str) -> Callable[[Any], Model]:
    """Validate with the model the document's `tag` field names (a union whose errors keep plain paths)."""
    def pick(value: Any) -> Model:
        if not isinstance(value, dict):
            raise problem("must be a table of fields")
        if tag not in value:
            raise problem("missing", at=tag)
        model = models.get(value[tag]) if isinstance(value[tag], str) else None
        if model is None:
            raise problem(f"must be one of {', '.join(models)}", at=tag)
        return model.model_validate(value)
    return pick


FILE_DOCS: dict[str, type[Model]] = {"binary": BinaryFileDoc, "cyclic": CyclicFileDoc, "records": RecordsFileDoc}
FileDoc = Annotated[Any, BeforeValidator(_tagged(FILE_DOCS, "type"))]


class PurseDoc(Model):
    balance: IntRange(-0xFFFFFF, 0x7FFFFFFF)
    overdraft_limit: IntRange(0, 0xFFFFFF)
    max_balance: IntRange(0, 0x7FFFFFFF)
    online_counter: IntRange(0, 0xFFFF)
    offline_counter: IntRange(0, 0xFFFF)

    def build(self) -> Purse:
        return Purse(**{name: getattr(self, name) for name in PURSE_FIELDS})


class CardKeyDoc(Model):
    index: Byte
    version: Byte
    value: Key16
    kcv: HexString(6)


class CardKeySetDoc(Model):
    """A key set of card keys (already diversified): partial while WRITE KEY personalises the card."""

    name: str
    source: str
    test_only: bool
    algorithm: AlgorithmName
    keys: dict[Role, CardKeyDoc]

    @model_validator(mode="after")
    def _rules(self) -> "CardKeySetDoc":
        if not self.test_only:
            raise problem("card images hold TEST key sets only (D15)", at="test_only")
        for role, entry in self.keys.items():
            actual = SecretKey(Algorithm.parse(self.algorithm), entry.value).kcv
            if entry.kcv != actual:
                raise problem(f"KCV mismatch: image says {entry.kcv}, key gives {actual}", at=f"keys.{role}.kcv")
        return self

    def build(self) -> KeySet:
        algorithm = Algorithm.parse(self.algorithm)
        entries = {role: KeyEntry(role, e.index, e.version, SecretKey(algorithm, e.value))
                   for role, e in self.keys.items()}
        return KeySet(self.name, True, algorithm, (), entries, self.source)


def _pin_digits(value: Any) -> bytes:
    if not isinstance(value, str):
        raise problem("must be a string of 4..12 decimal digits")
    try:
        return pin_bcd(value)
    except StateError:
        raise problem("must be 4..12 decimal digits") from None


class PinDoc(Model):
    value: Annotated[bytes, BeforeValidator(_pin_digits)]
    tries_left: IntRange(0, 15)
    max_tries: IntRange(1, 15)
    required_for_load: bool

    @model_validator(mode="after")
    def _tries(self) -> "PinDoc":
        if self.tries_left > self.max_tries:
            raise problem(f"{self.tries_left} out of range 0..{self.max_tries} (max_tries)", at="tries_left")
        return self


# --- the journal's writes: [tag, ...] lists, read into the write types of ykt_card.card.writes -----------

def _write_fields(value: Any) -> Any:
    """[tag, a, b, ...] -> {"tag": tag, <the write type's field names>: a, b, ...}."""
    if not isinstance(value, list) or not value or not isinstance(value[0], str):
        raise problem("must be a list starting with a write tag")
    tag, args = value[0], value[1:]
    kind = WRITE_KINDS.get(tag)
    if kind is None:
        raise problem(f"unknown write tag {tag!r} (known: {', '.join(WRITE_KINDS)})")
    names = [f.name for f in dataclasses.fields(kind)]
    if len(args) != len(names):
        raise problem(f"malformed {tag} write: it is [{', '.join([repr(tag), *names])}]")
    return {"tag": tag, **dict(zip(names, args))}


class _WriteDoc(Model):
    def build(self) -> Write:
        raise NotImplementedError


class PurseWriteDoc(_WriteDoc):
    tag: Literal["purse"]
    field: Literal[PURSE_FIELDS]
    value: IntRange(-0xFFFFFF, 0x7FFFFFFF)

    def build(self) -> Write:
        return PurseWrite(self.field, self.value)


class BinaryWriteDoc(_WriteDoc):
    tag: Literal["binary"]
    sfi: IntRange(1, 30)
    offset: IntRange(0, 0x7FFF)
    data: HexBytes(lo=1, hi=0x7FFF)

    def build(self) -> Write:
        return BinaryWrite(self.sfi, self.offset, self.data)


class SlotWriteDoc(_WriteDoc):
    tag: Literal["slot"]
    sfi: IntRange(1, 30)
    slot: IntRange(0, 253)
    data: HexBytes(lo=1, hi=255)

    def build(self) -> Write:
        return SlotWrite(self.sfi, self.slot, self.data)


class RingWriteDoc(_WriteDoc):
    tag: Literal["ring"]
    sfi: IntRange(1, 30)
    head: IntRange(0, 253)
    count: IntRange(1, 254)

    def build(self) -> Write:
        return RingWrite(self.sfi, self.head, self.count)


class RecordWriteDoc(_WriteDoc):
    tag: Literal["record"]
    sfi: IntRange(1, 30)
    record_id: IntRange(1, 0xFE)
    data: HexBytes(lo=1, hi=255)

    def build(self) -> Write:
        return RecordWrite(self.sfi, self.record_id, self.data)


class ProofWriteDoc(_WriteDoc):
    tag: Literal["proof"]
    kind: ProofKind
    proof: ProofDoc

    def build(self) -> Write:
        return ProofWrite(self.kind, self.proof.build())


class PinTriesWriteDoc(_WriteDoc):
    tag: Literal["pin_tries"]
    tries_left: IntRange(0, 15)

    def build(self) -> Write:
        return PinTriesWrite(self.tries_left)


class LockWriteDoc(_WriteDoc):
    tag: Literal["lock"]
    lock: LockName

    def build(self) -> Write:
        return LockWrite(Lock(self.lock))


class KeyEntryDoc(KeyDoc):
    role: Role
    index: Byte
    version: Byte


class KeyWriteDoc(_WriteDoc):
    tag: Literal["key"]
    index: IntRange(1, 0xFF)
    entry: KeyEntryDoc

    def build(self) -> Write:
        e = self.entry
        return KeyWrite(self.index, KeyEntry(e.role, e.index, e.version, e.build()))


class TransportKeyWriteDoc(_WriteDoc):
    tag: Literal["transport_key"]
    key: KeyDoc

    def build(self) -> Write:
        return TransportKeyWrite(self.key.build())


WRITE_DOCS: dict[str, type[_WriteDoc]] = {
    "purse": PurseWriteDoc, "binary": BinaryWriteDoc, "slot": SlotWriteDoc, "ring": RingWriteDoc,
    "record": RecordWriteDoc, "proof": ProofWriteDoc, "pin_tries": PinTriesWriteDoc, "lock": LockWriteDoc,
    "key": KeyWriteDoc, "transport_key": TransportKeyWriteDoc,
}
"""The JSON model of each kind of write, by tag (a test checks it matches ykt_card.card.writes.WRITE_KINDS)."""

WriteDoc = Annotated[Any, BeforeValidator(_tagged(WRITE_DOCS, "tag")), BeforeValidator(_write_fields)]


class JournalDoc(Model):
    complete: bool
    writes: list[WriteDoc]


# --- the whole image ------------------------------------------------------------------------------------

class CardImage(Model):
    """A card image as written (format 1); `build()` makes the `CardState` (then validated by the caller)."""

    format: FormatOne
    kind: Literal["card"]
    card_no: str | None = None
    uid: HexBytes(lo=4, hi=10) = DEFAULT_UID
    application: ApplicationDoc
    files: dict[SfiKey, FileDoc]
    purse: PurseDoc
    key_sets: dict[KeyIndexKey, CardKeySetDoc]
    transport_key: KeyDoc | None
    pin: PinDoc
    lock: LockName
    proofs: dict[ProofKind, ProofDoc]
    journal: JournalDoc

    def build(self) -> CardState:
        app = self.application
        return CardState(
            files={sfi: f.build(sfi) for sfi, f in self.files.items()},
            key_sets={index: ks.build() for index, ks in sorted(self.key_sets.items())},
            purse=self.purse.build(),
            pin=Pin(self.pin.value, self.pin.tries_left, self.pin.max_tries),
            pin_required_for_load=self.pin.required_for_load,
            lock=Lock(self.lock),
            proofs={kind: p.build() for kind, p in self.proofs.items()},
            aid=app.aid,
            app_version=app.app_version,
            ats_interface=app.ats_interface,
            ats_historical=app.ats_historical,
            uid=self.uid,
            ppse=tuple(PpseEntry(e.aid, e.label, e.priority) for e in app.ppse),
            transport_key=None if self.transport_key is None else self.transport_key.build(),
            journal=[w.build() for w in self.journal.writes],
            journal_complete=self.journal.complete,
        )


# --- card state -> document -----------------------------------------------------------------------------

def _h(b: bytes) -> str:
    return b.hex().upper()


def card_to_doc(state: CardState) -> dict[str, Any]:
    """The JSON document of a card state (keys in clear: test cards only)."""
    return {
        "format": FORMAT,
        "kind": "card",
        "card_no": state.card_no,
        **({} if state.uid == DEFAULT_UID else {"uid": _h(state.uid)}),   # older images stay byte for byte
        "application": {
            "aid": _h(state.aid),
            "app_version": state.app_version,
            "ats_interface": _h(state.ats_interface),
            "ats_historical": _h(state.ats_historical),
            "ppse": [{"aid": _h(e.aid), "label": e.label, "priority": e.priority} for e in state.ppse],
        },
        "files": {f"{sfi:02X}": _file_doc(f) for sfi, f in sorted(state.files.items())},
        "purse": {name: getattr(state.purse, name) for name in PURSE_FIELDS},
        "key_sets": {f"{i:02X}": _keyset_doc(ks) for i, ks in sorted(state.key_sets.items())},
        "transport_key": None if state.transport_key is None else key_doc(state.transport_key),
        "pin": {
            "value": state.pin.value.hex().upper().rstrip("F"),
            "tries_left": state.pin.tries_left,
            "max_tries": state.pin.max_tries,
            "required_for_load": state.pin_required_for_load,
        },
        "lock": state.lock.value,
        "proofs": {kind: proof_doc(p) for kind, p in sorted(state.proofs.items())},
        "journal": {"complete": state.journal_complete, "writes": [w.to_doc() for w in state.journal]},
    }


def _file_doc(f: ElementaryFile) -> dict[str, Any]:
    if isinstance(f, BinaryFile):
        return {"type": "binary", "data": _h(f.data)}
    if isinstance(f, CyclicFile):
        return {"type": "cyclic", "record_size": f.record_size, "capacity": f.capacity, "head": f.head,
                "count": f.count, "slots": [None if s is None else _h(s) for s in f.slots]}
    return {"type": "records", "records": {f"{rid:02X}": _h(r) for rid, r in sorted(f.records.items())}}


def _keyset_doc(ks: KeySet) -> dict[str, Any]:
    keys = {}
    for role in sorted(ks.keys, key=lambda r: ALL_ROLES.index(r) if r in ALL_ROLES else 99):
        e = ks.keys[role]
        keys[role] = {"index": e.index, "version": e.version, "value": _h(e.key.value), "kcv": e.kcv}
    return {"name": ks.name, "source": ks.source, "test_only": ks.test_only,
            "algorithm": ks.algorithm.value, "keys": keys}


# --- document -> card state -----------------------------------------------------------------------------

def card_from_doc(doc: Mapping[str, Any], source: str = "<image>") -> CardState:
    """Rebuild a card from its document, validating every field; nothing is returned half-built."""
    check_envelope(doc, "card", source)
    state = validate(CardImage, doc, source, ImageError).build()
    try:
        state.validate()
    except StateError as exc:
        field = exc.field
        if field.startswith("journal["):            # the state's journal list is the image's journal.writes
            field = "journal.writes" + field[len("journal"):]
        elif field in ("aid", "app_version", "ats_interface", "ats_historical") or field.startswith("ppse"):
            field = f"application.{field}"
        raise ImageError(source, field, exc.reason) from None
    if doc.get("card_no") is not None and doc["card_no"] != state.card_no:
        raise ImageError(source, "card_no", "does not match the card number in EF15")
    return state


# --- files ----------------------------------------------------------------------------------------------

def save_card(path: str | os.PathLike[str], state: CardState) -> None:
    """Write the card image atomically."""
    write_json_atomic(path, card_to_doc(state))


def load_card(path: str | os.PathLike[str]) -> CardState:
    """Read and validate a card image; ImageError names the field of any fault."""
    return card_from_doc(read_image(path, "card"), str(path))


def saver(path: str | os.PathLike[str]) -> Callable[[CardState], None]:
    """An `on_commit` callback that saves the image after every change; a failed save raises
    `ImageSaveError` naming this image and the cause (the card then undoes the change and answers 6581)."""
    return image_saver("card image", path, save_card)
