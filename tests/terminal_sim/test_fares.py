"""Fares: station pairs, metro exit, bus mark amount and alighting, stale boarding, discounts."""
from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from terminal_sim.fares import (
    Boarding, Discounts, FareError, FarePolicy, FareTable, StaleRule, alighting_fare, apply_discount,
    boarding_state, discount_percent, distance, flat, mark_amount, metro_exit_fare, station_pair,
)
from terminal_sim.profile import load_terminal_profile

TERMINALS = Path(__file__).resolve().parents[2] / "specs" / "profiles" / "terminals"


def raw_table(name: str) -> dict[frozenset[str], int]:
    """The fares of a shipped profile as its YAML says, read without the loader (the test's oracle)."""
    doc = yaml.safe_load((TERMINALS / name).read_text(encoding="utf-8"))
    return {frozenset((row["from"], row["to"])): row["amount"] for row in doc["fares"]["table"]}


@pytest.fixture(scope="module")
def metro_exit():
    return load_terminal_profile(TERMINALS / "metro-exit.yaml")


@pytest.fixture(scope="module")
def bus_segment():
    return load_terminal_profile(TERMINALS / "bus-segment.yaml")


def test_station_pair_matches_the_profile_table_in_both_directions(metro_exit):
    table = metro_exit.fares.table
    expected = raw_table("metro-exit.yaml")
    assert len(expected) == len(table.stations) * (len(table.stations) - 1) // 2
    for pair, amount in expected.items():
        a, b = sorted(pair)
        assert station_pair(table, a, b) == amount
        assert station_pair(table, b, a) == amount


def test_same_station_trip_costs_the_configured_amount(metro_exit):
    assert station_pair(metro_exit.fares.table, "0303", "0303") == 200


def test_same_station_defaults_to_the_smallest_fare():
    table = FareTable.build(["A", "B", "C"], [("A", "B", 300), ("A", "C", 500), ("B", "C", 400)])
    assert table.same_station == 300
    assert table.highest == 500


def test_unknown_stations_are_named(metro_exit):
    with pytest.raises(FareError, match=r"^to: unknown station 'X'"):
        station_pair(metro_exit.fares.table, "0301", "X")
    with pytest.raises(FareError, match=r"^from: unknown station '9999'"):
        station_pair(metro_exit.fares.table, "9999", "0301")


@pytest.mark.parametrize("stations, rows, message", [
    (["A", "B"], [("A", "X", 1)], r"^table\[0\]\.to: unknown station 'X'"),
    (["A", "B"], [("A", "B", 1), ("B", "A", 2)], r"^table\[1\]: the pair 'B'-'A' is given twice"),
    (["A", "B", "C"], [("A", "B", 1), ("B", "C", 1)], r"^table: no fare for the pair 'A'-'C'"),
    (["A", "B"], [("A", "A", 1)], r"^table\[0\]: from and to are the same station"),
    (["A", "B"], [("A", "B", -5)], r"^table\[0\]\.amount: -5 out of range"),
    (["A", "A"], [], r"^stations: a station is listed twice"),
])
def test_incomplete_or_contradictory_tables_are_refused(stations, rows, message):
    with pytest.raises(FareError, match=message):
        FareTable.build(stations, rows)


def test_flat_fare_is_checked():
    assert flat(200) == 200
    with pytest.raises(FareError, match=r"^flat: "):
        flat(-1)
    with pytest.raises(FareError, match=r"^flat: "):
        flat(1 << 32)


def test_metro_exit_fare(metro_exit):
    policy = metro_exit.fares
    expected = raw_table("metro-exit.yaml")
    assert metro_exit_fare(policy, "0301", "0306") == expected[frozenset(("0301", "0306"))]
    # no valid entry, or an entry the table cannot place: the maximum fare
    assert metro_exit_fare(policy, None, "0306") == policy.max_fare == 1400
    assert metro_exit_fare(policy, "7513", "0306") == 1400
    with pytest.raises(FareError, match=r"^station: unknown exit station"):
        metro_exit_fare(policy, "0301", "0999")
    with pytest.raises(FareError, match=r"^max_fare: not configured"):
        metro_exit_fare(FarePolicy(table=policy.table), "0301", "0306")


def test_mark_amount_is_the_fare_to_the_terminus_of_the_direction(bus_segment):
    policy = bus_segment.fares
    expected = raw_table("bus-segment.yaml")
    first, last = policy.table.stations[0], policy.table.stations[-1]
    assert mark_amount(policy, "02", "AB") == expected[frozenset(("02", last))]
    assert mark_amount(policy, "05", "BA") == expected[frozenset(("05", first))]
    # boarding at the terminus itself: a same-station trip
    assert mark_amount(policy, last, "AB") == policy.table.same_station
    with pytest.raises(FareError, match=r"^direction: "):
        mark_amount(policy, "02", "UP")


def test_mark_amount_of_a_flat_line_is_the_flat_fare():
    assert mark_amount(FarePolicy(flat=200), "01") == 200
    with pytest.raises(FareError, match=r"^fares: "):
        mark_amount(FarePolicy(), "01")


def test_alighting_fare_and_distance(bus_segment):
    policy = bus_segment.fares
    expected = raw_table("bus-segment.yaml")
    assert alighting_fare(policy, "01", "04") == expected[frozenset(("01", "04"))]
    assert alighting_fare(policy, "04", "01") == expected[frozenset(("01", "04"))]
    assert distance(policy.table, "01", "04") == 3 == distance(policy.table, "04", "01")
    with pytest.raises(FareError, match=r"^table: not configured"):
        alighting_fare(FarePolicy(flat=200), "01", "02")


BOARDED = dt.datetime(2026, 11, 23, 8, 0, 0)
RULE = StaleRule(gap_minutes=120, charge_mark=True)


@pytest.mark.parametrize("now, rule, same_line, expected", [
    (BOARDED + dt.timedelta(minutes=30), RULE, True, Boarding.ALIGHT),
    (BOARDED + dt.timedelta(minutes=120), RULE, True, Boarding.ALIGHT),           # the edge is fresh
    (BOARDED + dt.timedelta(minutes=120, seconds=1), RULE, True, Boarding.STALE_CHARGE),
    (BOARDED + dt.timedelta(minutes=121), StaleRule(120, False), True, Boarding.STALE_IGNORE),
    (BOARDED + dt.timedelta(minutes=5), RULE, False, Boarding.STALE_CHARGE),       # another line
    (BOARDED - dt.timedelta(minutes=1), RULE, True, Boarding.STALE_CHARGE),        # from the future
    (BOARDED + dt.timedelta(days=3), None, True, Boarding.ALIGHT),                 # no rule: never stale
    (BOARDED, None, False, Boarding.STALE_CHARGE),
])
def test_stale_boarding_decision(now, rule, same_line, expected):
    assert boarding_state(BOARDED, now, rule, same_line=same_line) is expected


GZ_DISCOUNTS = Discounts({"02": 50, "03": 0}, frozenset({"5880"}))


@pytest.mark.parametrize("card_type, card_city, percent", [
    ("02", "5810", 50),     # local student
    ("03", "5810", 0),      # local senior rides free
    ("01", "5810", 100),    # normal card
    ("7F", "5810", 100),    # a type the city does not list
    ("02", "5880", 50),     # Foshan student: discounts recognised (优惠互认)
    ("02", "5840", 100),    # Shenzhen student: not recognised here
    ("03", "1000", 100),    # Beijing senior
])
def test_discount_percent(card_type, card_city, percent):
    assert discount_percent(GZ_DISCOUNTS, card_type, card_city, "5810") == percent


def test_shipped_profile_discounts(metro_exit):
    assert discount_percent(metro_exit.discounts, "02", "5880", metro_exit.city) == 50
    assert discount_percent(metro_exit.discounts, "02", "5850", metro_exit.city) == 100


@pytest.mark.parametrize("amount, percent, expected", [
    (200, 50, 100), (1, 50, 1), (3, 50, 2), (5, 10, 1), (4, 10, 0), (999, 0, 0), (999, 100, 999),
    (0xFFFFFFFF, 100, 0xFFFFFFFF),
])
def test_apply_discount_rounds_half_up(amount, percent, expected):
    assert apply_discount(amount, percent) == expected


@given(st.integers(0, 0xFFFFFFFF), st.integers(0, 100))
def test_apply_discount_is_exact_half_up_rounding(amount, percent):
    exact = Fraction(amount * percent, 100)
    result = apply_discount(amount, percent)
    assert 0 <= result <= amount
    assert exact - Fraction(1, 2) < result <= exact + Fraction(1, 2)
    if exact - int(exact) == Fraction(1, 2):
        assert result == int(exact) + 1


@pytest.mark.parametrize("percent", [-1, 101, 50.0, True])
def test_apply_discount_refuses_bad_percentages(percent):
    with pytest.raises(FareError, match=r"^percent: "):
        apply_discount(200, percent)


@st.composite
def tables(draw):
    stations = draw(st.lists(st.text("0123456789ABCDEF", min_size=2, max_size=2), min_size=2,
                             max_size=6, unique=True))
    rows = [(a, b, draw(st.integers(0, 10_000))) for i, a in enumerate(stations) for b in stations[i + 1:]]
    rows = [(b, a, x) if draw(st.booleans()) else (a, b, x) for a, b, x in draw(st.permutations(rows))]
    return stations, rows


@given(tables())
def test_generated_tables_are_symmetric_and_complete(data):
    stations, rows = data
    table = FareTable.build(stations, rows)
    for a, b, amount in rows:
        assert station_pair(table, a, b) == station_pair(table, b, a) == amount
    assert table.highest == max([table.same_station, *(x for _, _, x in rows)])
