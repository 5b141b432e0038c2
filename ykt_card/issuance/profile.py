"""Card issuance profiles (YAML under specs/profiles/cards/): what a city issuer puts on a new card.

A profile fixes the issuer identity (org code, city, province), the card number prefix, application type and
version, card type and interoperability flag, dates, the purse limits, the PIN, which key sets (algorithms and
key indexes) the card carries, and which EF1A CAPP records exist. Every field is checked on load and a bad one
is refused in one line naming the file and the field.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable

from pydantic import BeforeValidator, field_validator, model_validator

from ykt_files.schema import Digits, Model, ProfileError, load_document, problem, validate

from ykt_card.layouts import record_size
from ykt_card.layouts.names import MOT_T_EP, extended_aid, is_extended_aid

__all__ = ["ProfileError", "KeySlot", "CardProfile", "CardProfileFile", "load_card_profile",
           "card_profile_from_dict", "CAPP_RECORD_IDS", "MEDIA"]

CAPP_RECORD_IDS = range(0x01, 0x13)
"""The EF1A record IDs a profile may create (the Cardlan record index, 01 metro .. 12)."""
MEDIA = ("physical", "virtual", "qr")


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
    aid: bytes = MOT_T_EP    # the EP's DF name: MOT_T_EP, or a virtual card's extended AID (mobile.md M1)
    source: str = "<memory>"

    @property
    def issuer_id(self) -> bytes:
        """EF15 bytes 0..7: org code ‖ city code ‖ FFFFFFFF."""
        return bytes.fromhex(self.org_code + self.city + "FFFFFFFF")

    def card_number(self, serial: int) -> str:
        """The 20-digit card number: prefix, then the serial zero-padded to fill 20 digits."""
        width = 20 - len(self.card_no_prefix)
        if not 0 <= serial < 10**width:
            raise ProfileError(self.source, "card_no_prefix", f"leaves {width} digits, serial {serial} does not fit")
        return self.card_no_prefix + str(serial).zfill(width)

    def expiry(self, start: _dt.date) -> _dt.date:
        try:
            return start.replace(year=start.year + self.valid_years)
        except ValueError:  # 29 February
            return start.replace(year=start.year + self.valid_years, day=28)

    @staticmethod
    def capp_record_size(record_id: int) -> int:
        """The size of EF1A record `record_id` (the EF1A layouts')."""
        return record_size(record_id)


# -- the file's schema -----------------------------------------------------------------------------------
# Field types keep the messages the profile loader has always given ("must be an integer 0..100, got -5").

def _text(value: Any) -> str:
    """YAML reads 5810 as a number; a profile means the digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value:
        raise problem("must be a non-empty string")
    return value


def _hex_digits(n: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).upper()
        if len(text) != n or any(c not in "0123456789ABCDEF" for c in text):
            raise problem(f"must be {n} hex digits, got {value!r}")
        return text
    return parse


def _integer(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            raise problem(f"must be an integer {lo}..{hi}, got {value!r}")
        return value
    return parse


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem(f"must be true or false, got {value!r}")
    return value


def HexText(n: int) -> Any:  # noqa: N802 - a type factory reads like a type
    return Annotated[str, BeforeValidator(_hex_digits(n))]


def HexByte() -> Any:  # noqa: N802
    return Annotated[int, BeforeValidator(lambda v: int(_hex_digits(2)(v), 16))]


def Integer(lo: int, hi: int) -> Any:  # noqa: N802
    return Annotated[int, BeforeValidator(_integer(lo, hi))]


Flag = Annotated[bool, BeforeValidator(_bool)]
Text = Annotated[str, BeforeValidator(_text)]


def _algorithm(value: Any) -> str:
    if value not in ("3des", "sm4"):
        raise problem(f"must be 3des or sm4, got {value!r}")
    return value


class KeySlotFile(Model):
    algorithm: Annotated[str, BeforeValidator(_algorithm)]
    index: Integer(1, 255)


def _pin(value: Any) -> str:
    text = _text(value)
    if not text.isdigit() or not 4 <= len(text) <= 12 or len(text) % 2:
        raise problem("must be an even number (4..12) of decimal digits (BCD)")
    return text


def _ats_historical(value: Any) -> bytes:
    try:
        data = bytes.fromhex(_text(value))
    except ValueError:
        raise problem("must be hex") from None
    if len(data) > 15:
        raise problem("at most 15 historical bytes fit an ATS")
    return data


def _aid(value: Any) -> bytes:
    try:
        aid = bytes.fromhex(_text(value))
    except ValueError:
        raise problem("must be hex") from None
    if not aid.startswith(MOT_T_EP) or len(aid) > 16:
        raise problem(f"must be {MOT_T_EP.hex().upper()} (the T-Union EP), optionally followed by a suffix "
                      f"of up to 8 bytes, got {aid.hex().upper()}")
    return aid


def _aid_suffix(value: Any) -> bytes:
    try:
        suffix = bytes.fromhex(_text(value))
    except ValueError:
        raise problem("must be hex") from None
    try:
        extended_aid(suffix)
    except ValueError as exc:
        raise problem(str(exc)) from None
    return suffix


def _medium(value: Any) -> str:
    if value not in MEDIA:
        raise problem(f"must be one of {', '.join(MEDIA)}")
    return value


_REQUIRED = ("name", "org_code", "city", "card_no_prefix")


class CardProfileFile(Model):
    """A card issuance profile as written (YAML); `build(source)` makes the `CardProfile`."""

    name: Text
    description: Annotated[str, BeforeValidator(str)] = ""
    org_code: HexText(4)
    city: Digits(4)
    province: Digits(4) = "5800"
    country: Digits(8) = "00000156"
    card_no_prefix: Digits(1, 16)
    app_type: HexByte() = 0x02
    app_version: HexByte() = 0x01
    fci_app_version: HexByte() = 0x02
    card_type: HexByte() = 0x01
    interoperable: Flag = True
    settlement_unit: HexText(8) = "00000000"
    fci_custom: HexText(4) = "0000"
    valid_years: Integer(1, 50) = 20
    max_balance: Integer(0, 0x7FFFFFFF) = 100000
    overdraft_limit: Integer(0, 0xFFFFFF) = 0
    pin: Annotated[str, BeforeValidator(_pin)] = "123456"
    pin_required_for_load: Flag = False
    keys: list[KeySlotFile] = [KeySlotFile(algorithm="3des", index=1), KeySlotFile(algorithm="sm4", index=2)]
    capp_records: list[int] = [0x01, 0x02]
    ef18_records: Integer(1, 255) = 10
    ef1e_records: Integer(1, 255) = 30
    ats_historical: Annotated[bytes, BeforeValidator(_ats_historical)] = bytes.fromhex("4D54009D0040869B19705D1401")
    medium: Annotated[str, BeforeValidator(_medium)] = "physical"
    price: Integer(0, 10_000_000) = 0
    aid: Annotated[bytes, BeforeValidator(_aid)] | None = None
    aid_suffix: Annotated[bytes, BeforeValidator(_aid_suffix)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _required(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _REQUIRED:
                if name not in data:
                    raise problem("required field missing", at=name)
        return data

    @field_validator("keys")
    @classmethod
    def _keys(cls, slots: list[KeySlotFile]) -> list[KeySlotFile]:
        if not slots:
            raise problem("must be a non-empty list of {algorithm, index}")
        if len({s.index for s in slots}) != len(slots):
            raise problem("two key sets share one key index")
        if len({s.algorithm for s in slots}) != len(slots):
            raise problem("a card carries at most one key set per algorithm")
        return slots

    @field_validator("capp_records")
    @classmethod
    def _records(cls, records: list[int]) -> list[int]:
        for r in records:
            if r not in CAPP_RECORD_IDS:
                raise problem(f"record ID {r} outside {CAPP_RECORD_IDS[0]}..{CAPP_RECORD_IDS[-1]}")
        if len(set(records)) != len(records):
            raise problem("a record ID is listed twice")
        return records

    @model_validator(mode="after")
    def _medium_matches_aid(self) -> "CardProfileFile":
        """M1/M4: a virtual card carries an extended AID (clearing tells the media apart by it), a physical
        card MOT_T_EP itself; `aid` and `aid_suffix` are two ways to write one AID."""
        if self.aid is not None and self.aid_suffix is not None:
            raise problem("give aid or aid_suffix, not both", at="aid_suffix")
        aid = self.effective_aid()
        if self.medium == "virtual" and not is_extended_aid(aid):
            raise problem("a virtual card needs an extended AID (aid or aid_suffix: MOT_T_EP ‖ suffix)", at="aid")
        if self.medium != "virtual" and is_extended_aid(aid):
            raise problem(f"an extended AID is for medium virtual, not {self.medium}", at="medium")
        return self

    def effective_aid(self) -> bytes:
        if self.aid_suffix is not None:
            return extended_aid(self.aid_suffix)
        return self.aid if self.aid is not None else MOT_T_EP

    def build(self, source: str) -> CardProfile:
        fields = {name: getattr(self, name) for name in type(self).model_fields if name != "aid_suffix"}
        fields.update(keys=tuple(KeySlot(k.algorithm, k.index) for k in self.keys),
                      capp_records=tuple(self.capp_records), aid=self.effective_aid())
        return CardProfile(**fields, source=source)


def load_card_profile(path: str | Path) -> CardProfile:
    """Read and check a card profile (YAML); a ProfileError names the file, the field and the reason."""
    return load_document(path, CardProfileFile, "yaml", "card profile", ProfileError).build(str(path))


def card_profile_from_dict(doc: object, source: str = "<memory>") -> CardProfile:
    return validate(CardProfileFile, doc, source, ProfileError).build(source)
