"""Terminal profiles: what a validator is (mode, flow, city, line, station, fares, lists, keys), from YAML.

A profile is the validator's configuration as the operator ships it. The file is read by one
declarative model of the schema layer (`TerminalProfileFile`, ``ykt_files.schema``) and then built into
the frozen `TerminalProfile`. The model is strict: an unknown key, a key the profile's flow does not use,
a value of the wrong type or a dangling reference is refused with one `ProfileError` line naming the file
and the field, e.g. ``bus-segment.yaml: fares.table[3].to: unknown station 'X'``. Fields are checked in
file order, and the rules that depend on the mode or the flow read those two first. Codes are quoted
strings in YAML (``city: "5810"``): unquoted, YAML turns ``0101`` into the number 65.

The terminal ID is not here: it is the PSAM's (EF16). Paths (lists, a key set file) are relative to the
profile file. The station can be changed at run time with :meth:`TerminalProfile.with_station`.

Field reference (``*`` = required):

* ``name``\\*, ``mode``\\* (bus, metro, ferry, taxi, load), ``flow``\\* (flat, flat-capp, segment,
  metro-entry, metro-exit, taxi, ferry, load; each belongs to one mode),
  ``city``\\* and ``province``\\* (4-digit area codes, D14), ``operator``\\* (4 hex), ``acceptor``
  (16 hex acceptor institution ID written into EF1A/EF1E; default ``operator ‖ city ‖ FFFFFFFF``),
  ``line`` (4 hex; required for bus, metro, ferry), ``station`` (metro and ferry: 4 hex, bus: 2 hex, as
  the card records hold them), ``vehicle`` (bus number, up to 8 ASCII characters), ``direction`` (AB
  or BA, default AB).
* ``key_index``\\* (1..255, or a list in order of preference, tried in turn when a card answers 9403;
  the reference card: 1 = 3DES, 2 = SM4, D16), ``transaction_type``\\* ("06",
  "09"; "02" for load), ``ef1e_layout`` (A or B, default A, D8), ``ef1a_record`` (1 metro, 2 bus;
  required by the metro flows and by segment, refused elsewhere: flat-capp writes EF1E only).
* ``stations``: mapping code → name, in line order (bus: the AB direction).
* ``fares``: ``flat`` (fen), ``table`` (list of ``{from, to, amount}``; symmetric; every pair of
  different stations), ``same_station`` (fen, default the smallest fare), ``max_fare`` (fen; metro:
  written at entry and charged on an exit without entry), ``stale_boarding`` (``gap_minutes``,
  ``charge_mark``).
* ``discounts``: ``card_types`` (EF17 card type "hex2" → percent of the fare paid, 0..100) and
  ``recognised_cities`` (area codes whose discounts this city recognises, 优惠互认).
* ``lists``\\*: ``blacklist``\\* (file) and ``whitelist`` (issuer white list file; absent = every
  interoperable card of any issuer).
* ``qr``: the MOT QR acceptance policy (account types, local issuers, white list, anti-pass-back;
  see ``ykt_qr.policy``) and ``qr.roots``, the root store the terminal trusts (a JSON file, Q6, or the
  name of a shipped TEST root store such as ``roots-test``; a terminal that scans codes needs it);
  absent = the terminal takes no QR code.
* ``recovery_window``: seconds a torn purchase can be recovered in (default 120, D12).
* ``load`` (flow load only)\\*: ``keyset``\\* (a file path, or the name of a shipped TEST key set),
  ``max_balance``\\* (fen), ``amounts`` (allowed amounts; absent = any amount up to the headroom).
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from pydantic import Field, ValidationInfo, field_validator, model_validator

from keysets import TEST_KEYSET_DIR, KeySet, KeySetError
from ykt_files.schema import Model, ProfileError, problem, read_text, validate
from ykt_qr import TEST_PKI_DIR, RootStore, RootStoreError
from ykt_qr.policy import AcceptancePolicy, QrPolicyFile

from .fares import Discounts, FareError, FarePolicy, FareTable, StaleRule
from .fields import expect, flag, got, hex_digits, integer, kind_of, one_of, printable, text, typed
from .lists import BlackList, IssuerWhiteList, ListError, load_blacklist, load_whitelist

__all__ = [
    "TerminalProfile", "TerminalProfileFile", "LoadSettings", "load_terminal_profile", "parse_terminal_profile",
    "MODES", "FLOWS", "INDUSTRY_CODES",
]

MODES = ("bus", "metro", "ferry", "taxi", "load")
FLOWS = {  # flow -> (mode, allowed transaction types, whether it writes its mode's EF1A record)
    "flat": ("bus", ("06",), None),
    "flat-capp": ("bus", ("09",), None),       # EF1E only (BJ Card_DebitChas_complex_jiaotong)
    "segment": ("bus", ("09",), "required"),
    "metro-entry": ("metro", ("09",), "required"),
    "metro-exit": ("metro", ("09",), "required"),
    "taxi": ("taxi", ("06", "09"), None),
    "ferry": ("ferry", ("06", "09"), None),
    "load": ("load", ("02",), None),
}
EF1A_RECORD_OF_MODE = {"metro": 1, "bus": 2}
INDUSTRY_CODES = {"metro": "01", "bus": "02", "ferry": "03", "taxi": "04", "load": "00"}
"""EF1E layout A industry byte. 01 metro and 02 bus are seen on cards (tunion.md 1.3); ferry 03 and
taxi 04 follow the EF1A record index (03 waterborne, 04 taxi) — a project choice."""

STATION_DIGITS = {"metro": 4, "ferry": 4, "bus": 2}
FARE_KEYS = ("flat", "table", "same_station", "max_fare", "stale_boarding")
FARE_KEYS_OF_FLOW = {
    "flat": {"flat"},
    "flat-capp": {"flat"},
    "segment": {"table", "same_station", "stale_boarding"},
    "metro-entry": {"max_fare"},
    "metro-exit": {"table", "same_station", "max_fare"},
    "taxi": set(),
    "ferry": {"flat"},
    "load": set(),
}
REQUIRED_FARES = {
    "flat": {"flat"}, "flat-capp": {"flat"}, "segment": {"table"}, "metro-entry": {"max_fare"},
    "metro-exit": {"table", "max_fare"}, "ferry": {"flat"},
}
STATIONS_REQUIRED = {"segment", "metro-entry", "metro-exit"}
STATIONS_ALLOWED = STATIONS_REQUIRED | {"flat", "flat-capp", "ferry"}
LINE_REQUIRED_MODES = {"bus", "metro", "ferry"}
DEFAULT_RECOVERY_WINDOW = 120
MAX_BALANCE_LIMIT = 0x7FFFFFFF
MAX_AMOUNT = 0xFFFFFFFF


@dataclass(frozen=True)
class LoadSettings:
    """A load (圈存) terminal's host side: the key set it holds and the amounts it lets through."""

    keyset: Path
    max_balance: int
    amounts: tuple[int, ...] | None = None

    def refusal(self, amount: int, balance: int) -> str | None:
        """Why this load is refused, or None: an amount not offered, or a balance over the maximum."""
        if amount <= 0:
            return f"amount {amount} must be positive"
        if self.amounts is not None and amount not in self.amounts:
            return f"amount {amount} is not one of {', '.join(map(str, self.amounts))}"
        if balance + amount > self.max_balance:
            return f"balance {balance} + {amount} would exceed the maximum {self.max_balance}"
        return None


@dataclass(frozen=True)
class TerminalProfile:
    """One validator's configuration (frozen; change the station with :meth:`with_station`)."""

    name: str
    mode: str
    flow: str
    city: str
    province: str
    operator: str
    acceptor: str
    line: str | None
    station: str | None
    vehicle: str | None
    direction: str
    key_index: int
    transaction_type: str
    ef1e_layout: str
    ef1a_record: int | None
    stations: Mapping[str, str]
    fares: FarePolicy
    discounts: Discounts
    blacklist: Path
    whitelist: Path | None
    recovery_window: int
    load: LoadSettings | None
    source: str = "<memory>"
    key_index_fallbacks: tuple[int, ...] = ()   # tried in order when the card answers 9403 (D16 migration)
    qr: AcceptancePolicy | None = None          # the MOT QR codes it takes (ykt_qr.policy); None: no QR reader
    qr_roots: Path | None = None                # the root store its QR checks trust (qr.roots)

    def __hash__(self) -> int:
        return hash((self.name, self.source, self.station, self.direction))

    @property
    def industry(self) -> str:
        """The EF1E layout A industry byte of this mode (hex)."""
        return INDUSTRY_CODES[self.mode]

    @property
    def local_city(self) -> str:
        """Cards of this city are local: accepted even when not interoperable."""
        return self.city

    @property
    def writes_capp(self) -> bool:
        """Whether the flow writes EF1A/EF1E records (a composite purchase, type 09)."""
        return self.transaction_type == "09"

    def with_station(self, station: str, direction: str | None = None) -> "TerminalProfile":
        """The same profile at another station (a bus moving along its line), checked like the file."""
        try:
            code = _station_code(station, self.mode)
        except ValueError as exc:
            raise ProfileError(self.source, "station", str(exc)) from None
        if self.stations and code not in self.stations:
            raise ProfileError(self.source, "station", f"unknown station {code!r}")
        new_direction = self.direction if direction is None else direction
        if new_direction not in ("AB", "BA"):
            raise ProfileError(self.source, "direction", f"expected 'AB' or 'BA', got {new_direction!r}")
        return dataclasses.replace(self, station=code, direction=new_direction)

    def load_lists(self) -> tuple[BlackList, IssuerWhiteList | None]:
        """Read the lists now (they change while the profile does not)."""
        black = load_blacklist(self.blacklist)
        white = load_whitelist(self.whitelist) if self.whitelist is not None else None
        return black, white


# ---------------------------------------------------------------------------------------------------
# Field types (terminal_sim.fields): each refuses with the reason an operator editing the YAML needs

def _name(value: Any) -> str:
    if not text(value).strip():
        raise problem("empty")
    return value.strip()


def _area_code(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"expected a quoted 4-digit area code like \"5810\", got {got(value)}")
    if not re.fullmatch(r"\d{4}", value):
        raise problem(f"expected a 4-digit area code, got {value!r}")
    return value


def _station_code(value: Any, mode: str) -> str:
    """A station code as the card records of this mode hold it (metro and ferry 4 hex, bus 2 hex)."""
    digits = STATION_DIGITS.get(mode)
    if digits is None:
        raise problem(f"a {mode} terminal has no stations")
    return hex_digits(digits)(value)


def _station_ref(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"expected a quoted station code, got {got(value)}")
    return value


Name = typed(str, _name)
Text = typed(str, text)
AreaCode = typed(str, _area_code)
Hex4 = typed(str, hex_digits(4))
Hex16 = typed(str, hex_digits(16))
Amount = typed(int, integer(0, MAX_AMOUNT))
StationRef = typed(str, _station_ref)
a_mapping = expect(dict, "a mapping")


def _table(model: type[Model]) -> Any:
    """A nested table of fields, refused as 'expected a mapping' when it is something else."""
    return typed(model, a_mapping)


# ---------------------------------------------------------------------------------------------------
# The file's schema

class StaleBoardingFile(Model):
    """``fares.stale_boarding``: when a bus boarding no longer counts, and whether its mark is charged."""

    gap_minutes: typed(int, integer(1, 24 * 60))
    charge_mark: typed(bool, flag)


class FareRowFile(Model):
    """One ``fares.table`` entry: a pair of stations (either order) and its fare."""

    from_: StationRef = Field(alias="from")
    to: StationRef
    amount: Amount


class FaresFile(Model):
    """``fares``: which parts a flow uses is checked by the profile (FARE_KEYS_OF_FLOW)."""

    flat: Amount | None = None
    table: typed(list[_table(FareRowFile)], expect(list, "a list of {from, to, amount}", non_empty=True)) | None = None
    same_station: Amount | None = None
    max_fare: Amount | None = None
    stale_boarding: _table(StaleBoardingFile) | None = None


def _card_types(value: Any) -> dict[str, Any]:
    """EF17 card type codes (2 hex, case-insensitive) → percent paid: keys checked where they stand."""
    if not isinstance(value, dict):
        raise problem(f"expected a mapping of card type to percent, got {kind_of(value)}")
    out: dict[str, Any] = {}
    for key, percent in value.items():
        try:
            code = hex_digits(2)(key)
        except ValueError as exc:
            raise problem(str(exc), at=str(key)) from None
        if code in out:
            raise problem("listed twice", at=str(key))
        out[code] = percent
    return out


class DiscountsFile(Model):
    """``discounts``: percent paid by card type, and the cities whose discounts are recognised."""

    card_types: typed(dict[str, typed(int, integer(0, 100))], _card_types) = {}
    recognised_cities: typed(list[AreaCode], expect(list, "a list of area codes")) = []

    @model_validator(mode="after")
    def _each_city_once(self) -> "DiscountsFile":
        for i, city in enumerate(self.recognised_cities):
            if city in self.recognised_cities[:i]:
                raise problem(f"city {city} listed twice", at=f"recognised_cities[{i}]")
        return self


def _base(info: ValidationInfo) -> Path:
    return Path((info.context or {}).get("base") or Path.cwd())


def _file(value: Any, info: ValidationInfo) -> Path:
    """A file path relative to the profile's folder (validation context `base`) that exists."""
    if not isinstance(value, str) or not value:
        raise problem(f"expected a file path, got {got(value)}")
    path = Path(value) if Path(value).is_absolute() else _base(info) / value
    if not path.is_file():
        raise problem(f"no such file {value!r}")
    return path.resolve()


def _list_file(loader: Callable[[Path], object]) -> Callable[[Any, ValidationInfo], Path]:
    def check(value: Any, info: ValidationInfo) -> Path:
        path = _file(value, info)
        try:
            loader(path)
        except ListError as exc:
            raise problem(str(exc)) from None
        return path
    return check


class ListsFile(Model):
    """``lists``: the black list every terminal checks, and the optional issuer white list."""

    blacklist: typed(Path, _list_file(load_blacklist)) | None = Field(None, validate_default=True)
    whitelist: typed(Path, _list_file(load_whitelist)) | None = None

    @field_validator("blacklist")
    @classmethod
    def _required(cls, value: Path | None) -> Path:
        if value is None:
            raise problem("missing (every terminal checks a black list)")
        return value


def _keyset_file(value: Any, info: ValidationInfo) -> Path:
    """A key set file relative to the profile, or the name of a shipped TEST key set; it must load."""
    if not isinstance(value, str) or not value:
        raise problem(f"expected a key set file or name, got {got(value)}")
    if "/" in value or value.endswith(".toml"):
        path = _file(value, info)
    else:
        path = TEST_KEYSET_DIR / f"{value}.toml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in TEST_KEYSET_DIR.glob("*.toml")))
            raise problem(f"no shipped key set named {value!r} (known: {known})")
    try:
        KeySet.load(path)
    except KeySetError as exc:
        raise problem(str(exc)) from None
    return path


class LoadFile(Model):
    """``load``: the host's key set, the maximum balance, and the amounts offered."""

    keyset: typed(Path, _keyset_file)
    max_balance: typed(int, integer(1, MAX_BALANCE_LIMIT))
    amounts: typed(list[Amount], expect(list, "a list of amounts in fen", non_empty=True)) | None = None

    @model_validator(mode="after")
    def _amounts_fit(self) -> "LoadFile":
        for i, amount in enumerate(self.amounts or ()):
            if not 1 <= amount <= self.max_balance:
                raise problem(f"{amount} out of range 1..{self.max_balance}", at=f"amounts[{i}]")
            if amount in self.amounts[:i]:  # type: ignore[index]
                raise problem(f"{amount} listed twice", at=f"amounts[{i}]")
        return self


def _roots_file(value: Any, info: ValidationInfo) -> Path:
    """A QR root store relative to the profile, or the name of a shipped TEST root store; it must load."""
    if not isinstance(value, str) or not value:
        raise problem(f"expected a root store file or name, got {got(value)}")
    if "/" in value or value.endswith(".json"):
        path = _file(value, info)
    else:
        path = TEST_PKI_DIR / f"{value}.json"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in TEST_PKI_DIR.glob("*.json")))
            raise problem(f"no shipped root store named {value!r} (known: {known})")
    try:
        RootStore.load(path)
    except RootStoreError as exc:
        raise problem(str(exc)) from None
    return path


class TerminalQrFile(QrPolicyFile):
    """``qr``: the acceptance policy of ykt_qr.policy, and the root store this terminal trusts."""

    roots: typed(Path, _roots_file) | None = None


def _key_indexes(value: Any) -> list[Any]:
    """One key index, or a list in order of preference (the next is tried when the card answers 9403)."""
    if isinstance(value, list):
        if not value:
            raise problem("an empty list names no key index")
        return value
    return [integer(1, 255)(value)]


class TerminalProfileFile(Model):
    """A terminal profile file as written (fields in check order); `build` makes the `TerminalProfile`."""

    name: Name
    mode: typed(str, one_of(*MODES))
    flow: typed(str, one_of(*FLOWS))
    city: AreaCode
    province: AreaCode
    operator: Hex4
    acceptor: Hex16 | None = None
    line: Hex4 | None = Field(None, validate_default=True)
    vehicle: typed(str, printable(8)) | None = None
    direction: str | None = None
    key_index: typed(list[typed(int, integer(1, 255))], _key_indexes)
    transaction_type: Text
    ef1e_layout: typed(str, one_of("A", "B", quoted=True)) = "A"
    ef1a_record: typed(int, integer(1, 2)) | None = Field(None, validate_default=True)
    stations: dict[str, str] | None = Field(None, validate_default=True)
    station: str | None = Field(None, validate_default=True)
    fares: FaresFile | None = Field(None, validate_default=True)
    discounts: _table(DiscountsFile) = DiscountsFile()
    lists: _table(ListsFile)
    recovery_window: typed(int, integer(1, 86400)) = DEFAULT_RECOVERY_WINDOW
    load: LoadFile | None = Field(None, validate_default=True)
    qr: TerminalQrFile | None = None

    # -- rules that read the mode and the flow (validated before them, in file order) --------------
    @field_validator("flow")
    @classmethod
    def _flow_of_mode(cls, flow: str, info: ValidationInfo) -> str:
        mode = info.data.get("mode")
        if mode is not None and FLOWS[flow][0] != mode:
            raise problem(f"flow {flow!r} is a {FLOWS[flow][0]} flow, but mode is {mode!r}")
        return flow

    @field_validator("line")
    @classmethod
    def _line(cls, line: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if line is None and mode in LINE_REQUIRED_MODES:
            raise problem(f"missing (a {mode} terminal belongs to a line)")
        return line

    @field_validator("vehicle")
    @classmethod
    def _vehicle_of_a_bus(cls, vehicle: str | None, info: ValidationInfo) -> str | None:
        mode = info.data.get("mode")
        if vehicle is not None and mode is not None and mode != "bus":
            raise problem(f"only a bus has a vehicle number, this is a {mode} terminal")
        return vehicle

    @field_validator("direction", mode="before")
    @classmethod
    def _direction(cls, direction: Any, info: ValidationInfo) -> str | None:
        flow = info.data.get("flow")
        if direction is None:
            return None
        if flow is not None and flow != "segment":
            raise problem(f"only a segmented-fare bus has a direction, this flow is {flow!r}")
        return one_of("AB", "BA", quoted=True)(direction)

    @field_validator("key_index")
    @classmethod
    def _each_index_once(cls, indexes: list[int]) -> list[int]:
        if len(set(indexes)) != len(indexes):
            raise problem(f"a key index is listed twice in {indexes}")
        return indexes

    @field_validator("transaction_type")
    @classmethod
    def _type_of_flow(cls, tx_type: str, info: ValidationInfo) -> str:
        flow = info.data.get("flow")
        if flow is not None and tx_type not in FLOWS[flow][1]:
            raise problem(f"flow {flow!r} uses {' or '.join(repr(t) for t in FLOWS[flow][1])}, got {tx_type!r}")
        return tx_type

    @field_validator("ef1a_record")
    @classmethod
    def _ef1a_of_flow(cls, record: int | None, info: ValidationInfo) -> int | None:
        flow, mode = info.data.get("flow"), info.data.get("mode")
        if flow is None or mode is None:
            return record
        rule = FLOWS[flow][2]
        if record is None:
            if rule == "required":
                raise problem(f"missing (flow {flow!r} writes record {EF1A_RECORD_OF_MODE[mode]})")
            return None
        if rule is None:
            raise problem(f"flow {flow!r} writes no EF1A record")
        if record != EF1A_RECORD_OF_MODE[mode]:
            raise problem(f"a {mode} terminal writes record {EF1A_RECORD_OF_MODE[mode]}, got {record}")
        return record

    @field_validator("stations", mode="before")
    @classmethod
    def _stations(cls, raw: Any, info: ValidationInfo) -> dict[str, str]:
        flow, mode = info.data.get("flow"), info.data.get("mode")
        if flow is None or mode is None:
            return {}
        if raw is None:
            if flow in STATIONS_REQUIRED:
                raise problem(f"missing (flow {flow!r} needs the list of stations)")
            return {}
        if flow not in STATIONS_ALLOWED:
            raise problem(f"flow {flow!r} has no stations")
        if not isinstance(raw, dict) or not raw:
            raise problem(f"expected a mapping of station code to name, got {kind_of(raw)}")
        stations: dict[str, str] = {}
        for code, label in raw.items():
            try:
                normal = _station_code(code, mode)
                if normal in stations:
                    raise ValueError("listed twice (codes are case-insensitive hex)")
                stations[normal] = text(label)
            except ValueError as exc:
                raise problem(str(exc), at=str(code)) from None
        return stations

    @field_validator("station", mode="before")
    @classmethod
    def _station(cls, raw: Any, info: ValidationInfo) -> str | None:
        flow, mode = info.data.get("flow"), info.data.get("mode")
        if flow is None or mode is None:
            return None
        if raw is None:
            if flow in STATIONS_REQUIRED:
                raise problem(f"missing (flow {flow!r} needs the terminal's station)")
            return None
        if mode not in STATION_DIGITS:
            raise problem(f"a {mode} terminal has no station")
        code = _station_code(raw, mode)
        stations = info.data.get("stations") or {}
        if stations and code not in stations:
            raise problem(f"unknown station {code!r}")
        return code

    @field_validator("fares", mode="before")
    @classmethod
    def _fares_of_flow(cls, raw: Any, info: ValidationInfo) -> Any:
        flow = info.data.get("flow")
        if flow is None:
            return raw
        required = REQUIRED_FARES.get(flow, set())
        if raw is None:
            if required:
                raise problem(f"missing (flow {flow!r} needs fares.{sorted(required)[0]})")
            return None
        if not isinstance(raw, dict):
            raise problem(f"expected a mapping, got {kind_of(raw)}")
        for key in raw:
            if key in FARE_KEYS and key not in FARE_KEYS_OF_FLOW[flow]:
                raise problem(f"not used by flow {flow!r}", at=str(key))
        for key in sorted(required):
            if key not in raw:
                raise problem(f"missing (flow {flow!r} needs it)", at=key)
        return raw

    @field_validator("fares")
    @classmethod
    def _fare_table(cls, fares: FaresFile | None, info: ValidationInfo) -> FaresFile | None:
        if fares is not None and "stations" in info.data:
            _fare_policy(fares, info.data["stations"] or {})
        return fares

    @field_validator("load", mode="before")
    @classmethod
    def _load_of_flow(cls, raw: Any, info: ValidationInfo) -> Any:
        flow = info.data.get("flow")
        if flow is None:
            return raw
        if flow != "load":
            if raw is not None:
                raise problem(f"only a load terminal has load settings, this flow is {flow!r}")
            return None
        if raw is None:
            raise problem("missing (a load terminal needs its host settings)")
        return a_mapping(raw)

    @model_validator(mode="after")
    def _load_key_index(self) -> "TerminalProfileFile":
        if self.load is not None:
            entry = KeySet.load(self.load.keyset).entry("load")
            if entry.index != self.key_index[0]:
                raise problem(f"{self.key_index[0]} is not the index {entry.index} of the load key of key set "
                              f"{self.load.keyset.name}", at="key_index")
        return self

    # -- the domain object ------------------------------------------------------------------------
    def build(self, source: str) -> TerminalProfile:
        """The frozen profile the validator runs on (defaults filled in, fares priced into a FarePolicy)."""
        load = None
        if self.load is not None:
            amounts = tuple(self.load.amounts) if self.load.amounts is not None else None
            load = LoadSettings(keyset=self.load.keyset, max_balance=self.load.max_balance, amounts=amounts)
        return TerminalProfile(
            name=self.name, mode=self.mode, flow=self.flow, city=self.city, province=self.province,
            operator=self.operator, acceptor=self.acceptor or f"{self.operator}{self.city}FFFFFFFF",
            line=self.line, station=self.station, vehicle=self.vehicle, direction=self.direction or "AB",
            key_index=self.key_index[0], key_index_fallbacks=tuple(self.key_index[1:]),
            transaction_type=self.transaction_type, ef1e_layout=self.ef1e_layout, ef1a_record=self.ef1a_record,
            stations=MappingProxyType(dict(self.stations or {})),
            fares=_fare_policy(self.fares, self.stations or {}) if self.fares is not None else FarePolicy(),
            discounts=Discounts(MappingProxyType(dict(self.discounts.card_types)),
                                frozenset(self.discounts.recognised_cities)),
            blacklist=self.lists.blacklist, whitelist=self.lists.whitelist,  # type: ignore[arg-type]
            recovery_window=self.recovery_window, load=load,
            qr=self.qr.build() if self.qr is not None else None,
            qr_roots=self.qr.roots if self.qr is not None else None, source=source)


def _fare_policy(fares: FaresFile, stations: Mapping[str, str]) -> FarePolicy:
    """The fare table's stations must be the profile's; the table complete; max_fare above it."""
    table = None
    if fares.table is not None:
        rows = []
        for i, row in enumerate(fares.table):
            codes = []
            for key, value in (("from", row.from_), ("to", row.to)):
                if value.upper() not in stations:
                    raise problem(f"unknown station {value!r}", at=f"table[{i}].{key}")
                codes.append(value.upper())
            rows.append((codes[0], codes[1], row.amount))
        try:
            table = FareTable.build(stations, rows, fares.same_station)
        except FareError as exc:
            where, _, reason = str(exc).partition(": ")
            raise problem(reason, at=where) from None
    if fares.max_fare is not None and table is not None and fares.max_fare < table.highest:
        raise problem(f"{fares.max_fare} is below the table's highest fare {table.highest}", at="max_fare")
    stale = None
    if fares.stale_boarding is not None:
        stale = StaleRule(fares.stale_boarding.gap_minutes, fares.stale_boarding.charge_mark)
    return FarePolicy(flat=fares.flat, table=table, max_fare=fares.max_fare, stale=stale)


# ---------------------------------------------------------------------------------------------------
# YAML without surprises: duplicate keys are an error instead of "last one wins".

class _StrictLoader(yaml.SafeLoader):
    pass


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


# ---------------------------------------------------------------------------------------------------

def load_terminal_profile(path: str | Path) -> TerminalProfile:
    """Read and check a terminal profile file; every refusal is one ProfileError line."""
    p = Path(path)
    content = read_text(p, "profile", ProfileError)
    return parse_terminal_profile(content, source=p.name, base=p.resolve().parent)


def parse_terminal_profile(text: str, source: str = "<memory>", base: Path | None = None) -> TerminalProfile:
    """Check a profile's YAML text; relative paths are resolved against ``base`` (default: cwd)."""
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem_text = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(source, None, f"{where}: not valid YAML: {problem_text}") from None
    if not isinstance(doc, dict):
        raise ProfileError(source, None, f"expected a mapping of profile fields, got {kind_of(doc)}")
    checked = validate(TerminalProfileFile, doc, source, ProfileError, {"base": base or Path.cwd()})
    return checked.build(source)
