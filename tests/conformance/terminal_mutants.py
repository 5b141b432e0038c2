"""Named mutants of ykt's validator: each one planted defect, made by replacing one function of
terminal_sim (or wrapping it) for the duration of a run.

The terminal suite must catch every one of them with a case whose reason names the defect
(tests/conformance/test_terminal_mutants.py). Each mutant says which shipped terminal profile shows
its defect (the mode the suite runs), which case must fail, and a pattern of the reason.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Patch = tuple[str, str, Callable[[Any], Any]]     # (module, attribute, original -> replacement)


@dataclass(frozen=True)
class ValidatorMutant:
    name: str
    defect: str
    mode: str
    case: str
    reason: str
    patches: tuple[Patch, ...]

    @contextlib.contextmanager
    def applied(self) -> Iterator[None]:
        undo = []
        try:
            for module_name, attr, make in self.patches:
                module = importlib.import_module(module_name)
                owner, _, leaf = attr.rpartition(".")
                target = getattr(module, owner) if owner else module
                original = getattr(target, leaf)
                setattr(target, leaf, make(original))
                undo.append((target, leaf, original))
            yield
        finally:
            for target, leaf, original in reversed(undo):
                setattr(target, leaf, original)


# -- replacements -------------------------------------------------------------------------------------

def _no_expiry(original):
    def date_refusal(public, today):
        refusal = original(public, today)
        return None if refusal is not None and "expired" in refusal else refusal
    return date_refusal


def _no_start_date(original):
    def date_refusal(public, today):
        refusal = original(public, today)
        return None if refusal is not None and "not valid before" in refusal else refusal
    return date_refusal


def _no_interop(original):
    def acceptance_refusal(**kw):
        return original(**{**kw, "interop": "0001"})
    return acceptance_refusal


def _local_needs_interop(original):
    def acceptance_refusal(**kw):
        return original(**{**kw, "local_city": "0000"})
    return acceptance_refusal


def _no_blacklist(original):
    from terminal_sim.lists import BlackList

    def check_card(card, psam, profile, lists, selected, today):
        empty = copy.copy(lists)
        empty.blacklist = BlackList(lists.version, frozenset())
        return original(card, psam, profile, empty, selected, today)
    return check_card


def _no_lock(original):
    def lock_card(card, psam, public, key_index, list_version):
        return f"card {public.card_no} is on black list {list_version}"
    return lock_card


def _ppse_ignored(original):
    def find_application(card):
        from ykt_card.layouts.names import MOT_T_EP
        return card.select(MOT_T_EP), "partial", MOT_T_EP     # the 8-byte name only, as before phone cards
    return find_application


def _ppse_required(original):
    def find_application(card):
        fci, via, name = original(card)
        if via != "ppse":
            from apdu.status import CardError
            raise CardError(0x6A82, "no PPSE entry: this terminal knows no partial selection")
        return fci, via, name
    return find_application


def _accepts_locked(original):
    def select_card(card):
        real_select = card.select

        def select(*args):
            fci = real_select(*args)
            return dataclasses.replace(fci, locked=None) if fci.locked == "temporary" else fci
        card.select = select
        try:
            return original(card)
        finally:
            del card.select
    return select_card


def _ef1a_lock_ignored(original):
    class Card(original):
        def read_capp_record(self, record_id):
            raw = super().read_capp_record(record_id)
            return raw[:5] + b"\x00" + raw[6:]
    return Card


def _app_type_ignored(original):
    return (0x01, 0x02, 0x03)


def _mac2_unchecked(original):
    def verify_mac2(device, tx, debit, balance_after):
        device.psam_session = None
        return tx.settle("approved", tac=debit.tac.hex().upper(), balance_after=balance_after, mac2_verified=True)
    return verify_mac2


def _wrong_tac(original):
    def verify_mac2(device, tx, debit, balance_after):
        wrong = dataclasses.replace(debit, tac=bytes(b ^ 0x5A for b in debit.tac))
        device.psam.verify_mac2(debit.mac2)
        device.psam_session = None
        return tx.settle("approved", tac=wrong.tac.hex().upper(), balance_after=balance_after, mac2_verified=True)
    return verify_mac2


def _counter_off_by_one(original):
    def money_fields(amount, balance_before, card_counter, *args, **kw):
        return original(amount, balance_before, card_counter + 1, *args, **kw)
    return money_fields


def _overcharge(original):
    def plan(*args, **kw):
        what = original(*args, **kw)
        return dataclasses.replace(what, amount=what.amount + 1) if hasattr(what, "amount") else what
    return plan


def _wrong_terminal_seq(original):
    def psam_grant(device, tx, *args):
        grant = original(device, tx, *args)
        if hasattr(grant, "terminal_seq"):
            tx.add(terminal_seq=grant.terminal_seq + 1)
        return grant
    return psam_grant


def _late_stamp(original):
    import datetime as _dt

    def stamp(now):
        return original(now + _dt.timedelta(seconds=1))
    return stamp


def _entry_record_status(original):
    from ykt_card.layouts import EF1AMetro

    def metro_entry(previous, place, when, max_fare):
        fields = EF1AMetro.decode(original(previous, place, when, max_fare))
        return EF1AMetro.encode({**fields, "status": "02"})
    return metro_entry


def _history_balance(original):
    def history(layout, kind, place, when, amount, balance_after, *rest):
        return original(layout, kind, place, when, amount, balance_after + 100, *rest)
    return history


def _no_capp_writes(original):
    def capp_writes(device, card, tx, plan_, init, now):
        return []
    return capp_writes


def _no_discount(original):
    def apply_discount(fare, percent):
        return fare
    return apply_discount


def _mac2_claimed(original):
    def purchase_check(device):
        real = original(device)

        def check(grey, proof):
            verdict = real(grey, proof)
            return dataclasses.replace(verdict, mac2_verified=True) if verdict.accepted else verdict
        return check
    return purchase_check


def _window_ignored(original):
    def within_window(when, now, window):
        return True
    return within_window


def _never_pending(original):
    def latest_pending(journal, card_no, now, window, tx_types):
        return None
    return latest_pending


def _no_prove(original):
    from terminal_sim.recovery import ProveResult

    def prove_grey(card, grey):
        return ProveResult("absent")
    return prove_grey


def _prove_counter(original):
    from apdu.status import CardError
    from terminal_sim.recovery import ProveResult

    def prove_grey(card, grey):              # asks for the counter before the transaction, not after it
        try:
            proof = card.get_transaction_prove(int(grey.type, 16), grey.card_counter)
        except CardError as exc:
            return ProveResult("absent") if exc.sw == 0x9406 else ProveResult("error", reason=f"{exc.sw:04X}")
        return ProveResult("proven", proof)
    return prove_grey


def _forget_grey(original):
    def card_left(self):
        if self.grey is not None:
            return self._end(self.outcome("failed", reason="card removed during DEBIT"))
        return original(self)
    return card_left


def _key_index_reversed(original):
    def initialize(device, card, tx, plan_):
        profile = device.profile
        swapped = dataclasses.replace(profile, key_index=profile.key_index_fallbacks[0],
                                      key_index_fallbacks=(profile.key_index,))
        return original(dataclasses.replace(device, profile=swapped), card, tx, plan_)
    return initialize


def _no_flag(original):
    def flag_card(self, card_no, reason):
        return None
    return flag_card


def _load_no_recovery(original):
    from terminal_sim.recovery import Recovery

    def recover(*args, **kw):
        return Recovery()
    return recover


def _max_fare_ignored(original):
    def metro_exit_fare(policy, entry_station, exit_station):
        if entry_station is None:
            return policy.table.highest if policy.table is not None else 0
        return original(policy, entry_station, exit_station)
    return metro_exit_fare


MUTANTS: tuple[ValidatorMutant, ...] = (
    ValidatorMutant("mac2_unchecked", "skips MAC2 verification (8072 never sent)", "bus-flat", "TU-TERM-050",
                    r"skips MAC2 verification", (("terminal_sim.flows", "_verify_mac2", _mac2_unchecked),)),
    ValidatorMutant("expiry_ignored", "ignores the expiry date", "bus-flat", "TU-TERM-020",
                    r"ignores the expiry date", (("terminal_sim.prechecks", "_date_refusal", _no_expiry),)),
    ValidatorMutant("start_date_ignored", "ignores the not-yet-valid date", "bus-flat", "TU-TERM-021",
                    r"ignores the not-yet-valid date", (("terminal_sim.prechecks", "_date_refusal", _no_start_date),)),
    ValidatorMutant("interop_ignored", "ignores the interoperability flag", "bus-flat", "TU-TERM-022",
                    r"ignores the interoperability flag",
                    (("terminal_sim.prechecks", "acceptance_refusal", _no_interop),)),
    ValidatorMutant("local_needs_interop", "refuses local cards without the interoperability flag", "bus-flat",
                    "TU-TERM-023", r"refuses a local card for its interoperability flag",
                    (("terminal_sim.prechecks", "acceptance_refusal", _local_needs_interop),)),
    ValidatorMutant("blacklist_ignored", "ignores the black list", "bus-flat", "TU-TERM-026",
                    r"ignores the black list", (("terminal_sim.validator", "check_card", _no_blacklist),)),
    ValidatorMutant("blacklisted_not_locked", "refuses a black-listed card without locking it", "bus-flat",
                    "TU-TERM-026", r"does not lock a black-listed card",
                    (("terminal_sim.prechecks", "lock_card", _no_lock),)),
    ValidatorMutant("accepts_locked_card", "accepts a locked card (SELECT 6283)", "bus-flat", "TU-TERM-024",
                    r"accepts a locked card", (("terminal_sim.validator", "select_card", _accepts_locked),)),
    ValidatorMutant("ef1a_lock_ignored", "ignores the EF1A lock flag", "metro-entry", "TU-TERM-027",
                    r"ignores the EF1A lock flag", (("terminal_sim.validator", "TUnionCard", _ef1a_lock_ignored),)),
    ValidatorMutant("app_type_ignored", "accepts a card without electronic purse", "bus-flat", "TU-TERM-029",
                    r"ignores the application type", (("terminal_sim.prechecks", "EP_APP_TYPES", _app_type_ignored),)),
    ValidatorMutant("wrong_tac_stored", "stores a wrong TAC", "bus-flat", "TU-TERM-001",
                    r"TAC [0-9A-F]{8} stored, the card answered", (("terminal_sim.flows", "_verify_mac2", _wrong_tac),)),
    ValidatorMutant("wrong_counter", "records the wrong card counter", "bus-flat", "TU-TERM-001",
                    r"card_counter 1, the card's offline counter before was 0",
                    (("terminal_sim.flows", "money_fields", _counter_off_by_one),)),
    ValidatorMutant("overcharge", "charges one fen more than the fare", "bus-flat", "TU-TERM-001",
                    r"amount 201, expected 200", (("terminal_sim.validator", "plan", _overcharge),)),
    ValidatorMutant("wrong_terminal_seq", "records another PSAM sequence than the DEBIT's", "bus-flat",
                    "TU-TERM-001", r"terminal_seq 2, DEBIT carried 1",
                    (("terminal_sim.flows", "_psam_grant", _wrong_terminal_seq),)),
    ValidatorMutant("wrong_datetime", "records another date-time than the DEBIT's", "bus-flat", "TU-TERM-001",
                    r"datetime \d{14}, DEBIT carried \d{14}", (("terminal_sim.transaction", "stamp", _late_stamp),)),
    ValidatorMutant("wrong_ef1a_record", "writes a wrong EF1A record (entry marked as exit)", "metro-entry",
                    "TU-TERM-060", r"wrong EF1A metro entry record.*status is '02'",
                    (("terminal_sim.records", "metro_entry", _entry_record_status),)),
    ValidatorMutant("wrong_ef1e_balance", "writes a wrong balance into the EF1E record", "bus-flat-capp",
                    "TU-TERM-002", r"EF1E history record does not say what the purchase did.*balance_after",
                    (("terminal_sim.records", "history", _history_balance),)),
    ValidatorMutant("no_capp_writes", "skips the CAPP record writes of a composite purchase", "bus-flat-capp",
                    "TU-TERM-002", r"does not run the composite purchase",
                    (("terminal_sim.flows", "_capp_writes", _no_capp_writes),)),
    ValidatorMutant("wrong_discount", "applies no discount to a student card", "bus-flat", "TU-TERM-080",
                    r"wrong discount", (("terminal_sim.fares", "apply_discount", _no_discount),)),
    ValidatorMutant("charges_twice_after_tear", "charges twice after a tear (grey records never looked up)",
                    "bus-flat", "TU-TERM-041", r"charges twice after a tear",
                    (("terminal_sim.recovery", "latest_pending", _never_pending),)),
    ValidatorMutant("never_proves", "never sends GET TRANSACTION PROVE", "bus-flat", "TU-TERM-041",
                    r"does not ask the card for the proof", (("terminal_sim.recovery", "prove_grey", _no_prove),)),
    ValidatorMutant("wrong_prove_counter", "asks for the proof of the wrong counter", "bus-flat", "TU-TERM-041",
                    r"get_transaction_prove for counter 0, expected 1",
                    (("terminal_sim.recovery", "prove_grey", _prove_counter),)),
    ValidatorMutant("forgets_torn_debit", "records a torn DEBIT as failed (no grey record)", "bus-flat",
                    "TU-TERM-040", r"does not keep a grey record of a torn DEBIT",
                    (("terminal_sim.transaction", "Transaction.card_left", _forget_grey),)),
    ValidatorMutant("mac2_claimed_after_other_card", "claims MAC2 verified after another card", "bus-flat",
                    "TU-TERM-042", r"claims a MAC2 it could not verify",
                    (("terminal_sim.validator", "purchase_check", _mac2_claimed),)),
    ValidatorMutant("window_ignored", "recovers torn purchases after the recovery window", "bus-flat",
                    "TU-TERM-043", r"recovers a torn purchase after its recovery window",
                    (("terminal_sim.recovery", "within_window", _window_ignored),)),
    ValidatorMutant("wrong_key_index", "prefers the other key set on a dual card", "bus-flat", "TU-TERM-005",
                    r"wrong key index", (("terminal_sim.flows", "_initialize", _key_index_reversed),)),
    ValidatorMutant("mac2_failure_forgotten", "does not refuse a card after its MAC2 failure", "bus-flat",
                    "TU-TERM-051", r"does not refuse a card on the tap after its MAC2 failure",
                    (("terminal_sim.journal", "MemoryJournal.flag_card", _no_flag),)),
    ValidatorMutant("load_charges_twice", "loads twice after a torn CREDIT", "load", "TU-TERM-047",
                    r"loads twice after a tear", (("terminal_sim.flows", "recover", _load_no_recovery),)),
    ValidatorMutant("ppse_ignored", "selects the 8-byte T-Union AID only (never reads the PPSE)", "bus-flat",
                    "TU-TERM-090", r"does not find a phone card's extended AID in the PPSE",
                    (("terminal_sim.prechecks", "_find_application", _ppse_ignored),)),
    ValidatorMutant("ppse_required", "refuses cards without a PPSE entry (no partial selection)", "bus-flat",
                    "TU-TERM-091", r"does not select by partial name",
                    (("terminal_sim.prechecks", "_find_application", _ppse_required),)),
    ValidatorMutant("max_fare_ignored", "charges the table's highest fare instead of the maximum fare",
                    "metro-exit", "TU-TERM-061", r"does not charge the maximum fare",
                    (("terminal_sim.fares", "metro_exit_fare", _max_fare_ignored),)),
)


# -- the QR path's mutants (the QR cases, TU-TERM-200..218, against ykt:bus-qr) ------------------------

def _user_sig_unchecked(original):
    def user_sig(ctx):
        return "user signature not checked"
    return user_sig


def _replay_forgotten(original):
    def replay(self, ctx):
        return "code not seen before"
    return replay


QR_MUTANTS: tuple[ValidatorMutant, ...] = (
    ValidatorMutant("user_sig_unchecked", "never checks the phone's signature on a QR code", "bus-qr",
                    "TU-TERM-203", r"does not check the user's signature on the code",
                    (("ykt_qr.verify", "_user_sig", _user_sig_unchecked),)),
    ValidatorMutant("replay_forgotten", "never looks up the QR codes it accepted (replay)", "bus-qr",
                    "TU-TERM-210", r"does not remember the codes it accepted",
                    (("ykt_qr.verify", "Verifier._replay", _replay_forgotten),)),
)
"""Kept apart from MUTANTS: they are judged by the QR cases only (tests/conformance/test_terminal_qr.py)."""
