"""Terminal profiles: what a validator is (mode, flow, city, line, station, fares, lists, keys), from YAML.

A profile is the validator's configuration as the operator ships it. The loader is strict: an unknown
key, a key the profile's flow does not use, a value of the wrong type or a dangling reference is
refused with one line naming the file and the field, e.g.
``bus-segment.yaml: fares.table[3].to: unknown station 'X'``. Codes are quoted strings in YAML
(``city: "5810"``): unquoted, YAML turns ``0101`` into the number 65.

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
  see ``ykt_qr.policy``); absent = the terminal takes no QR code.
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
from typing import Any, NoReturn

import yaml

from keysets import TEST_KEYSET_DIR, KeySet, KeySetError
from ykt_files.schema import DocumentError
from ykt_qr.policy import AcceptancePolicy, parse_policy

from .fares import Discounts, FareError, FarePolicy, FareTable, StaleRule
from .lists import BlackList, IssuerWhiteList, ListError, load_blacklist, load_whitelist

__all__ = [
    "ProfileError", "TerminalProfile", "LoadSettings", "load_terminal_profile", "parse_terminal_profile",
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
TOP_KEYS = {
    "name", "mode", "flow", "city", "province", "operator", "acceptor", "line", "station", "vehicle",
    "direction", "key_index", "transaction_type", "ef1e_layout", "ef1a_record", "stations", "fares",
    "discounts", "lists", "recovery_window", "load", "qr",
}
DEFAULT_RECOVERY_WINDOW = 120
MAX_BALANCE_LIMIT = 0x7FFFFFFF


class ProfileError(ValueError):
    """A terminal profile refused: ``file: field: reason`` in one line."""


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
        fail = _failer(self.source)
        code = _station_code(station, self.mode, "station", fail)
        if self.stations and code not in self.stations:
            fail("station", f"unknown station {code!r}")
        new_direction = self.direction if direction is None else direction
        if new_direction not in ("AB", "BA"):
            fail("direction", f"expected 'AB' or 'BA', got {new_direction!r}")
        return dataclasses.replace(self, station=code, direction=new_direction)

    def load_lists(self) -> tuple[BlackList, IssuerWhiteList | None]:
        """Read the lists now (they change while the profile does not)."""
        black = load_blacklist(self.blacklist)
        white = load_whitelist(self.whitelist) if self.whitelist is not None else None
        return black, white


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


def _failer(source: str) -> Callable[[str, str], NoReturn]:
    def fail(field: str, reason: str) -> NoReturn:
        raise ProfileError(f"{source}: {field}: {reason}")
    return fail


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def _text(value: Any, field: str, fail) -> str:
    if not isinstance(value, str):
        fail(field, f"expected a quoted string, got {_kind(value)} {value!r}")
    return value


def _digits4(value: Any, field: str, fail) -> str:
    if not isinstance(value, str):
        fail(field, f"expected a quoted 4-digit area code like \"5810\", got {_kind(value)} {value!r}")
    if not re.fullmatch(r"\d{4}", value):
        fail(field, f"expected a 4-digit area code, got {value!r}")
    return value


def _hex(value: Any, digits: int, field: str, fail) -> str:
    if not isinstance(value, str):
        fail(field, f"expected a quoted string of {digits} hex digits, got {_kind(value)} {value!r}")
    if not re.fullmatch(rf"[0-9A-Fa-f]{{{digits}}}", value):
        fail(field, f"expected {digits} hex digits, got {value!r}")
    return value.upper()


def _int(value: Any, field: str, fail, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field, f"expected an integer, got {_kind(value)} {value!r}")
    if not low <= value <= high:
        fail(field, f"{value} out of range {low}..{high}")
    return value


def _mapping(value: Any, field: str, fail, allowed: set[str]) -> dict:
    if not isinstance(value, dict):
        fail(field, f"expected a mapping, got {_kind(value)}")
    for key in value:
        if not isinstance(key, str):
            fail(field, f"keys must be strings, got {_kind(key)} {key!r}")
        if key not in allowed:
            fail(f"{field}.{key}" if field else key, "unknown key")
    return value


def _station_code(value: Any, mode: str, field: str, fail) -> str:
    digits = STATION_DIGITS.get(mode)
    if digits is None:
        fail(field, f"a {mode} terminal has no stations")
    return _hex(value, digits, field, fail)


def _path(value: Any, field: str, fail, base: Path) -> Path:
    if not isinstance(value, str) or not value:
        fail(field, f"expected a file path, got {_kind(value)} {value!r}")
    path = (base / value) if not Path(value).is_absolute() else Path(value)
    if not path.is_file():
        fail(field, f"no such file {value!r}")
    return path.resolve()


# ---------------------------------------------------------------------------------------------------

def load_terminal_profile(path: str | Path) -> TerminalProfile:
    """Read and check a terminal profile file; every refusal is one ProfileError line."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{p}: no such profile file") from None
    except UnicodeDecodeError:
        raise ProfileError(f"{p.name}: not UTF-8 text") from None
    except OSError as exc:
        raise ProfileError(f"{p}: cannot read: {exc.strerror}") from None
    return parse_terminal_profile(text, source=p.name, base=p.resolve().parent)


def parse_terminal_profile(text: str, source: str = "<memory>", base: Path | None = None) -> TerminalProfile:
    """Check a profile's YAML text; relative paths are resolved against ``base`` (default: cwd)."""
    fail = _failer(source)
    try:
        doc = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "document"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ProfileError(f"{source}: {where}: not valid YAML: {problem}") from None
    if not isinstance(doc, dict):
        raise ProfileError(f"{source}: expected a mapping of profile fields, got {_kind(doc)}")
    return _build(doc, fail, base or Path.cwd(), source)


def _build(doc: dict, fail, base: Path, source: str) -> TerminalProfile:
    _mapping(doc, "", fail, TOP_KEYS)
    for key in ("name", "mode", "flow", "city", "province", "operator", "key_index", "transaction_type",
                "lists"):
        if key not in doc:
            fail(key, "missing")

    name = _text(doc["name"], "name", fail)
    if not name.strip():
        fail("name", "empty")
    mode = _text(doc["mode"], "mode", fail)
    if mode not in MODES:
        fail("mode", f"expected one of {', '.join(MODES)}, got {mode!r}")
    flow = _text(doc["flow"], "flow", fail)
    if flow not in FLOWS:
        fail("flow", f"expected one of {', '.join(FLOWS)}, got {flow!r}")
    flow_mode, types, ef1a_rule = FLOWS[flow]
    if flow_mode != mode:
        fail("flow", f"flow {flow!r} is a {flow_mode} flow, but mode is {mode!r}")

    city = _digits4(doc["city"], "city", fail)
    province = _digits4(doc["province"], "province", fail)
    operator = _hex(doc["operator"], 4, "operator", fail)
    acceptor = (_hex(doc["acceptor"], 16, "acceptor", fail) if "acceptor" in doc
                else f"{operator}{city}FFFFFFFF")

    line = None
    if "line" in doc:
        line = _hex(doc["line"], 4, "line", fail)
    elif mode in LINE_REQUIRED_MODES:
        fail("line", f"missing (a {mode} terminal belongs to a line)")

    vehicle = None
    if "vehicle" in doc:
        if mode != "bus":
            fail("vehicle", f"only a bus has a vehicle number, this is a {mode} terminal")
        vehicle = _text(doc["vehicle"], "vehicle", fail)
        if not re.fullmatch(r"[\x21-\x7E]{1,8}", vehicle):
            fail("vehicle", f"expected 1 to 8 printable ASCII characters, got {vehicle!r}")

    direction = "AB"
    if "direction" in doc:
        if flow != "segment":
            fail("direction", f"only a segmented-fare bus has a direction, this flow is {flow!r}")
        direction = _text(doc["direction"], "direction", fail)
        if direction not in ("AB", "BA"):
            fail("direction", f"expected 'AB' or 'BA', got {direction!r}")

    raw_index = doc["key_index"]
    if isinstance(raw_index, list):  # a preference order: the next is tried when the card answers 9403
        if not raw_index:
            fail("key_index", "an empty list names no key index")
        indexes = [_int(v, f"key_index[{i}]", fail, 1, 255) for i, v in enumerate(raw_index)]
        if len(set(indexes)) != len(indexes):
            fail("key_index", f"a key index is listed twice in {indexes}")
    else:
        indexes = [_int(raw_index, "key_index", fail, 1, 255)]
    key_index, key_index_fallbacks = indexes[0], tuple(indexes[1:])
    transaction_type = _text(doc["transaction_type"], "transaction_type", fail)
    if transaction_type not in types:
        fail("transaction_type", f"flow {flow!r} uses {' or '.join(repr(t) for t in types)}, "
                                 f"got {transaction_type!r}")
    ef1e_layout = "A"
    if "ef1e_layout" in doc:
        ef1e_layout = _text(doc["ef1e_layout"], "ef1e_layout", fail)
        if ef1e_layout not in ("A", "B"):
            fail("ef1e_layout", f"expected 'A' or 'B', got {ef1e_layout!r}")

    ef1a_record = None
    if "ef1a_record" in doc:
        if ef1a_rule is None:
            fail("ef1a_record", f"flow {flow!r} writes no EF1A record")
        ef1a_record = _int(doc["ef1a_record"], "ef1a_record", fail, 1, 2)
        if ef1a_record != EF1A_RECORD_OF_MODE[mode]:
            fail("ef1a_record", f"a {mode} terminal writes record {EF1A_RECORD_OF_MODE[mode]}, "
                                f"got {ef1a_record}")
    elif ef1a_rule == "required":
        fail("ef1a_record", f"missing (flow {flow!r} writes record {EF1A_RECORD_OF_MODE[mode]})")

    stations = _stations(doc, flow, mode, fail)
    station = None
    if "station" in doc:
        if mode not in STATION_DIGITS:
            fail("station", f"a {mode} terminal has no station")
        station = _station_code(doc["station"], mode, "station", fail)
        if stations and station not in stations:
            fail("station", f"unknown station {station!r}")
    elif flow in STATIONS_REQUIRED:
        fail("station", f"missing (flow {flow!r} needs the terminal's station)")

    fares = _fares(doc.get("fares"), flow, stations, fail, source)
    discounts = _discounts(doc.get("discounts"), fail)
    blacklist, whitelist = _lists(doc["lists"], fail, base)

    recovery_window = DEFAULT_RECOVERY_WINDOW
    if "recovery_window" in doc:
        recovery_window = _int(doc["recovery_window"], "recovery_window", fail, 1, 86400)

    load = None
    if flow == "load":
        if "load" not in doc:
            fail("load", "missing (a load terminal needs its host settings)")
        load = _load(doc["load"], fail, base, key_index)
    elif "load" in doc:
        fail("load", f"only a load terminal has load settings, this flow is {flow!r}")

    qr = None
    if "qr" in doc:
        try:
            qr = parse_policy(doc["qr"], source)
        except DocumentError as exc:
            fail(exc.field or "qr", exc.reason)

    return TerminalProfile(
        name=name.strip(), mode=mode, flow=flow, city=city, province=province, operator=operator,
        acceptor=acceptor, line=line, station=station, vehicle=vehicle, direction=direction,
        key_index=key_index, key_index_fallbacks=key_index_fallbacks, transaction_type=transaction_type, ef1e_layout=ef1e_layout,
        ef1a_record=ef1a_record, stations=MappingProxyType(stations), fares=fares, discounts=discounts,
        blacklist=blacklist, whitelist=whitelist, recovery_window=recovery_window, load=load, qr=qr,
        source=source)


def _stations(doc: dict, flow: str, mode: str, fail) -> dict[str, str]:
    if "stations" not in doc:
        if flow in STATIONS_REQUIRED:
            fail("stations", f"missing (flow {flow!r} needs the list of stations)")
        return {}
    if flow not in STATIONS_ALLOWED:
        fail("stations", f"flow {flow!r} has no stations")
    raw = doc["stations"]
    if not isinstance(raw, dict) or not raw:
        fail("stations", f"expected a mapping of station code to name, got {_kind(raw)}")
    stations: dict[str, str] = {}
    for code, label in raw.items():
        where = f"stations.{code}"
        normal = _station_code(code, mode, where, fail)
        if normal in stations:
            fail(where, "listed twice (codes are case-insensitive hex)")
        stations[normal] = _text(label, where, fail)
    return stations


def _fares(raw: Any, flow: str, stations: dict[str, str], fail, source: str) -> FarePolicy:
    allowed = FARE_KEYS_OF_FLOW[flow]
    required = REQUIRED_FARES.get(flow, set())
    if raw is None:
        if required:
            fail("fares", f"missing (flow {flow!r} needs fares.{sorted(required)[0]})")
        return FarePolicy()
    if not isinstance(raw, dict):
        fail("fares", f"expected a mapping, got {_kind(raw)}")
    for key in raw:
        if key not in {"flat", "table", "same_station", "max_fare", "stale_boarding"}:
            fail(f"fares.{key}", "unknown key")
        if key not in allowed:
            fail(f"fares.{key}", f"not used by flow {flow!r}")
    for key in sorted(required):
        if key not in raw:
            fail(f"fares.{key}", f"missing (flow {flow!r} needs it)")

    amount = lambda key: _int(raw[key], f"fares.{key}", fail, 0, 0xFFFFFFFF)  # noqa: E731
    flat = amount("flat") if "flat" in raw else None
    max_fare = amount("max_fare") if "max_fare" in raw else None
    table = None
    if "table" in raw:
        entries = raw["table"]
        if not isinstance(entries, list) or not entries:
            fail("fares.table", f"expected a list of {{from, to, amount}}, got {_kind(entries)}")
        rows = []
        for i, entry in enumerate(entries):
            where = f"fares.table[{i}]"
            _mapping(entry, where, fail, {"from", "to", "amount"})
            for key in ("from", "to", "amount"):
                if key not in entry:
                    fail(f"{where}.{key}", "missing")
            codes = []
            for key in ("from", "to"):
                value = entry[key]
                if not isinstance(value, str):
                    fail(f"{where}.{key}", f"expected a quoted station code, got {_kind(value)} {value!r}")
                if value.upper() not in stations:
                    fail(f"{where}.{key}", f"unknown station {value!r}")
                codes.append(value.upper())
            rows.append((codes[0], codes[1], _int(entry["amount"], f"{where}.amount", fail, 0, 0xFFFFFFFF)))
        same = amount("same_station") if "same_station" in raw else None
        try:
            table = FareTable.build(stations, rows, same)
        except FareError as exc:
            raise ProfileError(f"{source}: fares.{exc}") from None
    if max_fare is not None and table is not None and max_fare < table.highest:
        fail("fares.max_fare", f"{max_fare} is below the table's highest fare {table.highest}")
    stale = None
    if "stale_boarding" in raw:
        rule = _mapping(raw["stale_boarding"], "fares.stale_boarding", fail, {"gap_minutes", "charge_mark"})
        for key in ("gap_minutes", "charge_mark"):
            if key not in rule:
                fail(f"fares.stale_boarding.{key}", "missing")
        gap = _int(rule["gap_minutes"], "fares.stale_boarding.gap_minutes", fail, 1, 24 * 60)
        if not isinstance(rule["charge_mark"], bool):
            fail("fares.stale_boarding.charge_mark", f"expected true or false, got {rule['charge_mark']!r}")
        stale = StaleRule(gap, rule["charge_mark"])
    return FarePolicy(flat=flat, table=table, max_fare=max_fare, stale=stale)


def _discounts(raw: Any, fail) -> Discounts:
    if raw is None:
        return Discounts()
    _mapping(raw, "discounts", fail, {"card_types", "recognised_cities"})
    percents: dict[str, int] = {}
    if "card_types" in raw:
        types = raw["card_types"]
        if not isinstance(types, dict):
            fail("discounts.card_types", f"expected a mapping of card type to percent, got {_kind(types)}")
        for card_type, percent in types.items():
            where = f"discounts.card_types.{card_type}"
            code = _hex(card_type, 2, where, fail)
            if code in percents:
                fail(where, "listed twice")
            percents[code] = _int(percent, where, fail, 0, 100)
    cities: list[str] = []
    if "recognised_cities" in raw:
        listed = raw["recognised_cities"]
        if not isinstance(listed, list):
            fail("discounts.recognised_cities", f"expected a list of area codes, got {_kind(listed)}")
        for i, city in enumerate(listed):
            where = f"discounts.recognised_cities[{i}]"
            code = _digits4(city, where, fail)
            if code in cities:
                fail(where, f"city {code} listed twice")
            cities.append(code)
    return Discounts(MappingProxyType(percents), frozenset(cities))


def _lists(raw: Any, fail, base: Path) -> tuple[Path, Path | None]:
    _mapping(raw, "lists", fail, {"blacklist", "whitelist"})
    if "blacklist" not in raw:
        fail("lists.blacklist", "missing (every terminal checks a black list)")
    black = _path(raw["blacklist"], "lists.blacklist", fail, base)
    try:
        load_blacklist(black)
    except ListError as exc:
        fail("lists.blacklist", str(exc))
    white = None
    if "whitelist" in raw:
        white = _path(raw["whitelist"], "lists.whitelist", fail, base)
        try:
            load_whitelist(white)
        except ListError as exc:
            fail("lists.whitelist", str(exc))
    return black, white


def _load(raw: Any, fail, base: Path, key_index: int) -> LoadSettings:
    _mapping(raw, "load", fail, {"keyset", "max_balance", "amounts"})
    for key in ("keyset", "max_balance"):
        if key not in raw:
            fail(f"load.{key}", "missing")
    ref = raw["keyset"]
    if not isinstance(ref, str) or not ref:
        fail("load.keyset", f"expected a key set file or name, got {_kind(ref)} {ref!r}")
    if "/" in ref or ref.endswith(".toml"):
        keyset = _path(ref, "load.keyset", fail, base)
    else:
        keyset = TEST_KEYSET_DIR / f"{ref}.toml"
        if not keyset.is_file():
            known = ", ".join(sorted(p.stem for p in TEST_KEYSET_DIR.glob("*.toml")))
            fail("load.keyset", f"no shipped key set named {ref!r} (known: {known})")
    try:
        keys = KeySet.load(keyset)
    except KeySetError as exc:
        fail("load.keyset", str(exc))
    if keys.entry("load").index != key_index:
        fail("key_index", f"{key_index} is not the index {keys.entry('load').index} of the load key "
                          f"of key set {keyset.name}")
    max_balance = _int(raw["max_balance"], "load.max_balance", fail, 1, MAX_BALANCE_LIMIT)
    amounts = None
    if "amounts" in raw:
        listed = raw["amounts"]
        if not isinstance(listed, list) or not listed:
            fail("load.amounts", f"expected a list of amounts in fen, got {_kind(listed)}")
        seen: list[int] = []
        for i, value in enumerate(listed):
            amount = _int(value, f"load.amounts[{i}]", fail, 1, max_balance)
            if amount in seen:
                fail(f"load.amounts[{i}]", f"{amount} listed twice")
            seen.append(amount)
        amounts = tuple(seen)
    return LoadSettings(keyset=keyset, max_balance=max_balance, amounts=amounts)
