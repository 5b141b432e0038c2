"""Terminal profiles: the shipped files load, and the loader refuses bad fields in one precise line."""
from __future__ import annotations

import copy
import dataclasses
import os
from pathlib import Path

import pytest
import yaml

from keysets import TEST_KEYSET_DIR
from terminal_sim.profile import FLOWS, TerminalProfile, load_terminal_profile, parse_terminal_profile
from ykt_files.schema import ProfileError

ROOT = Path(__file__).resolve().parents[2]
TERMINALS = ROOT / "specs" / "profiles" / "terminals"
SHIPPED = ("bus-flat.yaml", "bus-flat-capp.yaml", "bus-segment.yaml", "metro-entry.yaml", "metro-exit.yaml",
           "ferry.yaml", "taxi.yaml", "load.yaml")
# Guangdong area codes of guangdong.md
GUANGDONG_CITIES = {"5810", "5840", "5880", "6020", "6030", "5850", "5950", "5860", "5890", "5920", "5930",
                    "5910", "5960", "5970", "5980", "6010", "5820", "6050", "5990", "6040", "6060"}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_profiles_load(name):
    profile = load_terminal_profile(TERMINALS / name)
    assert isinstance(profile, TerminalProfile)
    assert profile.province == "5800" and profile.city in GUANGDONG_CITIES
    assert FLOWS[profile.flow][0] == profile.mode
    assert profile.transaction_type in FLOWS[profile.flow][1]
    assert profile.recovery_window == 120
    black, white = profile.load_lists()
    assert black.version == "2024112401"
    assert profile.blacklist.is_file() and profile.source == name


def test_every_flow_has_a_shipped_profile():
    flows = {load_terminal_profile(TERMINALS / name).flow for name in SHIPPED}
    assert flows == set(FLOWS)


def test_shipped_profile_details():
    metro = load_terminal_profile(TERMINALS / "metro-exit.yaml")
    assert (metro.city, metro.line, metro.station, metro.ef1a_record, metro.ef1e_layout) == \
        ("5810", "0003", "0306", 1, "A")
    assert metro.fares.max_fare == 1400 and metro.industry == "01"
    bus = load_terminal_profile(TERMINALS / "bus-segment.yaml")
    assert bus.fares.table.stations == ("01", "02", "03", "04", "05", "06")
    assert bus.fares.stale.gap_minutes == 120 and bus.fares.stale.charge_mark is True
    assert (bus.ef1e_layout, bus.ef1a_record, bus.direction, bus.vehicle) == ("B", 2, "AB", "B20105")
    capp = load_terminal_profile(TERMINALS / "bus-flat-capp.yaml")
    assert capp.key_index == 2 and capp.writes_capp and capp.ef1a_record is None
    ferry = load_terminal_profile(TERMINALS / "ferry.yaml")
    assert ferry.whitelist is None and ferry.transaction_type == "09"   # every issuer; EF1E on the composite path
    taxi = load_terminal_profile(TERMINALS / "taxi.yaml")
    assert taxi.fares.flat is None and taxi.line is None and taxi.station is None
    load = load_terminal_profile(TERMINALS / "load.yaml")
    assert load.load.keyset == TEST_KEYSET_DIR / "gd-test-3des.toml"
    assert load.load.amounts == (1000, 2000, 5000, 10000) and load.load.max_balance == 100000
    assert load.load.refusal(2000, 500) is None
    assert load.load.refusal(3000, 500) == "amount 3000 is not one of 1000, 2000, 5000, 10000"
    assert load.load.refusal(10000, 95000) == "balance 95000 + 10000 would exceed the maximum 100000"


def test_acceptor_defaults_to_operator_city_ffffffff(tmp_path):
    doc = base_doc(tmp_path, "taxi.yaml")
    del doc["acceptor"]
    assert write_and_load(tmp_path, "t.yaml", doc).acceptor == "07015840FFFFFFFF"


def test_paths_are_relative_to_the_profile_not_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    profile = load_terminal_profile(os.path.relpath(TERMINALS / "ferry.yaml", tmp_path))
    assert profile.blacklist == ROOT / "specs" / "lists" / "blacklist-gd.txt"


def test_profiles_are_frozen_and_the_station_changes_at_run_time():
    bus = load_terminal_profile(TERMINALS / "bus-segment.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        bus.station = "03"  # type: ignore[misc]
    moved = bus.with_station("04", "BA")
    assert (moved.station, moved.direction) == ("04", "BA") and bus.station == "01"
    assert bus.with_station("05").station == "05"
    with pytest.raises(ProfileError, match=r"^bus-segment\.yaml: station: unknown station '07'$"):
        bus.with_station("07")
    with pytest.raises(ProfileError, match=r"^bus-segment\.yaml: station: expected 2 hex digits"):
        bus.with_station("0301")
    with pytest.raises(ProfileError, match=r"^bus-segment\.yaml: direction: "):
        bus.with_station("02", "UP")


# ---------------------------------------------------------------------------------------------------
# The loader's refusals. Each case edits a shipped profile (as YAML data) and names the exact line.

def base_doc(tmp_path: Path, name: str) -> dict:
    """A shipped profile's YAML data with its lists copied beside tmp_path, so edits stay local."""
    lists = tmp_path / "lists"
    lists.mkdir(exist_ok=True)
    for src in (ROOT / "specs" / "lists").iterdir():
        (lists / src.name).write_bytes(src.read_bytes())
    doc = yaml.safe_load((TERMINALS / name).read_text(encoding="utf-8"))
    doc["lists"] = {key: "lists/" + Path(value).name for key, value in doc["lists"].items()}
    return doc


def write_and_load(tmp_path: Path, name: str, doc: dict) -> TerminalProfile:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return load_terminal_profile(path)


def _set(doc: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    if value is _DELETE:
        del node[int(last) if isinstance(node, list) else last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


_DELETE = object()

CASES = [
    # (shipped profile, edits {dotted path: value}, the exact message after "<file>: ")
    ("bus-segment.yaml", {"fares.table.3.to": "X"}, "fares.table[3].to: unknown station 'X'"),
    ("bus-segment.yaml", {"fares.table.3": _DELETE}, "fares.table: no fare for the pair '01'-'05'"),
    ("bus-segment.yaml", {"fares.table.0.amount": -200}, "fares.table[0].amount: -200 out of range 0..4294967295"),
    ("bus-segment.yaml", {"fares.table.0.price": 1}, "fares.table[0].price: unknown field"),
    ("bus-segment.yaml", {"fares.flat": 200}, "fares.flat: not used by flow 'segment'"),
    ("bus-segment.yaml", {"fares.stale_boarding.gap_minutes": 0},
     "fares.stale_boarding.gap_minutes: 0 out of range 1..1440"),
    ("bus-segment.yaml", {"fares.stale_boarding.charge_mark": "yes"},
     "fares.stale_boarding.charge_mark: expected true or false, got str 'yes'"),
    ("bus-segment.yaml", {"station": "09"}, "station: unknown station '09'"),
    ("bus-segment.yaml", {"station": _DELETE}, "station: missing (flow 'segment' needs the terminal's station)"),
    ("bus-segment.yaml", {"direction": "UP"}, "direction: expected 'AB' or 'BA', got 'UP'"),
    ("bus-segment.yaml", {"ef1a_record": 1}, "ef1a_record: a bus terminal writes record 2, got 1"),
    ("bus-segment.yaml", {"ef1a_record": _DELETE}, "ef1a_record: missing (flow 'segment' writes record 2)"),
    ("bus-segment.yaml", {"ef1e_layout": "C"}, "ef1e_layout: expected 'A' or 'B', got 'C'"),
    ("bus-segment.yaml", {"stations": _DELETE}, "stations: missing (flow 'segment' needs the list of stations)"),
    ("bus-segment.yaml", {"vehicle": "粤B20105"},
     "vehicle: expected 1 to 8 printable ASCII characters, got '粤B20105'"),
    ("metro-exit.yaml", {"fares.max_fare": 300}, "fares.max_fare: 300 is below the table's highest fare 500"),
    ("metro-exit.yaml", {"fares.max_fare": _DELETE}, "fares.max_fare: missing (flow 'metro-exit' needs it)"),
    ("metro-exit.yaml", {"transaction_type": "06"}, "transaction_type: flow 'metro-exit' uses '09', got '06'"),
    ("metro-exit.yaml", {"station": "301"}, "station: expected 4 hex digits, got '301'"),
    ("metro-exit.yaml", {"city": 5810}, "city: expected a quoted 4-digit area code like \"5810\", got int 5810"),
    ("metro-exit.yaml", {"city": "58A0"}, "city: expected a 4-digit area code, got '58A0'"),
    ("metro-exit.yaml", {"province": _DELETE}, "province: missing"),
    ("metro-exit.yaml", {"operator": "01"}, "operator: expected 4 hex digits, got '01'"),
    ("metro-exit.yaml", {"line": _DELETE}, "line: missing (a metro terminal belongs to a line)"),
    ("metro-exit.yaml", {"colour": "red"}, "colour: unknown field"),
    ("metro-exit.yaml", {"terminal_id": "112233445566"}, "terminal_id: unknown field"),
    ("metro-exit.yaml", {"mode": "bus"}, "flow: flow 'metro-exit' is a metro flow, but mode is 'bus'"),
    ("metro-exit.yaml", {"mode": "tram"}, "mode: expected one of bus, metro, ferry, taxi, load, got 'tram'"),
    ("metro-exit.yaml", {"flow": "exit"}, "flow: expected one of flat, flat-capp, segment, metro-entry, "
                                          "metro-exit, taxi, ferry, load, got 'exit'"),
    ("metro-exit.yaml", {"key_index": "01"}, "key_index: expected an integer, got str '01'"),
    ("metro-exit.yaml", {"key_index": 0}, "key_index: 0 out of range 1..255"),
    ("metro-exit.yaml", {"recovery_window": 0}, "recovery_window: 0 out of range 1..86400"),
    ("metro-exit.yaml", {"discounts.card_types": {"02": 150}}, "discounts.card_types.02: 150 out of range 0..100"),
    ("metro-exit.yaml", {"discounts.card_types": {2: 50}},
     "discounts.card_types.2: expected a quoted string of 2 hex digits, got int 2"),
    ("metro-exit.yaml", {"discounts.recognised_cities": ["5880", "5880"]},
     "discounts.recognised_cities[1]: city 5880 listed twice"),
    ("metro-exit.yaml", {"discounts.bonus": 1}, "discounts.bonus: unknown field"),
    ("metro-exit.yaml", {"lists.blacklist": _DELETE}, "lists.blacklist: missing (every terminal checks a black list)"),
    ("metro-exit.yaml", {"lists.blacklist": "lists/nope.txt"}, "lists.blacklist: no such file 'lists/nope.txt'"),
    ("metro-exit.yaml", {"lists.blacklist": "lists/issuers-gd.txt"},
     "lists.blacklist: issuers-gd.txt: kind: expected blacklist, got issuers"),
    ("metro-entry.yaml", {"fares.table": []}, "fares.table: not used by flow 'metro-entry'"),
    ("metro-entry.yaml", {"name": "  "}, "name: empty"),
    ("bus-flat.yaml", {"fares": _DELETE}, "fares: missing (flow 'flat' needs fares.flat)"),
    ("bus-flat.yaml", {"ef1a_record": 2}, "ef1a_record: flow 'flat' writes no EF1A record"),
    ("bus-flat.yaml", {"stations": {1: "x"}}, "stations.1: expected a quoted string of 2 hex digits, got int 1"),
    ("bus-flat.yaml", {"direction": "AB"},
     "direction: only a segmented-fare bus has a direction, this flow is 'flat'"),
    ("taxi.yaml", {"station": "0101"}, "station: a taxi terminal has no station"),
    ("taxi.yaml", {"vehicle": "A1"}, "vehicle: only a bus has a vehicle number, this is a taxi terminal"),
    ("taxi.yaml", {"load": {"keyset": "gd-test-3des", "max_balance": 1}},
     "load: only a load terminal has load settings, this flow is 'taxi'"),
    ("load.yaml", {"load.keyset": "gd-test-des"},
     "load.keyset: no shipped key set named 'gd-test-des' (known: gd-test-3des, gd-test-sm4)"),
    ("load.yaml", {"load.amounts": [1000, 1000]}, "load.amounts[1]: 1000 listed twice"),
    ("load.yaml", {"load.amounts": [200000]}, "load.amounts[0]: 200000 out of range 1..100000"),
    ("load.yaml", {"load.max_balance": _DELETE}, "load.max_balance: missing"),
    ("load.yaml", {"load": _DELETE}, "load: missing (a load terminal needs its host settings)"),
    ("load.yaml", {"key_index": 2}, "key_index: 2 is not the index 1 of the load key of key set gd-test-3des.toml"),
    ("load.yaml", {"transaction_type": "06"}, "transaction_type: flow 'load' uses '02', got '06'"),
    ("load.yaml", {"load.extra": 1}, "load.extra: unknown field"),
    ("bus-segment.yaml", {"fares.table": "x"}, "fares.table: expected a list of {from, to, amount}, got str"),
    ("bus-segment.yaml", {"fares.table.1.to": "01"},
     "fares.table[1]: from and to are the same station '01' (use same_station)"),
    ("bus-segment.yaml", {"key_index": [1, 0]}, "key_index[1]: 0 out of range 1..255"),
    ("bus-segment.yaml", {"key_index": [1, 1]}, "key_index: a key index is listed twice in [1, 1]"),
    ("bus-segment.yaml", {"discounts.card_types": {"02": 50, "0a": 1, "0A": 2}}, "discounts.card_types.0A: listed twice"),
    ("bus-segment.yaml", {"discounts": [1]}, "discounts: expected a mapping, got list"),
    ("taxi.yaml", {"fares": {"flat": 5}}, "fares.flat: not used by flow 'taxi'"),
]


@pytest.mark.parametrize("shipped, edits, message", CASES, ids=[c[2].split(":")[0] + "-" + str(i)
                                                                  for i, c in enumerate(CASES)])
def test_bad_profiles_are_refused_in_one_line(tmp_path, shipped, edits, message):
    doc = base_doc(tmp_path, shipped)
    for dotted, value in edits.items():
        _set(doc, dotted, value if value is _DELETE else copy.deepcopy(value))
    with pytest.raises(ProfileError) as info:
        write_and_load(tmp_path, shipped, doc)
    assert str(info.value) == f"{shipped}: {message}"


def test_a_keyset_file_relative_to_the_profile(tmp_path):
    doc = base_doc(tmp_path, "load.yaml")
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "mine.toml").write_bytes((TEST_KEYSET_DIR / "gd-test-3des.toml").read_bytes())
    doc["load"]["keyset"] = "keys/mine.toml"
    assert write_and_load(tmp_path, "load.yaml", doc).load.keyset == tmp_path / "keys" / "mine.toml"
    (tmp_path / "keys" / "bad.toml").write_text('name = "x"\n')
    doc["load"]["keyset"] = "keys/bad.toml"
    with pytest.raises(ProfileError) as info:
        write_and_load(tmp_path, "load.yaml", doc)
    assert str(info.value).startswith("load.yaml: load.keyset: ") and "\n" not in str(info.value)


def test_a_bad_list_file_is_reported_through_the_profile(tmp_path):
    doc = base_doc(tmp_path, "metro-exit.yaml")
    (tmp_path / "lists" / "blacklist-gd.txt").write_text("kind: blacklist\nversion: 2024112401\n12345\n")
    with pytest.raises(ProfileError) as info:
        write_and_load(tmp_path, "metro-exit.yaml", doc)
    assert str(info.value) == ("metro-exit.yaml: lists.blacklist: blacklist-gd.txt:3: "
                               "not a 20-digit card number: '12345'")


@pytest.mark.parametrize("text, message", [
    ("name: a\nname: b\n", "x.yaml: line 2: not valid YAML: duplicate key 'name'"),
    ("name: [unclosed\n", "x.yaml: line 2: not valid YAML: "),
    ("- just\n- a list\n", "x.yaml: expected a mapping of profile fields, got list"),
    ("", "x.yaml: expected a mapping of profile fields, got nothing"),
])
def test_yaml_problems_are_one_line(text, message):
    with pytest.raises(ProfileError) as info:
        parse_terminal_profile(text, source="x.yaml")
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_a_missing_profile_file(tmp_path):
    with pytest.raises(ProfileError, match=r"no such profile file$"):
        load_terminal_profile(tmp_path / "none.yaml")
