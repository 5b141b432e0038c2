"""The host side of the T-Union card: every command of the EP application, typed (reference section 2).

Terminals, load hosts, personalisation scripts and `ykt card read` talk to a card only through
`TUnionCard`, so the APDU bytes of the reference live in this one module. Each method builds exactly
the command the reference lists, sends it through `apdu.t0.Channel` (which alone deals with 61xx and
6Cxx), checks the length of the answer and returns a typed result: files come back as views decoded
by their layouts (`PublicData.card_no`, `Management.interoperable`, `LogRecord.amount`; `.raw` keeps
the bytes), the FCI and the PPSE as `AdfFci` and `PpseFci` decode them; nothing here knows an offset.
A refusal is a `CardError` carrying the status word; an answer of the wrong shape, or bytes a layout
cannot decode, is a `CardResponseError` naming the command (and the field).
The documented warnings are results, not exceptions: SELECT of a locked application answers its FCI
with 6283 (temporary) or 9303/6284 (permanent), and `Fci.locked` says so, so that a terminal can refuse
the card with a reason; reading records stops at 6A83 (no more records).

Nothing here holds keys except the secure-messaging helpers, which take a `keysets.SecretKey` (whose
value never prints) and return only the 4-byte MAC.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from apdu.command import CommandApdu
from apdu.reader import Reader
from apdu.status import SW_FCI_NOT_FORMATTED, SW_OK, SW_RECORD_NOT_FOUND, CardError, ResponseApdu
from apdu.t0 import Channel
from keysets import Algorithm, SecretKey, secure_messaging_mac

from ykt_card.host.args import bytes_of, int_in
from ykt_card.layouts import EF15, EF16, EF17, EF18, EF1EA, AdfFci, LayoutError, LayoutView, PpseEntry, PpseFci
from ykt_card.layouts.names import (MOT_T_EP, PPSE_NAME, SFI_CAPP, SFI_HISTORY, SFI_HOLDER, SFI_LOG,
                                    SFI_MANAGEMENT, SFI_PUBLIC)
from ykt_card.proof import Proof
from ykt_card.status import SW_APP_LOCKED, SW_APP_LOCKED_PERM

__all__ = [
    "TUNION_AID", "PPSE_NAME", "SFI_PUBLIC", "SFI_HOLDER", "SFI_MANAGEMENT", "SFI_LOG", "SFI_CAPP",
    "SFI_HISTORY", "BALANCE_KINDS", "CardResponseError", "PinRejected",
    "PpseEntry", "Ppse", "SelectResponse", "Fci", "PublicData", "Holder", "Management", "LogRecord",
    "LoadInit", "PurchaseInit", "Debit", "Proof",
    "TUnionCard", "sm_mac", "application_block_mac", "application_unblock_mac", "encode_pin",
]

TUNION_AID = MOT_T_EP     # the T-Union electronic purse (1.2), the AID `select` uses by default

#: GET BALANCE P1 per decision D3.
BALANCE_KINDS: dict[str, int] = {"total": 0x00, "limit": 0x01, "real": 0x03}

#: Record numbers are one byte; 00 means "current record" and FF is reserved, so a walk stops at FE.
_LAST_RECORD = 0xFE


class CardResponseError(Exception):
    """The card answered 9000 but with data of the wrong shape (length, encoding).

    `command` is the command's name ("INITIALIZE FOR PURCHASE"), `length` the number of data bytes
    received and `expected` what the reference prescribes. Never carries the data itself.
    """

    def __init__(self, command: str, reason: str, length: int | None = None,
                 expected: int | None = None) -> None:
        super().__init__(f"{command}: {reason}")
        self.command = command
        self.reason = reason
        self.length = length
        self.expected = expected


class PinRejected(CardError):
    """VERIFY refused the PIN: 63Cx (`tries_left` = x) or 6983 (blocked, no tries left)."""

    @property
    def tries_left(self) -> int:
        return self.sw & 0x0F if self.sw & 0xFFF0 == 0x63C0 else 0


# -- input checks: precise, before anything is sent ---------------------------------------------------

_byte = int_in
_bytes = bytes_of


def _u32(value: Any, name: str) -> bytes:
    return _byte(value, name, 0, 0xFFFFFFFF).to_bytes(4, "big")


def _sfi(value: Any) -> int:
    return _byte(value, "sfi", 1, 30)


def _bcd_datetime(value: Any, name: str) -> bytes:
    raw = _bytes(value, name, 7)
    if any(n > 9 for b in raw for n in (b >> 4, b & 0x0F)):
        raise ValueError(f"{name} must be BCD YYYYMMDDhhmmss, got {raw.hex().upper()}")
    return raw


def encode_pin(pin: str) -> bytes:
    """A PIN of 4..12 decimal digits as VERIFY data: packed BCD, an odd length padded with F."""
    if not isinstance(pin, str):
        raise TypeError(f"pin must be a string of digits, not {type(pin).__name__}")
    if not (pin.isascii() and pin.isdigit()) or not 4 <= len(pin) <= 12:
        raise ValueError("pin must be 4 to 12 decimal digits")
    return bytes.fromhex(pin + "F" * (len(pin) % 2))


# -- typed results ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Ppse:
    """The answer to SELECT 2PAY.SYS.DDF01 as `PpseFci` decodes it: the directory of payment applications."""

    df_name: str
    entries: tuple[PpseEntry, ...]

    def find(self, aid: bytes) -> PpseEntry | None:
        return next((e for e in self.entries if e.aid == aid), None)


class PublicData(LayoutView):
    """EF15, 公共应用基本数据, decoded by the EF15 layout: ``issuer_id``, ``org_code``, ``city_code``,
    ``app_type``, ``app_version``, ``card_no`` (20 digits), ``card_no_printed``, ``serial8`` (the last 8
    bytes of the card number, hex), ``start_date``/``expiry_date`` (``YYYY-MM-DD`` or None), ``issuer_data``.

    `factors` gives the issuer ID and serial as bytes, as the PSAM and diversification take them (D2).
    """

    layout = EF15
    __slots__ = ("_factors",)

    @property
    def factors(self) -> tuple[bytes, bytes]:
        """(issuer ID, serial8) as bytes: the diversification factors of D2 and of PSAM 8070."""
        try:
            return object.__getattribute__(self, "_factors")
        except AttributeError:
            factors = (bytes.fromhex(self.issuer_id), bytes.fromhex(self.serial8))
            object.__setattr__(self, "_factors", factors)
            return factors


class Holder(LayoutView):
    """EF16, 持卡人基本信息, decoded by the EF16 layout (anonymous cards hold 00 then spaces)."""

    layout = EF16
    __slots__ = ()


class Management(LayoutView):
    """EF17, 管理信息, decoded by the EF17 layout: ``country``, ``province``, ``city``, ``interop``,
    ``interoperable`` (互通卡种 0001: other cities' terminals accept the card), ``card_type``, ..."""

    layout = EF17
    __slots__ = ()


class LogRecord(LayoutView):
    """One EF18 record, decoded by the EF18 layout: ``counter`` (after the transaction, D4),
    ``overdraft_limit``, ``amount``, ``type`` (2 hex digits) and ``type_name``, ``terminal_id``, ``datetime``."""

    layout = EF18
    __slots__ = ()


@dataclass(frozen=True)
class SelectResponse:
    """What SELECT of an application answered, undecoded: the FCI bytes (empty when a locked
    application sent none), the status word and the lock it signals."""

    fci: bytes
    sw: int
    locked: Literal["temporary", "permanent"] | None


@dataclass(frozen=True)
class Fci:
    """The answer to SELECT of the T-Union application, as `AdfFci` decodes it.

    `aid` and `app_version` are hex; `public_data` is EF15 from tag 9F0C (None when the card left it
    out: READ BINARY 15 then). `locked` is None for an open application, 'temporary' for SW 6283
    (black-listed, unblockable) and 'permanent' for SW 9303 or 6284; a locked application that sent no
    FCI leaves `app_version` and `public_data` None. `sw` is the status word as received.
    """

    aid: str
    app_version: str | None
    public_data: PublicData | None
    locked: Literal["temporary", "permanent"] | None
    sw: int


def _bytes_text(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


@dataclass(frozen=True)
class LoadInit:
    """INITIALIZE FOR LOAD answer (16 bytes): what the load host needs to check MAC1 and make MAC2."""

    balance: int
    online_counter: int
    key_version: int
    algorithm: Algorithm
    random: bytes
    mac1: bytes


@dataclass(frozen=True)
class PurchaseInit:
    """INITIALIZE FOR (CAPP) PURCHASE answer (15 bytes). `balance_total` includes the overdraft
    limit (reference 1.4); `real_balance` is what the rider owns, negative when overdrawn."""

    balance_total: int
    offline_counter: int
    overdraft_limit: int
    key_version: int
    algorithm: Algorithm
    random: bytes

    @property
    def real_balance(self) -> int:
        return self.balance_total - self.overdraft_limit


@dataclass(frozen=True)
class Debit:
    """DEBIT FOR (CAPP) PURCHASE answer: TAC for clearing, MAC2 for the PSAM (8072)."""

    tac: bytes
    mac2: bytes


# -- secure messaging ---------------------------------------------------------------------------------

def sm_mac(key: SecretKey, challenge: bytes, cla: int, ins: int, p1: int, p2: int,
           data: bytes = b"") -> bytes:
    """The 4-byte MAC of a secure-messaging command `cla ins p1 p2 Lc data ‖ MAC`.

    The MAC covers the header, the Lc that counts the MAC itself, and the data, with IV = the card's
    challenge padded with zeros (keysets.secure_messaging_mac). `key` is the card's own key (already
    diversified), e.g. the app-maintenance key for APPLICATION BLOCK.
    """
    if not isinstance(key, SecretKey):
        raise TypeError(f"key must be a keysets.SecretKey, not {type(key).__name__}")
    challenge = _bytes(challenge, "challenge")
    data = _bytes(data, "data")
    if len(data) + 4 > 0xFF:
        raise ValueError(f"data of {len(data)} bytes plus the MAC does not fit a short Lc")
    header = bytes((_byte(cla, "cla"), _byte(ins, "ins"), _byte(p1, "p1"), _byte(p2, "p2")))
    command = header + bytes((len(data) + 4,)) + data
    return secure_messaging_mac(key.algorithm, key.value, challenge, command)


def application_block_mac(key: SecretKey, challenge: bytes, permanent: bool = False) -> bytes:
    """MAC for APPLICATION BLOCK `84 1E 00 P2 04 MAC` (P2 00 temporary, 01 permanent)."""
    return sm_mac(key, challenge, 0x84, 0x1E, 0x00, 0x01 if permanent else 0x00)


def application_unblock_mac(key: SecretKey, challenge: bytes) -> bytes:
    """MAC for APPLICATION UNBLOCK `84 18 00 00 04 MAC`."""
    return sm_mac(key, challenge, 0x84, 0x18, 0x00, 0x00)


# -- the card -----------------------------------------------------------------------------------------

class TUnionCard:
    """The T-Union EP application of one card behind a Reader.

    The reader must be connected (`connect()` does it). Methods send one command each (the
    `*_with_key` helpers two: GET CHALLENGE, then the secure-messaging command) and never retry.
    """

    def __init__(self, reader: Reader) -> None:
        self.reader = reader
        self.channel = Channel(reader)

    def connect(self) -> bytes:
        """Power the card through the reader; returns the ATR/ATS."""
        return self.reader.connect()

    def __repr__(self) -> str:
        return f"TUnionCard({self.reader.name!r})"

    # -- plumbing ---------------------------------------------------------------------------------
    def _send(self, cmd: CommandApdu) -> ResponseApdu:
        """One command, whole answer (61xx and 6Cxx are the channel's business), any status word."""
        return self.channel.send(cmd)

    @staticmethod
    def _refuse(name: str, cmd: CommandApdu, sw: int) -> CardError:
        return CardError(sw, f"{name} ({cmd.header.hex(' ').upper()})")

    def _run(self, name: str, cmd: CommandApdu, expected: int | None = 0) -> bytes:
        """Send, require 9000 and (unless `expected` is None) exactly `expected` bytes of data."""
        resp = self._send(cmd)
        if resp.sw != SW_OK:
            raise self._refuse(name, cmd, resp.sw)
        if expected is not None and len(resp.data) != expected:
            what = "no data" if expected == 0 else _bytes_text(expected)
            raise CardResponseError(name, f"answered {_bytes_text(len(resp.data))}, expected {what}",
                                    len(resp.data), expected)
        return resp.data

    # -- selection --------------------------------------------------------------------------------
    def select_ppse(self) -> Ppse:
        """SELECT 2PAY.SYS.DDF01: the contactless directory (cards that have one), decoded by `PpseFci`."""
        name = "SELECT PPSE"
        cmd = CommandApdu(0x00, 0xA4, 0x04, 0x00, PPSE_NAME, le=256)
        fields = self._decoded(name, PpseFci, self._run(name, cmd, expected=None))
        return Ppse(fields["df_name"], tuple(PpseEntry.from_fields(e) for e in fields["entries"]))

    def select(self, aid: bytes = TUNION_AID) -> Fci:
        """SELECT by name `00 A4 04 00 Lc AID 00`; a locked application is a result, not an error.

        6283 -> locked 'temporary'; 9303 or 6284 -> 'permanent'; any other refusal (6A82: not a
        T-Union card) raises CardError. The FCI is decoded by `AdfFci`; one that does not decode is a
        CardResponseError naming the tag or field.
        """
        answer = self.select_response(aid)
        if not answer.fci:
            return Fci(aid.hex().upper(), None, None, answer.locked, answer.sw)
        fields = self._decoded("SELECT", AdfFci, answer.fci)
        public = PublicData.from_fields(fields["ef15"]) if fields["ef15"] is not None else None
        return Fci(fields["aid"], fields["app_version"], public, answer.locked, answer.sw)

    def select_response(self, aid: bytes = TUNION_AID) -> SelectResponse:
        """SELECT as `select` sends it, with the FCI left undecoded (for dumps of strange cards)."""
        aid = _bytes(aid, "aid")
        if not 5 <= len(aid) <= 16:
            raise ValueError(f"aid must be 5 to 16 bytes, got {len(aid)}")
        name = "SELECT"
        cmd = CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256)
        resp = self._send(cmd)
        if resp.sw == SW_OK:
            locked = None
        elif resp.sw == SW_APP_LOCKED:
            locked = "temporary"
        elif resp.sw in (SW_APP_LOCKED_PERM, SW_FCI_NOT_FORMATTED):
            locked = "permanent"
        else:
            raise self._refuse(name, cmd, resp.sw)
        if not resp.data and locked is None:
            raise CardResponseError(name, "answered 9000 without an FCI", 0)
        return SelectResponse(resp.data, resp.sw, locked)

    @staticmethod
    def _decoded(command: str, layout: Any, data: bytes) -> Any:
        """`layout.decode(data)`, or a CardResponseError naming the command and the layout's complaint."""
        try:
            return layout.decode(data)
        except LayoutError as exc:
            raise CardResponseError(command, str(exc), len(data)) from None

    def _view(self, command: str, view: type[LayoutView], data: bytes) -> Any:
        try:
            return view(data)
        except LayoutError as exc:
            raise CardResponseError(command, str(exc), len(data)) from None

    # -- reading ----------------------------------------------------------------------------------
    def read_binary(self, sfi: int, offset: int = 0, length: int = 0) -> bytes:
        """READ BINARY by SFI `00 B0 (80|SFI) offset Le`; length 0 sends Le 00 (the whole file)."""
        sfi = _sfi(sfi)
        offset = _byte(offset, "offset")
        length = _byte(length, "length")
        cmd = CommandApdu(0x00, 0xB0, 0x80 | sfi, offset, le=length or 256)
        data = self._run(f"READ BINARY {sfi:02X}", cmd, expected=None)
        if length and len(data) != length:
            raise CardResponseError(f"READ BINARY {sfi:02X}", f"answered {len(data)} bytes, "
                                    f"expected {length}", len(data), length)
        return data

    def _read_record(self, sfi: int, record: int, length: int) -> ResponseApdu:
        cmd = CommandApdu(0x00, 0xB2, record, (sfi << 3) | 0x04, le=length or 256)
        return self._send(cmd)

    def read_record(self, sfi: int, record: int, length: int = 0) -> bytes:
        """READ RECORD `00 B2 rec (SFI<<3)|4 Le`; 6A83 (no such record) raises CardError."""
        sfi = _sfi(sfi)
        record = _byte(record, "record", 1, _LAST_RECORD)
        length = _byte(length, "length")
        name = f"READ RECORD {sfi:02X}"
        resp = self._read_record(sfi, record, length)
        if resp.sw != SW_OK:
            raise CardError(resp.sw, f"{name} record {record} (00 B2 {record:02X} {(sfi << 3) | 4:02X})")
        if length and len(resp.data) != length:
            raise CardResponseError(name, f"record {record}: answered {len(resp.data)} bytes, "
                                    f"expected {length}", len(resp.data), length)
        return resp.data

    def _read_view(self, view: type[LayoutView], what: str) -> Any:
        """The whole binary file of `view`'s layout, decoded: a refusal is CardError, bytes that do not
        decode a CardResponseError naming the field."""
        sfi, size = view.layout.sfi, view.layout.size
        name = f"READ BINARY {sfi:02X} ({what})"
        data = self._run(name, CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=size), expected=size)
        return self._view(name, view, data)

    def read_public_data(self) -> PublicData:
        """EF15 `00 B0 95 00 1E`, decoded."""
        return self._read_view(PublicData, "public data")

    def read_holder(self) -> Holder:
        """EF16 `00 B0 96 00 37`, decoded."""
        return self._read_view(Holder, "holder")

    def read_management(self) -> Management:
        """EF17 `00 B0 97 00 3C`, decoded."""
        return self._read_view(Management, "management")

    def _walk_records(self, sfi: int, le: int, size: int | None, what: str) -> list[bytes]:
        """Records 1, 2, ... until 6A83; every record must have `size` bytes (when given)."""
        out: list[bytes] = []
        name = f"READ RECORD {sfi:02X} ({what})"
        for record in range(1, _LAST_RECORD + 1):
            resp = self._read_record(sfi, record, le)
            if resp.sw == SW_RECORD_NOT_FOUND:
                return out
            if resp.sw != SW_OK:
                raise CardError(resp.sw, f"{name} record {record}")
            if size is not None and len(resp.data) != size:
                raise CardResponseError(name, f"record {record}: answered {len(resp.data)} bytes, "
                                        f"expected {size}", len(resp.data), size)
            out.append(resp.data)
        return out

    def read_transaction_records(self) -> list[bytes]:
        """EF18 records `00 B2 nn C4 00` as the card holds them, newest first, until it answers 6A83."""
        return self._walk_records(SFI_LOG, 0, EF18.size, "log")

    def read_transactions(self) -> list[LogRecord]:
        """EF18 records, decoded (see `read_transaction_records`); a record that does not decode is a
        CardResponseError naming its field."""
        return [self._view(f"READ RECORD {SFI_LOG:02X} (log)", LogRecord, r) for r in self.read_transaction_records()]

    def read_capp_record(self, record_id: int) -> bytes:
        """EF1A record `00 B2 id D4 00` (whole record: sizes differ by ID); 6A83 raises CardError."""
        return self.read_record(SFI_CAPP, record_id)

    def read_history(self) -> list[bytes]:
        """EF1E records `00 B2 nn F4 30`, newest first, until 6A83."""
        return self._walk_records(SFI_HISTORY, EF1EA.size, EF1EA.size, "history")

    def get_balance(self, kind: Literal["total", "limit", "real"] = "total") -> int:
        """GET BALANCE `80 5C P1 02 04` (D3): total = balance + overdraft limit (P1 00), limit
        (P1 01), real = balance without the limit (P1 03, signed: negative when overdrawn)."""
        if kind not in BALANCE_KINDS:
            raise ValueError(f"kind {kind!r} is not one of {', '.join(BALANCE_KINDS)}")
        cmd = CommandApdu(0x80, 0x5C, BALANCE_KINDS[kind], 0x02, le=4)
        data = self._run(f"GET BALANCE ({kind})", cmd, expected=4)
        return int.from_bytes(data, "big", signed=kind == "real")

    # -- PIN --------------------------------------------------------------------------------------
    def verify_pin(self, pin: str) -> None:
        """VERIFY `00 20 00 00 Lc BCD-PIN`; a wrong PIN raises PinRejected (tries left in it)."""
        data = encode_pin(pin)
        name = "VERIFY"
        cmd = CommandApdu(0x00, 0x20, 0x00, 0x00, data)
        resp = self._send(cmd)
        if resp.sw == SW_OK:
            if resp.data:
                raise CardResponseError(name, f"answered {len(resp.data)} bytes, expected no data",
                                        len(resp.data), 0)
            return
        detail = f"{name} (00 20 00 00)"
        if resp.sw & 0xFFF0 == 0x63C0 or resp.sw == 0x6983:
            raise PinRejected(resp.sw, detail)
        raise CardError(resp.sw, detail)

    # -- load (圈存) ------------------------------------------------------------------------------
    def initialize_load(self, key_index: int, amount: int, terminal_id: bytes) -> LoadInit:
        """INITIALIZE FOR LOAD `80 50 00 02 0B keyIdx amount(4) termID(6) 10` -> 16 bytes."""
        data = (bytes((_byte(key_index, "key_index"),)) + _u32(amount, "amount")
                + _bytes(terminal_id, "terminal_id", 6))
        name = "INITIALIZE FOR LOAD"
        r = self._run(name, CommandApdu(0x80, 0x50, 0x00, 0x02, data, le=0x10), expected=16)
        return LoadInit(
            balance=int.from_bytes(r[0:4], "big"),
            online_counter=int.from_bytes(r[4:6], "big"),
            key_version=r[6],
            algorithm=self._algorithm(name, r[7]),
            random=r[8:12],
            mac1=r[12:16],
        )

    def credit_load(self, host_datetime7: bytes, mac2: bytes) -> bytes:
        """CREDIT FOR LOAD `80 52 00 00 0B date(4) time(3) MAC2(4) 04` -> TAC (4 bytes)."""
        data = _bcd_datetime(host_datetime7, "host_datetime7") + _bytes(mac2, "mac2", 4)
        return self._run("CREDIT FOR LOAD", CommandApdu(0x80, 0x52, 0x00, 0x00, data, le=4),
                         expected=4)

    # -- purchase (消费) --------------------------------------------------------------------------
    def initialize_purchase(self, key_index: int, amount: int, terminal_id: bytes,
                            capp: bool = False) -> PurchaseInit:
        """INITIALIZE FOR PURCHASE `80 50 01 02 0B ... 0F` (CAPP: P1 03) -> 15 bytes."""
        data = (bytes((_byte(key_index, "key_index"),)) + _u32(amount, "amount")
                + _bytes(terminal_id, "terminal_id", 6))
        name = "INITIALIZE FOR CAPP PURCHASE" if capp else "INITIALIZE FOR PURCHASE"
        cmd = CommandApdu(0x80, 0x50, 0x03 if capp else 0x01, 0x02, data, le=0x0F)
        r = self._run(name, cmd, expected=15)
        return PurchaseInit(
            balance_total=int.from_bytes(r[0:4], "big"),
            offline_counter=int.from_bytes(r[4:6], "big"),
            overdraft_limit=int.from_bytes(r[6:9], "big"),
            key_version=r[9],
            algorithm=self._algorithm(name, r[10]),
            random=r[11:15],
        )

    def update_capp_cache(self, record_id: int, sfi: int, data: bytes) -> None:
        """UPDATE CAPP DATA CACHE `80 DC P1 (SFI<<3) Lc data`.

        P2 carries the SFI with low bits 000 ("P1 is a record identifier"): EF1A gives D0 with
        P1 = the record ID (01 metro, 02 bus, ...); EF1E gives F0 with P1 = 00 (append to the
        cyclic file). Held by the card until DEBIT commits it (D6).
        """
        record_id = _byte(record_id, "record_id")
        sfi = _sfi(sfi)
        data = _bytes(data, "data")
        if not 1 <= len(data) <= 0xFF:
            raise ValueError(f"data must be 1 to 255 bytes, got {len(data)}")
        self._run("UPDATE CAPP DATA CACHE", CommandApdu(0x80, 0xDC, record_id, sfi << 3, data))

    def debit(self, terminal_seq: int, tx_datetime7: bytes, mac1: bytes) -> Debit:
        """DEBIT FOR (CAPP) PURCHASE `80 54 01 00 0F seq(4) date(4) time(3) MAC1(4) 08`."""
        data = (_u32(terminal_seq, "terminal_seq") + _bcd_datetime(tx_datetime7, "tx_datetime7")
                + _bytes(mac1, "mac1", 4))
        r = self._run("DEBIT FOR PURCHASE", CommandApdu(0x80, 0x54, 0x01, 0x00, data, le=8),
                      expected=8)
        return Debit(tac=r[0:4], mac2=r[4:8])

    def get_transaction_prove(self, tx_type: int, counter_after: int) -> Proof:
        """GET TRANSACTION PROVE `80 5A 00 type 02 counter 08` (D5: the counter after the
        transaction) -> MAC2 ‖ TAC, as the proof of that transaction. 9406 (no such transaction)
        raises CardError."""
        tx_type = _byte(tx_type, "tx_type")
        counter = _byte(counter_after, "counter_after", 0, 0xFFFF)
        cmd = CommandApdu(0x80, 0x5A, 0x00, tx_type, counter.to_bytes(2, "big"), le=8)
        r = self._run("GET TRANSACTION PROVE", cmd, expected=8)
        return Proof(tx_type, counter, mac2=r[0:4], tac=r[4:8])

    # -- authentication and secure messaging ------------------------------------------------------
    def get_challenge(self, n: int = 4) -> bytes:
        """GET CHALLENGE `00 84 00 00 n`: a random good for the next command only (D18)."""
        if n not in (4, 8):
            raise ValueError(f"n {n!r} must be 4 or 8")
        return self._run("GET CHALLENGE", CommandApdu(0x00, 0x84, 0x00, 0x00, le=n), expected=n)

    def external_authenticate(self, key_id: int, cryptogram: bytes) -> None:
        """EXTERNAL AUTHENTICATE `00 82 00 keyID Lc cryptogram` (8 bytes 3DES, 16 bytes SM4)."""
        data = _bytes(cryptogram, "cryptogram", 8, 16)
        self._run("EXTERNAL AUTHENTICATE",
                  CommandApdu(0x00, 0x82, 0x00, _byte(key_id, "key_id"), data))

    def application_block(self, mac: bytes, permanent: bool = False) -> None:
        """APPLICATION BLOCK `84 1E 00 P2 04 MAC`, P2 00 temporary / 01 permanent."""
        self._run("APPLICATION BLOCK",
                  CommandApdu(0x84, 0x1E, 0x00, 0x01 if permanent else 0x00, _bytes(mac, "mac", 4)))

    def application_unblock(self, mac: bytes) -> None:
        """APPLICATION UNBLOCK `84 18 00 00 04 MAC`."""
        self._run("APPLICATION UNBLOCK", CommandApdu(0x84, 0x18, 0x00, 0x00, _bytes(mac, "mac", 4)))

    def update_binary_sm(self, sfi: int, offset: int, data: bytes, mac: bytes) -> None:
        """UPDATE BINARY with secure messaging `04 D6 (80|SFI) offset Lc data ‖ MAC`."""
        sfi, offset = _sfi(sfi), _byte(offset, "offset")
        body = _bytes(data, "data") + _bytes(mac, "mac", 4)
        if len(body) > 0xFF:
            raise ValueError(f"data of {len(body) - 4} bytes plus the MAC does not fit a short Lc")
        self._run(f"UPDATE BINARY {sfi:02X}", CommandApdu(0x04, 0xD6, 0x80 | sfi, offset, body))

    def update_record_sm(self, sfi: int, record: int, data: bytes, mac: bytes) -> None:
        """UPDATE RECORD with secure messaging `04 DC rec (SFI<<3)|4 Lc data ‖ MAC`."""
        sfi, record = _sfi(sfi), _byte(record, "record", 1, _LAST_RECORD)
        body = _bytes(data, "data") + _bytes(mac, "mac", 4)
        if len(body) > 0xFF:
            raise ValueError(f"data of {len(body) - 4} bytes plus the MAC does not fit a short Lc")
        self._run(f"UPDATE RECORD {sfi:02X}",
                  CommandApdu(0x04, 0xDC, record, (sfi << 3) | 0x04, body))

    def write_key(self, key_type: int, key_id: int, data: bytes, cla: int = 0x84) -> None:
        """WRITE KEY `cla D4 keyType keyID Lc data`, data passed through untouched (its format,
        encrypted key and MAC, is the card's; see ykt_card.card.cos). The data never appears in errors."""
        body = _bytes(data, "data")
        if not 1 <= len(body) <= 0xFF:
            raise ValueError(f"data must be 1 to 255 bytes, got {len(body)}")
        self._run("WRITE KEY", CommandApdu(_byte(cla, "cla"), 0xD4, _byte(key_type, "key_type"),
                                           _byte(key_id, "key_id"), body))

    # -- secure messaging with a key at hand (tests, personalisation, the terminal's own PSAM-less
    #    tools); a terminal in the field gets these MACs from its PSAM instead ------------------------
    def application_block_with_key(self, key: SecretKey, permanent: bool = False) -> None:
        """GET CHALLENGE, then APPLICATION BLOCK with the MAC under the card's `key`."""
        challenge = self.get_challenge(4)
        self.application_block(application_block_mac(key, challenge, permanent), permanent)

    def application_unblock_with_key(self, key: SecretKey) -> None:
        challenge = self.get_challenge(4)
        self.application_unblock(application_unblock_mac(key, challenge))

    def update_binary_with_key(self, key: SecretKey, sfi: int, offset: int, data: bytes) -> None:
        sfi, offset, data = _sfi(sfi), _byte(offset, "offset"), _bytes(data, "data")
        challenge = self.get_challenge(4)
        mac = sm_mac(key, challenge, 0x04, 0xD6, 0x80 | sfi, offset, data)
        self.update_binary_sm(sfi, offset, data, mac)

    def update_record_with_key(self, key: SecretKey, sfi: int, record: int, data: bytes) -> None:
        sfi, record = _sfi(sfi), _byte(record, "record", 1, _LAST_RECORD)
        data = _bytes(data, "data")
        challenge = self.get_challenge(4)
        mac = sm_mac(key, challenge, 0x04, 0xDC, record, (sfi << 3) | 0x04, data)
        self.update_record_sm(sfi, record, data, mac)

    # -- helpers ----------------------------------------------------------------------------------
    @staticmethod
    def _algorithm(command: str, wire: int) -> Algorithm:
        try:
            return Algorithm.from_wire(wire)
        except ValueError:
            raise CardResponseError(command, f"algorithm ID {wire:02X} is neither 00 (3DES) nor "
                                             "04 (SM4)") from None
