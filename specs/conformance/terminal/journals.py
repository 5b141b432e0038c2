"""The suite's own journals: a terminal's outcome journal that fails when a case says so.

A terminal keeps its outcomes, and above all the write-ahead grey record of a purchase or load (the
context a recovery needs, tunion.md 5.5), in a journal. Its storage can fail (full, locked, read-only).
The rule a case checks: a terminal that cannot keep the grey record must not send the money command, and
one that cannot keep the final record must leave the grey record for the card's next tap, never charge
twice. An in-process DUT takes its journal through the seam (`journal`, an
terminal_sim.journal.OutcomeJournal), so a case may give it one the suite controls (`terminal: {journal:
{fails: grey}}`, feature `suite_journal`: ICS `suite_journal`, by default true for `ykt` only, since the
seam lets another terminal keep its own journal).

`fails`: which call fails: `grey` (the write-ahead grey record, an append with its recovery context),
`record` (an outcome journaled without grey record, e.g. a refusal), `resolve` (the outcome that settles
a grey record), `lookup` (the search for the card's pending grey records). `skip`: how many such calls
succeed first; `times`: how many fail (then the storage works again).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from terminal_sim.journal import JournalEntry, JournalError, MemoryJournal
from ykt_files.schema import Model

__all__ = ["JournalParams", "FailingJournal", "journal_params_of"]


class JournalParams(Model):
    """The journal a case gives the terminal (`terminal: {journal: {fails: resolve}}`)."""

    fails: Literal["grey", "record", "resolve", "lookup"]
    skip: int = Field(default=0, ge=0, le=100)
    times: int = Field(default=1, ge=1, le=100)


def journal_params_of(terminal: Mapping[str, Any] | None, source: str, where: str) -> JournalParams | None:
    """The case's `terminal.journal`, validated (None: the DUT keeps its own journal)."""
    from ..schema import CaseError
    from ykt_files.schema import validate
    if not terminal or "journal" not in terminal:
        return None
    params = terminal["journal"]
    if not isinstance(params, Mapping):
        raise CaseError(source, f"{where}.terminal.journal", "a test journal is a mapping: {fails: grey, ...}")
    try:
        return validate(JournalParams, dict(params), source, CaseError)
    except CaseError as exc:
        raise CaseError(source, f"{where}.terminal.journal" + (f".{exc.field}" if exc.field else ""),
                        exc.reason) from None


class FailingJournal(MemoryJournal):
    """A memory journal whose storage fails (JournalError) on the calls `params` names."""

    def __init__(self, params: JournalParams) -> None:
        super().__init__()
        self.params = params
        self.calls = 0
        self.failed = 0

    def _maybe_fail(self, kind: str) -> None:
        if kind != self.params.fails:
            return
        self.calls += 1
        if self.calls > self.params.skip and self.failed < self.params.times:
            self.failed += 1
            raise JournalError(f"suite test journal: the storage failed ({kind})")

    def append(self, outcome: Any, context: Mapping[str, Any] | None = None) -> int:
        self._maybe_fail("grey" if outcome.status == "torn" and context is not None else "record")
        return super().append(outcome, context)

    def resolve(self, torn_id: int, outcome: Any, context: Mapping[str, Any] | None = None, *,
                flag: str | None = None) -> int:
        self._maybe_fail("resolve")
        self._settle(torn_id, outcome, flag)
        return MemoryJournal.append(self, outcome, context)     # the settling record itself is not `record`

    def pending_for(self, card_no: str) -> list[JournalEntry]:
        self._maybe_fail("lookup")
        return super().pending_for(card_no)
