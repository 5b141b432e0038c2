"""The validator: a terminal profile, a PSAM and a card reader; one `tap()` per card, `run()` in a loop.

`tap()` is one transaction on the card in the field:

    PSAM start-up (once, reference 4.1): SELECT MF, READ EF16 (terminal ID), SELECT DF 8011
    SELECT the T-Union AID (EF15 from the FCI)                    pre-check 1
    refused after a MAC2 failure on its previous tap?             (5.5, SH temp_uid; no APDU)
    a grey record of this card inside the window? → GET TRANSACTION PROVE (5.5, D12)
    READ 17, lists, [block], [EF1A record]                        pre-checks 2-5 (terminal_sim.prechecks)
    price and records (terminal_sim.plan), the purchase (terminal_sim.flows.purchase)

and returns exactly one `Outcome`, journaled. The tap is one `Transaction` (terminal_sim.transaction)
with the purchase's stage table: a card leaving (`apdu.ReaderError`) or the PSAM's link failing
(`PsamLinkError`) or the journal failing (`JournalError`: locked, full, read-only, corrupt) anywhere in
it is caught here, once, and ends it by its stage (`Transaction.journal_failed`: nothing charged before
the grey record, the grey record kept after it). Refusals are outcomes (`declined`), never exceptions;
the only exception is `TerminalError`, when the terminal itself cannot work (no PSAM): an outcome needs
the PSAM's terminal ID.

The PSAM key index comes from the profile (D16: the terminal chooses), so DF 8011's EF17 is not read.

`scan(code)` is one QR-code ride (terminal_sim.qr) on a profile with a ``qr:`` table: the same device
(PSAM terminal ID, journal, list version), the code's checks instead of a card dialogue.

`run()` waits for a card (polling `card_present`) or a code (polling its scanner, terminal_sim.scanner),
serves it, and stops after `taps` outcomes or `idle_timeout` seconds without one. A waiting code is
served first; a card is served once until it leaves the field. The reader wrappers (link policies,
counting, tearing, tapping) are in terminal_sim.links.
"""
from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Callable

from apdu.reader import Reader, ReaderError
from apdu.status import CardError
from keysets.randomness import RandomSource
from ykt_card.clock import Clock, SystemClock
from ykt_card.host.card import CardResponseError, TUnionCard
from ykt_card.host.psam import Psam

from .flows import purchase, purchase_check
from .journal import JournalError, MemoryJournal, OutcomeJournal
from .links import CardLink, PsamLink, PsamLinkError
from .outcome import Outcome
from .plan import AMOUNT_FLOWS, plan
from .prechecks import Lists, Refusal, check_card, select_card
from .profile import TerminalProfile
from .qr import QrGate, qr_fare, ride
from .scanner import Scanner
from .records import china_time
from .recovery import recover
from .transaction import PURCHASE_STAGES, Device, Transaction, card_fields

__all__ = ["Validator", "TerminalError", "start_psam", "PURCHASE_TYPES"]

PURCHASE_TYPES = ("06", "09")


class TerminalError(RuntimeError):
    """The terminal cannot transact at all (PSAM missing or refusing its start-up)."""


def start_psam(link: PsamLink) -> tuple[Psam, bytes]:
    """PSAM start-up (reference 4.1): power, SELECT MF, READ EF16 (the terminal ID), SELECT DF 8011."""
    psam = Psam(link)
    try:
        link.connect()
        psam.select_mf()
        terminal_id = psam.read_terminal_id()
        psam.select_tunion()
    except (PsamLinkError, CardError, CardResponseError) as exc:
        raise TerminalError(f"PSAM start-up failed: {exc}") from None
    return psam, terminal_id


def _checked_amount(profile: TerminalProfile, amount: int | None) -> int | None:
    if amount is None:
        return None
    if profile.flow not in AMOUNT_FLOWS:
        raise ValueError(f"amount: flow {profile.flow} prices by stations; --amount is for "
                         f"{', '.join(AMOUNT_FLOWS)}")
    if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 0xFFFFFFFF:
        raise ValueError(f"amount: expected an integer of fen 0..4294967295, got {amount!r}")
    return amount


class Validator:
    """A validator of one terminal profile (bus, metro, ferry, taxi; not load: see flows.load).

    profile: the terminal profile; `station` moves it along its line (profile.with_station).
    psam_reader, card_reader: Readers (in-process, PC/SC, NFC, or decorators of them).
    journal: a terminal_sim.journal.Journal (grey records outlive the process) or None (in memory).
    clock: the terminal clock (one reading per tap dates the transaction); rng: the terminal's
        randomness (the reference flows draw none: card and PSAM make the randoms; kept so that a
        flow that needs some takes it from here and runs stay repeatable).
    amount: replaces the fare of the flat, flat-capp, ferry and taxi flows (the taxi meter); `tap`
        takes one for a single tap too.
    """

    def __init__(self, profile: TerminalProfile, psam_reader: Reader, card_reader: Reader,
                 journal: OutcomeJournal | None = None, clock: Clock | None = None,
                 rng: Callable[[int], bytes] | None = None, station: str | None = None,
                 amount: int | None = None) -> None:
        if profile.flow == "load":
            raise ValueError(f"profile {profile.name}: a load terminal runs terminal_sim.flows.load, "
                             "not a validator")
        self.amount = _checked_amount(profile, amount)
        if station is not None:
            profile = profile.with_station(station)
        self.profile = profile
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else RandomSource()
        self.journal: OutcomeJournal = journal if journal is not None else MemoryJournal()
        self.lists = Lists.of(profile)
        self.psam_reader = psam_reader
        self.card_reader = card_reader
        self._psam_link = PsamLink(psam_reader)
        self._card_link = CardLink(card_reader)
        self._card = TUnionCard(self._card_link)
        self._device: Device | None = None
        self._qr_gate: QrGate | None = None

    def __repr__(self) -> str:
        return f"Validator({self.profile.name!r}, card={self.card_reader.name!r}, psam={self.psam_reader.name!r})"

    # -- PSAM ------------------------------------------------------------------------------------
    def start(self) -> Device:
        """PSAM start-up (reference 4.1), once, and again after the PSAM's link failed."""
        device = self._device
        if device is not None and not device.psam_failed:
            return device
        first = device is None
        self._device = None
        psam, terminal_id = start_psam(self._psam_link)
        self._device = Device(self.profile, terminal_id, self.journal, psam, self.lists.version)
        if first:                # a new process: the PSAM may still hold the purchase its last tap left torn
            seq = self.journal.last_terminal_seq(terminal_id.hex().upper())
            self._device.psam_session, self._device.psam_session_from_journal = seq, seq is not None
        return self._device

    @property
    def terminal_id(self) -> bytes:
        return self.start().terminal_id

    # -- one transaction -------------------------------------------------------------------------
    def tap(self, amount: int | None = None) -> Outcome:
        """One transaction with the card in the field; the outcome is journaled and returned.

        `amount` (flat, flat-capp, ferry, taxi) replaces the validator's amount for this tap only.
        """
        amount = _checked_amount(self.profile, amount) if amount is not None else self.amount
        device = self.start()
        self.lists.refresh()
        device.list_version = self.lists.version
        now = self.clock.now()
        tx = device.begin(now, PURCHASE_STAGES, type=self.profile.transaction_type)
        try:
            self._card_link.connect()
        except ReaderError as exc:
            return tx.decline(f"no card: {exc}")
        try:
            return self._transact(device, tx, now, amount)
        except ReaderError:
            return tx.card_left()
        except PsamLinkError as exc:
            device.psam_failed = True
            return tx.link_lost(exc)
        except JournalError as exc:
            return tx.journal_failed(exc)
        finally:
            self._card_link.disconnect()

    def _transact(self, device: Device, tx: Transaction, now: _dt.datetime, amount: int | None) -> Outcome:
        card = self._card
        selected = select_card(card)
        if isinstance(selected, Refusal):
            return tx.decline(selected.reason)
        tx.add(**card_fields(selected.card_no, selected.issuer_id), medium=selected.medium)
        flag = self.journal.take_flag(selected.card_no)
        if flag is not None:
            return tx.decline(f"card refused: {flag}")
        tx.at("recovery")
        recovery = recover(card, self.journal, selected.card_no, now, self.profile.recovery_window, PURCHASE_TYPES,
                           purchase_check(device))
        if recovery.settled is not None:
            return recovery.settled
        tx.at("checks")
        view = check_card(card, device.psam, self.profile, self.lists, selected, china_time(now).date())
        if isinstance(view, Refusal):
            return tx.decline(view.reason)
        tx.add(card_type=view.card_type)
        try:
            what = plan(self.profile, view, device.place, now, amount)
        except ValueError as exc:          # a previous EF1A record the layouts cannot read
            what = Refusal(f"card records unusable: {exc}")
        if isinstance(what, Refusal):
            return tx.decline(what.reason)
        return purchase(device, card, tx, view, what, now, recovery.rerun)

    # -- a QR code -------------------------------------------------------------------------------
    def scan(self, code: bytes, amount: int | None = None) -> Outcome:
        """One QR-code ride (terminal_sim.qr): journaled like a tap (but an ``ignored`` repeat, Q10).

        `amount` replaces the fare (default: this validator's amount, else the profile's flat fare). A
        journal that fails declines the ride (nothing charged, the code not remembered), never raises.
        ValueError: the profile takes no QR code, names no root store, or has no fare for a code.
        """
        fare = qr_fare(self.profile, amount if amount is not None else self.amount)
        if self._qr_gate is None:
            self._qr_gate = QrGate(self.profile, self.journal)  # type: ignore[arg-type]
        device = self.start()
        self.lists.refresh()
        device.list_version = self.lists.version
        return ride(device, self._qr_gate, code, self.clock.now(), fare)

    # -- the loop --------------------------------------------------------------------------------
    def run(self, taps: int | None = None, idle_timeout: float | None = None,
            on_outcome: Callable[[Outcome], None] | None = None, poll_interval: float = 0.02,
            scanner: Scanner | None = None) -> int:
        """Serve cards and codes until `taps` outcomes or `idle_timeout` seconds without one; returns the count.

        Each round: a code waiting at `scanner` is scanned; otherwise a card in the field that has not
        been served yet is tapped; otherwise wait. Every outcome goes to `on_outcome`. A card left in the
        field is not charged twice: it is served again only after it left.
        """
        if taps is not None and taps < 0:
            raise ValueError(f"taps: {taps} must be >= 0")
        if idle_timeout is not None and idle_timeout < 0:
            raise ValueError(f"idle_timeout: {idle_timeout} must be >= 0")
        count = 0
        last = time.monotonic()
        served = False              # the card in the field has had its transaction
        while taps is None or count < taps:
            code = scanner.poll() if scanner is not None else None
            if code is not None:
                outcome = self.scan(code)
            elif not self.card_reader.card_present():
                served = False
                outcome = None
            elif not served:
                served = True
                outcome = self.tap()
            else:
                outcome = None
            if outcome is None:
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    return count
                time.sleep(poll_interval)
                continue
            count += 1
            last = time.monotonic()
            if on_outcome is not None:
                on_outcome(outcome)
        return count
