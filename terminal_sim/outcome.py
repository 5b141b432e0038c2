"""The outcome of one transaction: the record a validator journals and uploads for clearing.

The fields, their order and their types are the contract of design.md ("Outcome / clearing record"),
followed by the transit context. ``to_json()`` is the stable form: fixed key order, absent (None)
fields omitted, hex upper case, compact separators, non-ASCII kept as UTF-8.

The record is a frozen model of the schema layer (``ykt_files.schema``): strict types, unknown fields
refused, and every fault one line, ``<source>: <field>: <reason>`` (``outcome: amount: -1 out of range
0..4294967295``; the source is ``outcome`` for a record built in code, the file when one is read).
Lower-case hex is accepted and stored upper case. ``replace(**changes)`` is a checked copy.

Rules between fields (checked, because clearing relies on them):
* ``approved`` and ``recovered`` moved money: they carry card_no, issuer_id, amount, balance_before,
  balance_after, card_counter, key_version, algorithm and a TAC, and balance_after = balance_before −
  amount for purchases (06, 09), + amount for a load (02).
* ``torn`` is a grey record: card_no, amount and card_counter, never a TAC.
* ``declined`` moved no money: never a TAC; it must say why (``reason``).
* ``torn``, ``declined`` and ``failed`` always carry a reason.

Medium: ``medium`` says what was presented: ``physical`` or ``virtual`` (a phone's T-Union card, M4;
absent on a card record = physical) or ``qr`` (a MOT QR code, mobile.md Q12). A QR ride record carries
the Q12 clearing-record extension (``qr_code``, ``account_no``, ``pay_account``, ``qr_issuer``,
``qr_platform``, ``qr_gen_time``, ``ticket_type``) and none of the card-only fields (card number, issuer
ID, balances, counters, PSAM sequence, key fields, TAC, card type, entry data): the signed code is the
proof. It is ``approved`` (with the amount and the code's account) or ``declined`` (with the code and the
first failing check's token as the reason, Q11); ``type`` is optional on it. Card records never carry
the QR fields. The extension comes after the transit context, so a card record's JSON and CSV columns
keep their order.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, ValidationError, model_validator

from ykt_files.schema import DocumentError, Model, problem, validate

from .fields import decimal_digits, flag, hex_bytes, hex_digits, integer, one_of, printable, text, typed

__all__ = ["Outcome", "OutcomeRecord", "OutcomeError", "STATUSES", "TYPES", "FIELDS", "MONEY_STATUSES", "MEDIA",
           "QR_FIELDS", "CARD_ONLY_FIELDS"]

STATUSES = ("approved", "declined", "torn", "recovered", "failed")
MONEY_STATUSES = ("approved", "recovered")
TYPES = ("02", "06", "09")
ALGORITHMS = ("3des", "sm4")
MODES = ("bus", "metro", "ferry", "taxi", "load")
MEDIA = ("physical", "virtual", "qr")
QR_FIELDS = ("qr_code", "account_no", "pay_account", "qr_issuer", "qr_platform", "qr_gen_time", "ticket_type")
"""The clearing-record extension of a QR ride (mobile.md Q12), after ``medium``."""
CARD_ONLY_FIELDS = ("card_no", "issuer_id", "balance_before", "balance_after", "overdraft_limit", "card_counter",
                    "terminal_seq", "key_version", "algorithm", "tac", "mac2_verified", "card_type", "entry_city",
                    "entry_station", "entry_terminal", "entry_time")
"""What only a card tells (Q12): absent on a QR ride record."""
QR_STATUSES = ("approved", "declined")
MAX_CODE_BYTES = 4096
"""The longest scanned code a declined QR record keeps (a QR symbol holds at most 2953 bytes)."""
SOURCE = "outcome"
"""The source an outcome built in code is refused under (a file's name when one is read)."""


class OutcomeError(DocumentError):
    """An outcome refused: ``<source>: <field>: <reason>`` in one line (a ValueError)."""


# -- field types (terminal_sim.fields): each says what it expected and what it got (values are not secret) --

def _parse_datetime(stamp: str) -> _dt.datetime:
    return _dt.datetime(int(stamp[0:4]), int(stamp[4:6]), int(stamp[6:8]), int(stamp[8:10]), int(stamp[10:12]),
                        int(stamp[12:14]))


def _moment(value: Any) -> str:
    if not (len(text(value)) == 14 and value.isascii() and value.isdigit()):
        raise problem(f"expected YYYYMMDDhhmmss, got {value!r}")
    try:
        _parse_datetime(value)
    except ValueError:
        raise problem(f"{value} is not a date-time") from None
    return value


def _free_text(value: Any) -> str:
    """One line, no control characters (it goes into CSV and logs), not blank."""
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text(value)):
        raise problem("control characters are not allowed")
    if not value.strip():
        raise problem("empty (leave it out instead)")
    return value


def _pay_account(value: Any) -> str:
    """支付账户号: exactly 16 printable ASCII characters (the code's bytes 120..135, §1.5 check 6)."""
    if not (len(text(value)) == 16 and all(0x20 <= ord(ch) <= 0x7E for ch in value)):
        raise problem(f"expected 16 printable ASCII characters, got {value!r}")
    return value


def _present(value: Any) -> Any:
    if value is None:
        raise problem("required")
    return value


def _required(kind: Any) -> Any:
    """A field every outcome has: None is refused as 'required' before the type speaks."""
    return Annotated[kind, BeforeValidator(_present)]


U32 = typed(int, integer(0, 0xFFFFFFFF))
S32 = typed(int, integer(-0x80000000, 0x7FFFFFFF))
Moment = typed(str, _moment)
Station = typed(str, hex_bytes(2, 16))


def _hex(count: int) -> Any:
    return typed(str, hex_digits(count))


def _choice(*allowed: str) -> Any:
    return typed(str, one_of(*allowed))


def _digits(count: int) -> Any:
    return typed(str, decimal_digits(count))


_QR_REQUIRED_BY_STATUS = {
    "approved": ("amount", "qr_code", "account_no", "pay_account", "qr_issuer", "qr_platform", "qr_gen_time"),
    "declined": ("reason", "qr_code"),
}

REQUIRED_BY_STATUS: dict[str, tuple[str, ...]] = {  # a card record's fields each status needs (clearing too)
    "approved": ("card_no", "issuer_id", "amount", "balance_before", "balance_after", "card_counter",
                 "key_version", "algorithm", "tac"),
    "recovered": ("card_no", "issuer_id", "amount", "balance_before", "balance_after", "card_counter",
                  "key_version", "algorithm", "tac"),
    "torn": ("reason", "card_no", "amount", "card_counter"),
    "declined": ("reason",),
    "failed": ("reason",),
}


class OutcomeRecord(Model):
    """The schema of an outcome: its fields in contract order, their types and the rules between them.

    `Outcome` is the record itself; this base exists so the schema layer can check fields without
    `Outcome`'s own constructor (which reports a fault by checking again, here).
    """

    status: _required(_choice(*STATUSES))
    reason: typed(str, _free_text) | None = None
    type: _choice(*TYPES) | None = None                    # required on card records (see _rules)
    card_no: _digits(20) | None = None
    issuer_id: _hex(16) | None = None
    amount: U32 | None = None
    balance_before: S32 | None = None
    balance_after: S32 | None = None
    overdraft_limit: typed(int, integer(0, 0xFFFFFF)) | None = None
    card_counter: typed(int, integer(0, 0xFFFF)) | None = None
    terminal_id: _required(_hex(12))
    terminal_seq: U32 | None = None
    datetime: _required(Moment)
    key_version: typed(int, integer(0, 0xFF)) | None = None
    algorithm: _choice(*ALGORITHMS) | None = None
    tac: _hex(8) | None = None
    mac2_verified: typed(bool, flag) | None = None
    list_version: _digits(10) | None = None
    # transit context
    mode: _choice(*MODES) | None = None
    city: _digits(4) | None = None
    operator: _hex(4) | None = None
    line: _hex(4) | None = None
    station: Station | None = None
    vehicle: typed(str, printable(8)) | None = None
    direction: _choice("AB", "BA") | None = None
    card_type: _hex(2) | None = None
    full_fare: U32 | None = None
    entry_city: _digits(4) | None = None
    entry_station: Station | None = None
    entry_terminal: Station | None = None
    entry_time: Moment | None = None
    # the medium, and the QR ride's clearing-record extension (mobile.md M4, Q12)
    medium: _choice(*MEDIA) | None = None
    qr_code: typed(str, hex_bytes(2, 2 * MAX_CODE_BYTES)) | None = None
    account_no: _hex(20) | None = None
    pay_account: typed(str, _pay_account) | None = None
    qr_issuer: _hex(8) | None = None
    qr_platform: _hex(8) | None = None
    qr_gen_time: U32 | None = None
    ticket_type: _hex(2) | None = None

    @model_validator(mode="after")
    def _rules(self) -> "Outcome":
        if self.medium == "qr":
            return self._qr_rules()
        for name in QR_FIELDS:
            if getattr(self, name) is not None:
                raise problem("only a QR ride record (medium qr) has it", at=name)
        if self.type is None:
            raise problem("required (every card outcome has a transaction type)", at="type")
        required = REQUIRED_BY_STATUS[self.status]
        if self.type in ("06", "09") and self.status in ("approved", "recovered", "torn"):
            required += ("terminal_seq",)
        for name in required:
            if getattr(self, name) is None:
                raise problem(f"required for a {self.status} outcome", at=name)
        if self.tac is not None and self.status in ("torn", "declined"):
            raise problem(f"a {self.status} outcome has no TAC", at="tac")
        if self.mode is not None and (self.type == "02") != (self.mode == "load"):
            raise problem(f"type {self.type} does not fit mode {self.mode}", at="type")
        if self.status in MONEY_STATUSES:
            sign = 1 if self.type == "02" else -1
            expected = self.balance_before + sign * self.amount  # type: ignore[operator]
            if self.balance_after != expected:
                raise problem(f"{self.balance_after} is not balance_before {self.balance_before} "
                              f"{'+' if sign > 0 else '-'} amount {self.amount}", at="balance_after")
        return self

    def _qr_rules(self) -> "Outcome":
        """Q12: a QR ride is approved or declined, carries the code, and nothing only a card tells."""
        if self.status not in QR_STATUSES:
            raise problem(f"a QR ride is approved or declined, never {self.status}", at="status")
        for name in CARD_ONLY_FIELDS:
            if getattr(self, name) is not None:
                raise problem("a QR ride record has no card fields (Q12)", at=name)
        for name in _QR_REQUIRED_BY_STATUS[self.status]:
            if getattr(self, name) is None:
                article = "an" if self.status == "approved" else "a"
                raise problem(f"required for {article} {self.status} QR ride", at=name)
        if self.type == "02" or self.mode == "load":
            raise problem("a QR code pays a ride, it loads nothing", at="type" if self.type == "02" else "mode")
        return self


class Outcome(OutcomeRecord):
    """One transaction as journaled and cleared (design.md field order, then transit context).

    ``reason`` is free text; ``card_no`` the 20 digits of EF15 bytes 10..19; amounts and balances are
    fen (balances real, negative when overdrawn); ``card_counter`` the online counter before a load or
    the offline counter before a purchase; ``terminal_seq`` the PSAM sequence of a purchase;
    ``datetime`` and ``entry_time`` ``YYYYMMDDhhmmss`` China time; ``list_version`` the black list's
    version. Context: ``mode``, the terminal's ``city``/``operator``/``line``/``station``/``vehicle``/
    ``direction``, the card's EF17 ``card_type``, ``full_fare`` (the fare before a discount), and the
    entry (metro) or boarding (bus) data read from the card on exit or alighting.
    All fields are keyword-only; a bad one raises `OutcomeError` (``outcome: <field>: <reason>``).
    """

    ORDER: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **fields: Any) -> None:
        try:
            super().__init__(**fields)
        except ValidationError:
            # the same fault once more through the schema layer's one formatter: one line, field, reason
            validate(OutcomeRecord, fields, SOURCE, OutcomeError)
            raise

    # -- the stable JSON form ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields in contract order, absent ones left out."""
        values = self.__dict__
        return {name: values[name] for name in self.ORDER if values[name] is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = SOURCE) -> "Outcome":
        """An outcome read from a file (a journal row, a clearing line): refusals name `source`."""
        if not isinstance(data, Mapping) or not all(isinstance(key, str) for key in data):
            raise OutcomeError(source, None, f"expected an object, got {type(data).__name__}")
        try:
            return cls(**data)
        except OutcomeError as exc:
            raise OutcomeError(source, exc.field, exc.reason) from None

    @classmethod
    def from_json(cls, text: str | bytes, source: str = SOURCE) -> "Outcome":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OutcomeError(source, None, f"not JSON: {exc}") from None
        return cls.from_dict(data, source)

    def replace(self, **changes: Any) -> "Outcome":
        """A copy with some fields changed (None removes one), checked like a new outcome."""
        return type(self)(**{**self.__dict__, **changes})

    # -- helpers for the flows and clearing ----------------------------------------------------------
    @property
    def moved_money(self) -> bool:
        """True when the card's purse changed: approved, recovered, or failed after DEBIT (a TAC)."""
        return self.status in MONEY_STATUSES or (self.status == "failed" and self.tac is not None)

    @property
    def moment(self) -> _dt.datetime:
        """``datetime`` as a naive datetime (China time)."""
        return _parse_datetime(self.datetime)


Outcome.ORDER = tuple(Outcome.model_fields)
FIELDS: tuple[str, ...] = Outcome.ORDER
"""Outcome field names in contract order: the JSON key order and the CSV column order."""
