"""The card records a validator writes with UPDATE CAPP DATA CACHE, and reads back on the next tap.

EF1A record 01 (metro) and 02 (bus) are rewritten from the card's previous record and the transaction;
EF1E records (48 bytes, layout A or B, D8) are appended. Bytes are made by the layout classes of
``ykt_card.layouts`` (their ``encode`` checks every field), so what a terminal writes is exactly what
``ykt decode`` and the card tooling read.

Choices this module makes where the reference is silent (tunion.md 1.3, 5.3, 5.4):
* Terminal fields (8 bytes) hold ``0000 ‖ PSAM terminal ID``, as on the real cards.
* The metro station field (8 bytes) is ``city(2) ‖ line(2) ‖ station(2) ‖ 0000``; the station code is
  read back from bytes 4..5, and only trusted when the city is this terminal's city.
* A record's trade serial is the previous record's plus one (decimal digits, wrapping at 10^16; a
  serial with hex digits, written by someone else, is counted on in hex). A blank or absent previous
  record starts at 1.
* Entry and boarding clear the exit/alighting fields; an exit or alighting keeps the entry/boarding
  fields when the previous record shows status 01, and clears them otherwise. The header's valid,
  interoperability and lock flags and the reserved tail are carried over from the previous record.
* EF1E layout B's trade serial is given by the caller; the flows use the card's offline counter after
  the transaction (INIT counter + 1) as 16 decimal digits (:func:`serial_of_counter`).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from ykt_card.clock import CHINA_TZ
from ykt_card.layouts.ef1a import EF1ABus, EF1AMetro
from ykt_card.layouts.ef1e import EF1EA, EF1EB

__all__ = [
    "china_time", "Place", "MetroRecord", "BusRecord", "HistoryRecord",
    "metro_entry", "metro_exit", "bus_boarding", "bus_alighting", "history",
    "parse_metro", "parse_bus", "parse_history", "serial_of_counter", "metro_station8",
    "ENTERED", "EXITED", "HISTORY_ENTRY", "HISTORY_EXIT", "HISTORY_FLAT", "HISTORY_COMPOSITE",
]

ENTERED = "01"   # EF1A status: entered (metro) / boarded (bus)
EXITED = "02"    # EF1A status: exited / alighted
HISTORY_ENTRY, HISTORY_EXIT, HISTORY_FLAT, HISTORY_COMPOSITE = "03", "04", "06", "09"
_HISTORY_TYPES = (HISTORY_ENTRY, HISTORY_EXIT, HISTORY_FLAT, HISTORY_COMPOSITE)


def china_time(now: _dt.datetime) -> _dt.datetime:
    """China time without tzinfo: what card records and outcomes hold (a naive input is taken as China time)."""
    return now.astimezone(CHINA_TZ).replace(tzinfo=None) if now.tzinfo is not None else now


@dataclass(frozen=True)
class Place:
    """Where and by whom a record is written, in the codes the card records hold (hex, upper case).

    ``terminal_id`` is the PSAM's 12-hex terminal ID; ``station`` is 4 hex (metro, ferry), 2 hex (bus)
    or empty (taxi, load).
    """

    city: str
    acceptor: str
    operator: str
    line: str
    station: str
    terminal_id: str
    industry: str
    vehicle: str = ""
    direction: str = "AB"

    @classmethod
    def of(cls, profile: Any, terminal_id: str) -> "Place":
        """The place of a terminal profile (``terminal_sim.profile.TerminalProfile``) with its PSAM ID."""
        return cls(city=profile.city, acceptor=profile.acceptor, operator=profile.operator,
                   line=profile.line or "0000", station=profile.station or "",
                   terminal_id=terminal_id.upper(), industry=profile.industry,
                   vehicle=profile.vehicle or "", direction=profile.direction)

    @property
    def terminal8(self) -> str:
        return "0000" + self.terminal_id

    @property
    def station2(self) -> str:
        """The station as EF1E layout A's 2-byte field."""
        return self.station.rjust(4, "0") if self.station else "0000"


def metro_station8(city: str, line: str, station: str) -> str:
    """The 8-byte metro station field: city ‖ line ‖ station ‖ 0000."""
    return f"{city}{line}{station}0000".upper()


def _moment(when: _dt.datetime) -> str:
    if not isinstance(when, _dt.datetime):
        raise TypeError(f"expected a datetime, got {type(when).__name__}")
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _from_layout_time(text: str | None) -> _dt.datetime | None:
    return None if text is None else _dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _next_serial(previous: str) -> str:
    if previous.isdigit():
        return f"{(int(previous) + 1) % 10 ** 16:016d}"
    return f"{(int(previous, 16) + 1) % 16 ** 16:016X}"


def serial_of_counter(counter_after: int) -> str:
    """A trade serial from a card counter: 16 decimal digits."""
    return f"{counter_after:016d}"


def _is_blank(raw: bytes | None) -> bool:
    return raw is None or not any(raw[:3])


def _base(layout: type, previous: bytes | None) -> dict[str, Any]:
    """The fields to start from: the previous record, or a blank one (trade serial 0)."""
    if _is_blank(previous):
        return layout.blank()
    fields = layout.decode(previous)
    fields["interop_flag"] = "01"
    return fields


# ---------------------------------------------------------------------------------------------------
# EF1A record 01, metro

_METRO_IN = ("in_city", "in_issuer", "in_station", "in_terminal", "in_time")
_METRO_OUT = ("out_city", "out_issuer", "out_station", "out_terminal", "out_time")


def metro_entry(previous: bytes | None, place: Place, when: _dt.datetime, max_fare: int) -> bytes:
    """The metro record written at an entry gate: status 01, entry fields, the network's max fare."""
    blank = EF1AMetro.blank()
    fields = _base(EF1AMetro, previous)
    fields.update({name: blank[name] for name in _METRO_OUT})
    fields.update(
        trade_serial=_next_serial(fields["trade_serial"]), status=ENTERED, in_city=place.city,
        in_issuer=place.acceptor, in_station=metro_station8(place.city, place.line, place.station),
        in_terminal=place.terminal8, in_time=_moment(when), max_fare=max_fare)
    return EF1AMetro.encode(fields)


def metro_exit(previous: bytes | None, place: Place, when: _dt.datetime) -> bytes:
    """The metro record written at an exit gate: status 02 and the exit fields."""
    blank = EF1AMetro.blank()
    fields = _base(EF1AMetro, previous)
    if fields["status"] != ENTERED:
        fields.update({name: blank[name] for name in (*_METRO_IN, "max_fare")})
    fields.update(
        trade_serial=_next_serial(fields["trade_serial"]), status=EXITED, out_city=place.city,
        out_issuer=place.acceptor, out_station=metro_station8(place.city, place.line, place.station),
        out_terminal=place.terminal8, out_time=_moment(when))
    return EF1AMetro.encode(fields)


@dataclass(frozen=True)
class MetroRecord:
    """EF1A record 01 as a terminal reads it on the next tap."""

    trade_serial: str
    status: str
    locked: bool
    in_city: str
    in_acceptor: str
    in_station: str
    in_terminal: str
    in_time: _dt.datetime | None
    out_city: str
    out_acceptor: str
    out_station: str
    out_terminal: str
    out_time: _dt.datetime | None
    max_fare: int

    @property
    def entered(self) -> bool:
        """The card is inside the network (an entry without an exit)."""
        return self.status == ENTERED

    def entry_station_in(self, city: str) -> str | None:
        """The 2-byte entry station code when the card entered in ``city``, else None."""
        if not self.entered or self.in_city != city:
            return None
        return self.in_station[8:12]

    @property
    def entry_terminal_id(self) -> str:
        """The entry gate's 12-hex terminal ID."""
        return self.in_terminal[4:]


def parse_metro(raw: bytes) -> MetroRecord | None:
    """Read EF1A record 01; None for a blank record (never written)."""
    if _is_blank(raw):
        return None
    f = EF1AMetro.decode(raw)
    return MetroRecord(
        trade_serial=f["trade_serial"], status=f["status"], locked=f["lock_flag"] != "00",
        in_city=f["in_city"], in_acceptor=f["in_issuer"], in_station=f["in_station"],
        in_terminal=f["in_terminal"], in_time=_from_layout_time(f["in_time"]),
        out_city=f["out_city"], out_acceptor=f["out_issuer"], out_station=f["out_station"],
        out_terminal=f["out_terminal"], out_time=_from_layout_time(f["out_time"]),
        max_fare=f["max_fare"])


# ---------------------------------------------------------------------------------------------------
# EF1A record 02, bus

_BUS_ON = ("on_city", "on_issuer", "on_operator", "on_line", "on_station", "on_bus_no", "on_terminal",
           "on_time", "mark_amount", "direction")
_BUS_OFF = ("off_city", "off_issuer", "off_operator", "off_line", "off_station", "off_bus_no",
            "off_terminal", "off_time", "fare", "distance")


def bus_boarding(previous: bytes | None, place: Place, when: _dt.datetime, mark_amount: int) -> bytes:
    """The bus record written at boarding: status 01, boarding fields, the mark amount (标注金额)."""
    blank = EF1ABus.blank()
    fields = _base(EF1ABus, previous)
    fields.update({name: blank[name] for name in _BUS_OFF})
    fields.update(
        trade_serial=_next_serial(fields["trade_serial"]), status=ENTERED, on_city=place.city,
        on_issuer=place.acceptor, on_operator=place.operator, on_line=place.line,
        on_station=place.station or "00", on_bus_no=place.vehicle, on_terminal=place.terminal8,
        on_time=_moment(when), mark_amount=mark_amount, direction=place.direction)
    return EF1ABus.encode(fields)


def bus_alighting(previous: bytes | None, place: Place, when: _dt.datetime, fare: int,
                  distance: int = 0) -> bytes:
    """The bus record written at alighting: status 02, alighting fields, the fare and distance."""
    blank = EF1ABus.blank()
    fields = _base(EF1ABus, previous)
    if fields["status"] != ENTERED:
        fields.update({name: blank[name] for name in _BUS_ON})
        fields["direction"] = place.direction
    fields.update(
        trade_serial=_next_serial(fields["trade_serial"]), status=EXITED, off_city=place.city,
        off_issuer=place.acceptor, off_operator=place.operator, off_line=place.line,
        off_station=place.station or "00", off_bus_no=place.vehicle, off_terminal=place.terminal8,
        off_time=_moment(when), fare=fare, distance=distance)
    return EF1ABus.encode(fields)


@dataclass(frozen=True)
class BusRecord:
    """EF1A record 02 as a terminal reads it on the next tap."""

    trade_serial: str
    status: str
    locked: bool
    on_city: str
    on_acceptor: str
    on_operator: str
    on_line: str
    on_station: str
    on_vehicle: str
    on_terminal: str
    on_time: _dt.datetime | None
    mark_amount: int
    direction: str
    off_city: str
    off_station: str
    off_time: _dt.datetime | None
    fare: int
    distance: int

    @property
    def boarded(self) -> bool:
        """The rider tapped on and has not tapped off."""
        return self.status == ENTERED

    @property
    def boarding_terminal_id(self) -> str:
        return self.on_terminal[4:]


def parse_bus(raw: bytes) -> BusRecord | None:
    """Read EF1A record 02; None for a blank record (never written)."""
    if _is_blank(raw):
        return None
    f = EF1ABus.decode(raw)
    return BusRecord(
        trade_serial=f["trade_serial"], status=f["status"], locked=f["lock_flag"] != "00",
        on_city=f["on_city"], on_acceptor=f["on_issuer"], on_operator=f["on_operator"],
        on_line=f["on_line"], on_station=f["on_station"], on_vehicle=f["on_bus_no"],
        on_terminal=f["on_terminal"], on_time=_from_layout_time(f["on_time"]),
        mark_amount=f["mark_amount"], direction=f["direction"], off_city=f["off_city"],
        off_station=f["off_station"], off_time=_from_layout_time(f["off_time"]), fare=f["fare"],
        distance=f["distance"])


# ---------------------------------------------------------------------------------------------------
# EF1E, transit history

def history(layout: str, record_type: str, place: Place, when: _dt.datetime, amount: int,
            balance_after: int, trade_serial: str | None = None) -> bytes:
    """One EF1E record (48 bytes) in layout A or B.

    ``record_type``: 03 entry/boarding, 04 exit/alighting, 06 flat purchase, 09 composite.
    ``balance_after`` is the real balance (negative when overdrawn). Layout B needs ``trade_serial``.
    """
    if record_type not in _HISTORY_TYPES:
        raise ValueError(f"record_type: expected one of {', '.join(_HISTORY_TYPES)}, got {record_type!r}")
    common = {"type": record_type, "terminal_id": place.terminal8, "amount": amount,
              "balance_after": balance_after, "datetime": _moment(when), "city": place.city,
              "institution_id": place.acceptor}
    if layout == "A":
        return EF1EA.encode({**common, "industry": place.industry, "line": place.line,
                             "station": place.station2, "operator": place.operator})
    if layout == "B":
        if trade_serial is None:
            raise ValueError("trade_serial: layout B records carry a trade serial")
        return EF1EB.encode({**common, "trade_serial": trade_serial})
    raise ValueError(f"layout: expected 'A' or 'B', got {layout!r}")


@dataclass(frozen=True)
class HistoryRecord:
    """An EF1E record read back (fields of both layouts; the other layout's are None)."""

    layout: str
    type: str
    terminal: str
    amount: int
    balance_after: int
    datetime: _dt.datetime | None
    city: str
    institution_id: str
    industry: str | None = None
    line: str | None = None
    station: str | None = None
    operator: str | None = None
    trade_serial: str | None = None


def parse_history(raw: bytes, layout: str) -> HistoryRecord:
    """Read an EF1E record in the given layout (the bytes do not say which, D8)."""
    if layout == "A":
        f = EF1EA.decode(raw)
        extra = {"industry": f["industry"], "line": f["line"], "station": f["station"],
                 "operator": f["operator"]}
    elif layout == "B":
        f = EF1EB.decode(raw)
        extra = {"trade_serial": f["trade_serial"]}
    else:
        raise ValueError(f"layout: expected 'A' or 'B', got {layout!r}")
    return HistoryRecord(layout=layout, type=f["type"], terminal=f["terminal_id"],
                         amount=f["amount"], balance_after=f["balance_after"],
                         datetime=_from_layout_time(f["datetime"]), city=f["city"],
                         institution_id=f["institution_id"], **extra)
