"""The terminal seam (design.md "Terminal"): how anything outside terminal_sim drives a terminal.

The conformance suite (its ``python:`` DUT), the command line and the benchmarks need one thing of a
terminal: give it a profile and two readers, present a card, get the outcome. That is this seam::

    make_terminal(profile, psam_reader, card_reader, journal=None, clock=None, rng=None) -> Terminal
    Terminal.tap(amount: int | None = None) -> Outcome      one transaction with the card in the field

* ``profile``: a `TerminalProfile` (terminal_sim.profile.load_terminal_profile); its flow picks the
  terminal: a validator (bus, metro, ferry, taxi flows) or a load terminal (flow ``load``, whose host
  holds the profile's ``load.keyset``).
* ``psam_reader``, ``card_reader``: `apdu.reader.Reader` objects (in-process, PC/SC, NFC, or decorators
  from terminal_sim.links). The terminal ID is the PSAM's (EF16), read at start-up.
* ``journal``: an `OutcomeJournal` (terminal_sim.journal.Journal for a file that outlives the process)
  or None (in memory; grey records still recover within the run).
* ``clock``: the terminal's `Clock` (read once per tap; a load's host reads it once more); ``rng``: the
  terminal's randomness (`keysets.randomness.RandomSource`), for repeatable runs.
* ``tap(amount)``: ``amount`` in fen replaces the fare of the flat, flat-capp, ferry and taxi flows for
  this tap, and is the amount to load on a load terminal (required there). The outcome is journaled
  before it is returned; a refusal is an outcome (``declined``), never an exception. `TerminalError`
  means the terminal cannot work at all (no PSAM); `ValueError` a bad argument.

A vendor's terminal under test implements the same `Terminal` protocol (a factory with the signature
of `make_terminal`, named as ``python:MODULE:FACTORY``).

Every terminal here runs its transactions on the skeleton of terminal_sim.transaction (base fields,
stage table, write-ahead grey record, decline/fail/settle) and recovers grey records with the one
routine of terminal_sim.recovery. A second medium plugs in the same way: the QR-code ride (MOT code,
terminal_sim.qr) is a transaction kind with its own stage table (``scan``, ``verify``), built on
`Device.begin` with the terminal's fields and the code's fields (mobile.md Q12: ``medium: "qr"``, no
card fields, no TAC), ending with `decline`/`settle`; it has no grey record (nothing is written to the
medium). A validator of a profile with a ``qr:`` table answers ``scan(code, amount=None) -> Outcome``
beside ``tap`` (`CodeTerminal`); its loop polls a scanner (terminal_sim.scanner) between card polls.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from apdu.reader import Reader
from keysets import KeySet
from keysets.randomness import RandomSource
from ykt_card.clock import Clock, SystemClock

from .flows import load
from .journal import MemoryJournal, OutcomeJournal
from .links import PsamLink
from .load_host import LoadHost
from .outcome import Outcome
from .profile import TerminalProfile
from .validator import Validator, start_psam

__all__ = ["Terminal", "CodeTerminal", "TerminalFactory", "make_terminal", "LoadTerminal"]


class Terminal(Protocol):
    """A terminal behind the seam: one transaction per `tap`, its outcome journaled and returned."""

    def tap(self, amount: int | None = None) -> Outcome: ...


class CodeTerminal(Terminal, Protocol):
    """A terminal that also scans MOT QR codes: one ride per `scan`, journaled (but a debounced repeat)."""

    def scan(self, code: bytes, amount: int | None = None) -> Outcome: ...


TerminalFactory = Callable[..., Terminal]
"""The signature of `make_terminal`: (profile, psam_reader, card_reader, journal, clock, rng) -> Terminal."""


class LoadTerminal:
    """A load (圈存) terminal of a ``load`` profile: the terminal ID from its PSAM, a host holding the
    profile's key set, the profile's key index, amounts, maximum balance and recovery window."""

    def __init__(self, profile: TerminalProfile, psam_reader: Reader, card_reader: Reader,
                 journal: OutcomeJournal | None = None, clock: Clock | None = None,
                 rng: Callable[[int], bytes] | None = None) -> None:
        if profile.flow != "load" or profile.load is None:
            raise ValueError(f"profile {profile.name}: flow {profile.flow} is not a load terminal")
        self.profile = profile
        self.psam_reader = psam_reader
        self.card_reader = card_reader
        self.journal: OutcomeJournal = journal if journal is not None else MemoryJournal()
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else RandomSource()
        self.host = LoadHost(KeySet.load(profile.load.keyset), clock=self.clock)
        self._terminal_id: bytes | None = None

    def __repr__(self) -> str:
        return f"LoadTerminal({self.profile.name!r}, card={self.card_reader.name!r})"

    @property
    def terminal_id(self) -> bytes:
        """The PSAM's terminal ID (PSAM start-up, once)."""
        if self._terminal_id is None:
            _, self._terminal_id = start_psam(PsamLink(self.psam_reader))
        return self._terminal_id

    def tap(self, amount: int | None = None) -> Outcome:
        """Load `amount` fen onto the card in the field (reference 5.7)."""
        if amount is None:
            raise ValueError("amount: a load terminal needs the amount to load")
        assert self.profile.load is not None
        return load(self.card_reader, self.host, amount, self.terminal_id, journal=self.journal, clock=self.clock,
                    key_index=self.profile.key_index, settings=self.profile.load,
                    window=self.profile.recovery_window)


def make_terminal(profile: TerminalProfile, psam_reader: Reader, card_reader: Reader,
                  journal: OutcomeJournal | None = None, clock: Clock | None = None,
                  rng: Callable[[int], bytes] | None = None) -> Terminal:
    """The terminal of this profile on these readers (see the module docstring for the contract)."""
    if profile.flow == "load":
        return LoadTerminal(profile, psam_reader, card_reader, journal, clock, rng)
    return Validator(profile, psam_reader, card_reader, journal=journal, clock=clock, rng=rng)
