"""Card images: everything a virtual card holds, as a versioned JSON file written atomically.

Format (`"format": 1, "kind": "card"`), hex upper case everywhere:

    application  aid, app_version, ats_interface (T0 TA TB TC), ats_historical, ppse [{aid, label, priority}]
    files        {"15": {"type": "binary", "data"}, "18": {"type": "cyclic", "record_size", "capacity",
                  "head", "count", "slots": [hex | null]}, "1A": {"type": "records", "records": {"01": hex}}}
    purse        balance (real, signed), overdraft_limit, max_balance, online_counter, offline_counter
    key_sets     {"01": {"name", "source", "algorithm", "keys": {role: {index, version, value, kcv}}}}
    transport_key null | {algorithm, value, kcv}
    pin          value (digits), tries_left, max_tries, required_for_load
    lock         "none" | "temporary" | "permanent"
    proofs       {"load" | "purchase": {type, counter, mac2, tac}}
    journal      {complete, writes: [[tag, ...]]}   (non-empty only if saved between a torn commit and recovery)
    card_no      informational: EF15 bytes 10..19 (checked against EF15 on load)

Keys are stored in clear because these are TEST cards (D15: only test key sets go into images); each
key carries its KCV, checked on load. Loading validates every field and builds the whole state before
returning it, so a corrupt or truncated image is refused with an `ImageError` naming the field and is
never half-loaded. No message ever contains a key value.

`write_json_atomic` and `read_image` are generic: the PSAM image reuses them with `kind="psam"`, and
`DocReader` gives the same field-naming validation to any image kind.
"""
from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ykt_files.atomic import write_json_atomic
from keysets import ALL_ROLES, Algorithm, KeyEntry, KeySet, SecretKey

from ykt_card.card.state import (
    PROOF_KINDS, PURSE_FIELDS, BinaryFile, CardState, CyclicFile, ElementaryFile, Lock, Pin, PpseEntry,
    Proof, Purse, RecordFile, StateError, Write, pin_bcd,
)

__all__ = [
    "FORMAT", "ImageError", "DocReader", "read_image", "card_to_doc",
    "card_from_doc", "save_card", "load_card",
]

FORMAT = 1
KINDS = ("card", "psam")


class ImageError(ValueError):
    """An image refused: `field` is the dotted path of the culprit (e.g. "purse.balance")."""

    def __init__(self, source: str, field: str, reason: str) -> None:
        super().__init__(f"{source}: {field}: {reason}")
        self.source = source
        self.field = field
        self.reason = reason


# --- generic I/O ---------------------------------------------------------------------------------

def read_image(path: str | os.PathLike[str], kind: str = "card") -> dict[str, Any]:
    """Read a JSON image and check its envelope (`format` 1, `kind`); the body is the caller's."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ImageError(source, "file", "no such image") from None
    except OSError as exc:
        raise ImageError(source, "file", f"cannot read: {exc.strerror or type(exc).__name__}") from None
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ImageError(source, "file", "not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ImageError(source, "file", f"not valid JSON (line {exc.lineno}, column {exc.colno}: "
                                         f"{exc.msg}); truncated or corrupt") from None
    return check_envelope(doc, kind, source)


def check_envelope(doc: Any, kind: str, source: str = "<image>") -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ImageError(source, "(top level)", "must be a JSON object")
    if doc.get("format") != FORMAT:
        raise ImageError(source, "format", f"must be {FORMAT}, got {doc.get('format')!r}")
    if doc.get("kind") != kind:
        raise ImageError(source, "kind", f"must be {kind!r}, got {doc.get('kind')!r}")
    return doc


class DocReader:
    """Typed, path-tracking access to a JSON document: every failure names the dotted field."""

    def __init__(self, doc: Mapping[str, Any], source: str = "<image>", prefix: str = "") -> None:
        self.doc = doc
        self.source = source
        self.prefix = prefix

    def path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def fail(self, key: str, reason: str) -> ImageError:
        return ImageError(self.source, self.path(key), reason)

    def has(self, key: str) -> bool:
        return key in self.doc

    def raw(self, key: str) -> Any:
        if key not in self.doc:
            raise self.fail(key, "missing")
        return self.doc[key]

    def at(self, key: str) -> DocReader:
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self.fail(key, "must be an object")
        return DocReader(value, self.source, self.path(key))

    def list(self, key: str) -> list[Any]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self.fail(key, "must be a list")
        return value

    def int(self, key: str, lo: int, hi: int) -> int:
        value = self.raw(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.fail(key, "must be an integer")
        if not lo <= value <= hi:
            raise self.fail(key, f"{value} out of range {lo}..{hi}")
        return value

    def bool(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false")
        return value

    def str(self, key: str, choices: tuple[str, ...] | None = None) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        if choices is not None and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}")
        return value

    def hex(self, key: str, length: int | None = None, lo: int = 0, hi: int = 65536) -> bytes:
        return parse_hex(self.raw(key), self.path(key), self.source, length, lo, hi)

    def key(self, key: str, kcv_key: str = "kcv", alg_key: str | None = None,
             algorithm: Algorithm | None = None) -> SecretKey:
        """A key object {value, kcv[, algorithm]}: checks length and KCV, never echoes the value."""
        sub = self
        if alg_key is not None:
            try:
                algorithm = Algorithm.parse(sub.str(alg_key))
            except ValueError:
                raise sub.fail(alg_key, "must be '3des' or 'sm4'") from None
        assert algorithm is not None
        value = sub.hex(key, 16)
        key_obj = SecretKey(algorithm, value)
        check = sub.str(kcv_key).upper()
        if check != key_obj.kcv:
            raise sub.fail(kcv_key, f"KCV mismatch: image says {check}, key gives {key_obj.kcv}")
        return key_obj


def parse_hex(value: Any, field: str, source: str, length: int | None = None, lo: int = 0,
              hi: int = 65536) -> bytes:
    """Hex text to bytes with a field-naming error that never repeats the text (it may be a key)."""
    if not isinstance(value, str):
        raise ImageError(source, field, "must be a hex string")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise ImageError(source, field, "not hexadecimal") from None
    if length is not None and len(data) != length:
        raise ImageError(source, field, f"must be {length} bytes, got {len(data)}")
    if not lo <= len(data) <= hi:
        raise ImageError(source, field, f"must be {lo}..{hi} bytes, got {len(data)}")
    return data


def _h(b: bytes) -> str:
    return b.hex().upper()


# --- card state → document -----------------------------------------------------------------------

def card_to_doc(state: CardState) -> dict[str, Any]:
    """The JSON document of a card state (keys in clear: test cards only)."""
    files: dict[str, Any] = {}
    for sfi, f in sorted(state.files.items()):
        files[f"{sfi:02X}"] = _file_doc(f)
    doc: dict[str, Any] = {
        "format": FORMAT,
        "kind": "card",
        "card_no": state.card_no,
        "application": {
            "aid": _h(state.aid),
            "app_version": state.app_version,
            "ats_interface": _h(state.ats_interface),
            "ats_historical": _h(state.ats_historical),
            "ppse": [{"aid": _h(e.aid), "label": e.label, "priority": e.priority} for e in state.ppse],
        },
        "files": files,
        "purse": {name: getattr(state.purse, name) for name in PURSE_FIELDS},
        "key_sets": {f"{i:02X}": _keyset_doc(ks) for i, ks in sorted(state.key_sets.items())},
        "transport_key": None if state.transport_key is None else _key_doc(state.transport_key),
        "pin": {
            "value": state.pin.value.hex().upper().rstrip("F"),
            "tries_left": state.pin.tries_left,
            "max_tries": state.pin.max_tries,
            "required_for_load": state.pin_required_for_load,
        },
        "lock": state.lock.value,
        "proofs": {kind: _proof_doc(p) for kind, p in sorted(state.proofs.items())},
        "journal": {"complete": state.journal_complete, "writes": [_write_doc(w) for w in state.journal]},
    }
    return doc


def _file_doc(f: ElementaryFile) -> dict[str, Any]:
    if isinstance(f, BinaryFile):
        return {"type": "binary", "data": _h(f.data)}
    if isinstance(f, CyclicFile):
        return {"type": "cyclic", "record_size": f.record_size, "capacity": f.capacity, "head": f.head,
                "count": f.count, "slots": [None if s is None else _h(s) for s in f.slots]}
    return {"type": "records", "records": {f"{rid:02X}": _h(r) for rid, r in sorted(f.records.items())}}


def _key_doc(key: SecretKey) -> dict[str, Any]:
    return {"algorithm": key.algorithm.value, "value": _h(key.value), "kcv": key.kcv}


def _keyset_doc(ks: KeySet) -> dict[str, Any]:
    keys = {}
    for role in sorted(ks.keys, key=lambda r: ALL_ROLES.index(r) if r in ALL_ROLES else 99):
        e = ks.keys[role]
        keys[role] = {"index": e.index, "version": e.version, "value": _h(e.key.value), "kcv": e.kcv}
    return {"name": ks.name, "source": ks.source, "test_only": ks.test_only,
            "algorithm": ks.algorithm.value, "keys": keys}


def _proof_doc(p: Proof) -> dict[str, Any]:
    return {"type": f"{p.tx_type:02X}", "counter": p.counter, "mac2": _h(p.mac2), "tac": _h(p.tac)}


def _write_doc(w: Write) -> list[Any]:
    tag = w[0]
    if tag in ("binary", "slot", "record"):
        return [tag, w[1], w[2], _h(w[3])]
    if tag == "proof":
        return [tag, w[1], _proof_doc(w[2])]
    if tag == "lock":
        return [tag, w[1].value]
    if tag == "key":
        e: KeyEntry = w[2]
        return [tag, w[1], {"role": e.role, "index": e.index, "version": e.version, **_key_doc(e.key)}]
    if tag == "transport_key":
        return [tag, _key_doc(w[1])]
    return list(w)


# --- document → card state -----------------------------------------------------------------------

def card_from_doc(doc: Mapping[str, Any], source: str = "<image>") -> CardState:
    """Rebuild a card from its document, validating every field; nothing is returned half-built."""
    doc = check_envelope(doc, "card", source)
    r = DocReader(doc, source)
    app = r.at("application")
    ppse = []
    for i, item in enumerate(app.list("ppse")):
        if not isinstance(item, dict):
            raise app.fail(f"ppse.{i}", "must be an object")
        e = DocReader(item, source, app.path(f"ppse.{i}"))
        label = e.str("label")
        if not label.isascii():
            raise e.fail("label", "must be ASCII")
        ppse.append(PpseEntry(e.hex("aid", lo=5, hi=16), label, e.int("priority", 0, 255)))

    files_r = r.at("files")
    files: dict[int, ElementaryFile] = {}
    for name in files_r.doc:
        sfi = _id(name, files_r, 1, 30)
        files[sfi] = _file_from(files_r.at(name), sfi)

    purse_r = r.at("purse")
    purse = Purse(
        balance=purse_r.int("balance", -0xFFFFFF, 0x7FFFFFFF),
        overdraft_limit=purse_r.int("overdraft_limit", 0, 0xFFFFFF),
        max_balance=purse_r.int("max_balance", 0, 0x7FFFFFFF),
        online_counter=purse_r.int("online_counter", 0, 0xFFFF),
        offline_counter=purse_r.int("offline_counter", 0, 0xFFFF),
    )

    ks_r = r.at("key_sets")
    key_sets: dict[int, KeySet] = {}
    for name in ks_r.doc:
        index = _id(name, ks_r, 1, 255)
        key_sets[index] = _keyset_from(ks_r.at(name))

    transport_key = None
    if r.raw("transport_key") is not None:
        transport_key = r.at("transport_key").key("value", alg_key="algorithm")

    pin_r = r.at("pin")
    digits = pin_r.str("value")
    try:
        pin_value = pin_bcd(digits)
    except StateError:
        raise pin_r.fail("value", "must be 4..12 decimal digits") from None
    max_tries = pin_r.int("max_tries", 1, 15)
    pin = Pin(pin_value, pin_r.int("tries_left", 0, max_tries), max_tries)

    lock = Lock(r.str("lock", tuple(x.value for x in Lock)))

    proofs_r = r.at("proofs")
    proofs = {}
    for kind in proofs_r.doc:
        if kind not in PROOF_KINDS:
            raise proofs_r.fail(kind, f"unknown proof kind (known: {', '.join(PROOF_KINDS)})")
        proofs[kind] = _proof_from(proofs_r.at(kind))

    journal_r = r.at("journal")
    complete = journal_r.bool("complete")
    writes = [_write_from(w, journal_r, i) for i, w in enumerate(journal_r.list("writes"))]

    state = CardState(
        files=files,
        key_sets=dict(sorted(key_sets.items())),
        purse=purse,
        pin=pin,
        pin_required_for_load=pin_r.bool("required_for_load"),
        lock=lock,
        proofs=proofs,
        aid=app.hex("aid", lo=5, hi=16),
        app_version=app.int("app_version", 0, 255),
        ats_interface=app.hex("ats_interface", lo=1, hi=4),
        ats_historical=app.hex("ats_historical", lo=0, hi=15),
        ppse=tuple(ppse),
        transport_key=transport_key,
        journal=writes,
        journal_complete=complete,
    )
    try:
        state.validate()
    except StateError as exc:
        field, _, reason = str(exc).partition(": ")
        if field.startswith("journal.") and field[8:].isdigit():
            field = "journal.writes." + field[8:]     # the state's journal list is the image's journal.writes
        raise ImageError(source, field, reason or str(exc)) from None
    if "card_no" in doc and doc["card_no"] != state.card_no:
        raise r.fail("card_no", "does not match EF15 bytes 10..19")
    return state


def _id(name: str, r: DocReader, lo: int, hi: int) -> int:
    try:
        value = int(name, 16)
    except ValueError:
        raise r.fail(name, "key must be a hex number") from None
    if not lo <= value <= hi or name != f"{value:02X}":
        raise r.fail(name, f"key must be 2 upper-case hex digits {lo:02X}..{hi:02X}")
    return value


def _file_from(f: DocReader, sfi: int) -> ElementaryFile:
    kind = f.str("type", ("binary", "cyclic", "records"))
    if kind == "binary":
        return BinaryFile(sfi, f.hex("data", lo=1, hi=0x7FFF))
    if kind == "cyclic":
        size = f.int("record_size", 1, 255)
        capacity = f.int("capacity", 1, 254)
        slots_raw = f.list("slots")
        if len(slots_raw) != capacity:
            raise f.fail("slots", f"must list {capacity} slots, got {len(slots_raw)}")
        slots = [None if s is None else parse_hex(s, f.path(f"slots.{i}"), f.source, size)
                 for i, s in enumerate(slots_raw)]
        return CyclicFile(sfi, size, capacity, slots, f.int("head", -1, capacity - 1),
                          f.int("count", 0, capacity))
    recs = f.at("records")
    records = {}
    for name in recs.doc:
        rid = _id(name, recs, 1, 0xFE)
        records[rid] = recs.hex(name, lo=1, hi=255)
    return RecordFile(sfi, records)


def _keyset_from(k: DocReader) -> KeySet:
    try:
        algorithm = Algorithm.parse(k.str("algorithm"))
    except ValueError:
        raise k.fail("algorithm", "must be '3des' or 'sm4'") from None
    if not k.bool("test_only"):
        raise k.fail("test_only", "card images hold TEST key sets only (D15)")
    keys_r = k.at("keys")
    entries = {}
    for role in keys_r.doc:
        if role not in ALL_ROLES:
            raise keys_r.fail(role, f"unknown role (known: {', '.join(ALL_ROLES)})")
        e = keys_r.at(role)
        entries[role] = KeyEntry(role, e.int("index", 0, 255), e.int("version", 0, 255),
                                 e.key("value", algorithm=algorithm))
    return KeySet(k.str("name"), True, algorithm, (), entries, k.str("source"))


def _proof_from(p: DocReader) -> Proof:
    tx_type = p.hex("type", 1)[0]
    return Proof(tx_type, p.int("counter", 0, 0xFFFF), p.hex("mac2", 4), p.hex("tac", 4))


def _write_from(w: Any, journal: DocReader, i: int) -> Write:
    where = f"writes.{i}"
    if not isinstance(w, list) or not w or not isinstance(w[0], str):
        raise journal.fail(where, "must be a list starting with a tag")
    tag = w[0]
    src = journal.source
    path = journal.path(where)
    try:
        if tag in ("binary", "slot", "record"):
            return (tag, _plain_int(w[1]), _plain_int(w[2]), parse_hex(w[3], path, src))
        if tag in ("purse",):
            return (tag, str(w[1]), _plain_int(w[2]))
        if tag == "ring":
            return (tag, _plain_int(w[1]), _plain_int(w[2]), _plain_int(w[3]))
        if tag == "pin_tries":
            return (tag, _plain_int(w[1]))
        if tag == "proof":
            return (tag, str(w[1]), _proof_from(DocReader(w[2], src, f"{path}.2")))
        if tag == "lock":
            return (tag, Lock(w[1]))
        if tag == "key":
            e = DocReader(w[2], src, f"{path}.2")
            key = e.key("value", alg_key="algorithm")
            return (tag, _plain_int(w[1]), KeyEntry(e.str("role", ALL_ROLES), e.int("index", 0, 255),
                                                    e.int("version", 0, 255), key))
        if tag == "transport_key":
            return (tag, DocReader(w[1], src, f"{path}.1").key("value", alg_key="algorithm"))
    except ImageError:
        raise
    except (IndexError, TypeError, ValueError, AttributeError):
        raise journal.fail(where, f"malformed {tag} write") from None
    raise journal.fail(where, f"unknown write tag {tag!r}")


def _plain_int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError("not an integer")
    return v


# --- files ---------------------------------------------------------------------------------------

def save_card(path: str | os.PathLike[str], state: CardState) -> None:
    """Write the card image atomically."""
    write_json_atomic(path, card_to_doc(state))


def load_card(path: str | os.PathLike[str]) -> CardState:
    """Read and validate a card image; ImageError names the field of any fault."""
    return card_from_doc(read_image(path, "card"), str(path))


def saver(path: str | os.PathLike[str]) -> Callable[[CardState], None]:
    """An `on_commit` callback that saves the image after every change."""
    def save(state: CardState) -> None:
        save_card(path, state)
    return save
