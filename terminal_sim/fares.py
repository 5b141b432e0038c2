"""Fare policy: what a ride costs, as pure functions over the fare settings of a terminal profile.

Nothing here reads a card or a clock: the flows pass in stations, record times and "now", so every
decision can be replayed and tested on its own. All amounts are integers in fen (分, D13).

Rules this module fixes (tunion.md 5.3, 5.4 and guangdong.md "优惠互认"):
* Station-pair tables are symmetric: the fare from A to B is the fare from B to A. A trip that ends
  where it began costs ``same_station`` (default: the smallest fare of the table).
* The bus mark amount (标注金额) is the fare from the boarding station to the terminus of the direction
  of travel (AB: the last station of the line's list, BA: the first).
* A boarding record is stale when it is from another line, when more than ``gap_minutes`` passed since
  boarding, or when its time lies after "now" (a clock that cannot be trusted). A gap of exactly
  ``gap_minutes`` is still fresh.
* Discounts are a percentage of the fare that the rider pays, chosen by the card type byte of EF17
  (byte 10, 卡种类型). Local cards get the discount; cards of another city get it only when this city
  recognises that city's discounts (优惠互认); everybody else pays the full fare.
* Rounding: ``fare * percent / 100`` rounded half up to whole fen (四舍五入), in integer arithmetic.
"""
from __future__ import annotations

import datetime as _dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "FareError", "FareTable", "StaleRule", "Discounts", "FarePolicy", "Boarding",
    "flat", "station_pair", "metro_exit_fare", "mark_amount", "alighting_fare", "distance",
    "boarding_state", "discount_percent", "apply_discount", "MAX_AMOUNT",
]

MAX_AMOUNT = 0xFFFFFFFF
"""The largest amount an APDU can carry (4 bytes, D13)."""


class FareError(ValueError):
    """A fare question without an answer (unknown station, no table, bad amount); says which."""


def _amount(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FareError(f"{what}: expected an integer amount in fen, got {value!r}")
    if not 0 <= value <= MAX_AMOUNT:
        raise FareError(f"{what}: {value} out of range 0..{MAX_AMOUNT}")
    return value


@dataclass(frozen=True)
class FareTable:
    """A symmetric station-pair fare matrix over an ordered list of stations.

    ``stations`` is in line order (for a bus line: the AB direction). ``pairs`` maps every unordered
    pair of two different stations to its fare; build it with :meth:`build`, which checks that the
    matrix is complete.
    """

    stations: tuple[str, ...]
    pairs: Mapping[frozenset[str], int]
    same_station: int

    @classmethod
    def build(cls, stations: Iterable[str], entries: Iterable[tuple[str, str, int]],
              same_station: int | None = None) -> "FareTable":
        order = tuple(stations)
        if len(set(order)) != len(order):
            raise FareError("stations: a station is listed twice")
        known = set(order)
        pairs: dict[frozenset[str], int] = {}
        for i, (a, b, amount) in enumerate(entries):
            for side, code in (("from", a), ("to", b)):
                if code not in known:
                    raise FareError(f"table[{i}].{side}: unknown station {code!r}")
            if a == b:
                raise FareError(f"table[{i}]: from and to are the same station {a!r} (use same_station)")
            key = frozenset((a, b))
            if key in pairs:
                raise FareError(f"table[{i}]: the pair {a!r}-{b!r} is given twice (fares are symmetric)")
            pairs[key] = _amount(amount, f"table[{i}].amount")
        for i, a in enumerate(order):
            for b in order[i + 1:]:
                if frozenset((a, b)) not in pairs:
                    raise FareError(f"table: no fare for the pair {a!r}-{b!r}")
        if same_station is None:
            same_station = min(pairs.values()) if pairs else 0
        return cls(order, MappingProxyType(pairs), _amount(same_station, "same_station"))

    def __contains__(self, station: object) -> bool:
        return station in self.stations

    def __hash__(self) -> int:
        return hash((self.stations, tuple(sorted((tuple(sorted(k)), v) for k, v in self.pairs.items())),
                     self.same_station))

    @property
    def highest(self) -> int:
        """The largest fare of the table (a trip between two listed stations never costs more)."""
        return max([self.same_station, *self.pairs.values()])


@dataclass(frozen=True)
class StaleRule:
    """When a bus boarding record no longer counts as this ride, and what the terminal then does."""

    gap_minutes: int
    charge_mark: bool


@dataclass(frozen=True)
class Discounts:
    """Card-type discounts and the cities whose discounts this city recognises (优惠互认).

    ``pay_percent`` maps the EF17 card type byte (2 upper-case hex digits) to the percentage of the
    fare the rider pays (100 = full fare, 50 = half, 0 = free); a type not listed pays 100.
    """

    pay_percent: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    recognised_cities: frozenset[str] = frozenset()

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.pay_percent.items())), self.recognised_cities))


@dataclass(frozen=True)
class FarePolicy:
    """The fare settings of one terminal profile (every part optional; the flow says which it needs)."""

    flat: int | None = None
    table: FareTable | None = None
    max_fare: int | None = None
    stale: StaleRule | None = None


class Boarding(enum.Enum):
    """What a segmented-fare bus does with a card that shows a boarding record (status 01)."""

    ALIGHT = "alight"              # fresh boarding on this line: this tap ends the ride
    STALE_CHARGE = "stale-charge"  # close the old ride by charging its mark amount, then board
    STALE_IGNORE = "stale-ignore"  # forget the old ride, board anew


# ---------------------------------------------------------------------------------------------------

def flat(amount: int) -> int:
    """A flat fare: the same amount for every ride (checked to fit an APDU)."""
    return _amount(amount, "flat")


def station_pair(table: FareTable, origin: str, destination: str) -> int:
    """The fare between two stations of the table (symmetric; same station: ``same_station``)."""
    for side, code in (("from", origin), ("to", destination)):
        if code not in table.stations:
            raise FareError(f"{side}: unknown station {code!r}")
    if origin == destination:
        return table.same_station
    return table.pairs[frozenset((origin, destination))]


def metro_exit_fare(policy: FarePolicy, entry_station: str | None, exit_station: str) -> int:
    """The fare at a metro exit gate.

    ``entry_station`` None means the card shows no valid entry of this network (no record, status not
    01, or an entry in another city): the rider pays the maximum fare. An entry station the table does
    not know is treated the same way, because a gate cannot price a trip it cannot place.
    """
    if policy.max_fare is None:
        raise FareError("max_fare: not configured")
    if policy.table is None:
        raise FareError("table: not configured")
    if exit_station not in policy.table:
        raise FareError(f"station: unknown exit station {exit_station!r}")
    if entry_station is None or entry_station not in policy.table:
        return policy.max_fare
    return station_pair(policy.table, entry_station, exit_station)


def _terminus(table: FareTable, direction: str) -> str:
    if direction == "AB":
        return table.stations[-1]
    if direction == "BA":
        return table.stations[0]
    raise FareError(f"direction: expected 'AB' or 'BA', got {direction!r}")


def mark_amount(policy: FarePolicy, boarding_station: str, direction: str = "AB") -> int:
    """标注金额 written at boarding: the fare to the terminus in the direction of travel.

    A flat-fare line (no table) marks its flat fare.
    """
    if policy.table is None:
        if policy.flat is None:
            raise FareError("fares: neither a table nor a flat fare to mark")
        return policy.flat
    return station_pair(policy.table, boarding_station, _terminus(policy.table, direction))


def alighting_fare(policy: FarePolicy, boarding_station: str, alighting_station: str) -> int:
    """The fare charged when a rider taps off: the station-pair fare between boarding and alighting."""
    if policy.table is None:
        raise FareError("table: not configured")
    return station_pair(policy.table, boarding_station, alighting_station)


def distance(table: FareTable, origin: str, destination: str) -> int:
    """Stops travelled between two stations of the line (what the bus record's distance field holds)."""
    for side, code in (("from", origin), ("to", destination)):
        if code not in table.stations:
            raise FareError(f"{side}: unknown station {code!r}")
    return abs(table.stations.index(origin) - table.stations.index(destination))


def boarding_state(boarded_at: _dt.datetime, now: _dt.datetime, rule: StaleRule | None,
                   *, same_line: bool = True) -> Boarding:
    """Decide whether a boarding record (status 01) is this ride's boarding or a stale one.

    Without a rule, a boarding record on the same line never goes stale. Naive and aware datetimes
    must not be mixed (the flows use China time throughout).
    """
    stale = not same_line
    if rule is not None and not stale:
        gap = now - boarded_at
        stale = gap < _dt.timedelta(0) or gap > _dt.timedelta(minutes=rule.gap_minutes)
    if not stale:
        return Boarding.ALIGHT
    charge = rule.charge_mark if rule is not None else True
    return Boarding.STALE_CHARGE if charge else Boarding.STALE_IGNORE


def discount_percent(discounts: Discounts, card_type: str, card_city: str, local_city: str) -> int:
    """The percentage of the fare this card pays here (100 when no discount applies)."""
    if card_city != local_city and card_city not in discounts.recognised_cities:
        return 100
    return discounts.pay_percent.get(card_type.upper(), 100)


def apply_discount(amount: int, percent: int) -> int:
    """``amount * percent / 100`` rounded half up to whole fen (integer arithmetic, no floats)."""
    _amount(amount, "amount")
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise FareError(f"percent: expected an integer 0..100, got {percent!r}")
    return (amount * percent + 50) // 100
