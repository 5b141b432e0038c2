"""Records a terminal writes: EF1A metro and bus records, EF1E history in layouts A and B.

Every record built here is decoded with the card-side layouts (ykt_card.layouts), which carry the real
dumps of tunion.md as their vectors; those real records are also used as the "previous record".
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from terminal_sim import records as rec
from terminal_sim.profile import load_terminal_profile
from ykt_card.layouts.ef1a import EF1ABus, EF1AMetro
from ykt_card.layouts.ef1e import EF1EA, EF1EB

TERMINALS = Path(__file__).resolve().parents[2] / "specs" / "profiles" / "terminals"
PSAM_TID = "112233445566"
T0 = dt.datetime(2026, 11, 23, 8, 15, 30)
T1 = dt.datetime(2026, 11, 23, 8, 47, 2)

REAL_METRO_ENTERED = EF1AMetro.vector_bytes()[0][0]   # Beijing, status 01 (tunion.md 1.3)
REAL_BUS_BOARDED = EF1ABus.vector_bytes()[0][0]       # Zibo, status 01 (tunion.md 1.3)


@pytest.fixture(scope="module")
def entry_place():
    return rec.Place.of(load_terminal_profile(TERMINALS / "metro-entry.yaml"), PSAM_TID)


@pytest.fixture(scope="module")
def exit_place():
    return rec.Place.of(load_terminal_profile(TERMINALS / "metro-exit.yaml"), PSAM_TID)


@pytest.fixture(scope="module")
def bus_profile():
    return load_terminal_profile(TERMINALS / "bus-segment.yaml")


def test_place_of_a_profile(entry_place):
    assert entry_place == rec.Place(city="5810", acceptor="02205810FFFFFFFF", operator="0101", line="0003",
                                    station="0301", terminal_id=PSAM_TID, industry="01")
    assert entry_place.terminal8 == "0000" + PSAM_TID
    assert rec.metro_station8("5810", "0003", "0301") == "5810000303010000"


def test_metro_entry_on_a_fresh_card(entry_place):
    raw = rec.metro_entry(None, entry_place, T0, max_fare=1400)
    assert len(raw) == 128 and raw[:3] == bytes.fromhex("27017D")
    fields = EF1AMetro.decode(raw)
    assert fields["status"] == "01" and fields["trade_serial"] == "0000000000000001"
    assert (fields["in_city"], fields["in_issuer"], fields["in_station"], fields["in_terminal"]) == \
        ("5810", "02205810FFFFFFFF", "5810000303010000", "0000" + PSAM_TID)
    assert fields["in_time"] == "2026-11-23 08:15:30" and fields["max_fare"] == 1400
    assert fields["out_city"] == "0000" and fields["out_time"] is None
    assert (fields["valid_flag"], fields["interop_flag"], fields["lock_flag"]) == ("01", "01", "00")


def test_metro_entry_over_a_real_record_keeps_its_header_and_reserved_area(entry_place):
    previous = EF1AMetro.vector_bytes()[1][0]   # exited, locked flag, SH-style reserved data
    fields = EF1AMetro.decode(rec.metro_entry(previous, entry_place, T0, max_fare=1400))
    before = EF1AMetro.decode(previous)
    assert fields["trade_serial"] == "0000000000065294"          # 65293 + 1
    assert fields["reserved"] == before["reserved"] and fields["lock_flag"] == before["lock_flag"]
    assert fields["out_issuer"] == "0000000000000000" and fields["out_time"] is None


def test_metro_exit_after_an_entry(entry_place, exit_place):
    entered = rec.metro_entry(None, entry_place, T0, max_fare=1400)
    entry = rec.parse_metro(entered)
    assert entry.entered and entry.entry_station_in("5810") == "0301" and entry.entry_terminal_id == PSAM_TID
    assert entry.entry_station_in("5840") is None       # entered in another city: no station here
    exited = rec.metro_exit(entered, exit_place, T1)
    fields = EF1AMetro.decode(exited)
    assert fields["status"] == "02" and fields["trade_serial"] == "0000000000000002"
    assert fields["in_station"] == "5810000303010000" and fields["in_time"] == "2026-11-23 08:15:30"
    assert fields["out_station"] == "5810000303060000" and fields["out_time"] == "2026-11-23 08:47:02"
    assert fields["max_fare"] == 1400
    after = rec.parse_metro(exited)
    assert not after.entered and after.entry_station_in("5810") is None
    assert after.out_time == T1 and after.in_time == T0


def test_metro_exit_over_the_real_beijing_entry(exit_place):
    entry = rec.parse_metro(REAL_METRO_ENTERED)
    assert entry.entered and entry.in_time == dt.datetime(2019, 8, 31, 17, 59, 4) and entry.max_fare == 900
    assert entry.entry_station_in("1000") == "0900"     # bytes 4..5 of 1000751309000819
    fields = EF1AMetro.decode(rec.metro_exit(REAL_METRO_ENTERED, exit_place, T1))
    assert fields["in_station"] == "1000751309000819" and fields["trade_serial"] == "0000000000065293"


def test_metro_exit_without_entry_clears_the_entry_fields(entry_place, exit_place):
    done = rec.metro_exit(rec.metro_entry(None, entry_place, T0, 1400), exit_place, T1)
    again = EF1AMetro.decode(rec.metro_exit(done, exit_place, T1 + dt.timedelta(hours=2)))
    assert again["in_city"] == "0000" and again["in_time"] is None and again["max_fare"] == 0
    assert again["trade_serial"] == "0000000000000003"
    fresh = EF1AMetro.decode(rec.metro_exit(None, exit_place, T1))
    assert fresh["in_station"] == "0000000000000000" and fresh["out_city"] == "5810"
    assert rec.parse_metro(bytes(128)) is None


def test_bus_boarding_and_alighting(bus_profile):
    board_place = rec.Place.of(bus_profile, PSAM_TID)
    off_place = rec.Place.of(bus_profile.with_station("04"), PSAM_TID)
    boarded = rec.bus_boarding(None, board_place, T0, mark_amount=400)
    fields = EF1ABus.decode(boarded)
    assert fields["status"] == "01" and fields["trade_serial"] == "0000000000000001"
    assert (fields["on_city"], fields["on_issuer"], fields["on_operator"], fields["on_line"],
            fields["on_station"], fields["on_bus_no"]) == ("5880", "02775880FFFFFFFF", "0402", "0105", "01", "B20105")
    assert fields["mark_amount"] == 400 and fields["direction"] == "AB" and fields["off_time"] is None
    ride = rec.parse_bus(boarded)
    assert ride.boarded and ride.on_station == "01" and ride.on_time == T0 and ride.on_line == "0105"
    assert ride.boarding_terminal_id == PSAM_TID
    alighted = EF1ABus.decode(rec.bus_alighting(boarded, off_place, T1, fare=300, distance=3))
    assert alighted["status"] == "02" and alighted["trade_serial"] == "0000000000000002"
    assert alighted["on_station"] == "01" and alighted["mark_amount"] == 400
    assert (alighted["off_station"], alighted["off_time"], alighted["fare"], alighted["distance"]) == \
        ("04", "2026-11-23 08:47:02", 300, 3)


def test_bus_alighting_over_the_real_zibo_boarding(bus_profile):
    place = rec.Place.of(bus_profile.with_station("03"), PSAM_TID)
    ride = rec.parse_bus(REAL_BUS_BOARDED)
    assert ride.boarded and ride.on_city == "4530" and ride.mark_amount == 48 and ride.on_vehicle == "00409998"
    fields = EF1ABus.decode(rec.bus_alighting(REAL_BUS_BOARDED, place, T1, fare=48))
    real = EF1ABus.decode(REAL_BUS_BOARDED)
    for name in ("on_city", "on_issuer", "on_operator", "on_line", "on_station", "on_bus_no", "on_terminal",
                 "on_time", "mark_amount", "direction"):
        assert fields[name] == real[name], name
    assert fields["trade_serial"] == "0000000000000127" and fields["off_city"] == "5880"


def test_boarding_clears_the_previous_ride_and_alighting_without_boarding_clears_boarding(bus_profile):
    place = rec.Place.of(bus_profile, PSAM_TID)
    done = EF1ABus.vector_bytes()[1][0]     # alighted
    boarded = EF1ABus.decode(rec.bus_boarding(done, place, T0, 400))
    assert boarded["off_city"] == "0000" and boarded["fare"] == 0 and boarded["off_bus_no"] == ""
    lone = EF1ABus.decode(rec.bus_alighting(done, place, T1, fare=400))
    assert lone["on_city"] == "0000" and lone["on_time"] is None and lone["off_station"] == "01"
    assert rec.parse_bus(bytes(128)) is None


def test_trade_serials_wrap_and_count_on_in_hex():
    place = rec.Place("5810", "02205810FFFFFFFF", "0301", "0002", "01", PSAM_TID, "02")
    last = EF1ABus.encode({**EF1ABus.blank(), "trade_serial": "9999999999999999", "status": "02"})
    assert EF1ABus.decode(rec.bus_boarding(last, place, T0, 200))["trade_serial"] == "0000000000000000"
    hexed = EF1ABus.encode({**EF1ABus.blank(), "trade_serial": "00000000000000AF", "status": "02"})
    assert EF1ABus.decode(rec.bus_boarding(hexed, place, T0, 200))["trade_serial"] == "00000000000000B0"


def test_history_layout_a(entry_place):
    raw = rec.history("A", rec.HISTORY_ENTRY, entry_place, T0, amount=0, balance_after=-150)
    assert len(raw) == 48
    fields = EF1EA.decode(raw)
    assert fields == {**fields, "type": "03", "terminal_id": "0000" + PSAM_TID, "industry": "01", "line": "0003",
                      "station": "0301", "operator": "0101", "amount": 0, "balance_after": -150,
                      "datetime": "2026-11-23 08:15:30", "city": "5810", "institution_id": "02205810FFFFFFFF"}
    back = rec.parse_history(raw, "A")
    assert (back.type, back.terminal, back.station, back.balance_after, back.datetime) == \
        ("03", "0000" + PSAM_TID, "0301", -150, T0)


def test_history_layout_b_and_the_bus_station_in_layout_a(bus_profile):
    place = rec.Place.of(bus_profile, PSAM_TID)
    raw = rec.history("B", rec.HISTORY_EXIT, place, T1, amount=300, balance_after=700,
                      trade_serial=rec.serial_of_counter(8))
    fields = EF1EB.decode(raw)
    assert (fields["type"], fields["trade_serial"], fields["amount"], fields["balance_after"], fields["city"],
            fields["institution_id"]) == ("04", "0000000000000008", 300, 700, "5880", "02775880FFFFFFFF")
    assert rec.parse_history(raw, "B").trade_serial == "0000000000000008"
    assert EF1EA.decode(rec.history("A", "06", place, T1, 200, 0))["station"] == "0001"


def test_history_parses_the_real_zibo_record():
    raw, _ = EF1EB.vector_bytes()[0]
    back = rec.parse_history(raw, "B")
    assert (back.type, back.terminal, back.trade_serial, back.balance_after, back.city) == \
        ("09", "0000370020095428", "0000000000000078", 3524, "4530")


@pytest.mark.parametrize("args, message", [
    (("A", "05"), r"^record_type: "),
    (("C", "03"), r"^layout: "),
    (("B", "03"), r"^trade_serial: "),
])
def test_history_refusals(entry_place, args, message):
    with pytest.raises(ValueError, match=message):
        rec.history(*args, entry_place, T0, 0, 0)


@given(station=st.sampled_from(["0301", "0302", "0303", "0304", "0305", "0306"]),
       when=st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(
           lambda d: d.replace(microsecond=0)),
       max_fare=st.integers(0, 0xFFFFFFFF), tid=st.text("0123456789ABCDEF", min_size=12, max_size=12))
def test_metro_entry_reads_back_what_was_written(station, when, max_fare, tid):
    place = rec.Place("5810", "02205810FFFFFFFF", "0101", "0003", station, tid, "01")
    entry = rec.parse_metro(rec.metro_entry(None, place, when, max_fare))
    assert (entry.entry_station_in("5810"), entry.in_time, entry.max_fare, entry.entry_terminal_id) == \
        (station, when, max_fare, tid)
