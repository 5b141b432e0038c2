"""What a virtual T-Union card holds, and the one way it changes: a journalled commit (decision D7).

`CardState` is the card's persistent memory (its EEPROM): files, purse, key sets, proofs, PIN, lock
flags, application identity and the commit journal. Nothing else survives a power cut; the card OS keeps
its volatile state (selection, sessions, challenge) to itself. Its files are built from the layouts
(ykt_card.layouts): their SFIs, sizes, capacities and blank records are the layouts', and the FCI and
the PPSE it answers SELECT with are encoded by `AdfFci` and `PpseFci`.

Every change goes through `PersistentStore.commit(writes)`. A write (ykt_card.card.writes) is a small
absolute operation, such as ``PurseWrite("balance", 1200)``, so that applying it twice is harmless. With
a `FaultInjector` attached, a commit runs the way a card's anti-tearing mechanism does, in discrete
internal write steps:

    1. append each write to the journal            (one step per write)
    2. mark the journal complete                   (one step)
    3. apply each write to its file or purse field (one step per write)
    4. clear the journal                           (one step)
    5. send the response                           (one more cut point: done, but no answer)

and the injector can cut power before any of them (`PowerLoss`). On the next power-on, `recover()`
rolls a complete journal forward or discards an incomplete one, so the card always shows the complete
state before or the complete state after. Without an injector the writes are applied directly (same
result, no journal traffic): that is the fast path the benchmarks run.
"""
from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apdu.cardos import CardPowerLoss
from apdu.iso14443 import DEFAULT_UID, check_uid
from keysets import KeySet, SecretKey
from keysets.keyset import Use

from ykt_card.card.files import BinaryFile, CyclicFile, ElementaryFile, RecordFile
from ykt_card.card.writes import PURSE_FIELDS, Write
from ykt_card.layouts import EF15, EF16, EF17, EF18, EF1ABus, EF1AMetro, EF1EA, AdfFci, LayoutError, PpseFci
from ykt_card.layouts.ef1a import blank_record
from ykt_card.layouts.fci import PpseEntry
from ykt_card.layouts.names import (DEFAULT_PPSE, MOT_T_EP, PPSE_NAME, SFI_CAPP, SFI_HISTORY, SFI_HOLDER, SFI_LOG,
                                    SFI_MANAGEMENT, SFI_PUBLIC, ppse_for)
from ykt_card.persistence import MemoryFailure, persist
from ykt_card.proof import PROOF_KINDS, PROOF_TYPES, Proof

__all__ = [
    "BinaryFile", "CyclicFile", "RecordFile", "ElementaryFile", "Purse", "Pin", "Proof", "Lock", "PpseEntry",
    "CardState", "PersistentStore", "FaultInjector", "PowerLoss", "DEFAULT_ATS_INTERFACE",
    "DEFAULT_ATS_HISTORICAL", "StateError", "pin_bcd",
]

DEFAULT_ATS_INTERFACE = bytes.fromhex("78808002")
"""T0 TA TB TC of the ATS: FSCI 8 (256-byte frames), 106 kbit/s only, FWI 8, CID supported (ref 1.1)."""
DEFAULT_ATS_HISTORICAL = b"YKT-TU"
"""Proprietary historical bytes (first byte not 00/10/8x): this is a ykt virtual card, not a vendor's."""
DEFAULT_CAPP_RECORDS = (EF1AMetro.record_id, EF1ABus.record_id)
"""The EF1A records a card gets when nobody says otherwise: metro (01) and bus (02)."""


class StateError(ValueError):
    """A card state that breaks the card's own rules: `field` (dotted, as in the image) and `reason`.

    Never carries a key value.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- purse, PIN, locks -----------------------------------------------------------------------------

@dataclass(slots=True)
class Purse:
    """The EP value: real balance (signed; negative while overdrawn), limits and the two counters.

    Amounts are fen. INITIALIZE and GET BALANCE P1 00 report `balance + overdraft_limit` (ref 1.4).
    """

    balance: int = 0
    overdraft_limit: int = 0
    max_balance: int = 100_000
    online_counter: int = 0
    offline_counter: int = 0


@dataclass(slots=True)
class Pin:
    """The application PIN: BCD digits (odd lengths padded with F), tries left out of `max_tries` (D11)."""

    value: bytes = b"\x12\x34\x56"
    tries_left: int = 3
    max_tries: int = 3

    def __repr__(self) -> str:  # the PIN is a secret too
        return f"Pin(<{len(self.value)} bytes>, tries_left={self.tries_left}, max_tries={self.max_tries})"


class Lock(str, enum.Enum):
    """Application lock flag, set by APPLICATION BLOCK and cleared (temporary only) by UNBLOCK."""

    NONE = "none"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


# --- the card state --------------------------------------------------------------------------------

@dataclass(eq=True)
class CardState:
    """Everything a T-Union card keeps across power cycles.

    Build a fresh card with `CardState.new(...)`; images rebuild one field by field (ykt_card.card.image).
    `key_sets` maps the key index a terminal sends in INITIALIZE (D16: 01 = 3DES, 02 = SM4 on the
    reference profile) to the card's own keys (already diversified, `diversification == ()`).
    """

    files: dict[int, ElementaryFile]
    key_sets: dict[int, KeySet]
    purse: Purse = field(default_factory=Purse)
    pin: Pin = field(default_factory=Pin)
    pin_required_for_load: bool = False
    lock: Lock = Lock.NONE
    proofs: dict[str, Proof] = field(default_factory=dict)
    aid: bytes = MOT_T_EP
    app_version: int = 0x02
    ats_interface: bytes = DEFAULT_ATS_INTERFACE
    ats_historical: bytes = DEFAULT_ATS_HISTORICAL
    #: the chip's ISO 14443-3 UID (anticollision; what a PC/SC reader answers to FF CA 00 00)
    uid: bytes = DEFAULT_UID
    ppse: tuple[PpseEntry, ...] = DEFAULT_PPSE
    transport_key: SecretKey | None = None
    journal: list[Write] = field(default_factory=list)
    journal_complete: bool = False

    # -- construction ----------------------------------------------------------------------------
    @classmethod
    def new(
        cls,
        ef15: bytes,
        key_sets: Iterable[KeySet] | Mapping[int, KeySet],
        *,
        ef16: bytes | None = None,
        ef17: bytes | None = None,
        capp_records: Iterable[int] | Mapping[int, bytes] | None = None,
        log_capacity: int = EF18.capacity,  # type: ignore[assignment]
        history_capacity: int = EF1EA.capacity,  # type: ignore[assignment]
        balance: int = 0,
        overdraft_limit: int = 0,
        max_balance: int = 100_000,
        online_counter: int = 0,
        offline_counter: int = 0,
        pin: str = "123456",
        pin_tries: int = 3,
        pin_required_for_load: bool = False,
        app_version: int = 0x02,
        ats_historical: bytes = DEFAULT_ATS_HISTORICAL,
        ats_interface: bytes = DEFAULT_ATS_INTERFACE,
        uid: bytes = DEFAULT_UID,
        aid: bytes = MOT_T_EP,
        ppse: Sequence[PpseEntry] | None = None,
        transport_key: SecretKey | None = None,
        extra_files: Iterable[ElementaryFile] = (),
    ) -> CardState:
        """A personalised card with the reference file system (section 1.3), files built from the layouts.

        ef15: the 30 bytes of EF15; issuer ID and serial (EF15.issuer_id_of, serial8_of) diversify keys.
        key_sets: TEST key sets, master (diversified here, D2) or card keys (`diversification == ()`);
            a sequence is keyed by each set's key index (the index of its purchase key; its load and
            TAC keys must share it), a mapping gives the index explicitly.
        ef16, ef17: 55 and 60 bytes (default: the layouts' blank records: anonymous holder, zeros).
        capp_records: EF1A record IDs (blank records at the layouts' sizes, `blank_record`), or a
            mapping record ID -> initial bytes (default: records 01 metro and 02 bus).
        log_capacity, history_capacity: records of EF18 and EF1E (default: the layouts' 10 and 30).
        balance .. offline_counter: the purse (real balance in fen; the overdraft limit is 3 bytes).
        pin: decimal digits (default 123456), stored BCD; pin_tries: tries allowed (D11).
        aid: the EP application's DF name: MOT_T_EP, or a virtual card's extended AID (mobile.md M1).
        ppse: the PPSE directory (default: `names.ppse_for(aid)`, the extended AID for a virtual card).
        transport_key: the card transport key protecting WRITE KEY for key indexes without card_master.
        extra_files: issuer-defined files (SFI 05..08, 19...).
        """
        if not isinstance(ef15, (bytes, bytearray)) or len(ef15) != EF15.size:
            got = len(ef15) if hasattr(ef15, "__len__") else repr(ef15)
            raise StateError("ef15", f"must be {EF15.size} bytes, got {got}")
        ef15 = bytes(ef15)
        files: dict[int, ElementaryFile] = {
            SFI_PUBLIC: BinaryFile(SFI_PUBLIC, ef15),
            SFI_HOLDER: BinaryFile(SFI_HOLDER, EF16.encode(EF16.blank()) if ef16 is None else bytes(ef16)),
            SFI_MANAGEMENT: BinaryFile(SFI_MANAGEMENT, EF17.encode(EF17.blank()) if ef17 is None else bytes(ef17)),
            SFI_LOG: CyclicFile.empty(SFI_LOG, EF18.size, log_capacity),  # type: ignore[arg-type]
            SFI_CAPP: RecordFile(SFI_CAPP, _capp_records(capp_records)),
            SFI_HISTORY: CyclicFile.empty(SFI_HISTORY, EF1EA.size, history_capacity),  # type: ignore[arg-type]
        }
        for f in extra_files:
            if f.sfi in files:
                raise StateError("extra_files", f"SFI {f.sfi:02X} already exists")
            files[f.sfi] = f
        state = cls(
            files=files,
            key_sets=_card_key_sets(key_sets, EF15.issuer_id_of(ef15), EF15.serial8_of(ef15)),
            purse=Purse(balance, overdraft_limit, max_balance, online_counter, offline_counter),
            pin=Pin(pin_bcd(pin), pin_tries, pin_tries),
            pin_required_for_load=pin_required_for_load,
            app_version=app_version,
            ats_interface=bytes(ats_interface),
            ats_historical=bytes(ats_historical),
            uid=bytes(uid),
            aid=bytes(aid),
            ppse=tuple(ppse_for(bytes(aid)) if ppse is None else ppse),
            transport_key=transport_key,
        )
        state.validate()
        return state

    # -- views -----------------------------------------------------------------------------------
    @property
    def ef15(self) -> bytes:
        return self.files[SFI_PUBLIC].data  # type: ignore[union-attr]

    @property
    def issuer_id(self) -> bytes:
        """EF15's issuer ID: the first diversification factor (D2)."""
        return EF15.issuer_id_of(self.ef15)

    @property
    def serial8(self) -> bytes:
        """EF15's card serial (last 8 bytes of the card number): what the PSAM and diversification use."""
        return EF15.serial8_of(self.ef15)

    @property
    def card_no(self) -> str:
        """The 20-digit string of EF15's card number (clearing records' `card_no`)."""
        return EF15.card_no_of(self.ef15)

    @property
    def ats(self) -> bytes:
        """TL ‖ T0 TA TB TC ‖ historical bytes, as the card answers RATS."""
        body = self.ats_interface + self.ats_historical
        return bytes((len(body) + 1,)) + body

    def ppse_fci(self) -> bytes:
        """The answer to SELECT 2PAY.SYS.DDF01, encoded by `PpseFci`."""
        return _ppse_fci(tuple(self.ppse))

    def app_fci(self) -> bytes:
        """The answer to SELECT of the EP application, encoded by `AdfFci` around the bytes EF15 holds."""
        return _app_fci(self.aid, self.app_version, self.ef15)

    def snapshot(self) -> dict[str, Any]:
        """A comparable view of everything money-, log- and proof-related (for tests and tools).

        Holds no key values: key sets appear as their JSON-safe summaries.
        """
        return {
            "purse": (self.purse.balance, self.purse.overdraft_limit, self.purse.max_balance,
                      self.purse.online_counter, self.purse.offline_counter),
            "files": {sfi: _file_view(f) for sfi, f in sorted(self.files.items())},
            "proofs": dict(self.proofs),
            "pin_tries": self.pin.tries_left,
            "lock": self.lock,
            "keys": {i: ks.summary()["keys"] for i, ks in self.key_sets.items()},
            "journal": (len(self.journal), self.journal_complete),
        }

    def memento(self) -> Callable[[], None]:
        """Remember everything a commit can change; the returned call puts it back, in place.

        Why: a commit whose image cannot be saved must leave the card exactly as it was (balance,
        counters, records, proofs, keys, PIN tries, lock, journal). Restoring in place keeps every
        object a caller holds (the purse, a file) the card's own. Costs a few small copies, taken only
        when the card saves an image (beside an fsync, nothing).
        """
        purse = self.purse
        money = tuple(getattr(purse, name) for name in PURSE_FIELDS)
        files = dict(self.files)
        contents = [(f, _file_content(f)) for f in files.values()]
        proofs, key_sets = dict(self.proofs), dict(self.key_sets)
        tries, lock, transport_key = self.pin.tries_left, self.lock, self.transport_key
        journal, complete = list(self.journal), self.journal_complete

        def restore() -> None:
            for name, value in zip(PURSE_FIELDS, money):
                setattr(purse, name, value)
            self.files.clear()
            self.files.update(files)
            for f, content in contents:
                _restore_file(f, content)
            self.proofs.clear()
            self.proofs.update(proofs)
            self.key_sets.clear()
            self.key_sets.update(key_sets)
            self.pin.tries_left, self.lock, self.transport_key = tries, lock, transport_key
            self.journal[:] = journal
            self.journal_complete = complete
        return restore

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every invariant the card OS relies on; raise StateError naming the field."""
        for check in (_check_purse, _check_files, _check_keys, _check_pin, _check_proofs, _check_application,
                      _check_journal):
            check(self)


def _file_content(f: ElementaryFile) -> Any:
    """What a write can change in a file (its bytes, its slots and ring, its records)."""
    if isinstance(f, BinaryFile):
        return f.data
    if isinstance(f, CyclicFile):
        return list(f.slots), f.head, f.count
    return dict(f.records)


def _restore_file(f: ElementaryFile, content: Any) -> None:
    if isinstance(f, BinaryFile):
        f.data = content
    elif isinstance(f, CyclicFile):
        f.slots[:], f.head, f.count = content
    else:
        f.records.clear()
        f.records.update(content)


# --- construction helpers ----------------------------------------------------------------------------

def _capp_records(given: Iterable[int] | Mapping[int, bytes] | None) -> dict[int, bytes]:
    """EF1A's records: blank ones for record IDs, or the bytes a mapping gives."""
    if given is None:
        given = DEFAULT_CAPP_RECORDS
    if isinstance(given, Mapping):
        records = {}
        for rid, content in given.items():
            if not isinstance(content, (bytes, bytearray)):
                raise StateError(f"capp_records.{rid:02X}", "initial content must be bytes (sizes come from "
                                                            "the EF1A layouts: give record IDs for blank records)")
            records[rid] = bytes(content)
        return records
    records = {}
    for rid in given:
        try:
            records[rid] = blank_record(rid)
        except LayoutError as exc:
            raise StateError("capp_records", exc.reason) from None
    return records


def _card_key_sets(key_sets: Iterable[KeySet] | Mapping[int, KeySet], issuer: bytes,
                   serial8: bytes) -> dict[int, KeySet]:
    """The card's own key sets by key index: master sets diversified for this card (D2)."""
    items = list(key_sets.items()) if isinstance(key_sets, Mapping) else [(None, ks) for ks in key_sets]
    by_index: dict[int, KeySet] = {}
    for index, ks in items:
        if not isinstance(ks, KeySet):
            raise StateError("key_sets", f"{type(ks).__name__} is not a KeySet")
        try:
            ks.require(Use.SIMULATION)
        except ValueError as exc:
            raise StateError("key_sets", str(exc)) from None
        card = ks if not ks.diversification else ks.card_keys(issuer, serial8)
        idx = _key_index(card) if index is None else index
        if idx in by_index:
            raise StateError("key_sets", f"two key sets claim key index {idx:02X}")
        by_index[idx] = card
    if not by_index:
        raise StateError("key_sets", "a card needs at least one key set")
    return dict(sorted(by_index.items()))


def _key_index(ks: KeySet) -> int:
    try:
        idx = ks.entry("purchase").index
    except ValueError as exc:
        raise StateError("key_sets", str(exc)) from None
    for role in ("load", "tac"):
        if ks.has(role) and ks.entry(role).index != idx:
            raise StateError("key_sets", f"{ks.name}: {role} key index {ks.entry(role).index:02X} differs from "
                                         f"the purchase key index {idx:02X}; pass a mapping to choose the index")
    return idx


@functools.lru_cache(maxsize=256)
def _app_fci(aid: bytes, app_version: int, ef15: bytes) -> bytes:
    """The EP application's FCI (cached: a validator selects the same card on every tap)."""
    return AdfFci.encode({"aid": aid.hex().upper(), "app_version": f"{app_version:02X}", "ef15": ef15})


@functools.lru_cache(maxsize=64)
def _ppse_fci(entries: tuple[PpseEntry, ...]) -> bytes:
    return PpseFci.encode({"df_name": PPSE_NAME.decode("ascii"), "entries": [e.fields() for e in entries]})


# --- validation ----------------------------------------------------------------------------------------

def _check_purse(state: CardState) -> None:
    p = state.purse
    if not 0 <= p.overdraft_limit <= 0xFFFFFF:
        raise StateError("purse.overdraft_limit", f"{p.overdraft_limit} does not fit 3 bytes")
    if not 0 <= p.max_balance <= 0x7FFFFFFF:
        raise StateError("purse.max_balance", f"{p.max_balance} out of range 0..7FFFFFFF")
    if not -p.overdraft_limit <= p.balance <= p.max_balance:
        raise StateError("purse.balance", f"{p.balance} outside -overdraft_limit..max_balance "
                                          f"({-p.overdraft_limit}..{p.max_balance})")
    for name in ("online_counter", "offline_counter"):
        v = getattr(p, name)
        if not 0 <= v <= 0xFFFF:
            raise StateError(f"purse.{name}", f"{v} does not fit 2 bytes")


def _check_files(state: CardState) -> None:
    for sfi, f in state.files.items():
        _check_file(sfi, f)
    for layout in (EF15, EF16, EF17):
        f = state.files.get(layout.sfi)  # type: ignore[arg-type]
        if not isinstance(f, BinaryFile) or f.size != layout.size:
            raise StateError(f"files.{layout.sfi:02X}", f"must be a binary file of {layout.size} bytes ({layout.name})")
    log = state.files.get(SFI_LOG)
    if not isinstance(log, CyclicFile) or log.record_size != EF18.size:
        raise StateError(f"files.{SFI_LOG:02X}", f"must be a cyclic file of {EF18.size}-byte records (EF18)")
    if not isinstance(state.files.get(SFI_CAPP, RecordFile(SFI_CAPP, {})), RecordFile):
        raise StateError(f"files.{SFI_CAPP:02X}", "must be a record-ID file (EF1A)")


def _check_file(sfi: int, f: ElementaryFile) -> None:
    where = f"files.{sfi:02X}"
    if not 1 <= sfi <= 30 or f.sfi != sfi:
        raise StateError(where, "SFI must be 01..1E and match the file's own")
    if isinstance(f, BinaryFile):
        if not isinstance(f.data, bytes) or not 1 <= len(f.data) <= 0x7FFF:
            raise StateError(where, "binary data of 1..32767 bytes")
    elif isinstance(f, CyclicFile):
        if not 1 <= f.record_size <= 0xFF or not 1 <= f.capacity <= 0xFE:
            raise StateError(where, "record size 1..255, capacity 1..254")
        if len(f.slots) != f.capacity or not 0 <= f.count <= f.capacity:
            raise StateError(where, "slots must match the capacity, count within it")
        if (f.count == 0) != (f.head == -1) or not -1 <= f.head < f.capacity:
            raise StateError(where, "head must be -1 exactly when the file is empty")
        for n in range(1, f.count + 1):
            rec = f.record(n)
            if rec is None or len(rec) != f.record_size:
                raise StateError(where, f"record {n} missing or not {f.record_size} bytes")
    elif isinstance(f, RecordFile):
        for rid, rec in f.records.items():
            if not 1 <= rid <= 0xFE or not isinstance(rec, bytes) or not 1 <= len(rec) <= 0xFF:
                raise StateError(where, f"record {rid}: ID 01..FE, 1..255 bytes")
    else:
        raise StateError(where, f"unknown file type {type(f).__name__}")


def _check_keys(state: CardState) -> None:
    if not state.key_sets and state.transport_key is None:
        raise StateError("key_sets", "a card needs a key set or a transport key")
    for index, ks in state.key_sets.items():
        if not 0 < index <= 0xFF:
            raise StateError(f"key_sets.{index}", "key index out of range 01..FF")
        where = f"key_sets.{index:02X}"
        if ks.diversification:
            raise StateError(where, "must hold card keys (diversification = [])")
        if not ks.test_only:
            raise StateError(where, "only TEST key sets go into virtual cards (D15)")
        for role, entry in ks.keys.items():
            if entry.key.algorithm is not ks.algorithm:
                raise StateError(f"{where}.{role}", "key algorithm differs from the set's")
        if not ks.has("tac") and (ks.has("purchase") or ks.has("load")):
            raise StateError(f"{where}.keys.tac", "missing: a key set with purchase or load keys needs its TAC key "
                                                  "(the card could not prove a transaction)")
    if state.transport_key is not None and not isinstance(state.transport_key, SecretKey):
        raise StateError("transport_key", "must be a SecretKey")


def _check_pin(state: CardState) -> None:
    pin = state.pin
    if not 2 <= len(pin.value) <= 6 or not _is_bcd_pin(pin.value):
        raise StateError("pin.value", "must be 4..12 BCD digits")
    if not 1 <= pin.max_tries <= 15 or not 0 <= pin.tries_left <= pin.max_tries:
        raise StateError("pin.tries_left", "must be within 0..max_tries (1..15)")


def _check_proofs(state: CardState) -> None:
    for kind, proof in state.proofs.items():
        if kind not in PROOF_KINDS:
            raise StateError(f"proofs.{kind}", f"unknown kind (known: {', '.join(PROOF_KINDS)})")
        if len(proof.mac2) != 4 or len(proof.tac) != 4 or not 0 <= proof.counter <= 0xFFFF:
            raise StateError(f"proofs.{kind}", "MAC2 and TAC are 4 bytes, the counter 2 bytes")
        if proof.tx_type not in PROOF_TYPES[kind]:
            allowed = ", ".join(f"{t:02X}" for t in PROOF_TYPES[kind])
            raise StateError(f"proofs.{kind}.type", f"{proof.tx_type:02X} is not a {kind} type ({allowed})")


def _check_application(state: CardState) -> None:
    """AID, FCI version and PPSE must encode as the layouts say; the ATS must be well formed."""
    if not 0 <= state.app_version <= 0xFF:
        raise StateError("app_version", "must be one byte")
    try:
        _app_fci(state.aid, state.app_version, state.ef15)
    except LayoutError as exc:
        raise StateError(exc.field or "aid", exc.reason) from None
    try:
        _ppse_fci(tuple(state.ppse))
    except LayoutError as exc:
        raise StateError((exc.field or "ppse").replace("entries", "ppse", 1), exc.reason) from None
    except (AttributeError, TypeError):
        raise StateError("ppse", "must be a sequence of PPSE entries") from None
    if len(state.ats_historical) > 15:
        raise StateError("ats_historical", "at most 15 bytes fit a PC/SC pseudo-ATR")
    try:
        check_uid(state.uid)
    except ValueError as exc:
        raise StateError("uid", str(exc).removeprefix("UID: ")) from None
    if not state.ats_interface or state.ats_interface[0] & 0x80:
        raise StateError("ats_interface", "T0 must come first and have bit 8 clear")
    if len(state.ats_interface) != 1 + bin(state.ats_interface[0] & 0x70).count("1"):
        raise StateError("ats_interface", "T0 announces a different number of TA/TB/TC bytes")


def _check_journal(state: CardState) -> None:
    for i, w in enumerate(state.journal):
        reason = w.problem(state) if isinstance(w, Write) else "not a write"
        if reason is not None:
            raise StateError(f"journal[{i}]", reason)
    if state.journal_complete and not state.journal:
        raise StateError("journal_complete", "set on an empty journal")


def _file_view(f: ElementaryFile) -> Any:
    if isinstance(f, BinaryFile):
        return f.data
    if isinstance(f, CyclicFile):
        return tuple(f.records())
    return tuple(sorted(f.records.items()))


def pin_bcd(digits: str) -> bytes:
    """'123456' -> 12 34 56; odd lengths end with F ('12345' -> 12 34 5F)."""
    if not isinstance(digits, str) or not digits.isdigit() or not 4 <= len(digits) <= 12:
        raise StateError("pin", "must be 4..12 decimal digits")
    if len(digits) % 2:
        digits += "F"
    return bytes.fromhex(digits)


def _is_bcd_pin(value: bytes) -> bool:
    text = value.hex().upper()
    if text.endswith("F"):
        text = text[:-1]
    return text.isdigit()


# --- power loss and the commit -------------------------------------------------------------------

class PowerLoss(CardPowerLoss):
    """The card lost power in the middle of an internal write (a FaultInjector cut it).

    A BaseException on purpose: the dispatcher turns every `Exception` from a handler into 6F00, but a
    power cut is not an answer at all. `process` lets it out; a transport treats it as the card
    leaving the field (no response), and the card recovers on its next power-on.
    """


class FaultInjector:
    """Cuts the card's power before internal write step number `cut_after` (0 = before the first).

    Steps are counted from construction or the last `arm`/`reset`. Unarmed (`cut_after=None`) it only
    counts and labels the steps, which is how a test learns how many cut points a command has. It
    fires once, then disarms itself.
    """

    def __init__(self, cut_after: int | None = None) -> None:
        self.cut_after = cut_after
        self.steps = 0
        self.labels: list[str] = []
        self.fired = False

    def arm(self, cut_after: int) -> None:
        if cut_after < 0:
            raise ValueError(f"cut_after {cut_after} must be >= 0")
        self.reset()
        self.cut_after = cut_after

    def reset(self) -> None:
        """Forget the steps counted so far (and disarm)."""
        self.cut_after = None
        self.steps = 0
        self.labels = []
        self.fired = False

    @property
    def armed(self) -> bool:
        return self.cut_after is not None

    def checkpoint(self, label: str) -> None:
        """Called by the store before each internal write step; raises PowerLoss at the chosen one."""
        if self.cut_after is not None and self.steps >= self.cut_after:
            self.cut_after = None
            self.fired = True
            raise PowerLoss(f"power cut after {self.steps} write steps, before {label}")
        self.steps += 1
        self.labels.append(label)

    def __repr__(self) -> str:
        return f"FaultInjector(cut_after={self.cut_after}, steps={self.steps}, fired={self.fired})"


class PersistentStore:
    """The card's EEPROM with its anti-tearing commit: the one place where card state changes.

    `on_commit(state)` runs after every completed commit and after a recovery that changed something,
    so an owner can save the card image; it runs before the response cut point, so a card that loses
    power after committing has already been saved. When it fails with an OSError (disk full, read-only
    file system), the commit is undone in memory and `MemoryFailure` (6581) is raised: the card in
    memory stays the card on disk (ykt_card.persistence). `memory_failure` keeps the latest such
    failure, for the owner to report.
    """

    __slots__ = ("state", "fault", "on_commit", "memory_failure")

    def __init__(self, state: CardState, fault: FaultInjector | None = None,
                 on_commit: Callable[[CardState], None] | None = None) -> None:
        self.state = state
        self.fault = fault
        self.on_commit = on_commit
        self.memory_failure: MemoryFailure | None = None

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply `writes` as one unit (all or nothing across a power cut, or a failed save)."""
        state = self.state
        fault = self.fault
        if fault is None:
            if self.on_commit is None:        # the fast path: nothing to save, nothing to undo
                for w in writes:
                    w.apply(state)
                return
            restore = state.memento()
            for w in writes:
                w.apply(state)
            self._save(restore)
            return
        restore = state.memento() if self.on_commit is not None else None
        journal = state.journal
        for w in writes:
            fault.checkpoint(f"journal {w.tag}")
            journal.append(w)
        fault.checkpoint("journal complete")
        state.journal_complete = True
        for w in writes:
            fault.checkpoint(f"apply {w.tag}")
            w.apply(state)
        fault.checkpoint("journal clear")
        state.journal_complete = False
        journal.clear()
        if restore is not None:
            self._save(restore)
        fault.checkpoint("response")

    def _save(self, restore: Callable[[], None]) -> None:
        try:
            persist(self.on_commit, self.state, restore)
        except MemoryFailure as failure:
            self.memory_failure = failure
            raise

    def recover(self) -> str:
        """Power-on recovery: roll a complete journal forward, discard an incomplete one.

        Returns "clean", "rolled forward" or "discarded". Recovery steps are checkpoints too, so a
        test can cut power during recovery and recover again (the writes are idempotent). If the
        recovered card cannot be saved, it stays recovered in memory (and `memory_failure` says so):
        the image still holds the journal, and recovering it on the next load gives this same state.
        """
        state = self.state
        if not state.journal and not state.journal_complete:
            return "clean"
        fault = self.fault
        if state.journal_complete:
            for w in state.journal:
                if fault is not None:
                    fault.checkpoint(f"recover {w.tag}")
                w.apply(state)
            outcome = "rolled forward"
        else:
            outcome = "discarded"
        if fault is not None:
            fault.checkpoint("recover clear")
        state.journal_complete = False
        state.journal.clear()
        try:
            persist(self.on_commit, state, lambda: None)
        except MemoryFailure as failure:
            self.memory_failure = failure
        return outcome
