"""The transaction skeleton: what every transaction of a terminal shares, whatever it sells or reads.

A transaction (a card purchase, an online load, later a QR-code ride) is a dialogue with a medium that
ends in exactly one journaled `Outcome`. What that takes is the same every time, so it lives here once:

* **Base fields** (`terminal_fields`, `card_fields`, `money_fields`): the terminal's part (terminal ID,
  date-time, black-list version, transit context of the profile), the card's part (card number, issuer,
  card type) and the money part (amount, balance and counter before, key version, algorithm). A
  transaction starts with the terminal's part; each kind adds what it learns as it goes (a QR ride adds
  no card fields and no TAC: nothing here assumes a card).
* **Stages** (`Stage`, `PURCHASE_STAGES`, `LOAD_STAGES`, `QR_STAGES`): a table from where the dialogue stands to the
  status and reason of the outcome when the medium leaves the field or the PSAM's link fails there.
  The dialogues only say `tx.at("initialized")`; the one exception boundary (`card_left`, `link_lost`)
  reads the table. After the write-ahead grey record, every failure leaves that record standing.
* **The write-ahead grey record** (`write_ahead`): right before the command that moves money (DEBIT,
  CREDIT FOR LOAD) leaves, the `torn` outcome is journaled with its recovery context. The answer settles
  it; a card leaving, a killed process or an answer of the wrong shape leaves it pending, for recovery
  on the card's return (terminal_sim.recovery) or for clearing.
* **Endings** (`decline`, `fail`, `settle`): each builds the outcome from the fields so far, journals it
  (settling the grey record when there is one, with an optional card flag; an accepted QR code's ride
  together with the code's replay entry, `seen`) and returns it.
  `void` settles an earlier grey record that a re-run shows never happened.
* **The card's memory failure** (`memory_failure`): a card that cannot save its change answers 6581
  and guarantees it undid it; the stage table says what that makes of the transaction (at DEBIT or
  CREDIT: `failed`, nothing charged or loaded, the grey record settled).
* **A journal that fails** (`journal_failed`, `JournalError` from any journal call): never an exception
  out of a transaction. Before the write-ahead grey record nothing can have been charged: the outcome
  is `failed` ("nothing charged"; a QR ride, which has no grey record and is never `failed`: `declined`,
  its code not remembered), returned although it could not be journaled. After it, the grey
  record stands in the journal (the money command may have moved money, or did): the outcome is the
  grey record, `torn`, and the card's next tap recovers it as any torn purchase; when the card
  answered without moving money (a refusal, 6581) the outcome is `failed` and the grey record, still
  pending, is voided by the next tap's INITIALIZE.

`Device` is the validator's side of every transaction it runs: profile, terminal ID (the PSAM's EF16),
PSAM, journal, black-list version and the PSAM's purchase session (D12).
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ykt_card.host.psam import Psam

from . import records
from .journal import CodeAlreadySeen, JournalEntry, JournalError, OutcomeJournal, SeenCode
from .outcome import Outcome
from .profile import TerminalProfile
from .records import china_time

__all__ = ["Stage", "GREY", "DEBIT", "CREDIT", "PURCHASE_STAGES", "LOAD_STAGES", "QR_STAGES", "Transaction", "Device",
           "stamp", "terminal_fields", "card_fields", "money_fields", "VOID_REASON"]

VOID_REASON = ("torn: the card shows the transaction never happened (counter unchanged); nothing charged, "
               "run again")


def stamp(now: _dt.datetime) -> str:
    """`YYYYMMDDhhmmss` in China time: the outcome's date-time."""
    return china_time(now).strftime("%Y%m%d%H%M%S")


# ---------------------------------------------------------------------------------------------------
# Base fields

def terminal_fields(terminal_id: bytes, now: _dt.datetime, *, profile: TerminalProfile | None = None,
                    list_version: str | None = None, mode: str | None = None) -> dict[str, Any]:
    """The terminal's part of every outcome: ID, date-time, list version and the profile's transit context."""
    out: dict[str, Any] = {"terminal_id": terminal_id.hex().upper(), "datetime": stamp(now),
                           "list_version": list_version}
    if profile is not None:
        out.update(mode=profile.mode, city=profile.city, operator=profile.operator, line=profile.line,
                   station=profile.station, vehicle=profile.vehicle,
                   direction=profile.direction if profile.flow == "segment" else None)
    if mode is not None:
        out["mode"] = mode
    return out


def card_fields(card_no: str, issuer_id: str, card_type: str | None = None) -> dict[str, Any]:
    """The card's part: EF15's card number and issuer ID, EF17's card type once read."""
    out: dict[str, Any] = {"card_no": card_no, "issuer_id": issuer_id}
    if card_type is not None:
        out["card_type"] = card_type
    return out


def money_fields(amount: int, balance_before: int, card_counter: int, key_version: int, algorithm: str,
                 overdraft_limit: int | None = None) -> dict[str, Any]:
    """The money part, from the INITIALIZE answer: what the TAC and clearing bind."""
    return {"amount": amount, "balance_before": balance_before, "overdraft_limit": overdraft_limit,
            "card_counter": card_counter, "key_version": key_version, "algorithm": algorithm}


# ---------------------------------------------------------------------------------------------------
# Stages

@dataclass(frozen=True)
class Stage:
    """What a transaction becomes when its medium leaves (`status`, `reason`) or the PSAM's link fails
    (`psam_status`, `psam_reason`, where ``{link}`` is the link's error) at this stage, and when the card
    answers 6581 (`memory_status`, `memory_reason`, where ``{sw}`` is the status word and its meaning):
    its memory failed and it undid the change it was making. `journal_status`: what the transaction
    becomes when its journal fails before any grey record (nothing charged): ``failed`` for a card, whose
    dialogue had begun; ``declined`` for a QR ride, which is never ``failed`` (Q12).

    `grey`: the money command may have been carried out: the grey record stands (status ``torn``).
    """

    status: str = "torn"
    reason: str = ""
    psam_status: str = "failed"
    psam_reason: str = "{link}; nothing charged"
    grey: bool = False
    memory_status: str = "failed"
    memory_reason: str = "the card could not save its change ({sw}) and undid it; nothing charged"
    journal_status: str = "failed"


GREY = Stage(grey=True)
"""DEBIT or CREDIT has left (or its answer was not proven): only the card's proof can settle it."""
DEBIT = Stage(grey=True, memory_reason="the card could not save DEBIT ({sw}) and undid it; nothing charged")
"""DEBIT has left: its answer settles the grey record; 6581 means the card undid the debit."""
CREDIT = Stage(grey=True, memory_reason="the card could not save CREDIT FOR LOAD ({sw}) and undid it; "
                                        "nothing loaded")
"""CREDIT FOR LOAD has left: as DEBIT, for a load."""

PURCHASE_STAGES: Mapping[str, Stage] = {
    "select": Stage("declined", "card removed before it answered SELECT"),
    "recovery": Stage("declined", "card removed during recovery; its grey record stays pending"),
    "checks": Stage("declined", "card removed during the pre-checks: nothing charged"),
    "init": Stage("declined", "card removed before INITIALIZE answered: nothing charged"),
    "initialized": Stage("failed", "card removed after INITIALIZE, before DEBIT: nothing charged"),
    "debit": DEBIT,
    "debited": GREY,
}
"""A validator's purchase (5.1 pre-checks, 5.2-5.4 purchase, 5.5 recovery)."""

LOAD_STAGES: Mapping[str, Stage] = {
    "select": Stage("declined", "card removed before the load began: nothing loaded"),
    "init": Stage("declined", "card removed before the load began: nothing loaded"),
    "initialized": Stage("failed", "card removed after INITIALIZE FOR LOAD: nothing loaded"),
    "credit": CREDIT,
}
"""An online load (5.7); it has no PSAM."""

QR_STAGES: Mapping[str, Stage] = {
    "scan": Stage("declined", "no code read: nothing charged", journal_status="declined"),
    "verify": Stage("declined", "the code's checks did not finish: nothing charged", journal_status="declined"),
}
"""A QR-code ride (mobile.md §1.5): nothing is written to the medium, so no stage is grey; a journal that
cannot take the ride (or its code) declines it, the code not remembered."""


# ---------------------------------------------------------------------------------------------------
# The transaction

class Transaction:
    """One transaction under way: its outcome fields so far, its stage, and its grey record.

    `record` builds the outcome from the fields (`Outcome`; another medium may bring its own record type
    with the same `status`/`reason` keywords). Every ending journals exactly one record.
    """

    def __init__(self, journal: OutcomeJournal, stages: Mapping[str, Stage], fields: Mapping[str, Any],
                 *, stage: str | None = None, record: Callable[..., Outcome] = Outcome) -> None:
        self.journal = journal
        self.stages = stages
        self.fields: dict[str, Any] = dict(fields)
        self.stage = stage if stage is not None else next(iter(stages))
        self.record = record
        self.grey: Outcome | None = None
        self.grey_id: int | None = None
        self.done: Outcome | None = None

    def __repr__(self) -> str:
        return f"Transaction(stage={self.stage!r}, grey={self.grey_id})"

    # -- progress ---------------------------------------------------------------------------------
    def at(self, stage: str) -> None:
        """The dialogue has reached `stage` (a key of the stage table)."""
        if stage not in self.stages:
            raise ValueError(f"stage: {stage!r} is not one of {', '.join(self.stages)}")
        self.stage = stage

    def add(self, **fields: Any) -> None:
        """Fields learnt on the way (card, money, context); they go into every outcome from now on."""
        self.fields.update(fields)

    def outcome(self, status: str, **changes: Any) -> Outcome:
        """The outcome of this transaction as it stands, with `changes`; not journaled."""
        return self.record(status=status, **{**self.fields, **changes})

    # -- the grey record --------------------------------------------------------------------------
    def write_ahead(self, reason: str, context: Mapping[str, Any]) -> Outcome:
        """Journal the `torn` outcome with its recovery context before the money command leaves.

        A journal that cannot take it raises `JournalError`: the money command must not leave.
        """
        grey = self.outcome("torn", reason=reason)
        self.grey_id = self.journal.append(grey, context)
        self.grey = grey
        return grey

    def void(self, rerun: JournalEntry, counter: int) -> bool:
        """Settle an earlier grey record this card could not prove (9406) when INITIALIZE shows its
        counter unchanged: the money command never happened. A moved counter leaves it pending."""
        if rerun.outcome.card_counter != counter:
            return False
        self.journal.resolve(rerun.id, rerun.outcome.replace(status="failed", reason=VOID_REASON))
        return True

    # -- endings ----------------------------------------------------------------------------------
    def decline(self, reason: str, **changes: Any) -> Outcome:
        """Refused before anything moved: journaled `declined`."""
        return self._end(self.outcome("declined", reason=reason, **changes))

    def fail(self, reason: str, **changes: Any) -> Outcome:
        """An error after the dialogue began: journaled `failed` (settling the grey record, if any)."""
        return self._end(self.outcome("failed", reason=reason, **changes))

    def settle(self, status: str, *, flag: str | None = None, seen: SeenCode | None = None,
               **changes: Any) -> Outcome:
        """The money command answered: the final outcome settles the grey record; `flag` refuses the
        card on its next tap (a MAC2 failure); `seen` is an accepted QR code, journaled with its ride
        in one transaction (the journal must be a RideJournal)."""
        return self._end(self.outcome(status, **changes), flag, seen)

    def keep_grey(self) -> Outcome:
        """The answer proves nothing (wrong shape): the grey record stands and is this tap's outcome."""
        assert self.grey is not None, "keep_grey before write_ahead"
        return self.grey

    def card_left(self) -> Outcome:
        """The medium left the field (ReaderError) at the current stage."""
        stage = self.stages[self.stage]
        if self.grey is not None or stage.grey:
            return self.keep_grey()
        return self._end(self.outcome(stage.status, reason=stage.reason))

    def link_lost(self, link: Exception) -> Outcome:
        """The PSAM's link failed (PsamLinkError) at the current stage."""
        stage = self.stages[self.stage]
        if self.grey is not None or stage.grey:
            return self.keep_grey()
        return self._end(self.outcome(stage.psam_status, reason=stage.psam_reason.format(link=link)))

    def memory_failure(self, sw: str) -> Outcome:
        """The card answered 6581 (`sw`: the status word and its meaning) at the current stage: it could
        not save its change and undid it. Ends the transaction by the stage table, settling the grey
        record (nothing moved)."""
        stage = self.stages[self.stage]
        return self._end(self.outcome(stage.memory_status, reason=stage.memory_reason.format(sw=sw)))

    def journal_failed(self, error: JournalError, intended: Outcome | None = None) -> Outcome:
        """The journal failed (`error`); `intended`: the outcome it could not take, when there was one.

        Never raises: the outcome says what happened to the money (see the module docstring). It is not
        journaled (the journal just failed); the grey record, if written, stands for the next tap.
        """
        what = f"journal failed: {error}"
        if self.grey is None:
            was = f" ({intended.status}: {intended.reason})" if intended is not None and intended.reason else ""
            out = self.outcome(self.stages[self.stage].journal_status, reason=f"{what}; nothing charged{was}")
        elif intended is not None and not intended.moved_money:
            out = intended.replace(reason=f"{intended.reason}; {what}; its grey record stays pending until the "
                                          "card's next tap")
        else:
            out = self.grey.replace(reason=f"{what} after the money command; the grey record stands and is "
                                           "recovered on the card's next tap")
        self.done = out
        return out

    def _end(self, outcome: Outcome, flag: str | None = None, seen: SeenCode | None = None) -> Outcome:
        try:
            if seen is not None:
                assert self.grey_id is None, "a QR ride has no grey record"
                self.journal.append_ride(outcome, seen)  # type: ignore[attr-defined]
            elif self.grey_id is not None:
                self.journal.resolve(self.grey_id, outcome, flag=flag)
            else:
                self.journal.append(outcome)
                if flag is not None and outcome.card_no is not None:
                    self.journal.flag_card(outcome.card_no, flag)
        except CodeAlreadySeen:
            raise               # not a failing journal: the ride's own refusal (terminal_sim.qr declines it)
        except JournalError as exc:
            return self.journal_failed(exc, outcome)
        self.done = outcome
        return outcome


# ---------------------------------------------------------------------------------------------------
# The validator's side of its transactions

@dataclass
class Device:
    """What every transaction of one validator shares: profile, PSAM, terminal ID, journal, list version.

    `psam_session` is the terminal sequence of the PSAM's pending purchase (an 8070 whose 8072 has not
    been answered yet); None when the PSAM holds none the validator knows of (D12). A validator started
    in a new process takes it from its journal (the newest terminal sequence it journaled): a PSAM keeps
    its pending purchase across restarts, so a torn purchase can still have its MAC2 verified;
    `psam_session_from_journal` says the session is only inferred (an 8070 this terminal did not live to
    journal may have replaced it). `psam_failed` makes the validator start its PSAM again before the
    next tap.
    """

    profile: TerminalProfile
    terminal_id: bytes
    journal: OutcomeJournal
    psam: Psam | None = None
    list_version: str | None = None
    psam_session: int | None = None
    psam_session_from_journal: bool = False
    psam_failed: bool = False
    place: records.Place = field(init=False)

    def __post_init__(self) -> None:
        self.place = records.Place.of(self.profile, self.terminal_id.hex().upper())

    def fields(self, now: _dt.datetime) -> dict[str, Any]:
        """The terminal's part of an outcome dated `now`."""
        return terminal_fields(self.terminal_id, now, profile=self.profile, list_version=self.list_version)

    def begin(self, now: _dt.datetime, stages: Mapping[str, Stage], **fields: Any) -> Transaction:
        """A transaction of this device dated `now` (one clock reading per transaction)."""
        return Transaction(self.journal, stages, {**self.fields(now), **fields})
