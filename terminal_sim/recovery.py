"""Tearing and its recovery (reference 5.5, decisions D5 and D12): never a double charge, never a lost record.

How a transaction is kept safe across a card leaving the field, or the terminal being killed:

* Write-ahead grey record (terminal_sim.transaction). Right before DEBIT (or CREDIT FOR LOAD) the
  transaction journals a `torn` outcome with everything a recovery needs (card, INIT counter, amount,
  PSAM sequence or host request, date-time, key version, algorithm). The answer settles it. If the card
  leaves (or the process dies) between the two, the grey record stays pending: the card may or may not
  have been debited.
* When the same card returns within the recovery window (D12, 120 s by default), `recover` asks it
  `GET TRANSACTION PROVE` for the INIT counter + 1 (D5). One routine serves purchases and loads; what
  differs is the transaction types it looks for and who checks the card's proof (`ProofCheck`):
  - the card has the proof (MAC2 ‖ TAC): the money moved. The check decides how sure the terminal can
    be: a purchase's PSAM still holding that session verifies the MAC2 with 8072 (after another card
    the session is gone: `mac2_verified: false`, clearing checks the TAC, reference 4.4); a load's host
    recomputes MAC2 and checks the TAC. Outcome `recovered` (or `failed` with the TAC when the check
    refuses the proof: a wrong MAC2 also refuses the card on its next tap).
  - the card answers 9406 (no such proof): the transaction runs again (`Recovery.rerun`). Its
    INITIALIZE shows the card's counter: still the grey record's counter means the money never moved,
    and the grey record is settled `failed` before the new transaction goes on (`Transaction.void`). A
    counter that moved means the card was used elsewhere since and its proof is gone: the grey record
    stays pending for clearing (the card's own log, EF18, shows what happened) and this tap is new.
  - any other answer proves nothing: the grey record stays pending and the tap goes on.
* A MAC2 that the PSAM refuses (9302) is a `failed` outcome that still carries the TAC (the card was
  debited), and the card is refused on its next tap (SH's `temp_uid`), through the journal's card flags.
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from apdu.status import CardError, describe
from ykt_card.host.card import CardResponseError, Proof, TUnionCard
from ykt_card.status import SW_NO_PROOF

from .journal import JournalEntry, OutcomeJournal
from .outcome import Outcome
from .records import china_time

__all__ = ["within_window", "torn_at", "latest_pending", "ProveResult", "prove_grey", "Verdict",
           "ProofCheck", "Recovery", "recover", "settled_outcome", "MAC2_FLAG_REASON"]

MAC2_FLAG_REASON = "MAC2 failure on the previous tap"


def within_window(when: _dt.datetime, now: _dt.datetime, window: int) -> bool:
    """True when `now` is no earlier than `when` (a naive China time) and at most `window` seconds later."""
    age = (china_time(now) - when).total_seconds()
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

    kind: "proven" (the money moved: `proof` holds MAC2 ‖ TAC), "absent" (9406: no such proof),
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


@dataclass(frozen=True)
class Verdict:
    """The terminal's own check of a card's proof (PSAM 8072 for a purchase, the host for a load).

    `accepted`: the record is `recovered` (False: `failed`, the TAC kept for clearing). `flag`: refuse
    the card on its next tap, with this reason.
    """

    accepted: bool
    mac2_verified: bool
    reason: str
    flag: str | None = None


ProofCheck = Callable[[JournalEntry, Proof], Verdict]
"""Checks a grey record's proof: what differs between recovering a purchase and a load."""


@dataclass(frozen=True)
class Recovery:
    """What `recover` found: `settled` (the grey record proven and settled: this tap's outcome), or
    `rerun` (9406: the grey record to void if the re-run's INITIALIZE shows its counter unchanged), or
    neither (no grey record in the window, or a proof that proves nothing)."""

    settled: Outcome | None = None
    rerun: JournalEntry | None = None


def settled_outcome(grey: Outcome, proof: Proof, verdict: Verdict) -> Outcome:
    """The record that settles a proven grey record: its TAC, and the balance after when accepted."""
    assert grey.amount is not None and grey.balance_before is not None
    tac = proof.tac.hex().upper()
    if not verdict.accepted:
        return grey.replace(status="failed", tac=tac, mac2_verified=verdict.mac2_verified, balance_after=None,
                            reason=verdict.reason)
    sign = 1 if grey.type == "02" else -1
    return grey.replace(status="recovered", tac=tac, mac2_verified=verdict.mac2_verified,
                        balance_after=grey.balance_before + sign * grey.amount, reason=verdict.reason)


def recover(card: TUnionCard, journal: OutcomeJournal, card_no: str, now: _dt.datetime, window: int,
            tx_types: tuple[str, ...], check: ProofCheck) -> Recovery:
    """The one grey-record recovery of a selected card (purchase or load, by `tx_types` and `check`).

    Sends GET TRANSACTION PROVE only when the journal holds a pending grey record of this card inside
    the window; a card leaving raises ReaderError (the grey record stays pending).
    """
    grey = latest_pending(journal, card_no, now, window, tx_types)
    if grey is None:
        return Recovery()
    result = prove_grey(card, grey.outcome)
    if result.kind == "proven":
        assert result.proof is not None
        verdict = check(grey, result.proof)
        out = settled_outcome(grey.outcome, result.proof, verdict)
        journal.resolve(grey.id, out, flag=verdict.flag)
        return Recovery(settled=out)
    if result.kind == "absent":
        return Recovery(rerun=grey)
    return Recovery()
