"""Fare planning: what this tap costs and which records the card gets. Pure: no APDU, no clock, no journal.

`plan(profile, view, place, now, amount)` takes the terminal profile, what the pre-checks read from the
card (terminal_sim.prechecks.CardView), where the terminal stands (records.Place) and the time of the
tap, and answers a `Plan` (amount, path, records) or a `Refusal`. The card dialogue
(terminal_sim.flows.purchase) then sends exactly what the plan says. Per profile flow
(terminal_sim.profile.FLOWS):

* ``flat`` (bus-flat): the flat fare as a plain purchase, type 06; no CAPP record.
* ``flat-capp`` (bus-flat-capp): the flat fare as a composite purchase, type 09, with one EF1E record of
  type 06 (BJ ``Card_DebitChas_complex_jiaotong``); the EF1A bus record is left alone.
* ``segment`` (bus-segment): no open boarding → board (amount 0; EF1A status 01 with the mark amount
  标注金额 = the fare to the terminus in the direction of travel; EF1E type 03). A fresh boarding on this
  line → alight (the station-pair fare; EF1A status 02 with the alighting fields, fare and distance;
  EF1E type 04). A stale boarding (another line or city, or older than ``stale_boarding.gap_minutes``)
  with ``charge_mark`` → one purchase of the old ride's mark amount that also boards anew (EF1E 03);
  without ``charge_mark`` → board anew for 0.
* ``metro-entry``: amount 0 (still an approved type-09 purchase with a TAC, the counter moves); EF1A
  record 01 status 01 with the entry fields and the network's max fare; EF1E type 03. An entry over an
  entry without exit simply overwrites it (the operator's penalty rules are not modelled).
* ``metro-exit``: the station-pair fare from the entry of this city's network; no usable entry → the
  maximum fare; EF1A status 02 with the exit fields; EF1E type 04.
* ``ferry`` and ``taxi``: the ferry's flat fare, the taxi's meter amount (``amount``, ``--amount``).
  Reading of the issue ("type-06 purchases ... each also appending an EF1E record"): an EF1E record can
  only be written by UPDATE CAPP DATA CACHE, which only exists inside a composite purchase; the
  reference's BJ flow does exactly that for flat fares (composite path, EF1E type 06). So a profile with
  ``transaction_type: "09"`` gets the composite purchase with an EF1E record of type 06 (a flat
  purchase), and one with ``"06"`` the plain purchase, which cannot append EF1E.

Discounts: the fare (``full_fare`` in the outcome) times the percentage of the card's type (EF17 byte
10) for local cards and cards of recognised cities (优惠互认), rounded half up (terminal_sim.fares).
``amount`` replaces the fare of the flat, flat-capp, ferry and taxi flows.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from keysets import TYPE_CAPP_PURCHASE, TYPE_PURCHASE

from . import fares, records
from .prechecks import CardView, Refusal
from .profile import TerminalProfile
from .records import china_time

__all__ = ["Plan", "plan", "AMOUNT_FLOWS"]

AMOUNT_FLOWS = ("flat", "flat-capp", "ferry", "taxi")
"""Flows whose fare an explicit amount (--amount) replaces; the others price by stations."""


@dataclass(frozen=True)
class Plan:
    """One purchase to make: amount, path (plain or composite) and the records that go with it.

    `ef1a` is the full EF1A record to write (record `ef1a_record`), `history_type` the EF1E type
    (None: no EF1E record). `note` becomes the outcome's reason; `context` adds outcome fields
    (entry or boarding data).
    """

    amount: int
    full_fare: int
    capp: bool
    ef1a_record: int | None = None
    ef1a: bytes | None = None
    history_type: str | None = None
    note: str | None = None
    context: dict[str, Any] = field(default_factory=dict)

    @property
    def tx_type(self) -> int:
        return TYPE_CAPP_PURCHASE if self.capp else TYPE_PURCHASE


def _discounted(profile: TerminalProfile, view: CardView, fare: int) -> int:
    percent = fares.discount_percent(profile.discounts, view.card_type, view.card_city, profile.local_city)
    return fares.apply_discount(fare, percent)


def _time_text(when: _dt.datetime | None) -> str | None:
    return None if when is None else when.strftime("%Y%m%d%H%M%S")


def _plan_flat(profile: TerminalProfile, view: CardView, amount: int | None) -> Plan | Refusal:
    if amount is None:
        if profile.fares.flat is None:
            if profile.flow == "taxi":
                return Refusal("taxi fare unknown: the meter amount (--amount) is needed")
            return Refusal(f"flow {profile.flow}: no flat fare in the profile and no --amount")
        fare = profile.fares.flat
    else:
        fare = amount
    capp = profile.transaction_type == "09"
    return Plan(_discounted(profile, view, fare), fare, capp,
                history_type=records.HISTORY_FLAT if capp else None)


def _plan_metro_entry(profile: TerminalProfile, view: CardView, place: records.Place,
                      when: _dt.datetime) -> Plan | Refusal:
    max_fare = profile.fares.max_fare
    if max_fare is None:
        return Refusal("profile has no max_fare for the entry record")
    ef1a = records.metro_entry(view.capp_record, place, when, max_fare)
    return Plan(0, 0, True, 1, ef1a, records.HISTORY_ENTRY)


def _plan_metro_exit(profile: TerminalProfile, view: CardView, place: records.Place,
                     when: _dt.datetime) -> Plan | Refusal:
    previous = records.parse_metro(view.capp_record) if view.capp_record is not None else None
    entry = previous.entry_station_in(profile.city) if previous is not None else None
    try:
        fare = fares.metro_exit_fare(profile.fares, entry, place.station)
    except fares.FareError as exc:
        return Refusal(f"fare: {exc}")
    context: dict[str, Any] = {}
    note = None
    if entry is None or (profile.fares.table is not None and entry not in profile.fares.table):
        note = "no entry in this network: maximum fare"
    if previous is not None and previous.entered:
        context = {"entry_city": previous.in_city, "entry_station": entry or previous.in_station,
                   "entry_terminal": previous.entry_terminal_id, "entry_time": _time_text(previous.in_time)}
    ef1a = records.metro_exit(view.capp_record, place, when)
    return Plan(_discounted(profile, view, fare), fare, True, 1, ef1a, records.HISTORY_EXIT, note, context)


def _plan_segment(profile: TerminalProfile, view: CardView, place: records.Place,
                  when: _dt.datetime) -> Plan | Refusal:
    policy = profile.fares
    station = place.station
    previous = records.parse_bus(view.capp_record) if view.capp_record is not None else None
    try:
        mark = fares.mark_amount(policy, station, profile.direction)
    except fares.FareError as exc:
        return Refusal(f"fare: {exc}")

    def board(amount: int, full: int, note: str | None = None) -> Plan:
        ef1a = records.bus_boarding(view.capp_record, place, when, mark)
        return Plan(amount, full, True, 2, ef1a, records.HISTORY_ENTRY, note)

    if previous is None or not previous.boarded:
        return board(0, 0)
    context = {"entry_city": previous.on_city, "entry_station": previous.on_station,
               "entry_terminal": previous.boarding_terminal_id, "entry_time": _time_text(previous.on_time)}
    same_line = previous.on_line == profile.line and previous.on_city == profile.city
    boarded_at = previous.on_time if previous.on_time is not None else when
    state = fares.boarding_state(boarded_at, when, policy.stale, same_line=same_line)
    if state is fares.Boarding.STALE_CHARGE:
        charged = _discounted(profile, view, previous.mark_amount)
        return dataclasses.replace(
            board(charged, previous.mark_amount,
                  f"stale boarding (line {previous.on_line}, {_time_text(previous.on_time)}): its mark "
                  "amount charged, boarded anew"), context=context)
    if state is fares.Boarding.STALE_IGNORE:
        return dataclasses.replace(board(0, 0, "stale boarding ignored: boarded anew"), context=context)
    note = None
    try:
        fare = fares.alighting_fare(policy, previous.on_station, station)
        hops = fares.distance(policy.table, previous.on_station, station) if policy.table else 0
    except fares.FareError:
        fare, hops = previous.mark_amount, 0
        note = f"boarding station {previous.on_station} unknown here: mark amount charged"
    charged = _discounted(profile, view, fare)
    ef1a = records.bus_alighting(view.capp_record, place, when, charged, hops)
    return Plan(charged, fare, True, 2, ef1a, records.HISTORY_EXIT, note, context)


def plan(profile: TerminalProfile, view: CardView, place: records.Place, now: _dt.datetime,
         amount: int | None = None) -> Plan | Refusal:
    """Price this tap and build its EF1A record (pure: the caller has read the card)."""
    when = china_time(now)
    flow = profile.flow
    if flow in AMOUNT_FLOWS:
        return _plan_flat(profile, view, amount)
    if flow == "metro-entry":
        return _plan_metro_entry(profile, view, place, when)
    if flow == "metro-exit":
        return _plan_metro_exit(profile, view, place, when)
    if flow == "segment":
        return _plan_segment(profile, view, place, when)
    return Refusal(f"flow {flow!r} is not a purchase")
