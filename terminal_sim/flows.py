"""The card dialogues of the validator: the purchase (reference 5.2-5.5) and the online load (5.7).

Each sends exactly the commands of the reference, in its order, on the transaction skeleton
(terminal_sim.transaction: base fields, stages, write-ahead grey record, decline/fail/settle):

    flat (type 06, 5.2)          8050 01 02 → PSAM 8070 → 8054 → PSAM 8072
    composite (type 09, 5.3/5.4) 8050 03 02 → PSAM 8070 → 80DC (EF1A record) → 80DC 00 F0 (EF1E) → 8054 → 8072
    load (type 02, 5.7)          SELECT → (VERIFY) → 8050 00 02 → host (MAC1 → date-time, MAC2) → 8052 → host (TAC)

What to charge and which records to write comes from the plan (terminal_sim.plan, pure); the
pre-checks before a purchase from terminal_sim.prechecks. The purchase runs inside the validator's
transaction (terminal_sim.validator), which catches a card leaving (`apdu.ReaderError`), the PSAM's
link failing (`PsamLinkError`) and the journal failing (`JournalError`) in one place and ends the
transaction by its stage table. A card answering DEBIT or CREDIT with 6581 (memory failure: it could not
save the change and undid it) ends it by the stage table too: `failed`, nothing charged. The load
terminal runs its own transaction (`load`).

Grey records of both are recovered by one routine (terminal_sim.recovery.recover); what differs is
the check of the card's proof: `purchase_check` (the PSAM's 8072, when it still holds the session, D12)
and `load_check` (the host recomputes MAC2 and checks the TAC).
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

from apdu.reader import Reader, ReaderError
from apdu.status import SW_MEMORY_FAILURE, SW_WRONG_DATA, CardError, describe
from keysets import Algorithm
from ykt_card.clock import Clock, SystemClock, bcd_datetime
from ykt_card.host.card import (SFI_CAPP, SFI_HISTORY, CardResponseError, Debit, PinRejected, Proof, PurchaseInit,
                                TUnionCard)
from ykt_card.host.psam import PsamPurchase
from ykt_card.status import SW_INSUFFICIENT_BALANCE, SW_KEY_INDEX_UNSUPPORTED, SW_MAC_INVALID

from . import records
from .journal import JournalEntry, JournalError, MemoryJournal, OutcomeJournal
from .links import CardLink, PsamLinkError
from .load_host import LoadAuthorisation, LoadHost, LoadRefused, LoadRequest
from .outcome import Outcome
from .plan import Plan
from .prechecks import CardView, Refusal, Selected, select_card
from .profile import LoadSettings
from .recovery import MAC2_FLAG_REASON, ProofCheck, Verdict, recover
from .records import china_time
from .transaction import LOAD_STAGES, Device, Transaction, card_fields, money_fields, stamp, terminal_fields

__all__ = ["purchase", "purchase_check", "load", "load_check", "DEFAULT_LOAD_WINDOW", "LOAD_TYPES"]

DEFAULT_LOAD_WINDOW = 120
LOAD_TYPES = ("02",)
CappWrite = tuple[int, int, bytes]          # (SFI, P1, data) of one UPDATE CAPP DATA CACHE


def _sw(exc: CardError) -> str:
    return f"{exc.sw:04X} {describe(exc.sw)}"


# ---------------------------------------------------------------------------------------------------
# The purchase (5.2 - 5.5)

def purchase(device: Device, card: TUnionCard, tx: Transaction, view: CardView, plan_: Plan, now: _dt.datetime,
             rerun: JournalEntry | None = None) -> Outcome:
    """Run one planned purchase on a pre-checked card, inside the validator's transaction `tx`.

    `rerun`: a grey record this card could not prove (9406): if INITIALIZE shows its counter unchanged,
    it is settled as failed (the debit never happened) before this purchase goes on.
    """
    tx.add(**plan_.context, full_fare=plan_.full_fare)
    if plan_.note is not None:
        tx.add(reason=plan_.note)
    tx.at("init")
    init = _initialize(device, card, tx, plan_)
    if isinstance(init, Outcome):
        return init
    tx.at("initialized")
    if rerun is not None:
        tx.void(rerun, init.offline_counter)
    tx.add(**money_fields(plan_.amount, init.real_balance, init.offline_counter, init.key_version,
                          init.algorithm.value, init.overdraft_limit))
    dt7 = bcd_datetime(now)
    grant = _psam_grant(device, tx, view, plan_, init, dt7)
    if isinstance(grant, Outcome):
        return grant
    writes = _capp_writes(device, card, tx, plan_, init, now)
    if isinstance(writes, Outcome):
        return writes
    tx.at("debit")
    tx.write_ahead("no answer to DEBIT: the card may have been charged (grey record, recover on its return)",
                   _grey_context(init, view, plan_, grant.terminal_seq, grant.mac1, writes))
    try:
        debit = card.debit(grant.terminal_seq, dt7, grant.mac1)
    except CardError as exc:
        if exc.sw == SW_MEMORY_FAILURE:
            return tx.memory_failure(_sw(exc))     # the card undid the debit: the stage table says so
        return tx.fail(f"DEBIT refused: {_sw(exc)}; nothing charged")
    except CardResponseError:
        return tx.keep_grey()          # an answer of the wrong shape proves nothing: the grey record stands
    tx.at("debited")
    return _verify_mac2(device, tx, debit, init.real_balance - plan_.amount)


def _init_refusal(exc: CardError) -> str:
    if exc.sw == SW_INSUFFICIENT_BALANCE:
        return "insufficient balance (INITIALIZE answered 9401)"
    if exc.sw == SW_KEY_INDEX_UNSUPPORTED:
        return "card has no key set for this terminal's key index (9403)"
    return f"INITIALIZE refused: {_sw(exc)}"


def _initialize(device: Device, card: TUnionCard, tx: Transaction, plan_: Plan) -> PurchaseInit | Outcome:
    """INITIALIZE FOR (CAPP) PURCHASE with the profile's key index, then its fallbacks on 9403 (D16)."""
    indexes = (device.profile.key_index, *device.profile.key_index_fallbacks)
    for tried, key_index in enumerate(indexes, start=1):
        try:
            return card.initialize_purchase(key_index, plan_.amount, device.terminal_id, capp=plan_.capp)
        except CardError as exc:
            if exc.sw == SW_KEY_INDEX_UNSUPPORTED and tried < len(indexes):
                continue          # D16: this card lacks the preferred key set; try the next one
            return tx.decline(_init_refusal(exc))
        except CardResponseError as exc:
            return tx.decline(f"INITIALIZE malformed: {exc.reason}")
    raise AssertionError("the key index loop always returns")


def _psam_grant(device: Device, tx: Transaction, view: CardView, plan_: Plan, init: PurchaseInit,
                dt7: bytes) -> PsamPurchase | Outcome:
    """PSAM 8070: the terminal sequence number and MAC1 of this purchase."""
    assert device.psam is not None
    try:
        grant = device.psam.init_purchase(init.random, init.offline_counter, plan_.amount, plan_.tx_type, dt7,
                                          init.key_version, init.algorithm.wire_id, view.serial8, view.issuer_id8)
    except CardError as exc:
        return tx.fail(f"PSAM refused 8070: {_sw(exc)}; nothing charged")
    except CardResponseError as exc:
        return tx.fail(f"PSAM 8070 malformed: {exc.reason}")
    device.psam_session, device.psam_session_from_journal = grant.terminal_seq, False
    tx.add(terminal_seq=grant.terminal_seq)
    return grant


def _capp_writes(device: Device, card: TUnionCard, tx: Transaction, plan_: Plan, init: PurchaseInit,
                 now: _dt.datetime) -> list[CappWrite] | Outcome:
    """The composite path's UPDATE CAPP DATA CACHE commands: the EF1A record, then the EF1E record."""
    writes: list[CappWrite] = []
    if not plan_.capp:
        return writes
    if plan_.ef1a is not None and plan_.ef1a_record is not None:
        writes.append((SFI_CAPP, plan_.ef1a_record, plan_.ef1a))
    if plan_.history_type is not None:
        layout = device.profile.ef1e_layout
        serial = records.serial_of_counter(init.offline_counter + 1) if layout == "B" else None
        try:
            history = records.history(layout, plan_.history_type, device.place, china_time(now), plan_.amount,
                                      init.real_balance - plan_.amount, serial)
        except ValueError as exc:
            return tx.fail(f"EF1E record not buildable: {exc}; nothing charged")
        writes.append((SFI_HISTORY, 0x00, history))
    for sfi, p1, data in writes:
        try:
            card.update_capp_cache(p1, sfi, data)
        except CardError as exc:
            return tx.fail(f"UPDATE CAPP DATA CACHE {sfi:02X} refused: {_sw(exc)}; nothing charged")
    return writes


def _grey_context(init: PurchaseInit, view: CardView, plan_: Plan, seq: int, mac1: bytes,
                  writes: list[CappWrite]) -> dict[str, Any]:
    return {
        "serial8": view.serial8.hex().upper(), "issuer_id": view.issuer_id, "counter": init.offline_counter,
        "amount": plan_.amount, "type": f"{plan_.tx_type:02X}", "terminal_seq": seq,
        "mac1": mac1.hex().upper(), "random": init.random.hex().upper(),
        "capp": [[sfi, p1, data.hex().upper()] for sfi, p1, data in writes],
    }


def _verify_mac2(device: Device, tx: Transaction, debit: Debit, balance_after: int) -> Outcome:
    """PSAM 8072 with the card's MAC2; the card was debited whatever the PSAM says (the TAC is kept)."""
    assert device.psam is not None
    tac = debit.tac.hex().upper()
    try:
        device.psam.verify_mac2(debit.mac2)
    except CardError as exc:
        if exc.sw == SW_MAC_INVALID:
            device.psam_session = None
            return tx.settle("failed", tac=tac, mac2_verified=False, flag=MAC2_FLAG_REASON,
                             reason="MAC2 wrong (PSAM 9302): the card was debited (TAC held); card refused on "
                                    "its next tap")
        return tx.settle("approved", tac=tac, balance_after=balance_after, mac2_verified=False,
                         reason=f"PSAM 8072 answered {_sw(exc)}: MAC2 unverified")
    except (PsamLinkError, CardResponseError) as exc:
        device.psam_failed = isinstance(exc, PsamLinkError)
        return tx.settle("approved", tac=tac, balance_after=balance_after, mac2_verified=False,
                         reason=f"MAC2 unverified: {exc}")
    device.psam_session = None
    return tx.settle("approved", tac=tac, balance_after=balance_after, mac2_verified=True)


def purchase_check(device: Device) -> ProofCheck:
    """How a validator checks a proven purchase's MAC2: PSAM 8072, if the PSAM still holds that
    purchase's session (no other 8070, no restart since, D12); otherwise clearing checks the TAC."""
    def check(grey: JournalEntry, proof: Proof) -> Verdict:
        holds = device.psam is not None and device.psam_session is not None \
            and device.psam_session == grey.outcome.terminal_seq
        unverified = Verdict(True, False, "recovered with GET TRANSACTION PROVE; the PSAM no longer held the "
                                          "session: MAC2 unverified, clearing checks the TAC")
        if not holds:
            return unverified
        assert device.psam is not None
        inferred = device.psam_session_from_journal
        device.psam_session, device.psam_session_from_journal = None, False
        try:
            device.psam.verify_mac2(proof.mac2)
        except CardError as exc:
            if exc.sw == SW_MAC_INVALID and inferred:
                return Verdict(True, False, "recovered with GET TRANSACTION PROVE; PSAM 8072 answered 9302 for a "
                                            "session known only from the journal (another 8070 may have replaced "
                                            "it): MAC2 unverified, clearing checks the TAC")
            if exc.sw == SW_MAC_INVALID:
                return Verdict(False, False, "recovered proof has a wrong MAC2 (PSAM 9302); card refused on its "
                                             "next tap", flag=MAC2_FLAG_REASON)
            return Verdict(True, False, f"recovered with GET TRANSACTION PROVE; PSAM 8072 answered "
                                        f"{exc.sw:04X}: MAC2 unverified")
        except (PsamLinkError, CardResponseError):
            device.psam_failed = True
            return unverified
        return Verdict(True, True, "recovered with GET TRANSACTION PROVE; MAC2 verified by the PSAM")
    return check


# ---------------------------------------------------------------------------------------------------
# Load (圈存), reference 5.7

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
    now = (clock if clock is not None else SystemClock()).now()
    tx = Transaction(journal, LOAD_STAGES, {**terminal_fields(terminal_id, now, mode="load"), "type": "02"})
    link = CardLink(card_reader)
    card = TUnionCard(link)
    try:
        card.connect()
    except ReaderError as exc:
        return tx.decline(f"no card: {exc}")
    try:
        return _load(tx, card, host, _LoadOrder(amount, terminal_id, key_index, pin, settings), now, window)
    except ReaderError:
        return tx.card_left()
    except JournalError as exc:
        return tx.journal_failed(exc)
    finally:
        link.disconnect()


@dataclass(frozen=True)
class _LoadOrder:
    """What the load terminal was asked to do (amount, terminal, key index, PIN, profile limits)."""

    amount: int
    terminal_id: bytes
    key_index: int
    pin: str | None
    settings: LoadSettings | None


def _load(tx: Transaction, card: TUnionCard, host: LoadHost, order: _LoadOrder, now: _dt.datetime,
          window: int) -> Outcome:
    tx.at("select")
    selected = select_card(card)
    if isinstance(selected, Refusal):
        return tx.decline(selected.reason)
    tx.add(**card_fields(selected.card_no, selected.issuer_id), medium=selected.medium)
    recovery = recover(card, tx.journal, selected.card_no, now, window, LOAD_TYPES, load_check(host))
    if recovery.settled is not None:
        return recovery.settled
    if order.pin is not None:
        refusal = _verify_pin(card, order.pin)
        if refusal is not None:
            return tx.decline(refusal)
    tx.at("init")
    try:
        init = card.initialize_load(order.key_index, order.amount, order.terminal_id)
    except CardError as exc:
        why = ("amount refused by the card (zero, or above its maximum balance)" if exc.sw == SW_WRONG_DATA
               else f"INITIALIZE FOR LOAD refused: {_sw(exc)}")
        return tx.decline(why, amount=order.amount)
    except CardResponseError as exc:
        return tx.decline(f"INITIALIZE FOR LOAD malformed: {exc.reason}", amount=order.amount)
    tx.at("initialized")
    if recovery.rerun is not None:
        tx.void(recovery.rerun, init.online_counter)
    tx.add(**money_fields(order.amount, init.balance, init.online_counter, init.key_version, init.algorithm.value))
    if order.settings is not None:
        refusal = order.settings.refusal(order.amount, init.balance)
        if refusal is not None:
            return tx.decline(refusal)
    req = LoadRequest(*selected.public.factors, order.key_index, init.key_version,
                      init.algorithm, init.balance, init.online_counter, init.random, init.mac1, order.amount,
                      order.terminal_id)
    try:
        auth = host.authorise(req)
    except LoadRefused as exc:
        return tx.decline(f"host refused the load: {exc.reason}")
    return _credit(tx, card, host, selected, req, auth, now)


def _verify_pin(card: TUnionCard, pin: str) -> str | None:
    """VERIFY before a load (cards whose profile wants a PIN, D11); why it was refused, or None."""
    try:
        card.verify_pin(pin)
    except PinRejected as exc:
        return f"PIN rejected ({exc.sw:04X}, {exc.tries_left} tries left)"
    except CardError as exc:
        return f"VERIFY refused: {_sw(exc)}"
    return None


def _credit(tx: Transaction, card: TUnionCard, host: LoadHost, selected: Selected, req: LoadRequest,
            auth: LoadAuthorisation, now: _dt.datetime) -> Outcome:
    """The write-ahead grey record, CREDIT FOR LOAD, and the host's check of the TAC."""
    tx.add(datetime=auth.host_datetime.hex())
    tx.at("credit")
    context = {"serial8": req.serial8.hex().upper(), "issuer_id": selected.issuer_id,
               "key_index": req.key_index, "key_version": req.key_version, "algorithm": req.algorithm.value,
               "balance": req.balance, "counter": req.online_counter, "random": req.random.hex().upper(),
               "mac1": req.mac1.hex().upper(), "amount": req.amount,
               "host_datetime": auth.host_datetime.hex().upper(), "torn_at": stamp(now)}
    tx.write_ahead("no answer to CREDIT FOR LOAD: the card may have been loaded (grey record)", context)
    try:
        tac = card.credit_load(auth.host_datetime, auth.mac2)
    except CardError as exc:
        if exc.sw == SW_MEMORY_FAILURE:
            return tx.memory_failure(_sw(exc))     # the card undid the load
        return tx.fail(f"CREDIT FOR LOAD refused: {_sw(exc)}; nothing loaded")
    except CardResponseError:
        return tx.keep_grey()          # an answer of the wrong shape proves nothing: the grey record stands
    if host.verify_tac(req, auth.host_datetime, tac):
        return tx.settle("approved", tac=tac.hex().upper(), mac2_verified=True,
                         balance_after=req.balance + req.amount)
    return tx.settle("failed", tac=tac.hex().upper(), mac2_verified=True,
                     reason="the host finds the card's TAC wrong")


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


def load_check(host: LoadHost) -> ProofCheck:
    """How a load terminal checks a proven load: the host recomputes the MAC2 it sent and checks the TAC."""
    def check(grey: JournalEntry, proof: Proof) -> Verdict:
        context = dict(grey.context or {})
        req = _request_from(context, grey.outcome)
        when = bytes.fromhex(context.get("host_datetime", "00" * 7))
        mac2_ok = req is not None and host.verify_mac2(req, when, proof.mac2)
        tac_ok = req is not None and host.verify_tac(req, when, proof.tac)
        if not tac_ok:
            return Verdict(False, mac2_ok, "recovered load proof: the host finds the TAC wrong")
        return Verdict(True, mac2_ok, "recovered load with GET TRANSACTION PROVE; TAC verified by the host")
    return check
