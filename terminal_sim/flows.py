"""The validator's transaction flows: the purchase of each terminal profile, and the online load.

A flow has two halves. The *plan* prices the ride from the profile and what the pre-checks read (pure:
no APDU, no clock), and says which records the card gets. The *purchase* sends exactly the commands of
the reference, in its order:

    flat (type 06, 5.2)        8050 01 02 → PSAM 8070 → 8054 → PSAM 8072
    composite (type 09, 5.3/5.4) 8050 03 02 → PSAM 8070 → 80DC (EF1A record) → 80DC 00 F0 (EF1E) → 8054 → 8072

Per profile flow (terminal_sim.profile.FLOWS):

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
``amount`` given to the validator replaces the fare of the flat, flat-capp, ferry and taxi flows.

Every function here returns an outcome already journaled (grey record first, settled by the answer to
DEBIT; see terminal_sim.recovery). A card leaving the field surfaces as `apdu.ReaderError` from the card
reader; the PSAM's link failing as `PsamLinkError` (the validator wraps its PSAM reader so that the two
can never be confused).

`load` is the top-up terminal of reference 5.7: SELECT, (VERIFY), INITIALIZE FOR LOAD, the host checks
MAC1 and answers date-time + MAC2 (terminal_sim.load_host), CREDIT FOR LOAD, the host checks the TAC.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from apdu.reader import Reader, ReaderDecorator, ReaderError
from ykt_card.clock import CHINA_TZ, Clock, SystemClock, bcd_datetime
from apdu.status import SW_WRONG_DATA, CardError, describe
from ykt_card.status import SW_INSUFFICIENT_BALANCE, SW_KEY_INDEX_UNSUPPORTED, SW_MAC_INVALID
from keysets import TYPE_CAPP_PURCHASE, TYPE_PURCHASE, Algorithm
from ykt_card.host.card import SFI_CAPP, SFI_HISTORY, CardResponseError, PinRejected, PurchaseInit, TUnionCard
from ykt_card.host.psam import Psam

from . import fares, records
from .journal import JournalEntry
from .load_host import LoadAuthorisation, LoadHost, LoadRefused, LoadRequest
from .outcome import Outcome
from .prechecks import CardView, Refusal, select_card
from .profile import LoadSettings, TerminalProfile
from .recovery import (MAC2_FLAG_REASON, MemoryJournal, OutcomeJournal, latest_pending, prove_grey,
                       recovered_load, void_outcome)

__all__ = ["PsamLinkError", "PsamLink", "CardLink", "Terminal", "china_time", "Plan", "plan", "purchase",
           "load", "AMOUNT_FLOWS", "DEFAULT_LOAD_WINDOW"]

AMOUNT_FLOWS = ("flat", "flat-capp", "ferry", "taxi")
"""Flows whose fare an explicit amount (--amount) replaces; the others price by stations."""
DEFAULT_LOAD_WINDOW = 120


class PsamLinkError(Exception):
    """The PSAM's reader failed (PSAM pulled, daemon gone): a terminal fault, never a card leaving."""


class PsamLink(ReaderDecorator):
    """A Reader decorator for the PSAM slot: its ReaderError becomes PsamLinkError."""

    def connect(self) -> bytes:
        try:
            return self.inner.connect()
        except ReaderError as exc:
            raise PsamLinkError(f"PSAM reader {self.inner.name!r}: {exc}") from None

    def transmit(self, capdu: bytes) -> bytes:
        try:
            return self.inner.transmit(capdu)
        except ReaderError as exc:
            raise PsamLinkError(f"PSAM reader {self.inner.name!r}: {exc}") from None

    def disconnect(self) -> None:
        try:
            self.inner.disconnect()
        except ReaderError:
            pass


class CardLink(ReaderDecorator):
    """The card slot as a terminal sees it: letting go of a card that already left is not an error.

    (A virtual card's power cut reaches the terminal as ReaderError from its transport, as on a real reader.)
    """

    def disconnect(self) -> None:
        try:
            self.inner.disconnect()
        except ReaderError:
            pass


def _sw(exc: CardError) -> str:
    return f"{exc.sw:04X} {describe(exc.sw)}"


def china_time(now: _dt.datetime) -> _dt.datetime:
    """China time without tzinfo: what card records and outcomes hold (a naive input is taken as China time)."""
    return now.astimezone(CHINA_TZ).replace(tzinfo=None) if now.tzinfo is not None else now


def _stamp(now: _dt.datetime) -> str:
    return china_time(now).strftime("%Y%m%d%H%M%S")


# ---------------------------------------------------------------------------------------------------
# The terminal's fixed parts

@dataclass
class Terminal:
    """What every flow needs of the validator: profile, PSAM, terminal ID, journal, list version.

    `psam_session` is the terminal sequence of the PSAM's pending purchase (an 8070 whose 8072 has not
    been answered yet); None when the PSAM holds none the validator knows of (D12).
    """

    profile: TerminalProfile
    psam: Psam
    terminal_id: bytes
    journal: OutcomeJournal
    list_version: str | None = None
    psam_session: int | None = None
    psam_failed: bool = False
    place: records.Place = field(init=False)

    def __post_init__(self) -> None:
        self.place = records.Place.of(self.profile, self.terminal_id.hex().upper())

    @property
    def tx_type(self) -> str:
        return self.profile.transaction_type

    def fields(self, now: _dt.datetime, view: CardView | None = None, card_no: str | None = None,
               issuer_id: str | None = None) -> dict[str, Any]:
        """The outcome fields every record of this terminal carries (plus the card's, when known)."""
        p = self.profile
        out: dict[str, Any] = {
            "type": p.transaction_type, "terminal_id": self.terminal_id.hex().upper(),
            "datetime": _stamp(now), "list_version": self.list_version, "mode": p.mode, "city": p.city,
            "operator": p.operator, "line": p.line, "station": p.station, "vehicle": p.vehicle,
            "direction": p.direction if p.flow == "segment" else None,
        }
        if view is not None:
            out.update(card_no=view.card_no, issuer_id=view.issuer_id, card_type=view.card_type)
        else:
            out.update(card_no=card_no, issuer_id=issuer_id)
        return out

    def record(self, outcome: Outcome) -> Outcome:
        """Journal a plain outcome (declined, or failed before any grey record) and return it."""
        self.journal.append(outcome)
        return outcome


# ---------------------------------------------------------------------------------------------------
# Plans: price and records, no I/O

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


# ---------------------------------------------------------------------------------------------------
# The purchase (5.2 - 5.5)

def _init_refusal(exc: CardError) -> str:
    if exc.sw == SW_INSUFFICIENT_BALANCE:
        return "insufficient balance (INITIALIZE answered 9401)"
    if exc.sw == SW_KEY_INDEX_UNSUPPORTED:
        return "card has no key set for this terminal's key index (9403)"
    return f"INITIALIZE refused: {_sw(exc)}"


def _grey_context(init: PurchaseInit, view: CardView, plan_: Plan, seq: int, mac1: bytes,
                  writes: list[tuple[int, int, bytes]]) -> dict[str, Any]:
    return {
        "serial8": view.serial8.hex().upper(), "issuer_id": view.issuer_id, "counter": init.offline_counter,
        "amount": plan_.amount, "type": f"{plan_.tx_type:02X}", "terminal_seq": seq,
        "mac1": mac1.hex().upper(), "random": init.random.hex().upper(),
        "capp": [[sfi, p1, data.hex().upper()] for sfi, p1, data in writes],
    }


def purchase(term: Terminal, card: TUnionCard, view: CardView, plan_: Plan, now: _dt.datetime,
             rerun: JournalEntry | None = None) -> Outcome:
    """Run one purchase on a pre-checked card; the outcome is journaled.

    `rerun`: a grey record this card could not prove (9406): if INITIALIZE shows its counter unchanged,
    it is settled as failed (the debit never happened) before this purchase goes on.
    """
    base = term.fields(now, view)
    base.update(plan_.context)
    base["full_fare"] = plan_.full_fare
    if plan_.note is not None:
        base["reason"] = plan_.note
    stage = "init"
    torn: Outcome | None = None
    try:
        indexes = (term.profile.key_index, *term.profile.key_index_fallbacks)
        for tried, key_index in enumerate(indexes, start=1):
            try:
                init = card.initialize_purchase(key_index, plan_.amount, term.terminal_id, capp=plan_.capp)
                break
            except CardError as exc:
                if exc.sw == SW_KEY_INDEX_UNSUPPORTED and tried < len(indexes):
                    continue          # D16: this card lacks the preferred key set; try the next one
                return term.record(Outcome(status="declined", **{**base, "reason": _init_refusal(exc)}))
            except CardResponseError as exc:
                return term.record(Outcome(status="declined",
                                           **{**base, "reason": f"INITIALIZE malformed: {exc.reason}"}))
        stage = "initialized"
        if rerun is not None and rerun.outcome.card_counter == init.offline_counter:
            term.journal.resolve(rerun.id, void_outcome(rerun.outcome))
        money = {
            "amount": plan_.amount, "balance_before": init.real_balance,
            "overdraft_limit": init.overdraft_limit, "card_counter": init.offline_counter,
            "key_version": init.key_version, "algorithm": init.algorithm.value,
        }
        base.update(money)
        dt7 = bcd_datetime(now)
        try:
            grant = term.psam.init_purchase(init.random, init.offline_counter, plan_.amount, plan_.tx_type, dt7,
                                            init.key_version, init.algorithm.wire_id, view.serial8,
                                            view.issuer_id8)
        except CardError as exc:
            return term.record(Outcome(status="failed", **{**base, "reason": f"PSAM refused 8070: {_sw(exc)}"}))
        except CardResponseError as exc:
            return term.record(Outcome(status="failed", **{**base, "reason": f"PSAM 8070 malformed: {exc.reason}"}))
        term.psam_session = grant.terminal_seq
        base["terminal_seq"] = grant.terminal_seq
        writes: list[tuple[int, int, bytes]] = []
        if plan_.capp:
            if plan_.ef1a is not None and plan_.ef1a_record is not None:
                writes.append((SFI_CAPP, plan_.ef1a_record, plan_.ef1a))
            if plan_.history_type is not None:
                after = init.real_balance - plan_.amount
                layout = term.profile.ef1e_layout
                serial = records.serial_of_counter(init.offline_counter + 1) if layout == "B" else None
                try:
                    history = records.history(layout, plan_.history_type, term.place, china_time(now),
                                              plan_.amount, after, serial)
                except ValueError as exc:
                    return term.record(Outcome(status="failed", **{
                        **base, "reason": f"EF1E record not buildable: {exc}; nothing charged"}))
                writes.append((SFI_HISTORY, 0x00, history))
            for sfi, p1, data in writes:
                try:
                    card.update_capp_cache(p1, sfi, data)
                except CardError as exc:
                    return term.record(Outcome(status="failed", **{
                        **base, "reason": f"UPDATE CAPP DATA CACHE {sfi:02X} refused: {_sw(exc)}; nothing charged"}))
        # write-ahead: the grey record exists before the DEBIT leaves
        stage = "debit"
        torn = Outcome(status="torn", **{**base, "reason": "no answer to DEBIT: the card may have been "
                                                            "charged (grey record, recover on its return)"})
        torn_id = term.journal.append(torn, _grey_context(init, view, plan_, grant.terminal_seq, grant.mac1, writes))
        try:
            debit = card.debit(grant.terminal_seq, dt7, grant.mac1)
        except CardError as exc:
            return _settle(term, torn_id, Outcome(status="failed", **{
                **base, "reason": f"DEBIT refused: {_sw(exc)}; nothing charged"}))
        except CardResponseError:
            return torn          # an answer of the wrong shape proves nothing: the grey record stands
        stage = "debited"
        approved = dict(base, tac=debit.tac.hex().upper(), balance_after=init.real_balance - plan_.amount)
        try:
            term.psam.verify_mac2(debit.mac2)
        except CardError as exc:
            if exc.sw == SW_MAC_INVALID:
                term.psam_session = None
                return _settle(term, torn_id, Outcome(status="failed", **{
                    **approved, "balance_after": None, "mac2_verified": False,
                    "reason": "MAC2 wrong (PSAM 9302): the card was debited (TAC held); card refused on "
                              "its next tap"}), flag=MAC2_FLAG_REASON)
            return _settle(term, torn_id, Outcome(status="approved", **{
                **approved, "mac2_verified": False, "reason": f"PSAM 8072 answered {_sw(exc)}: MAC2 unverified"}))
        except (PsamLinkError, CardResponseError) as exc:
            term.psam_failed = isinstance(exc, PsamLinkError)
            return _settle(term, torn_id, Outcome(status="approved", **{
                **approved, "mac2_verified": False, "reason": f"MAC2 unverified: {exc}"}))
        term.psam_session = None
        return _settle(term, torn_id, Outcome(status="approved", **{**approved, "mac2_verified": True}))
    except ReaderError:
        if stage == "debit" and torn is not None:
            return torn
        if stage == "init":
            return term.record(Outcome(status="declined", **{
                **base, "reason": "card removed before INITIALIZE answered: nothing charged"}))
        return term.record(Outcome(status="failed", **{
            **base, "reason": "card removed after INITIALIZE, before DEBIT: nothing charged"}))
    except PsamLinkError as exc:
        term.psam_failed = True
        if stage == "debit" and torn is not None:
            return torn
        return term.record(Outcome(status="failed", **{**base, "reason": f"{exc}; nothing charged"}))


def _settle(term: Terminal, torn_id: int, outcome: Outcome, flag: str | None = None) -> Outcome:
    term.journal.resolve(torn_id, outcome, flag=flag)
    return outcome


# ---------------------------------------------------------------------------------------------------
# Load (圈存), reference 5.7

def _load_fields(terminal_id: bytes, now: _dt.datetime) -> dict[str, Any]:
    return {"type": "02", "terminal_id": terminal_id.hex().upper(), "datetime": _stamp(now), "mode": "load"}


def _request_from(context: dict[str, Any], grey: Outcome) -> LoadRequest | None:
    try:
        return LoadRequest(
            issuer_id=bytes.fromhex(context["issuer_id"]), serial8=bytes.fromhex(context["serial8"]),
            key_index=int(context["key_index"]), key_version=int(context["key_version"]),
            algorithm=Algorithm.parse(context["algorithm"]), balance=int(context["balance"]),
            online_counter=int(context["counter"]), random=bytes.fromhex(context["random"]),
            mac1=bytes.fromhex(context["mac1"]), amount=int(context["amount"]),
            terminal_id=bytes.fromhex(grey.terminal_id))
    except (KeyError, TypeError, ValueError):
        return None


def load(card_reader: Reader, host: LoadHost, amount: int, terminal_id: bytes, *,
         journal: OutcomeJournal | None = None, clock: Clock | None = None, key_index: int = 1,
         pin: str | None = None, settings: LoadSettings | None = None,
         window: int = DEFAULT_LOAD_WINDOW) -> Outcome:
    """One online load of `amount` fen onto the card in `card_reader`; the outcome (type 02) is journaled.

    `card_counter` is the online counter before the load; balances are as INITIALIZE FOR LOAD reports
    them (balance plus overdraft limit, ref 1.4: equal to the real balance on cards without overdraft);
    `datetime` is the host's date-time, which the TAC binds. A torn CREDIT leaves a grey record; the same
    card presented again within `window` seconds (same journal) is settled first: a proof (GET
    TRANSACTION PROVE type 02) means the load happened (`recovered`, nothing loaded twice); 9406 with an
    unchanged online counter means it did not (the grey record fails and this load goes on).
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= 0xFFFFFFFF:
        raise ValueError(f"amount: expected a positive integer of fen, got {amount!r}")
    if not isinstance(terminal_id, (bytes, bytearray)) or len(terminal_id) != 6:
        raise ValueError("terminal_id: must be 6 bytes")
    terminal_id = bytes(terminal_id)
    journal = journal if journal is not None else MemoryJournal()
    clock = clock if clock is not None else SystemClock()
    now = clock.now()
    base = _load_fields(terminal_id, now)

    def record(status: str, **fields: Any) -> Outcome:
        out = Outcome(status=status, **{**base, **fields})
        journal.append(out)
        return out

    link = CardLink(card_reader)
    card = TUnionCard(link)
    try:
        card.connect()
    except ReaderError as exc:
        return record("declined", reason=f"no card: {exc}")
    stage = "select"
    torn: Outcome | None = None
    try:
        selected = select_card(card)
        if isinstance(selected, Refusal):
            return record("declined", reason=selected.reason)
        public = selected.public
        who = {"card_no": public.card_no, "issuer_id": public.issuer_id}
        base.update(who)
        rerun: JournalEntry | None = None
        grey = latest_pending(journal, public.card_no, now, window, ("02",))
        if grey is not None:
            result = prove_grey(card, grey.outcome)
            if result.kind == "proven":
                assert result.proof is not None
                req = _request_from(dict(grey.context or {}), grey.outcome)
                when = bytes.fromhex((grey.context or {}).get("host_datetime", "00" * 7))
                mac2_ok = req is not None and host.verify_mac2(req, when, result.proof.mac2)
                tac_ok = req is not None and host.verify_tac(req, when, result.proof.tac)
                out = recovered_load(grey.outcome, result.proof, mac2_ok, tac_ok)
                journal.resolve(grey.id, out)
                return out
            if result.kind == "absent":
                rerun = grey
        if pin is not None:
            try:
                card.verify_pin(pin)
            except PinRejected as exc:
                return record("declined", reason=f"PIN rejected ({exc.sw:04X}, {exc.tries_left} tries left)")
            except CardError as exc:
                return record("declined", reason=f"VERIFY refused: {_sw(exc)}")
        stage = "init"
        try:
            init = card.initialize_load(key_index, amount, terminal_id)
        except CardError as exc:
            why = ("amount refused by the card (zero, or above its maximum balance)" if exc.sw == SW_WRONG_DATA
                   else f"INITIALIZE FOR LOAD refused: {_sw(exc)}")
            return record("declined", reason=why, amount=amount)
        except CardResponseError as exc:
            return record("declined", reason=f"INITIALIZE FOR LOAD malformed: {exc.reason}", amount=amount)
        stage = "initialized"
        if rerun is not None and rerun.outcome.card_counter == init.online_counter:
            journal.resolve(rerun.id, void_outcome(rerun.outcome))
        base.update(amount=amount, balance_before=init.balance, card_counter=init.online_counter,
                    key_version=init.key_version, algorithm=init.algorithm.value)
        if settings is not None:
            refusal = settings.refusal(amount, init.balance)
            if refusal is not None:
                return record("declined", reason=refusal)
        req = LoadRequest(*public.factors, key_index, init.key_version, init.algorithm,
                          init.balance, init.online_counter, init.random, init.mac1, amount, terminal_id)
        try:
            auth: LoadAuthorisation = host.authorise(req)
        except LoadRefused as exc:
            return record("declined", reason=f"host refused the load: {exc.reason}")
        base["datetime"] = auth.host_datetime.hex()
        stage = "credit"
        torn = Outcome(status="torn", **{**base, "reason": "no answer to CREDIT FOR LOAD: the card may have "
                                                            "been loaded (grey record)"})
        context = {"serial8": public.serial8, "issuer_id": public.issuer_id,
                   "key_index": key_index, "key_version": init.key_version, "algorithm": init.algorithm.value,
                   "balance": init.balance, "counter": init.online_counter, "random": init.random.hex().upper(),
                   "mac1": init.mac1.hex().upper(), "amount": amount,
                   "host_datetime": auth.host_datetime.hex().upper(), "torn_at": _stamp(now)}
        torn_id = journal.append(torn, context)
        try:
            tac = card.credit_load(auth.host_datetime, auth.mac2)
        except CardError as exc:
            out = Outcome(status="failed", **{**base, "reason": f"CREDIT FOR LOAD refused: {_sw(exc)}; nothing loaded"})
            journal.resolve(torn_id, out)
            return out
        except CardResponseError:
            return torn          # an answer of the wrong shape proves nothing: the grey record stands
        if host.verify_tac(req, auth.host_datetime, tac):
            out = Outcome(status="approved", **{**base, "tac": tac.hex().upper(), "mac2_verified": True,
                                                "balance_after": init.balance + amount})
        else:
            out = Outcome(status="failed", **{**base, "tac": tac.hex().upper(), "mac2_verified": True,
                                              "reason": "the host finds the card's TAC wrong"})
        journal.resolve(torn_id, out)
        return out
    except ReaderError:
        if stage == "credit" and torn is not None:
            return torn
        if stage in ("select", "init"):
            return record("declined", reason="card removed before the load began: nothing loaded")
        return record("failed", reason="card removed after INITIALIZE FOR LOAD: nothing loaded")
    finally:
        link.disconnect()

