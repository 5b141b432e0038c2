"""The outcome of one transaction: the record a validator journals and uploads for clearing.

The fields, their order and their types are the contract of design.md ("Outcome / clearing record"),
followed by the transit context. ``to_json()`` is the stable form: fixed key order, absent (None)
fields omitted, hex upper case, compact separators, non-ASCII kept as UTF-8. Construction checks every
field and raises ValueError naming it; lower-case hex is accepted and stored upper case.

Rules between fields (checked, because clearing relies on them):
* ``approved`` and ``recovered`` moved money: they carry card_no, issuer_id, amount, balance_before,
  balance_after, card_counter, key_version, algorithm and a TAC, and balance_after = balance_before −
  amount for purchases (06, 09), + amount for a load (02).
* ``torn`` is a grey record: card_no, amount and card_counter, never a TAC.
* ``declined`` moved no money: never a TAC; it must say why (``reason``).
* ``torn``, ``declined`` and ``failed`` always carry a reason.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar

__all__ = ["Outcome", "STATUSES", "TYPES", "FIELDS", "MONEY_STATUSES"]

STATUSES = ("approved", "declined", "torn", "recovered", "failed")
MONEY_STATUSES = ("approved", "recovered")
TYPES = ("02", "06", "09")
ALGORITHMS = ("3des", "sm4")
MODES = ("bus", "metro", "ferry", "taxi", "load")

_U32 = (0, 0xFFFFFFFF)
_S32 = (-0x80000000, 0x7FFFFFFF)


def _hex_pattern(low: int, high: int | None = None) -> re.Pattern[str]:
    if high is None:
        return re.compile(rf"[0-9A-Fa-f]{{{low}}}")
    return re.compile(rf"(?:[0-9A-Fa-f]{{2}}){{{low // 2},{high // 2}}}")


# name -> (kind, constraint); kinds: 'choice', 'hex', 'digits', 'int', 'bool', 'datetime', 'text'
_SPEC: dict[str, tuple[str, Any]] = {
    "status": ("choice", STATUSES),
    "reason": ("text", None),
    "type": ("choice", TYPES),
    "card_no": ("digits", 20),
    "issuer_id": ("hex", _hex_pattern(16)),
    "amount": ("int", _U32),
    "balance_before": ("int", _S32),
    "balance_after": ("int", _S32),
    "overdraft_limit": ("int", (0, 0xFFFFFF)),
    "card_counter": ("int", (0, 0xFFFF)),
    "terminal_id": ("hex", _hex_pattern(12)),
    "terminal_seq": ("int", _U32),
    "datetime": ("datetime", None),
    "key_version": ("int", (0, 0xFF)),
    "algorithm": ("choice", ALGORITHMS),
    "tac": ("hex", _hex_pattern(8)),
    "mac2_verified": ("bool", None),
    "list_version": ("digits", 10),
    # transit context
    "mode": ("choice", MODES),
    "city": ("digits", 4),
    "operator": ("hex", _hex_pattern(4)),
    "line": ("hex", _hex_pattern(4)),
    "station": ("hex", _hex_pattern(2, 16)),
    "vehicle": ("vehicle", None),
    "direction": ("choice", ("AB", "BA")),
    "card_type": ("hex", _hex_pattern(2)),
    "full_fare": ("int", _U32),
    "entry_city": ("digits", 4),
    "entry_station": ("hex", _hex_pattern(2, 16)),
    "entry_terminal": ("hex", _hex_pattern(2, 16)),
    "entry_time": ("datetime", None),
}

_REQUIRED = ("status", "type", "terminal_id", "datetime")
_REQUIRED_BY_STATUS = {
    "approved": ("card_no", "issuer_id", "amount", "balance_before", "balance_after", "card_counter",
                 "key_version", "algorithm", "tac"),
    "recovered": ("card_no", "issuer_id", "amount", "balance_before", "balance_after", "card_counter",
                  "key_version", "algorithm", "tac"),
    "torn": ("reason", "card_no", "amount", "card_counter"),
    "declined": ("reason",),
    "failed": ("reason",),
}


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """One transaction as journaled and cleared (design.md field order, then transit context).

    ``reason`` is free text; ``card_no`` the 20 digits of EF15 bytes 10..19; amounts and balances are
    fen (balances real, negative when overdrawn); ``card_counter`` the online counter before a load or
    the offline counter before a purchase; ``terminal_seq`` the PSAM sequence of a purchase;
    ``datetime`` and ``entry_time`` ``YYYYMMDDhhmmss`` China time; ``list_version`` the black list's
    version. Context: ``mode``, the terminal's ``city``/``operator``/``line``/``station``/``vehicle``/
    ``direction``, the card's EF17 ``card_type``, ``full_fare`` (the fare before a discount), and the
    entry (metro) or boarding (bus) data read from the card on exit or alighting.
    All fields are keyword-only.
    """

    status: str
    reason: str | None = None
    type: str
    card_no: str | None = None
    issuer_id: str | None = None
    amount: int | None = None
    balance_before: int | None = None
    balance_after: int | None = None
    overdraft_limit: int | None = None
    card_counter: int | None = None
    terminal_id: str
    terminal_seq: int | None = None
    datetime: str
    key_version: int | None = None
    algorithm: str | None = None
    tac: str | None = None
    mac2_verified: bool | None = None
    list_version: str | None = None
    mode: str | None = None
    city: str | None = None
    operator: str | None = None
    line: str | None = None
    station: str | None = None
    vehicle: str | None = None
    direction: str | None = None
    card_type: str | None = None
    full_fare: int | None = None
    entry_city: str | None = None
    entry_station: str | None = None
    entry_terminal: str | None = None
    entry_time: str | None = None

    ORDER: ClassVar[tuple[str, ...]] = tuple(_SPEC)

    def __post_init__(self) -> None:
        for name in _REQUIRED:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required")
        for name in self.ORDER:
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _check(name, value))
        required = _REQUIRED_BY_STATUS[self.status]
        if self.type in ("06", "09") and self.status in ("approved", "recovered", "torn"):
            required += ("terminal_seq",)
        for name in required:
            if getattr(self, name) is None:
                raise ValueError(f"{name}: required for a {self.status} outcome")
        if self.reason is not None and not self.reason.strip():
            raise ValueError("reason: empty (leave it out instead)")
        if self.tac is not None and self.status in ("torn", "declined"):
            raise ValueError(f"tac: a {self.status} outcome has no TAC")
        if self.mode is not None and (self.type == "02") != (self.mode == "load"):
            raise ValueError(f"type: type {self.type} does not fit mode {self.mode}")
        if self.status in MONEY_STATUSES:
            sign = 1 if self.type == "02" else -1
            expected = self.balance_before + sign * self.amount  # type: ignore[operator]
            if self.balance_after != expected:
                raise ValueError(f"balance_after: {self.balance_after} is not balance_before "
                                 f"{self.balance_before} {'+' if sign > 0 else '-'} amount {self.amount}")

    # -- the stable JSON form ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fields in contract order, absent ones left out."""
        return {name: getattr(self, name) for name in self.ORDER if getattr(self, name) is not None}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Outcome":
        if not isinstance(data, Mapping):
            raise ValueError(f"outcome: expected an object, got {type(data).__name__}")
        for key in data:
            if key not in _SPEC:
                raise ValueError(f"{key}: unknown outcome field")
        for name in _REQUIRED:
            if name not in data:
                raise ValueError(f"{name}: missing")
        return cls(**dict(data))

    @classmethod
    def from_json(cls, text: str | bytes) -> "Outcome":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"outcome: not JSON: {exc}") from None
        return cls.from_dict(data)

    # -- helpers for the flows and clearing ----------------------------------------------------------
    @property
    def moved_money(self) -> bool:
        """True when the card's purse changed: approved, recovered, or failed after DEBIT (a TAC)."""
        return self.status in MONEY_STATUSES or (self.status == "failed" and self.tac is not None)

    @property
    def moment(self) -> _dt.datetime:
        """``datetime`` as a naive datetime (China time)."""
        return _parse_datetime(self.datetime)


FIELDS: tuple[str, ...] = Outcome.ORDER
"""Outcome field names in contract order: the JSON key order and the CSV column order."""
assert FIELDS == tuple(f.name for f in fields(Outcome))


def _parse_datetime(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y%m%d%H%M%S")


def _check(name: str, value: Any) -> Any:
    kind, rule = _SPEC[name]
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name}: expected an integer, got {type(value).__name__} {value!r}")
        low, high = rule
        if not low <= value <= high:
            raise ValueError(f"{name}: {value} out of range {low}..{high}")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a string, got {type(value).__name__} {value!r}")
    if kind == "choice":
        if value not in rule:
            raise ValueError(f"{name}: expected one of {', '.join(rule)}, got {value!r}")
        return value
    if kind == "hex":
        if not rule.fullmatch(value):
            raise ValueError(f"{name}: expected hex ({rule.pattern}), got {value!r}")
        return value.upper()
    if kind == "digits":
        if not (len(value) == rule and value.isascii() and value.isdigit()):
            raise ValueError(f"{name}: expected {rule} decimal digits, got {value!r}")
        return value
    if kind == "datetime":
        if not (len(value) == 14 and value.isascii() and value.isdigit()):
            raise ValueError(f"{name}: expected YYYYMMDDhhmmss, got {value!r}")
        try:
            _parse_datetime(value)
        except ValueError:
            raise ValueError(f"{name}: {value} is not a date-time") from None
        return value
    if kind == "vehicle":
        if not re.fullmatch(r"[\x21-\x7E]{1,8}", value):
            raise ValueError(f"{name}: expected 1 to 8 printable ASCII characters, got {value!r}")
        return value
    # free text: one line, no control characters (it goes into CSV and logs)
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(f"{name}: control characters are not allowed")
    return value
