"""What a virtual T-Union card holds, and the one way it changes: a journalled commit (decision D7).

`CardState` is the card's persistent memory (its EEPROM): files, purse, key sets, proofs, PIN, lock
flags, application identity and the commit journal. Nothing else survives a power cut; the card OS keeps
its volatile state (selection, sessions, challenge) to itself.

Every change goes through `PersistentStore.commit(writes)`. A write is a small absolute operation (a
tuple such as ``("purse", "balance", 1200)``) so that applying it twice is harmless. With a
`FaultInjector` attached, a commit runs the way a card's anti-tearing mechanism does, in discrete
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from apdu.cardos import CardPowerLoss
from keysets import KeyEntry, KeySet, SecretKey
from keysets.keyset import Use

__all__ = [
    "TUNION_EP_AID", "TUNION_CASH_AID", "PPSE_NAME", "SFI_PUBLIC", "SFI_HOLDER", "SFI_MANAGEMENT",
    "SFI_LOG", "SFI_CAPP", "SFI_HISTORY", "BinaryFile", "CyclicFile", "RecordFile", "ElementaryFile",
    "Purse", "Pin", "Proof", "Lock", "PpseEntry", "CardState", "Write", "apply_write",
    "PersistentStore", "FaultInjector", "PowerLoss", "blank_capp_record", "DEFAULT_PPSE",
    "DEFAULT_ATS_INTERFACE", "DEFAULT_ATS_HISTORICAL", "PROOF_KINDS", "StateError", "check_write",
    "pin_bcd", "PURSE_FIELDS",
]

TUNION_EP_AID = bytes.fromhex("A000000632010105")
"""MOT_T_EP: the T-Union electronic purse application this card implements."""
TUNION_CASH_AID = bytes.fromhex("A000000632010106")
"""MOT_T_CASH: listed in the reference PPSE; this card does not implement it (SELECT answers 6A82)."""
PPSE_NAME = b"2PAY.SYS.DDF01"

SFI_PUBLIC = 0x15       # binary, 30 B: public application data
SFI_HOLDER = 0x16       # binary, 55 B: holder
SFI_MANAGEMENT = 0x17   # binary, 60 B: management info
SFI_LOG = 0x18          # cyclic, 10 x 23 B: purse log, written by the COS only
SFI_CAPP = 0x1A         # variable records by record ID (128 B; 07: 112 B; 0D: 30 B)
SFI_HISTORY = 0x1E      # cyclic, 30 x 48 B: transit history

DEFAULT_ATS_INTERFACE = bytes.fromhex("78808002")
"""T0 TA TB TC of the ATS: FSCI 8 (256-byte frames), 106 kbit/s only, FWI 8, CID supported (ref 1.1)."""
DEFAULT_ATS_HISTORICAL = b"YKT-TU"
"""Proprietary historical bytes (first byte not 00/10/8x): this is a ykt virtual card, not a vendor's."""

PROOF_KINDS = ("load", "purchase")
"""The card keeps the proof of its latest load and of its latest purchase (D5)."""


class StateError(ValueError):
    """A card state that breaks the card's own rules; the message names the field (never a key value)."""


# --- files ---------------------------------------------------------------------------------------

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
    """A cyclic EF of fixed-size records, kept the way EEPROM holds it: physical slots and a head.

    Record 1 is the newest (`slots[head]`), record 2 the one before, and so on. A new record goes to
    the slot after the head; when the file is full it overwrites the oldest. Keeping the physical
    layout makes every write absolute (slot N := data, head := N), which the journal needs.
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


def blank_capp_record(record_id: int, size: int = 128) -> bytes:
    """A fresh EF1A record: header 27 ‖ ID ‖ length-after ‖ valid 01 ‖ interop 01 ‖ unlocked 00, zeros.

    The header is what real cards carry (reference 1.3); the body is zero until a terminal writes it.
    """
    if not 1 <= record_id <= 0xFF:
        raise StateError(f"EF1A record ID {record_id} out of range 1..255")
    if not 6 <= size <= 0xFF:
        raise StateError(f"EF1A record {record_id:02X}: size {size} out of range 6..255")
    return bytes((0x27, record_id, size - 3, 0x01, 0x01, 0x00)) + bytes(size - 6)


# --- purse, PIN, proofs, locks, PPSE ---------------------------------------------------------------

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


PURSE_FIELDS = ("balance", "overdraft_limit", "max_balance", "online_counter", "offline_counter")


@dataclass(slots=True)
class Pin:
    """The application PIN: BCD digits (odd lengths padded with F), tries left out of `max_tries` (D11)."""

    value: bytes = b"\x12\x34\x56"
    tries_left: int = 3
    max_tries: int = 3

    def __repr__(self) -> str:  # the PIN is a secret too
        return f"Pin(<{len(self.value)} bytes>, tries_left={self.tries_left}, max_tries={self.max_tries})"


@dataclass(frozen=True, slots=True)
class Proof:
    """What GET TRANSACTION PROVE returns for one completed transaction (D5).

    `counter` is the counter after the transaction; `mac2` is the card's MAC2 for purchases and the
    host's MAC2 for a load.
    """

    tx_type: int
    counter: int
    mac2: bytes
    tac: bytes


class Lock(str, enum.Enum):
    """Application lock flag, set by APPLICATION BLOCK and cleared (temporary only) by UNBLOCK."""

    NONE = "none"
    TEMPORARY = "temporary"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class PpseEntry:
    """One directory entry of the PPSE: AID, label (ASCII) and priority (87)."""

    aid: bytes
    label: str
    priority: int


DEFAULT_PPSE = (
    PpseEntry(TUNION_CASH_AID, "MOT_T_CASH", 1),
    PpseEntry(TUNION_EP_AID, "MOT_T_EP", 2),
)
"""The reference PPSE (section 1.2, from HY personalisation data), byte for byte."""


# --- writes --------------------------------------------------------------------------------------

Write = tuple
"""One absolute change, applied by `apply_write`. The forms are:

    ("purse", field, value)           a Purse field (balance, counters, limits)
    ("binary", sfi, offset, data)     bytes of a binary file
    ("slot", sfi, slot, data)         a physical slot of a cyclic file
    ("ring", sfi, head, count)        the head and record count of a cyclic file
    ("record", sfi, record_id, data)  a record of a record-ID file (EF1A)
    ("proof", kind, Proof)            the latest proof of kind "load" or "purchase"
    ("pin_tries", tries_left)         the PIN try counter
    ("lock", Lock)                    the application lock flag
    ("key", key_index, KeyEntry)      one key of a key set (created with the key's algorithm if new)
    ("transport_key", SecretKey)      the card transport key (protects WRITE KEY when a key set has none)
"""


def _w_purse(state: CardState, name: str, value: int) -> None:
    setattr(state.purse, name, value)


def _w_binary(state: CardState, sfi: int, offset: int, data: bytes) -> None:
    f = state.files[sfi]
    old = f.data  # type: ignore[union-attr]
    f.data = old[:offset] + data + old[offset + len(data):]  # type: ignore[union-attr]


def _w_slot(state: CardState, sfi: int, slot: int, data: bytes) -> None:
    state.files[sfi].slots[slot] = data  # type: ignore[union-attr]


def _w_ring(state: CardState, sfi: int, head: int, count: int) -> None:
    f = state.files[sfi]
    f.head = head  # type: ignore[union-attr]
    f.count = count  # type: ignore[union-attr]


def _w_record(state: CardState, sfi: int, record_id: int, data: bytes) -> None:
    state.files[sfi].records[record_id] = data  # type: ignore[union-attr]


def _w_proof(state: CardState, kind: str, proof: Proof) -> None:
    state.proofs[kind] = proof


def _w_pin_tries(state: CardState, tries: int) -> None:
    state.pin.tries_left = tries


def _w_lock(state: CardState, lock: Lock) -> None:
    state.lock = lock


def _w_key(state: CardState, index: int, entry: KeyEntry) -> None:
    ks = state.key_sets.get(index)
    if ks is None:
        state.key_sets[index] = KeySet(f"card key set {index:02X}", True, entry.key.algorithm, (),
                                       {entry.role: entry}, "WRITE KEY")
    else:
        keys = dict(ks.keys)
        keys[entry.role] = entry
        state.key_sets[index] = KeySet(ks.name, ks.test_only, ks.algorithm, (), keys, ks.source)


def _w_transport_key(state: CardState, key: SecretKey) -> None:
    state.transport_key = key


_APPLY: dict[str, Callable[..., None]] = {
    "purse": _w_purse, "binary": _w_binary, "slot": _w_slot, "ring": _w_ring, "record": _w_record,
    "proof": _w_proof, "pin_tries": _w_pin_tries, "lock": _w_lock, "key": _w_key,
    "transport_key": _w_transport_key,
}
WRITE_TAGS = tuple(_APPLY)


def apply_write(state: CardState, write: Write) -> None:
    """Apply one absolute write to the state (idempotent)."""
    _APPLY[write[0]](state, *write[1:])


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
    aid: bytes = TUNION_EP_AID
    app_version: int = 0x02
    ats_interface: bytes = DEFAULT_ATS_INTERFACE
    ats_historical: bytes = DEFAULT_ATS_HISTORICAL
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
        capp_records: Mapping[int, bytes | int] | None = None,
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
        ppse: Sequence[PpseEntry] = DEFAULT_PPSE,
        transport_key: SecretKey | None = None,
        extra_files: Iterable[ElementaryFile] = (),
    ) -> CardState:
        """A personalised card with the reference file system (section 1.3).

        ef15: the 30 bytes of EF15; issuer ID (bytes 0..7) and serial (bytes 12..19) diversify keys.
        key_sets: TEST key sets, master (diversified here, D2) or card keys (`diversification == ()`);
            a sequence is keyed by each set's key index (the index of its purchase key; its load and
            TAC keys must share it), a mapping gives the index explicitly.
        ef16, ef17: 55 and 60 bytes (default: blank holder, zeros).
        capp_records: EF1A record ID -> initial bytes or a size (default: records 01 and 02, 128 B,
            with the blank header of `blank_capp_record`).
        balance .. offline_counter: the purse (real balance in fen; the overdraft limit is 3 bytes).
        pin: decimal digits (default 123456), stored BCD; pin_tries: tries allowed (D11).
        transport_key: the card transport key protecting WRITE KEY for key indexes without card_master.
        extra_files: issuer-defined files (SFI 05..08, 19...).
        """
        if not isinstance(ef15, (bytes, bytearray)) or len(ef15) != 30:
            raise StateError(f"ef15: must be 30 bytes, got {len(ef15) if hasattr(ef15, '__len__') else ef15!r}")
        ef15 = bytes(ef15)
        issuer, serial8 = ef15[0:8], ef15[12:20]
        if isinstance(key_sets, Mapping):
            items = list(key_sets.items())
        else:
            items = [(None, ks) for ks in key_sets]
        by_index: dict[int, KeySet] = {}
        for index, ks in items:
            if not isinstance(ks, KeySet):
                raise StateError(f"key_sets: {type(ks).__name__} is not a KeySet")
            try:
                ks.require(Use.SIMULATION)
            except ValueError as exc:
                raise StateError(f"key_sets: {exc}") from None
            card = ks if not ks.diversification else ks.card_keys(issuer, serial8)
            idx = _key_index(card) if index is None else index
            if idx in by_index:
                raise StateError(f"key_sets: two key sets claim key index {idx:02X}")
            by_index[idx] = card
        if not by_index:
            raise StateError("key_sets: a card needs at least one key set")
        if ef16 is None:
            ef16 = b"\x00\x00" + b" " * 52 + b"\x00"
        if ef17 is None:
            ef17 = bytes(60)
        if capp_records is None:
            capp_records = {1: 128, 2: 128}
        records: dict[int, bytes] = {}
        for rid, content in capp_records.items():
            records[rid] = blank_capp_record(rid, content) if isinstance(content, int) else bytes(content)
        files: dict[int, ElementaryFile] = {
            SFI_PUBLIC: BinaryFile(SFI_PUBLIC, ef15),
            SFI_HOLDER: BinaryFile(SFI_HOLDER, bytes(ef16)),
            SFI_MANAGEMENT: BinaryFile(SFI_MANAGEMENT, bytes(ef17)),
            SFI_LOG: CyclicFile.empty(SFI_LOG, 23, 10),
            SFI_CAPP: RecordFile(SFI_CAPP, records),
            SFI_HISTORY: CyclicFile.empty(SFI_HISTORY, 48, 30),
        }
        for f in extra_files:
            if f.sfi in files:
                raise StateError(f"extra_files: SFI {f.sfi:02X} already exists")
            files[f.sfi] = f
        state = cls(
            files=files,
            key_sets=dict(sorted(by_index.items())),
            purse=Purse(balance, overdraft_limit, max_balance, online_counter, offline_counter),
            pin=Pin(pin_bcd(pin), pin_tries, pin_tries),
            pin_required_for_load=pin_required_for_load,
            app_version=app_version,
            ats_interface=bytes(ats_interface),
            ats_historical=bytes(ats_historical),
            ppse=tuple(ppse),
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
        """EF15 bytes 0..7: first diversification factor (D2)."""
        return self.ef15[0:8]

    @property
    def serial8(self) -> bytes:
        """EF15 bytes 12..19: the application serial the PSAM and key diversification use."""
        return self.ef15[12:20]

    @property
    def card_no(self) -> str:
        """The 20-digit string of EF15 bytes 10..19 (clearing records' `card_no`)."""
        return self.ef15[10:20].hex().upper()

    @property
    def ats(self) -> bytes:
        """TL ‖ T0 TA TB TC ‖ historical bytes, as the card answers RATS."""
        body = self.ats_interface + self.ats_historical
        return bytes((len(body) + 1,)) + body

    def ppse_fci(self) -> bytes:
        """The FCI of 2PAY.SYS.DDF01: 6F(84 name, A5(BF0C(61(4F aid, 50 label, 87 priority)...)))."""
        entries = b"".join(
            _tlv(b"\x61", _tlv(b"\x4F", e.aid) + _tlv(b"\x50", e.label.encode("ascii"))
                 + _tlv(b"\x87", bytes((e.priority,))))
            for e in self.ppse
        )
        return _tlv(b"\x6F", _tlv(b"\x84", PPSE_NAME) + _tlv(b"\xA5", _tlv(b"\xBF\x0C", entries)))

    def app_fci(self) -> bytes:
        """The FCI of the EP application: 6F(84 AID, A5(9F08 version, 9F0C EF15)) (ref 1.2)."""
        prop = _tlv(b"\x9F\x08", bytes((self.app_version,))) + _tlv(b"\x9F\x0C", self.ef15)
        return _tlv(b"\x6F", _tlv(b"\x84", self.aid) + _tlv(b"\xA5", prop))

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

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> None:
        """Check every invariant the card OS relies on; raise StateError naming the field."""
        p = self.purse
        if not 0 <= p.overdraft_limit <= 0xFFFFFF:
            raise StateError(f"purse.overdraft_limit: {p.overdraft_limit} does not fit 3 bytes")
        if not 0 <= p.max_balance <= 0x7FFFFFFF:
            raise StateError(f"purse.max_balance: {p.max_balance} out of range 0..7FFFFFFF")
        if not -p.overdraft_limit <= p.balance <= p.max_balance:
            raise StateError(f"purse.balance: {p.balance} outside -overdraft_limit..max_balance "
                             f"({-p.overdraft_limit}..{p.max_balance})")
        for name in ("online_counter", "offline_counter"):
            v = getattr(p, name)
            if not 0 <= v <= 0xFFFF:
                raise StateError(f"purse.{name}: {v} does not fit 2 bytes")
        for sfi, f in self.files.items():
            _validate_file(sfi, f)
        for sfi, kind, size in ((SFI_PUBLIC, BinaryFile, 30), (SFI_HOLDER, BinaryFile, 55),
                                (SFI_MANAGEMENT, BinaryFile, 60)):
            f = self.files.get(sfi)
            if not isinstance(f, kind) or f.size != size:
                raise StateError(f"files.{sfi:02X}: must be a binary file of {size} bytes")
        log = self.files.get(SFI_LOG)
        if not isinstance(log, CyclicFile) or log.record_size != 23:
            raise StateError("files.18: must be a cyclic file of 23-byte records")
        if not isinstance(self.files.get(SFI_CAPP, RecordFile(SFI_CAPP, {})), RecordFile):
            raise StateError("files.1A: must be a record-ID file")
        if not self.key_sets and self.transport_key is None:
            raise StateError("key_sets: a card needs a key set or a transport key")
        for index, ks in self.key_sets.items():
            if not 0 < index <= 0xFF:
                raise StateError(f"key_sets.{index}: key index out of range 01..FF")
            if ks.diversification:
                raise StateError(f"key_sets.{index:02X}: must hold card keys (diversification = [])")
            if not ks.test_only:
                raise StateError(f"key_sets.{index:02X}: only TEST key sets go into virtual cards (D15)")
            for role, entry in ks.keys.items():
                if entry.key.algorithm is not ks.algorithm:
                    raise StateError(f"key_sets.{index:02X}.{role}: key algorithm differs from the set's")
        if self.transport_key is not None and not isinstance(self.transport_key, SecretKey):
            raise StateError("transport_key: must be a SecretKey")
        pin = self.pin
        if not 2 <= len(pin.value) <= 6 or not _is_bcd_pin(pin.value):
            raise StateError("pin.value: must be 4..12 BCD digits")
        if not 1 <= pin.max_tries <= 15 or not 0 <= pin.tries_left <= pin.max_tries:
            raise StateError("pin.tries_left: must be within 0..max_tries (1..15)")
        for kind, proof in self.proofs.items():
            if kind not in PROOF_KINDS:
                raise StateError(f"proofs.{kind}: unknown kind (known: {', '.join(PROOF_KINDS)})")
            if len(proof.mac2) != 4 or len(proof.tac) != 4 or not 0 <= proof.counter <= 0xFFFF:
                raise StateError(f"proofs.{kind}: MAC2 and TAC are 4 bytes, the counter 2 bytes")
        if len(self.aid) not in range(5, 17):
            raise StateError("aid: must be 5..16 bytes")
        if not 0 <= self.app_version <= 0xFF:
            raise StateError("app_version: must be one byte")
        if len(self.ats_historical) > 15:
            raise StateError("ats_historical: at most 15 bytes fit a PC/SC pseudo-ATR")
        if not self.ats_interface or self.ats_interface[0] & 0x80:
            raise StateError("ats_interface: T0 must come first and have bit 8 clear")
        if len(self.ats_interface) != 1 + bin(self.ats_interface[0] & 0x70).count("1"):
            raise StateError("ats_interface: T0 announces a different number of TA/TB/TC bytes")
        for i, e in enumerate(self.ppse):
            if not 5 <= len(e.aid) <= 16 or not 0 <= e.priority <= 0xFF or not e.label.isascii():
                raise StateError(f"ppse.{i}: AID 5..16 bytes, ASCII label, priority one byte")
        for i, w in enumerate(self.journal):
            check_write(self, w, f"journal.{i}")
        if self.journal_complete and not self.journal:
            raise StateError("journal_complete: set on an empty journal")


def check_write(state: CardState, w: Write, where: str = "write") -> None:
    """Raise StateError unless `w` is a well-formed write that `apply_write` can apply to `state`.

    A journal loaded from an image goes through this, so recovery can never fail half-way.
    """
    if not isinstance(w, tuple) or not w or w[0] not in _APPLY:
        raise StateError(f"{where}: unknown write")
    tag, args = w[0], w[1:]
    arity = {"purse": 2, "binary": 3, "slot": 3, "ring": 3, "record": 3, "proof": 2, "pin_tries": 1,
             "lock": 1, "key": 2, "transport_key": 1}[tag]
    if len(args) != arity:
        raise StateError(f"{where}: {tag} takes {arity} arguments")

    def file_of(kind: type) -> Any:
        f = state.files.get(args[0])
        if not isinstance(f, kind):
            raise StateError(f"{where}: {tag} needs a {kind.__name__} at SFI {args[0]!r}")
        return f

    if tag == "purse":
        if args[0] not in PURSE_FIELDS or not isinstance(args[1], int):
            raise StateError(f"{where}: purse field unknown or value not an integer")
    elif tag == "binary":
        f = file_of(BinaryFile)
        off, data = args[1], args[2]
        if not isinstance(data, bytes) or not isinstance(off, int) or off < 0 or off + len(data) > f.size:
            raise StateError(f"{where}: binary write outside the file")
    elif tag == "slot":
        f = file_of(CyclicFile)
        if not isinstance(args[1], int) or not 0 <= args[1] < f.capacity or not isinstance(args[2], bytes) \
                or len(args[2]) != f.record_size:
            raise StateError(f"{where}: slot write outside the file or of the wrong size")
    elif tag == "ring":
        f = file_of(CyclicFile)
        head, count = args[1], args[2]
        if not isinstance(head, int) or not isinstance(count, int) or not 0 <= head < f.capacity \
                or not 1 <= count <= f.capacity:
            raise StateError(f"{where}: ring head/count out of range")
    elif tag == "record":
        f = file_of(RecordFile)
        rec = f.records.get(args[1])
        if rec is None or not isinstance(args[2], bytes) or len(args[2]) != len(rec):
            raise StateError(f"{where}: record write to a missing record or of the wrong size")
    elif tag == "proof":
        p = args[1]
        if args[0] not in PROOF_KINDS or not isinstance(p, Proof) or len(p.mac2) != 4 or len(p.tac) != 4:
            raise StateError(f"{where}: proof kind unknown or proof malformed")
    elif tag == "pin_tries":
        if not isinstance(args[0], int) or not 0 <= args[0] <= state.pin.max_tries:
            raise StateError(f"{where}: PIN tries out of range")
    elif tag == "lock":
        if not isinstance(args[0], Lock):
            raise StateError(f"{where}: lock value unknown")
    elif tag == "key":
        idx, entry = args
        if not isinstance(idx, int) or not 1 <= idx <= 0xFF or not isinstance(entry, KeyEntry):
            raise StateError(f"{where}: key write needs an index 01..FF and a key entry")
        ks = state.key_sets.get(idx)
        if ks is not None and ks.algorithm is not entry.key.algorithm:
            raise StateError(f"{where}: key algorithm differs from key set {idx:02X}")
    elif tag == "transport_key":
        if not isinstance(args[0], SecretKey):
            raise StateError(f"{where}: transport key must be a key")


def _key_index(ks: KeySet) -> int:
    try:
        idx = ks.entry("purchase").index
    except ValueError as exc:
        raise StateError(f"key_sets: {exc}") from None
    for role in ("load", "tac"):
        if ks.has(role) and ks.entry(role).index != idx:
            raise StateError(f"key_sets: {ks.name}: {role} key index {ks.entry(role).index:02X} differs from "
                             f"the purchase key index {idx:02X}; pass a mapping to choose the index")
    return idx


def _validate_file(sfi: int, f: ElementaryFile) -> None:
    if not 1 <= sfi <= 30 or f.sfi != sfi:
        raise StateError(f"files.{sfi:02X}: SFI must be 01..1E and match the file's own")
    if isinstance(f, BinaryFile):
        if not isinstance(f.data, bytes) or not 1 <= len(f.data) <= 0x7FFF:
            raise StateError(f"files.{sfi:02X}: binary data of 1..32767 bytes")
    elif isinstance(f, CyclicFile):
        if not 1 <= f.record_size <= 0xFF or not 1 <= f.capacity <= 0xFE:
            raise StateError(f"files.{sfi:02X}: record size 1..255, capacity 1..254")
        if len(f.slots) != f.capacity or not 0 <= f.count <= f.capacity:
            raise StateError(f"files.{sfi:02X}: slots must match the capacity, count within it")
        if (f.count == 0) != (f.head == -1) or not -1 <= f.head < f.capacity:
            raise StateError(f"files.{sfi:02X}: head must be -1 exactly when the file is empty")
        for n in range(1, f.count + 1):
            rec = f.record(n)
            if rec is None or len(rec) != f.record_size:
                raise StateError(f"files.{sfi:02X}: record {n} missing or not {f.record_size} bytes")
    elif isinstance(f, RecordFile):
        for rid, rec in f.records.items():
            if not 1 <= rid <= 0xFE or not isinstance(rec, bytes) or not 1 <= len(rec) <= 0xFF:
                raise StateError(f"files.{sfi:02X}: record {rid}: ID 01..FE, 1..255 bytes")
    else:
        raise StateError(f"files.{sfi:02X}: unknown file type {type(f).__name__}")


def _file_view(f: ElementaryFile) -> Any:
    if isinstance(f, BinaryFile):
        return f.data
    if isinstance(f, CyclicFile):
        return tuple(f.records())
    return tuple(sorted(f.records.items()))


def _tlv(tag: bytes, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return tag + bytes((n,)) + value
    if n < 0x100:
        return tag + bytes((0x81, n)) + value
    return tag + b"\x82" + n.to_bytes(2, "big") + value


def pin_bcd(digits: str) -> bytes:
    """'123456' -> 12 34 56; odd lengths end with F ('12345' -> 12 34 5F)."""
    if not isinstance(digits, str) or not digits.isdigit() or not 4 <= len(digits) <= 12:
        raise StateError("pin: must be 4..12 decimal digits")
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
    power after committing has already been saved.
    """

    __slots__ = ("state", "fault", "on_commit")

    def __init__(self, state: CardState, fault: FaultInjector | None = None,
                 on_commit: Callable[[CardState], None] | None = None) -> None:
        self.state = state
        self.fault = fault
        self.on_commit = on_commit

    def commit(self, writes: Sequence[Write]) -> None:
        """Apply `writes` as one unit (all or nothing across a power cut)."""
        state = self.state
        fault = self.fault
        if fault is None:
            for w in writes:
                _APPLY[w[0]](state, *w[1:])
            if self.on_commit is not None:
                self.on_commit(state)
            return
        journal = state.journal
        for w in writes:
            fault.checkpoint(f"journal {w[0]}")
            journal.append(w)
        fault.checkpoint("journal complete")
        state.journal_complete = True
        for w in writes:
            fault.checkpoint(f"apply {w[0]}")
            _APPLY[w[0]](state, *w[1:])
        fault.checkpoint("journal clear")
        state.journal_complete = False
        journal.clear()
        if self.on_commit is not None:
            self.on_commit(state)
        fault.checkpoint("response")

    def recover(self) -> str:
        """Power-on recovery: roll a complete journal forward, discard an incomplete one.

        Returns "clean", "rolled forward" or "discarded". Recovery steps are checkpoints too, so a
        test can cut power during recovery and recover again (the writes are idempotent).
        """
        state = self.state
        if not state.journal and not state.journal_complete:
            return "clean"
        fault = self.fault
        if state.journal_complete:
            for w in state.journal:
                if fault is not None:
                    fault.checkpoint(f"recover {w[0]}")
                _APPLY[w[0]](state, *w[1:])
            outcome = "rolled forward"
        else:
            outcome = "discarded"
        if fault is not None:
            fault.checkpoint("recover clear")
        state.journal_complete = False
        state.journal.clear()
        if self.on_commit is not None:
            self.on_commit(state)
        return outcome

