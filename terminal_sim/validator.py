"""The validator: a terminal profile, a PSAM and a card reader; one `tap()` per card, `run()` in a loop.

`tap()` is one transaction on the card in the field:

    PSAM start-up (once, reference 4.1): SELECT MF, READ EF16 (terminal ID), SELECT DF 8011
    SELECT the T-Union AID (EF15 from the FCI)                    pre-check 1
    refused after a MAC2 failure on its previous tap?             (5.5, SH temp_uid; no APDU)
    a grey record of this card inside the window? → GET TRANSACTION PROVE (5.5, D12)
    READ 17, lists, [block], [EF1A record]                        pre-checks 2-5 (terminal_sim.prechecks)
    price and records (terminal_sim.flows.plan), the purchase (terminal_sim.flows.purchase)

and returns exactly one `Outcome`, journaled. Refusals are outcomes (`declined`), never exceptions;
the only exception is `TerminalError`, when the terminal itself cannot work (no PSAM): an outcome needs
the PSAM's terminal ID.

The PSAM key index comes from the profile (D16: the terminal chooses), so DF 8011's EF17 is not read.

`run()` waits for a card (polling `card_present`), taps, waits for the card to leave, and stops after
`taps` outcomes or `idle_timeout` seconds without one.

A card leaving the field is `apdu.ReaderError` from the card reader. A virtual card's power cut inside a
write (`apdu.cardos.CardPowerLoss`) reaches the terminal the same way: the in-process reader turns it
into ReaderError and the vpcd endpoint leaves the slot, so tearing is testable exactly as on a real reader.

Reader decorators for measurement and fault injection live here too (they wrap any Reader):
`CountingReader` (APDUs and bytes per direction, for benchmarks), `TearingReader` (the card leaves at
the Nth command, before or after the card processed it), `TamperingReader` (alters one response, e.g.
flips a MAC2 bit), `TappingReader` (a card that is presented once per transaction, for `run()`).
"""
from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from apdu.reader import Reader, ReaderDecorator, ReaderError
from keysets.randomness import RandomSource
from ykt_card.clock import Clock, SystemClock
from apdu.status import CardError
from ykt_card.host.card import CardResponseError, TUnionCard
from ykt_card.host.psam import Psam

from .flows import AMOUNT_FLOWS, CardLink, PsamLink, PsamLinkError, Terminal, china_time, plan, purchase
from .journal import JournalEntry
from .outcome import Outcome
from .prechecks import Lists, Refusal, check_card, select_card
from .profile import TerminalProfile
from .recovery import (MAC2_FLAG_REASON, MemoryJournal, OutcomeJournal, latest_pending, prove_grey,
                       recovered_purchase)

__all__ = ["Validator", "TerminalError", "CountingReader", "TearingReader", "TamperingReader",
           "TappingReader", "Counts"]

PURCHASE_TYPES = ("06", "09")


class TerminalError(RuntimeError):
    """The terminal cannot transact at all (PSAM missing or refusing its start-up)."""


class Validator:
    """A validator of one terminal profile (bus, metro, ferry, taxi; not load: see flows.load).

    profile: the terminal profile; `station` moves it along its line (profile.with_station).
    psam_reader, card_reader: Readers (in-process, PC/SC, NFC, or decorators of them).
    journal: a terminal_sim.journal.Journal (grey records outlive the process) or None (in memory).
    clock: the terminal clock (one reading per tap dates the transaction); rng: the terminal's
        randomness (the reference flows draw none: card and PSAM make the randoms; kept so that a
        flow that needs some takes it from here and runs stay repeatable).
    amount: replaces the fare of the flat, flat-capp, ferry and taxi flows (the taxi meter).
    """

    def __init__(self, profile: TerminalProfile, psam_reader: Reader, card_reader: Reader,
                 journal: OutcomeJournal | None = None, clock: Clock | None = None,
                 rng: Callable[[int], bytes] | None = None, station: str | None = None,
                 amount: int | None = None) -> None:
        if profile.flow == "load":
            raise ValueError(f"profile {profile.name}: a load terminal runs terminal_sim.flows.load, "
                             "not a validator")
        if amount is not None:
            if profile.flow not in AMOUNT_FLOWS:
                raise ValueError(f"amount: flow {profile.flow} prices by stations; --amount is for "
                                 f"{', '.join(AMOUNT_FLOWS)}")
            if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 0xFFFFFFFF:
                raise ValueError(f"amount: expected an integer of fen 0..4294967295, got {amount!r}")
        if station is not None:
            profile = profile.with_station(station)
        self.profile = profile
        self.amount = amount
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else RandomSource()
        self.journal: OutcomeJournal = journal if journal is not None else MemoryJournal()
        self.lists = Lists.of(profile)
        self.psam_reader = psam_reader
        self.card_reader = card_reader
        self._psam_link = PsamLink(psam_reader)
        self._card_link = CardLink(card_reader)
        self._card = TUnionCard(self._card_link)
        self._terminal: Terminal | None = None

    def __repr__(self) -> str:
        return f"Validator({self.profile.name!r}, card={self.card_reader.name!r}, psam={self.psam_reader.name!r})"

    # -- PSAM ------------------------------------------------------------------------------------
    def start(self) -> Terminal:
        """PSAM start-up (reference 4.1): power, SELECT MF, READ EF16, SELECT DF 8011. Idempotent."""
        term = self._terminal
        if term is not None and not term.psam_failed:
            return term
        psam = Psam(self._psam_link)
        try:
            self._psam_link.connect()
            psam.select_mf()
            terminal_id = psam.read_terminal_id()
            psam.select_tunion()
        except (PsamLinkError, CardError, CardResponseError) as exc:
            self._terminal = None
            raise TerminalError(f"PSAM start-up failed: {exc}") from None
        self._terminal = Terminal(self.profile, psam, terminal_id, self.journal, self.lists.version)
        return self._terminal

    @property
    def terminal_id(self) -> bytes:
        return self.start().terminal_id

    # -- one transaction -------------------------------------------------------------------------
    def tap(self) -> Outcome:
        """One transaction with the card in the field; the outcome is journaled and returned."""
        term = self.start()
        self.lists.refresh()
        term.list_version = self.lists.version
        now = self.clock.now()
        try:
            self._card_link.connect()
        except ReaderError as exc:
            return term.record(Outcome(status="declined", **{**term.fields(now), "reason": f"no card: {exc}"}))
        try:
            return self._transact(term, now)
        except PsamLinkError as exc:
            term.psam_failed = True
            return term.record(Outcome(status="failed", **{**term.fields(now), "reason": f"{exc}; nothing charged"}))
        finally:
            self._card_link.disconnect()

    def _transact(self, term: Terminal, now: _dt.datetime) -> Outcome:
        card = self._card
        stage = "select"
        card_no = issuer_id = None
        try:
            selected = select_card(card)
            if isinstance(selected, Refusal):
                return term.record(Outcome(status="declined", **{**term.fields(now), "reason": selected.reason}))
            card_no, issuer_id = selected.card_no, selected.issuer_id
            who = term.fields(now, card_no=card_no, issuer_id=issuer_id)
            flag = self.journal.take_flag(card_no)
            if flag is not None:
                return term.record(Outcome(status="declined", **{**who, "reason": f"card refused: {flag}"}))
            stage = "recovery"
            rerun: JournalEntry | None = None
            grey = latest_pending(self.journal, card_no, now, self.profile.recovery_window, PURCHASE_TYPES)
            if grey is not None:
                result = prove_grey(card, grey.outcome)
                if result.kind == "proven":
                    assert result.proof is not None
                    holds = term.psam_session is not None and term.psam_session == grey.outcome.terminal_seq
                    try:
                        out, refuse = recovered_purchase(grey.outcome, result.proof, term.psam if holds else None)
                    except (PsamLinkError, CardResponseError):
                        term.psam_failed = True
                        out, refuse = recovered_purchase(grey.outcome, result.proof, None)
                    if holds:
                        term.psam_session = None
                    self.journal.resolve(grey.id, out, flag=MAC2_FLAG_REASON if refuse else None)
                    return out
                if result.kind == "absent":
                    rerun = grey
            stage = "checks"
            view = check_card(card, term.psam, self.profile, self.lists, selected, china_time(now).date())
            if isinstance(view, Refusal):
                return term.record(Outcome(status="declined", **{**who, "reason": view.reason}))
            try:
                what = plan(self.profile, view, term.place, now, self.amount)
            except ValueError as exc:          # a previous EF1A record the layouts cannot read
                what = Refusal(f"card records unusable: {exc}")
            if isinstance(what, Refusal):
                return term.record(Outcome(status="declined", **{**term.fields(now, view), "reason": what.reason}))
        except ReaderError:
            fields = term.fields(now, card_no=card_no, issuer_id=issuer_id)
            why = {"select": "card removed before it answered SELECT",
                   "recovery": "card removed during recovery; its grey record stays pending",
                   "checks": "card removed during the pre-checks: nothing charged"}[stage]
            return term.record(Outcome(status="declined", **{**fields, "reason": why}))
        return purchase(term, card, view, what, now, rerun)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, taps: int | None = None, idle_timeout: float | None = None,
            on_outcome: Callable[[Outcome], None] | None = None, poll_interval: float = 0.02) -> int:
        """Serve cards until `taps` outcomes or `idle_timeout` seconds without one; returns the count.

        Each round: wait for a card (poll card_present), tap, hand the outcome to `on_outcome`, wait
        for the card to leave. A card left in the field is not charged twice.
        """
        if taps is not None and taps < 0:
            raise ValueError(f"taps: {taps} must be >= 0")
        if idle_timeout is not None and idle_timeout < 0:
            raise ValueError(f"idle_timeout: {idle_timeout} must be >= 0")
        count = 0
        last = time.monotonic()

        def idle() -> bool:
            return idle_timeout is not None and time.monotonic() - last >= idle_timeout

        while taps is None or count < taps:
            while not self.card_reader.card_present():
                if idle():
                    return count
                time.sleep(poll_interval)
            outcome = self.tap()
            count += 1
            last = time.monotonic()
            if on_outcome is not None:
                on_outcome(outcome)
            if taps is not None and count >= taps:
                break
            while self.card_reader.card_present():
                if idle():
                    return count
                time.sleep(poll_interval)
        return count


# ---------------------------------------------------------------------------------------------------
# Reader decorators: measurement and fault injection

@dataclass
class Counts:
    """APDUs and bytes through one reader: commands sent, bytes out (C-APDUs), bytes in (R-APDUs)."""

    commands: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    by_ins: dict[int, int] = field(default_factory=dict)


class CountingReader(ReaderDecorator):
    """Counts commands and bytes (per INS too); `reset()` between flows, `counts` to read them."""

    def __init__(self, inner: Reader) -> None:
        super().__init__(inner)
        self.counts = Counts()

    def reset(self) -> Counts:
        """Return the counts so far and start again from zero."""
        counts, self.counts = self.counts, Counts()
        return counts

    def transmit(self, capdu: bytes) -> bytes:
        c = self.counts
        c.commands += 1
        c.bytes_out += len(capdu)
        ins = capdu[1] if len(capdu) > 1 else -1
        c.by_ins[ins] = c.by_ins.get(ins, 0) + 1
        rapdu = self.inner.transmit(capdu)
        c.bytes_in += len(rapdu)
        return rapdu


class TearingReader(ReaderDecorator):
    """The card leaves the field at the `at`-th command (1-based, counted from construction or `arm`), or
    at the first command with instruction byte `at_ins` (e.g. 0x54: DEBIT).

    when="before": the card never receives that command; when="after": the card processes it and the
    answer is lost. Either way the card is powered off (its volatile state is gone) and every command
    raises ReaderError until the card is presented again (`connect`). `fired` says whether it happened.
    """

    def __init__(self, inner: Reader, at: int | None = None, when: str = "before",
                 at_ins: int | None = None) -> None:
        super().__init__(inner)
        self.at: int | None = None
        self.at_ins: int | None = None
        self.when = "before"
        self.sent = 0
        self.fired = False
        self._gone = False
        if at is not None or at_ins is not None:
            self.arm(at, when, at_ins=at_ins)

    def arm(self, at: int | None = None, when: str = "before", *, at_ins: int | None = None) -> None:
        """Tear at command number `at` (from now) or at the next command with INS `at_ins`; once."""
        if (at is None) == (at_ins is None):
            raise ValueError("give either at (a command number) or at_ins (an instruction byte)")
        if at is not None and at < 1:
            raise ValueError(f"at: {at} must be >= 1")
        if at_ins is not None and not 0 <= at_ins <= 0xFF:
            raise ValueError(f"at_ins: {at_ins} is not one byte")
        if when not in ("before", "after"):
            raise ValueError(f"when: expected 'before' or 'after', got {when!r}")
        self.at, self.at_ins, self.when, self.sent, self.fired = at, at_ins, when, 0, False

    def connect(self) -> bytes:
        self._gone = False
        return self.inner.connect()

    def transmit(self, capdu: bytes) -> bytes:
        if self._gone:
            raise ReaderError(f"reader {self.name!r}: card removed")
        self.sent += 1
        hit = (self.at is not None and self.sent == self.at) or (
            self.at_ins is not None and len(capdu) > 1 and capdu[1] == self.at_ins)
        if hit:
            self.fired = True
            self.at = self.at_ins = None
            if self.when == "after":
                try:
                    self.inner.transmit(capdu)
                except ReaderError:
                    pass
            self._leave()
            raise ReaderError(f"reader {self.name!r}: card removed (tear at command {self.sent}, {self.when})")
        return self.inner.transmit(capdu)

    def _leave(self) -> None:
        self._gone = True
        try:
            self.inner.disconnect()
        except ReaderError:
            pass


class TamperingReader(ReaderDecorator):
    """Passes every exchange through, but the response to commands with INS `ins` goes through
    `tamper(rapdu) -> rapdu` (e.g. flip a MAC2 bit in the DEBIT answer). `times` limits how often."""

    def __init__(self, inner: Reader, ins: int, tamper: Callable[[bytes], bytes], times: int | None = 1) -> None:
        super().__init__(inner)
        self.ins = ins
        self.tamper = tamper
        self.times = times
        self.tampered = 0

    def transmit(self, capdu: bytes) -> bytes:
        rapdu = self.inner.transmit(capdu)
        if len(capdu) > 1 and capdu[1] == self.ins and (self.times is None or self.tampered < self.times):
            self.tampered += 1
            return self.tamper(rapdu)
        return rapdu


class TappingReader(ReaderDecorator):
    """A card that is tapped: present until the terminal lets go of it (disconnect), then absent for one
    `card_present()` poll, then presented again. Drives `Validator.run()` with one virtual card.

    `taps_left` (None = endless) limits how many times the card comes back.
    """

    def __init__(self, inner: Reader, taps_left: int | None = None) -> None:
        super().__init__(inner)
        self.taps_left = taps_left
        self._lifted = False

    def disconnect(self) -> None:
        self.inner.disconnect()
        self._lifted = True

    def card_present(self) -> bool:
        if self._lifted:
            self._lifted = False
            if self.taps_left is not None:
                self.taps_left -= 1
            return False
        if self.taps_left is not None and self.taps_left <= 0:
            return False
        return self.inner.card_present()
