"""Tearing and its recovery (reference 5.5, decisions D5 and D12): never a double charge, never a lost record.

How a purchase is kept safe across a card leaving the field, or the validator being killed:

* Write-ahead grey record. Right before DEBIT the flow journals a `torn` outcome with everything a
  recovery needs (card, INIT counter, amount, PSAM sequence, date-time, key version, algorithm). The
  answer to DEBIT settles it (`resolve`) with the final outcome. If the card leaves (or the process
  dies) between the two, the grey record stays pending: the card may or may not have been debited.
* When the same card returns within the recovery window (D12, 120 s by default), the validator asks it
  `GET TRANSACTION PROVE` for the INIT counter + 1 (D5):
  - the card has the proof (MAC2 ‖ TAC): the debit happened. If the PSAM still holds that purchase's
    session (no other 8070, no reset since), 8072 verifies the MAC2 and the record says
    `mac2_verified: true`; otherwise the record keeps the card's proof with `mac2_verified: false`, and
    clearing checks the TAC (the issuer recomputes it, reference 4.4). Outcome `recovered`.
  - the card answers 9406 (no such proof): the validator runs the purchase again. Its INITIALIZE
    shows the card's counter: still the grey record's counter means the debit never happened, and the
    grey record is settled as `failed` (nothing charged) before the new purchase goes on. A counter
    that moved means the card was used elsewhere since and its proof is gone: the grey record stays
    pending for clearing (the card's own log, EF18, shows what happened) and this tap is a new ride.
* A MAC2 that the PSAM refuses (9302) is a `failed` outcome that still carries the TAC (the card was
  debited), and the card is refused on its next tap (SH's `temp_uid`), through the journal's card flags.

`MemoryJournal` gives a validator without `--journal` the same semantics in memory (grey records and
card flags only; other outcomes are not kept), so the flows have one code path.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ykt_card.clock import CHINA_TZ
from apdu.status import CardError, describe
from ykt_card.status import SW_MAC_INVALID, SW_NO_PROOF
from ykt_card.host.card import CardResponseError, Proof, TUnionCard
from ykt_card.host.psam import Psam

from .journal import JournalEntry, JournalError
from .outcome import Outcome

__all__ = ["OutcomeJournal", "MemoryJournal", "within_window", "torn_at", "latest_pending", "ProveResult",
           "prove_grey", "recovered_purchase", "recovered_load", "void_outcome", "MAC2_FLAG_REASON"]

MAC2_FLAG_REASON = "MAC2 failure on the previous tap"


class OutcomeJournal(Protocol):
    """What the flows need of a journal: terminal_sim.journal.Journal, or MemoryJournal."""

    def append(self, outcome: Outcome, context: Mapping[str, Any] | None = None) -> int: ...

    def resolve(self, torn_id: int, outcome: Outcome, context: Mapping[str, Any] | None = None, *,
                flag: str | None = None) -> int: ...

    def pending_for(self, card_no: str) -> list[JournalEntry]: ...

    def flag_card(self, card_no: str, reason: str) -> None: ...

    def take_flag(self, card_no: str) -> str | None: ...


class MemoryJournal:
    """The journal of a validator run without a journal file: pending grey records and card flags.

    Settled records and plain outcomes are not kept (a long benchmark run stays small); ids still grow.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, JournalEntry] = {}
        self._flags: dict[str, str] = {}

    def append(self, outcome: Outcome, context: Mapping[str, Any] | None = None) -> int:
        ident = next(self._ids)
        if outcome.status == "torn":
            if context is None:
                raise ValueError("context: a torn outcome needs its recovery context")
            self._pending[ident] = JournalEntry(ident, outcome, dict(context))
        return ident

    def resolve(self, torn_id: int, outcome: Outcome, context: Mapping[str, Any] | None = None, *,
                flag: str | None = None) -> int:
        entry = self._pending.get(torn_id)
        if entry is None:
            raise JournalError(f"record {torn_id}: not a pending torn record")
        if entry.outcome.card_no != outcome.card_no:
            raise JournalError(f"record {torn_id}: belongs to card {entry.outcome.card_no}, the outcome to "
                               f"card {outcome.card_no}")
        del self._pending[torn_id]
        if flag is not None:
            self.flag_card(outcome.card_no, flag)
        return self.append(outcome, context)

    def pending_for(self, card_no: str) -> list[JournalEntry]:
        return [e for e in self._pending.values() if e.outcome.card_no == card_no]

    def pending(self) -> list[JournalEntry]:
        return list(self._pending.values())

    def flag_card(self, card_no: str, reason: str) -> None:
        self._flags[card_no] = reason

    def take_flag(self, card_no: str) -> str | None:
        return self._flags.pop(card_no, None)


def within_window(when: _dt.datetime, now: _dt.datetime, window: int) -> bool:
    """True when `now` is no earlier than `when` (a naive China time) and at most `window` seconds later."""
    local = now.astimezone(CHINA_TZ).replace(tzinfo=None) if now.tzinfo is not None else now
    age = (local - when).total_seconds()
    return 0 <= age <= window


def torn_at(entry: JournalEntry) -> _dt.datetime:
    """When the terminal kept the grey record, by its own clock: the context's `torn_at` when present
    (a load is dated by the host's clock), else the record's date-time."""
    stamp = (entry.context or {}).get("torn_at")
    if isinstance(stamp, str):
        try:
            return _dt.datetime.strptime(stamp, "%Y%m%d%H%M%S")
        except ValueError:
            pass
    return entry.outcome.moment


def latest_pending(journal: OutcomeJournal, card_no: str, now: _dt.datetime, window: int,
                   tx_types: tuple[str, ...]) -> JournalEntry | None:
    """The newest pending grey record of this card, of one of `tx_types`, inside the window."""
    for entry in reversed(journal.pending_for(card_no)):
        if entry.outcome.type in tx_types and within_window(torn_at(entry), now, window):
            return entry
    return None


@dataclass(frozen=True)
class ProveResult:
    """What GET TRANSACTION PROVE said about a grey record.

    kind: "proven" (the debit happened: `proof` holds MAC2 ‖ TAC), "absent" (9406: no such proof),
    "error" (another refusal: `reason`).
    """

    kind: Literal["proven", "absent", "error"]
    proof: Proof | None = None
    reason: str | None = None


def prove_grey(card: TUnionCard, grey: Outcome) -> ProveResult:
    """`80 5A 00 type 02 (counter + 1) 08` for a grey record. A card leaving raises ReaderError."""
    assert grey.card_counter is not None
    try:
        proof = card.get_transaction_prove(int(grey.type, 16), grey.card_counter + 1)
    except CardError as exc:
        if exc.sw == SW_NO_PROOF:
            return ProveResult("absent")
        return ProveResult("error", reason=f"GET TRANSACTION PROVE refused: {exc.sw:04X} {describe(exc.sw)}")
    except CardResponseError as exc:
        return ProveResult("error", reason=f"GET TRANSACTION PROVE malformed: {exc.reason}")
    return ProveResult("proven", proof)


def recovered_purchase(grey: Outcome, proof: Proof, psam: Psam | None) -> tuple[Outcome, bool]:
    """The settled record of a proven purchase; the flag says the MAC2 was refused (card to be refused).

    `psam` is given only when it still holds the purchase's session: then 8072 checks the card's MAC2.
    """
    assert grey.amount is not None and grey.balance_before is not None
    tac = proof.tac.hex().upper()
    after = grey.balance_before - grey.amount
    if psam is None:
        return dataclasses.replace(
            grey, status="recovered", tac=tac, mac2_verified=False, balance_after=after,
            reason="recovered with GET TRANSACTION PROVE; the PSAM no longer held the session: "
                   "MAC2 unverified, clearing checks the TAC"), False
    try:
        psam.verify_mac2(proof.mac2)
    except CardError as exc:
        if exc.sw == SW_MAC_INVALID:
            return dataclasses.replace(
                grey, status="failed", tac=tac, mac2_verified=False, balance_after=None,
                reason="recovered proof has a wrong MAC2 (PSAM 9302); card refused on its next tap"), True
        return dataclasses.replace(
            grey, status="recovered", tac=tac, mac2_verified=False, balance_after=after,
            reason=f"recovered with GET TRANSACTION PROVE; PSAM 8072 answered {exc.sw:04X}: MAC2 unverified"), False
    return dataclasses.replace(
        grey, status="recovered", tac=tac, mac2_verified=True, balance_after=after,
        reason="recovered with GET TRANSACTION PROVE; MAC2 verified by the PSAM"), False


def recovered_load(grey: Outcome, proof: Proof, mac2_matches: bool, tac_ok: bool) -> Outcome:
    """The settled record of a proven load (the host checked the card's TAC)."""
    assert grey.amount is not None and grey.balance_before is not None
    tac = proof.tac.hex().upper()
    if not tac_ok:
        return dataclasses.replace(grey, status="failed", tac=tac, mac2_verified=mac2_matches,
                                   reason="recovered load proof: the host finds the TAC wrong")
    return dataclasses.replace(grey, status="recovered", tac=tac, mac2_verified=mac2_matches,
                               balance_after=grey.balance_before + grey.amount,
                               reason="recovered load with GET TRANSACTION PROVE; TAC verified by the host")


def void_outcome(grey: Outcome) -> Outcome:
    """A grey record whose debit never happened: failed, nothing charged (the purchase runs again)."""
    return dataclasses.replace(grey, status="failed", reason="torn: the card shows the transaction never "
                               "happened (counter unchanged); nothing charged, run again")
