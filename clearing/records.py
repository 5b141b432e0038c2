"""Reading clearing records as the platform must: fast, field by field, trusting nothing.

A clearing file holds the design's "Outcome / clearing record" (JSON Lines, or CSV with a header of the
outcome field names). The verifier reads millions of them, so it does not build an ``Outcome`` per line:
msgspec decodes each line straight into a typed struct (types, ranges, choices and unknown fields are
checked in C), and every text field is checked at once by the line's shape (`_text_verdict`); `check` then
applies the rules field by field and names the first fault. A JSON line first tries a faster path
(`_fast_parse`): structs per status that leave even less to Python, and that only ever accept; any line it
does not accept outright is read the straightforward way (`_reference_parse`), which decides and explains
(``tests/clearing/test_records_fast.py`` proves the two say the same). ``tests/clearing/test_records.py`` proves
that this accepts exactly what ``terminal_sim.outcome.Outcome`` accepts, with two deliberate differences:

* the balance rule (``balance_after = balance_before -/+ amount``) is not a format fault here: it is the
  first link of the balance chain, so the verifier reports it as ``balance-chain``;
* a clearing file carries money movements and open grey records only (``terminal_sim.export``): a
  ``declined`` record, or a ``failed`` one without a TAC, is refused as malformed.

A QR ride (``medium: "qr"``, mobile.md Q12) is checked for its form like any record (its own required
fields, no card field, no TAC) and then handed to the QR checks (`QrRideLine` carries a `qr.QrRide`): its
proof is the code's signature chain, not a card's TAC, and it has no card, counter or balance to chain. A
card record's ``medium`` is kept in its tuple (``virtual``, else None: absent or ``physical``, M4) for the
monthly return.

A checked record becomes a plain tuple (`FIELDS_OF_TUPLE`, index constants below): the fields the checks,
the settlement and the monthly return use, in the store's column order.
"""
from __future__ import annotations

import csv
import datetime as _dt
import functools
import re
import operator
from typing import Annotated, Literal, Optional, Union

import msgspec

from terminal_sim.outcome import CARD_ONLY_FIELDS, FIELDS, MAX_CODE_BYTES, QR_FIELDS, REQUIRED_BY_STATUS

from .qr import QrRide

__all__ = ["Malformed", "QrRideLine", "ClearingRecord", "JsonReader", "CsvReader", "KIND_ONLINE", "KIND_OFFLINE",
           "STATUS_CODES", "STATUS_NAMES", "TORN", "card_of_json_line", "FIELDS_OF_TUPLE"]

KIND_ONLINE, KIND_OFFLINE = 0, 1          # loads (02) count on the online counter, purchases on the offline one
STATUS_NAMES = ("approved", "recovered", "failed", "torn")
STATUS_CODES = {name: code for code, name in enumerate(STATUS_NAMES)}
_TYPE_CODES = {"02": 0x02, "06": 0x06, "09": 0x09}
TORN = STATUS_CODES["torn"]

_U32 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFFFF)]
_S32 = Annotated[int, msgspec.Meta(ge=-0x80000000, le=0x7FFFFFFF)]
_U24 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFFFF)]
_U16 = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
_U8 = Annotated[int, msgspec.Meta(ge=0, le=0xFF)]


class ClearingRecord(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The outcome fields with their types and ranges; text formats are checked by `_TEXT` below."""

    status: Literal["approved", "declined", "torn", "recovered", "failed"]
    terminal_id: str
    datetime: str
    type: Optional[Literal["02", "06", "09"]] = None     # required on a card record (checked in `check`)
    reason: Optional[str] = None
    card_no: Optional[str] = None
    issuer_id: Optional[str] = None
    amount: Optional[_U32] = None
    balance_before: Optional[_S32] = None
    balance_after: Optional[_S32] = None
    overdraft_limit: Optional[_U24] = None
    card_counter: Optional[_U16] = None
    terminal_seq: Optional[_U32] = None
    key_version: Optional[_U8] = None
    algorithm: Optional[Literal["3des", "sm4"]] = None
    tac: Optional[str] = None
    mac2_verified: Optional[bool] = None
    list_version: Optional[str] = None
    mode: Optional[Literal["bus", "metro", "ferry", "taxi", "load"]] = None
    city: Optional[str] = None
    operator: Optional[str] = None
    line: Optional[str] = None
    station: Optional[str] = None
    vehicle: Optional[str] = None
    direction: Optional[Literal["AB", "BA"]] = None
    card_type: Optional[str] = None
    full_fare: Optional[_U32] = None
    entry_city: Optional[str] = None
    entry_station: Optional[str] = None
    entry_terminal: Optional[str] = None
    entry_time: Optional[str] = None
    medium: Optional[Literal["physical", "virtual", "qr"]] = None
    qr_code: Optional[str] = None
    account_no: Optional[str] = None
    pay_account: Optional[str] = None
    qr_issuer: Optional[str] = None
    qr_platform: Optional[str] = None
    qr_gen_time: Optional[_U32] = None
    ticket_type: Optional[str] = None


assert set(ClearingRecord.__struct_fields__) == set(FIELDS), "the clearing record must follow the outcome fields"

# Text fields and their formats (design.md; terminal_sim.outcome). Each is checked alone on the slow path;
# the fast path joins them and judges the joined line's shape. Absent (None) means empty, allowed only for
# optional fields; whether a field is required depends on the status and is checked separately.
_H = "[0-9A-Fa-f]"
_DT = r"\d{14}"
_VAR_HEX = rf"(?:{_H}{{2}}){{1,8}}"
_TEXT: tuple[tuple[str, str], ...] = (
    ("terminal_id", rf"{_H}{{12}}"),
    ("datetime", _DT),
    ("card_no", r"\d{20}"),
    ("issuer_id", rf"{_H}{{16}}"),
    ("tac", rf"{_H}{{8}}"),
    ("list_version", r"\d{10}"),
    ("city", r"\d{4}"),
    ("operator", rf"{_H}{{4}}"),
    ("line", rf"{_H}{{4}}"),
    ("station", _VAR_HEX),
    ("vehicle", r"[\x21-\x7E]{1,8}"),
    ("card_type", rf"{_H}{{2}}"),
    ("entry_city", r"\d{4}"),
    ("entry_station", _VAR_HEX),
    ("entry_terminal", _VAR_HEX),
    ("entry_time", _DT),
)
_FIELD_RE = {name: re.compile(pattern, re.ASCII) for name, pattern in _TEXT}
_SEP = "\x1f"   # no text field may hold a control character, so the joined line splits back unambiguously
_ABSENT = "\x1e"  # an absent field in the joined line (an empty string is present, and wrong)
_SEPARATORS = len(_TEXT) - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# The patterns test only each character's class and the fields' lengths, so whether a line's text fields
# match is decided by its "shape": every character replaced by its class's representative (a separator or
# absence stays itself; a character no pattern accepts becomes a space). In the digit fields a digit is 0
# and a hex letter A or a; in the others, which do not tell digits from hex letters, both are 0, so a TAC or
# terminal ID adds no shapes. A day's records have a handful of shapes: their verdicts are kept, and most
# lines cost two byte translations and a lookup instead of the pattern.
_DIGIT_TEXT = tuple(name for name, pattern in _TEXT if r"\d" in pattern)
_OTHER_TEXT = tuple(name for name, pattern in _TEXT if r"\d" not in pattern)
assert all(_H in p or p.startswith(r"[\x21-\x7E]") for n, p in _TEXT if n in _OTHER_TEXT), "a new text field pattern"
_GET_TEXT = operator.attrgetter(*_DIGIT_TEXT, *_OTHER_TEXT)
_N_DIGIT = len(_DIGIT_TEXT)


def _class_table(digit: str, upper: str) -> bytes:
    return bytes(ord(digit) if 48 <= b <= 57 else ord(upper) if 65 <= b <= 70 else ord("a") if 97 <= b <= 102
                 else ord("!") if 0x21 <= b <= 0x7E else b if chr(b) in (_SEP, _ABSENT) else ord(" ")
                 for b in range(256))


_DIGIT_CLASS, _OTHER_CLASS = _class_table("0", "A"), _class_table("0", "0")
_REORDERED = [(name, dict(_TEXT)[name]) for name in _DIGIT_TEXT + _OTHER_TEXT]
_SHAPE_ALL = re.compile(_SEP.join(f"(?:{p})" if n in ("terminal_id", "datetime") else f"(?:{p}|{_ABSENT})"
                                  for n, p in _REORDERED), re.ASCII)
_SHAPE_UPPER = re.compile(_SEP.join(f"(?:{p})" if n in ("terminal_id", "datetime") else f"(?:{p}|{_ABSENT})"
                                    for n, p in ((n, p.replace(_H, "[0-9A-F]")) for n, p in _REORDERED)), re.ASCII)
_SHAPES: dict[bytes, bool | None] = {}   # shape -> False: upper case, True: lower case to convert, None: refused
_MAX_SHAPES = 4096                       # a hostile file cannot grow it past this; then the pattern runs
_UNKNOWN = object()


def _text_verdict(r: "ClearingRecord") -> bool | None:
    """False when the text fields match in upper case, True when they match with lower-case hex, None if not
    (the verdict of each present field's pattern, `_FIELD_RE`; absent is allowed here)."""
    raw = _GET_TEXT(r)
    values = [_ABSENT if v is None else v for v in raw]
    digits, other = _SEP.join(values[:_N_DIGIT]), _SEP.join(values[_N_DIGIT:])
    if (digits.count(_SEP) + other.count(_SEP) != _SEPARATORS - 1
            or digits.count(_ABSENT) + other.count(_ABSENT) != raw.count(None)):
        return None                                      # a separator or an absence mark inside a field
    shape = None
    text = digits + _SEP + other
    if text.isascii():
        shape = digits.encode("ascii").translate(_DIGIT_CLASS) + b"\x1f" + other.encode("ascii").translate(_OTHER_CLASS)
        verdict = _SHAPES.get(shape, _UNKNOWN)
        if verdict is not _UNKNOWN:
            return verdict
        text = shape.decode("ascii")
    verdict = False if _SHAPE_UPPER.fullmatch(text) else True if _SHAPE_ALL.fullmatch(text) else None
    if shape is not None and len(_SHAPES) < _MAX_SHAPES:
        _SHAPES[shape] = verdict
    return verdict


# What the platform needs of a failed record that carries a TAC (money moved): enough to recompute it.
_REQUIRED_FAILED_WITH_TAC = ("card_no", "issuer_id", "amount", "balance_before", "card_counter", "key_version",
                             "algorithm")
_GET_REQUIRED = {status: operator.attrgetter(*names) for status, names in REQUIRED_BY_STATUS.items()}
_GET_FAILED_WITH_TAC = operator.attrgetter(*_REQUIRED_FAILED_WITH_TAC)


def _missing(record: "ClearingRecord", names: tuple[str, ...]) -> str:
    return next(name for name in names if getattr(record, name) is None)


class Malformed(ValueError):
    """A line that is not a clearing record: the message names the field and the reason."""


class QrRideLine(Exception):
    """A well-formed QR ride: not a card record; `ride` is what the QR checks need (clearing.qr)."""

    def __init__(self, ride: QrRide) -> None:
        super().__init__("a QR ride")
        self.ride = ride


_QR_TEXT = (
    ("qr_code", rf"(?:{_H}{{2}}){{1,{MAX_CODE_BYTES}}}"),
    ("account_no", rf"{_H}{{20}}"),
    ("pay_account", r"[\x20-\x7E]{16}"),
    ("qr_issuer", rf"{_H}{{8}}"),
    ("qr_platform", rf"{_H}{{8}}"),
    ("ticket_type", rf"{_H}{{2}}"),
)
_QR_FIELD_RE = {name: re.compile(pattern, re.ASCII) for name, pattern in _QR_TEXT}
_QR_REQUIRED = ("amount", "qr_code", "account_no", "pay_account", "qr_issuer", "qr_platform", "qr_gen_time")
_GET_QR = operator.attrgetter(*QR_FIELDS)
_NO_QR = (None,) * len(QR_FIELDS)


def _check_qr(r: "ClearingRecord") -> None:
    """A QR ride's form (Q12, as `Outcome` has it); then `QrRideLine`, or Malformed naming the fault."""
    if r.status == "declined":
        raise Malformed("status: a declined outcome moved no money and does not belong in a clearing file")
    if r.status != "approved":
        raise Malformed(f"status: a QR ride is approved or declined, never {r.status}")
    for name in CARD_ONLY_FIELDS:
        if getattr(r, name) is not None:
            raise Malformed(f"{name}: a QR ride record has no card fields (Q12)")
    for name in _QR_REQUIRED:
        if getattr(r, name) is None:
            raise Malformed(f"{name}: required for an approved QR ride")
    for name, pattern in _QR_FIELD_RE.items():
        value = getattr(r, name)
        if value is not None and not pattern.fullmatch(value):
            raise Malformed(f"{name}: {value[:40]!r} does not match {pattern.pattern}")
    if r.type == "02" or r.mode == "load":
        raise Malformed(f"{'type' if r.type == '02' else 'mode'}: a QR code pays a ride, it loads nothing")
    assert r.qr_code is not None and r.qr_issuer is not None and r.qr_platform is not None
    assert r.account_no is not None and r.pay_account is not None and r.qr_gen_time is not None
    raise QrRideLine(QrRide(r.qr_code.upper(), r.terminal_id.upper(), r.datetime, r.amount,
                            r.qr_issuer.upper(), r.qr_platform.upper(), r.city, r.account_no.upper(),
                            r.pay_account, r.qr_gen_time))


# A checked record is a plain tuple (millions of them: no object per record), in the store's column order:
# the record's own fields, then what the verifier adds (arrival number, acquirer, reason bits, partition).
FIELDS_OF_TUPLE = ("card", "kind", "counter", "status", "type", "issuer", "amount", "balance_before",
                   "balance_after", "overdraft", "terminal", "seq", "datetime", "key_version", "algorithm", "tac",
                   "mode", "city", "operator", "transit_line", "medium")
(CARD, KIND, COUNTER, STATUS, TYPE, ISSUER, AMOUNT, BEFORE, AFTER, OVERDRAFT, TERMINAL, SEQ, DATETIME, KEY_VERSION,
 ALGORITHM, TAC, MODE, CITY, OPERATOR, LINE, MEDIUM) = range(len(FIELDS_OF_TUPLE))


@functools.lru_cache(maxsize=4096)
def _valid_date(yyyymmdd: str) -> bool:
    try:
        _dt.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True


def _valid_datetime(text: str) -> bool:
    """YYYYMMDDhhmmss that is a real date and time (the format is already checked)."""
    return _valid_date(text[:8]) and text[8:10] < "24" and text[10:12] < "60" and text[12:14] < "60"


def _explain_text(r: ClearingRecord) -> str:
    """The first text field at fault (slow path, only for a line the fast check refused)."""
    for name, _ in _TEXT:
        value = getattr(r, name)
        if value is None:
            continue
        if not _FIELD_RE[name].fullmatch(value):
            return f"{name}: {value!r} does not match {_FIELD_RE[name].pattern}"
    return "a text field contains a control character"


def check(r: ClearingRecord) -> tuple:
    """The record's rules beyond types; raises Malformed naming the first fault, QrRideLine for a QR ride."""
    lower = _text_verdict(r)               # True: accepted, as Outcome does, and kept in upper case
    if lower is None:
        raise Malformed(_explain_text(r))
    if not _valid_datetime(r.datetime):
        raise Malformed(f"datetime: {r.datetime} is not a date-time")
    if r.entry_time is not None and not _valid_datetime(r.entry_time):
        raise Malformed(f"entry_time: {r.entry_time} is not a date-time")
    status = r.status
    if r.reason is not None:
        if not r.reason.strip():
            raise Malformed("reason: empty (leave it out instead)")
        if _CONTROL.search(r.reason):
            raise Malformed("reason: control characters are not allowed")
    if r.medium == "qr":
        _check_qr(r)
    if _GET_QR(r) != _NO_QR:
        raise Malformed(f"{next(n for n in QR_FIELDS if getattr(r, n) is not None)}: only a QR ride record "
                        "(medium qr) has it")
    if r.type is None:
        raise Malformed("type: missing")
    present = _GET_REQUIRED[status](r)
    if present is None or (type(present) is tuple and None in present):
        raise Malformed(f"{_missing(r, REQUIRED_BY_STATUS[status])}: required for a {status} outcome")
    purchase = r.type != "02"
    if purchase and status in ("approved", "recovered", "torn") and r.terminal_seq is None:
        raise Malformed(f"terminal_seq: required for a {status} outcome")
    if r.tac is not None and status == "torn":
        raise Malformed("tac: a torn outcome has no TAC")
    if r.mode is not None and (r.type == "02") != (r.mode == "load"):
        raise Malformed(f"type: type {r.type} does not fit mode {r.mode}")
    # What belongs in a clearing file (terminal_sim.export): money movements and open grey records.
    if status == "declined":
        raise Malformed("status: a declined outcome moved no money and does not belong in a clearing file")
    if status == "failed":
        if r.tac is None:
            raise Malformed("status: a failed outcome without a TAC moved no money and does not belong in a "
                            "clearing file")
        if None in _GET_FAILED_WITH_TAC(r):
            raise Malformed(f"{_missing(r, _REQUIRED_FAILED_WITH_TAC)}: required to check the TAC of a failed outcome")
    if status != "torn" and purchase and r.terminal_seq is None:
        raise Malformed("terminal_seq: required to check the TAC of a purchase")
    if lower:
        return (
            r.card_no, KIND_OFFLINE if purchase else KIND_ONLINE, r.card_counter, STATUS_CODES[status],
            _TYPE_CODES[r.type], r.issuer_id.upper() if r.issuer_id else "", r.amount, r.balance_before,
            r.balance_after, r.overdraft_limit or 0, r.terminal_id.upper(), r.terminal_seq, r.datetime,
            r.key_version, r.algorithm, r.tac.upper() if r.tac else None, r.mode, r.city,
            r.operator.upper() if r.operator else None, r.line.upper() if r.line else None,
            "virtual" if r.medium == "virtual" else None,
        )
    return (
        r.card_no, KIND_OFFLINE if purchase else KIND_ONLINE, r.card_counter, STATUS_CODES[status],
        _TYPE_CODES[r.type], r.issuer_id or "", r.amount, r.balance_before, r.balance_after, r.overdraft_limit or 0,
        r.terminal_id, r.terminal_seq, r.datetime, r.key_version, r.algorithm, r.tac, r.mode, r.city, r.operator,
        r.line, "virtual" if r.medium == "virtual" else None,
    )


def _type_error(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `int`, got `str` - at `$.amount`" as "amount: expected int, got str"."""
    text = str(exc)
    message, _, where = text.partition(" - at `")
    field = where.rstrip("`").removeprefix("$.").removeprefix("$") or "record"
    message = message.replace("`", "")
    if message.startswith("Object contains unknown field"):
        return f"{message.split(' ')[-1]}: unknown outcome field"
    if message.startswith("Object missing required field"):
        return f"{message.split(' ')[-1]}: missing"
    return f"{field}: {message[0].lower()}{message[1:]}"


_decode_record = msgspec.json.Decoder(ClearingRecord).decode


def _reference_parse(line: bytes) -> tuple:
    """The straightforward reader: decode every field, then `check`; the only one that refuses or explains."""
    try:
        record = _decode_record(line)
    except msgspec.ValidationError as exc:
        raise Malformed(_type_error(exc)) from None
    except msgspec.DecodeError as exc:
        raise Malformed(f"not a JSON object: {exc}") from None
    return check(record)


# -- the fast path: the common well-formed card record, judged mostly in C ---------------------------------
# A second struct accepts only a subset of what the reference accepts: no declined record, no field that is
# null, every text field at its exact length (or in its length range), the fields every card record needs
# required, no QR field, no ``medium: "qr"``. msgspec checks all that in C; what is left in Python is what
# each status requires, a character class per group of text fields (one byte test each), the even length of
# the variable hex fields, the date-times, the terminal sequence of a purchase, the mode and the reason.
# (One struct, not a tagged union per status: the attribute reads below stay monomorphic, which pays on a
# file that mixes statuses.) Whatever this path does not accept outright (None) goes to `_reference_parse`,
# which gives the verdict and the message: the fast path only ever says yes, and then with the reference's
# tuple (tests/clearing/test_records_fast.py compares the two on generated and mutated lines).
def _sized(low: int, high: int | None = None) -> object:
    """A text of exactly `low` characters, or of `low` to `high`."""
    return Annotated[str, msgspec.Meta(min_length=low, max_length=low if high is None else high)]


_FAST_OPTIONAL = (   # absent text is "" (an empty string is too short, so it cannot be given)
    ("issuer_id", _sized(16), ""), ("balance_before", _S32, None), ("balance_after", _S32, None),
    ("overdraft_limit", _U24, 0), ("terminal_seq", _U32, None), ("key_version", _U8, None),
    ("algorithm", Literal["3des", "sm4"], None), ("tac", _sized(8), None), ("mac2_verified", bool, None),
    ("list_version", _sized(10), ""), ("mode", Literal["bus", "metro", "ferry", "taxi", "load"], None),
    ("city", _sized(4), ""), ("operator", _sized(4), ""), ("line", _sized(4), ""), ("station", _sized(2, 16), ""),
    ("vehicle", _sized(1, 8), ""), ("direction", Literal["AB", "BA"], None), ("card_type", _sized(2), ""),
    ("full_fare", _U32, None), ("entry_city", _sized(4), ""), ("entry_station", _sized(2, 16), ""),
    ("entry_terminal", _sized(2, 16), ""), ("entry_time", _sized(14), ""),
    ("medium", Literal["physical", "virtual"], None), ("reason", str, None),
)
_FAST_ALWAYS = (("status", Literal["approved", "recovered", "torn", "failed"]), ("terminal_id", _sized(12)),
                ("datetime", _sized(14)), ("type", Literal["02", "06", "09"]), ("card_no", _sized(20)),
                ("amount", _U32), ("card_counter", _U16))
_FastRecord = msgspec.defstruct(   # in the outcome's key order, which msgspec reads fastest
    "_FastRecord", sorted([*_FAST_ALWAYS, *_FAST_OPTIONAL], key=lambda field: FIELDS.index(field[0])),
    kw_only=True, forbid_unknown_fields=True, gc=False)
assert set(_FastRecord.__struct_fields__) < set(FIELDS), "a fast field that is no outcome field"
_decode_fast = msgspec.json.Decoder(_FastRecord).decode
# bytes.translate maps each byte: 0 marks a byte that is not upper-case hex (bytes.isdigit is ASCII only)
_NOT_UPPER_HEX = bytes(b if chr(b) in "0123456789ABCDEF" else 0 for b in range(256))
_MINUTES: dict[str, bool] = {}   # YYYYMMDDhhmm -> a real date, hour and minute (a day has 1,440)


def _minute_ok(minute: str) -> bool:
    """Remember whether YYYYMMDDhhmm is a real minute (a hostile file cannot grow the memory past a bound)."""
    if len(_MINUTES) >= 1 << 14:
        _MINUTES.clear()
    ok = _MINUTES[minute] = _valid_datetime(minute + "00")
    return ok


def _fast_parse(line: bytes) -> tuple | None:
    """The record's tuple when the line is a common well-formed card record in upper case; None: ask the reference."""
    try:
        r = _decode_fast(line)
    except msgspec.DecodeError:
        return None
    # what each status requires (REQUIRED_BY_STATUS, and what a failed record's TAC needs); no TAC when torn
    status, tac = r.status, r.tac
    if status == "torn":
        if tac is not None or r.reason is None:
            return None
    elif tac is None or r.balance_before is None or r.key_version is None or r.algorithm is None \
            or not r.issuer_id or (r.reason is None if status == "failed" else r.balance_after is None):
        return None
    kind, seq, mode = r.type, r.terminal_seq, r.mode
    purchase = kind != "02"
    if (purchase and seq is None) or (mode is not None and purchase == (mode == "load")):
        return None
    # the text fields by class: digits; upper-case hex (lower case is accepted, upper-cased, by the reference)
    station, entry_station, entry_terminal = r.station, r.entry_station, r.entry_terminal
    if not "".join((r.datetime, r.card_no, r.list_version, r.city, r.entry_city, r.entry_time)).encode().isdigit() \
            or 0 in "".join((r.terminal_id, r.issuer_id, tac or "", r.operator, r.line, station, r.card_type,
                             entry_station, entry_terminal)).encode().translate(_NOT_UPPER_HEX) \
            or (len(station) | len(entry_station) | len(entry_terminal)) & 1:
        return None
    vehicle, dt, et = r.vehicle, r.datetime, r.entry_time
    if vehicle and not (vehicle.isascii() and vehicle.isprintable() and " " not in vehicle):
        return None
    if not (_MINUTES.get(dt[:12]) or _minute_ok(dt[:12])) or dt[12] >= "6" or (et and not _valid_datetime(et)):
        return None
    reason = r.reason
    if reason is not None and (not reason.strip() or _CONTROL.search(reason)):
        return None
    return (r.card_no, KIND_OFFLINE if purchase else KIND_ONLINE, r.card_counter, STATUS_CODES[status],
            _TYPE_CODES[kind], r.issuer_id, r.amount, r.balance_before, r.balance_after, r.overdraft_limit,
            r.terminal_id, seq, dt, r.key_version, r.algorithm, tac, mode, r.city or None, r.operator or None, r.line or None,
            "virtual" if r.medium == "virtual" else None)


class JsonReader:
    """JSON Lines: one outcome object per line."""

    def parse(self, line: bytes) -> tuple:
        """The record's tuple; Malformed naming the first fault; QrRideLine for a well-formed QR ride."""
        done = _fast_parse(line)
        return _reference_parse(line) if done is None else done


_CARD_IN_JSON = re.compile(rb'"card_no"\s*:\s*"(\d{20})"')


def card_of_json_line(line: bytes) -> bytes | None:
    """The card number of a JSON line without decoding it (to route the line to its card's partition)."""
    m = _CARD_IN_JSON.search(line)
    return m.group(1) if m else None


class CsvReader:
    """CSV with the header ``terminal_sim.export`` writes: outcome field names; empty cells are absent."""

    def __init__(self, header: bytes) -> None:
        try:
            names = next(csv.reader([header.decode("utf-8").rstrip("\r\n")]))
        except (UnicodeDecodeError, StopIteration, csv.Error) as exc:
            raise Malformed(f"header: not a CSV header of outcome fields ({exc})") from None
        unknown = [n for n in names if n not in FIELDS]
        if unknown:
            raise Malformed(f"header: {unknown[0]!r} is not an outcome field")
        if len(set(names)) != len(names):
            raise Malformed("header: a column is named twice")
        for required in ("status", "type", "terminal_id", "datetime", "card_no"):
            if required not in names:
                raise Malformed(f"header: column {required!r} missing")
        self.names = names
        self.card_column = names.index("card_no")

    def row(self, line: bytes) -> list[str]:
        try:
            rows = list(csv.reader([line.decode("utf-8").rstrip("\r\n")]))
        except (UnicodeDecodeError, csv.Error) as exc:
            raise Malformed(f"not a CSV row: {exc}") from None
        if len(rows) != 1 or len(rows[0]) != len(self.names):
            got = len(rows[0]) if rows else 0
            raise Malformed(f"expected {len(self.names)} columns, got {got}")
        return rows[0]

    def card_of(self, line: bytes) -> bytes | None:
        try:
            value = self.row(line)[self.card_column]
        except Malformed:
            return None
        return value.encode() if len(value) == 20 and value.isdigit() else None

    def parse(self, line: bytes) -> tuple:
        row = self.row(line)
        data = {name: value for name, value in zip(self.names, row) if value != ""}
        try:
            record = msgspec.convert(data, ClearingRecord, strict=False)
        except msgspec.ValidationError as exc:
            raise Malformed(_type_error(exc)) from None
        for name in ("mac2_verified",):
            if name in data and data[name] not in ("true", "false"):
                raise Malformed(f"{name}: expected true or false, got {data[name]!r}")
        for name in ("amount", "balance_before", "balance_after", "overdraft_limit", "card_counter",
                     "terminal_seq", "key_version", "full_fare", "qr_gen_time"):
            value = data.get(name)
            if value is not None and not re.fullmatch(r"-?\d+", value):
                raise Malformed(f"{name}: expected an integer, got {value!r}")
        return check(record)
