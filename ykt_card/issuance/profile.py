"""Card issuance profiles (YAML under specs/profiles/cards/): what a city issuer puts on a new card.

A profile fixes the issuer identity (org code, city, province), the card number prefix, application type and
version, card type and interoperability flag, dates, the purse limits, the PIN, which key sets (algorithms and
key indexes) the card carries, and which EF1A CAPP records exist. Every field is checked on load and a bad one
is refused in one line naming the file and the field.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# EF1A record index (reference 1.3, CL header): sizes of records other than the 128-byte default.
CAPP_RECORD_SIZES = {0x07: 112, 0x0D: 30}
CAPP_RECORD_IDS = range(0x01, 0x13)
MEDIA = ("physical", "virtual", "qr")


class ProfileError(ValueError):
    """A profile refused: `<file>: <field>: <reason>`."""


@dataclass(frozen=True)
class KeySlot:
    """One key set a card of this issuer carries: its algorithm and the provincial key index (D16).

    The index documents the allocation; a card is personalised at the index its key set's keys carry.
    """

    algorithm: str
    index: int


@dataclass(frozen=True)
class CardProfile:
    name: str
    description: str
    org_code: str            # 4 hex digits, EF15 bytes 0..1
    city: str                # 4-digit area code, EF15 bytes 2..3 and EF17 city
    province: str            # 4-digit area code, EF17
    country: str             # 8 digits, EF17 (00000156 = China)
    card_no_prefix: str      # leading digits of the 20-digit card number (EF15 bytes 10..19)
    app_type: int            # EF15 byte 8: 01 ED, 02 EP, 03 both
    app_version: int         # EF15 byte 9
    fci_app_version: int     # 9F08
    card_type: int           # EF17 byte 10
    interoperable: bool      # EF17 bytes 8..9: 0001 / 0000
    settlement_unit: str     # EF17 bytes 11..14, 8 hex digits
    fci_custom: str          # EF15 bytes 28..29, 4 hex digits
    valid_years: int
    max_balance: int         # fen
    overdraft_limit: int     # fen
    pin: str
    pin_required_for_load: bool
    keys: tuple[KeySlot, ...]
    capp_records: tuple[int, ...]
    ef18_records: int
    ef1e_records: int
    ats_historical: bytes
    medium: str
    price: int               # fen, for the issuance registry
    source: str = "<memory>"

    @property
    def issuer_id(self) -> bytes:
        """EF15 bytes 0..7: org code ‖ city code ‖ FFFFFFFF."""
        return bytes.fromhex(self.org_code + self.city + "FFFFFFFF")

    def card_number(self, serial: int) -> str:
        """The 20-digit card number: prefix, then the serial zero-padded to fill 20 digits."""
        width = 20 - len(self.card_no_prefix)
        if not 0 <= serial < 10**width:
            raise ProfileError(f"{self.source}: card_no_prefix leaves {width} digits, serial {serial} does not fit")
        return self.card_no_prefix + str(serial).zfill(width)

    def expiry(self, start: _dt.date) -> _dt.date:
        try:
            return start.replace(year=start.year + self.valid_years)
        except ValueError:  # 29 February
            return start.replace(year=start.year + self.valid_years, day=28)

    @staticmethod
    def capp_record_size(record_id: int) -> int:
        return CAPP_RECORD_SIZES.get(record_id, 128)


_DEFAULTS: dict[str, Any] = {
    "description": "",
    "province": "5800",
    "country": "00000156",
    "app_type": "02",
    "app_version": "01",
    "fci_app_version": "02",
    "card_type": "01",
    "interoperable": True,
    "settlement_unit": "00000000",
    "fci_custom": "0000",
    "valid_years": 20,
    "max_balance": 100000,
    "overdraft_limit": 0,
    "pin": "123456",
    "pin_required_for_load": False,
    "keys": [{"algorithm": "3des", "index": 1}, {"algorithm": "sm4", "index": 2}],
    "capp_records": [1, 2],
    "ef18_records": 10,
    "ef1e_records": 30,
    "ats_historical": "4D54009D0040869B19705D1401",
    "medium": "physical",
    "price": 0,
}
_REQUIRED = ("name", "org_code", "city", "card_no_prefix")


def load_card_profile(path: str | Path) -> CardProfile:
    p = Path(path)
    try:
        doc = yaml.safe_load(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ProfileError(f"{p}: no such profile") from None
    except yaml.YAMLError as exc:
        raise ProfileError(f"{p}: not valid YAML: {' '.join(str(exc).split())}") from None
    return card_profile_from_dict(doc, str(p))


def card_profile_from_dict(doc: object, source: str = "<memory>") -> CardProfile:
    def fail(where: str, reason: str) -> ProfileError:
        return ProfileError(f"{source}: {where}: {reason}")

    if not isinstance(doc, Mapping):
        raise fail("(top)", "a profile is a mapping of fields")
    unknown = set(doc) - set(_DEFAULTS) - set(_REQUIRED)
    if unknown:
        raise fail(sorted(map(str, unknown))[0], "unknown field")
    for f in _REQUIRED:
        if f not in doc:
            raise fail(f, "required field missing")
    d = {**_DEFAULTS, **doc}

    def text(f: str) -> str:
        v = d[f]
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not v:
            raise fail(f, "must be a non-empty string")
        return v

    def hexdigits(f: str, n: int) -> str:
        v = text(f).upper()
        if len(v) != n or any(c not in "0123456789ABCDEF" for c in v):
            raise fail(f, f"must be {n} hex digits, got {d[f]!r}")
        return v

    def digits(f: str, n: int) -> str:
        v = text(f)
        if len(v) != n or not v.isdigit():
            raise fail(f, f"must be {n} decimal digits, got {d[f]!r}")
        return v

    def integer(f: str, lo: int, hi: int) -> int:
        v = d[f]
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            raise fail(f, f"must be an integer {lo}..{hi}, got {v!r}")
        return v

    def flag(f: str) -> bool:
        if not isinstance(d[f], bool):
            raise fail(f, f"must be true or false, got {d[f]!r}")
        return d[f]

    def byte(f: str) -> int:
        return int(hexdigits(f, 2), 16)

    prefix = text("card_no_prefix")
    if not prefix.isdigit() or not 1 <= len(prefix) <= 16:
        raise fail("card_no_prefix", f"must be 1..16 decimal digits, got {prefix!r}")
    pin = text("pin")
    if not pin.isdigit() or not 4 <= len(pin) <= 12 or len(pin) % 2:
        raise fail("pin", "must be an even number (4..12) of decimal digits (BCD)")
    keys_doc = d["keys"]
    if not isinstance(keys_doc, list) or not keys_doc:
        raise fail("keys", "must be a non-empty list of {algorithm, index}")
    slots: list[KeySlot] = []
    for i, k in enumerate(keys_doc):
        where = f"keys[{i}]"
        if not isinstance(k, Mapping) or set(k) != {"algorithm", "index"}:
            raise fail(where, "must be {algorithm: 3des|sm4, index: 1..255}")
        if k["algorithm"] not in ("3des", "sm4"):
            raise fail(f"{where}.algorithm", f"must be 3des or sm4, got {k['algorithm']!r}")
        if not isinstance(k["index"], int) or isinstance(k["index"], bool) or not 1 <= k["index"] <= 255:
            raise fail(f"{where}.index", f"must be an integer 1..255, got {k['index']!r}")
        slots.append(KeySlot(k["algorithm"], k["index"]))
    if len({s.index for s in slots}) != len(slots):
        raise fail("keys", "two key sets share one key index")
    if len({s.algorithm for s in slots}) != len(slots):
        raise fail("keys", "a card carries at most one key set per algorithm")
    records = d["capp_records"]
    if not isinstance(records, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in records):
        raise fail("capp_records", "must be a list of record IDs 1..18")
    for r in records:
        if r not in CAPP_RECORD_IDS:
            raise fail("capp_records", f"record ID {r} outside 1..18")
    if len(set(records)) != len(records):
        raise fail("capp_records", "a record ID is listed twice")
    try:
        ats = bytes.fromhex(text("ats_historical"))
    except ValueError:
        raise fail("ats_historical", "must be hex") from None
    if len(ats) > 15:
        raise fail("ats_historical", "at most 15 historical bytes fit an ATS")
    medium = text("medium")
    if medium not in MEDIA:
        raise fail("medium", f"must be one of {', '.join(MEDIA)}")
    max_balance = integer("max_balance", 0, 0x7FFFFFFF)
    overdraft = integer("overdraft_limit", 0, 0xFFFFFF)
    name = text("name")
    return CardProfile(
        name=name,
        description=str(d["description"]),
        org_code=hexdigits("org_code", 4),
        city=digits("city", 4),
        province=digits("province", 4),
        country=digits("country", 8),
        card_no_prefix=prefix,
        app_type=byte("app_type"),
        app_version=byte("app_version"),
        fci_app_version=byte("fci_app_version"),
        card_type=byte("card_type"),
        interoperable=flag("interoperable"),
        settlement_unit=hexdigits("settlement_unit", 8),
        fci_custom=hexdigits("fci_custom", 4),
        valid_years=integer("valid_years", 1, 50),
        max_balance=max_balance,
        overdraft_limit=overdraft,
        pin=pin,
        pin_required_for_load=flag("pin_required_for_load"),
        keys=tuple(slots),
        capp_records=tuple(records),
        ef18_records=integer("ef18_records", 1, 255),
        ef1e_records=integer("ef1e_records", 1, 255),
        ats_historical=ats,
        medium=medium,
        price=integer("price", 0, 10_000_000),
        source=source,
    )
