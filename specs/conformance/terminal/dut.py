"""The terminal under test, seen from the suite: present a test card, let the terminal tap, get its outcome.

Three adapters (`--dut`):

- `ykt[:PROFILE]`: ykt's own validator (terminal_sim.terminal.make_terminal), in-process; PROFILE is a
  shipped terminal profile (default `bus-flat`) and the mode the run claims.
- `python:MODULE:FACTORY`: any in-process terminal behind the design's terminal seam. FACTORY has the
  signature of `make_terminal`:

      FACTORY(profile, psam_reader, card_reader, journal=None, clock=None, rng=None) -> terminal
      terminal.tap(amount=None) -> outcome   (an object with to_dict(), a dict, or a JSON string)
      terminal.scan(code, amount=None) -> outcome   (only for the QR cases: a profile with a qr table)

  profile: the terminal_sim.profile.TerminalProfile of the mode (a shipped profile name the ICS lists);
  psam_reader: the DUT's PSAM (ICS `psam`, a reader string; else a virtual PSAM issued from the run's
  `--keyset`s with `--terminal-id`); card_reader: the slot the suite presents its test cards in;
  journal None (the terminal keeps its own); clock: the suite's clock (the recovery window is crossed by
  advancing it, never by waiting); rng: seeded by `--seed`. A new terminal is made for every case.
- `command:CMD`: any terminal program. Each test card is served to pcscd through vpcd's first slot
  (reader `Virtual PCD 00 00`; the suite starts pcscd when none runs and says so in the report). Per
  tap: the card is inserted, CMD runs once with `{reader}` replaced by the reader's name (`{mode}` by
  the mode, `{amount}` by the amount of the tap; the ICS's `clock_option` and the suite's time are
  appended when the ICS claims `clock`), and the card is removed when CMD has ended. The outcome is the
  last JSON object CMD printed on stdout; none is a tap without outcome (the case is inconclusive).

One tap = `TapResult`: the outcome (the design's JSON form, a dict) or why there is none.

The in-process adapters present a test card in a `CardSlot`: straight into an in-process slot, or, for a
card that speaks for itself on the ISO-DEP link (a phone card asking for more time, S(WTX)), through the
in-process air link (apdu.transport.air: the terminal's reader runs the ISO 14443-4 PCD engine).
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from apdu.reader import Reader
from apdu.transport.inprocess import InProcessReader
from keysets import KeySet
from keysets.randomness import RandomSource

from ..results import Inconclusive, NotApplicable
from .personalities import TestCard

__all__ = ["TapResult", "TerminalDut", "CardSlot", "InProcessDut", "CommandDut", "open_terminal_dut", "DEFAULT_PROFILE",
           "last_json_object"]

DEFAULT_PROFILE = "bus-flat"
COMMAND_TIMEOUT = 60.0
"""Seconds one run of a command DUT may take before the tap counts as without outcome."""


@dataclass
class TapResult:
    """What one tap gave: the outcome (JSON form) or, when there is none, the reason."""

    outcome: dict[str, Any] | None
    problem: str | None = None
    output: str = ""


@dataclass
class TerminalDut:
    """Base of the adapters: `spec` (the --dut text), `kind`, the modes it claims by default, and what
    the suite can do to it: `features` ⊇ {"clock"} when the suite sets the terminal's time."""

    spec: str
    kind: str
    default_modes: list[str] = field(default_factory=list)
    features: set[str] = field(default_factory=set)

    def open(self, session: Any) -> dict[str, Any]:
        """Start; returns what the report says about the DUT."""
        return {}

    def begin_case(self, mode: str) -> None:
        """A case starts in `mode` (a terminal profile name)."""

    def tap(self, card: TestCard, amount: int | None, mode: str, now: _dt.datetime) -> TapResult:
        raise NotImplementedError

    def scan(self, code: bytes, amount: int | None, mode: str, now: _dt.datetime) -> TapResult:
        """Show the terminal's scanner a QR code (mobile.md §1.5): the outcome of the ride."""
        raise NotApplicable(f"a {self.kind} DUT has no scanner the suite can show a QR code")

    def use_psam(self, psam_reader: Reader) -> None:
        """This case's terminal works with `psam_reader` (a PSAM the suite controls), before any tap."""
        raise NotApplicable(f"a {self.kind} DUT brings its own PSAM: the suite cannot give it one")

    def use_journal(self, journal: Any) -> None:
        """This case's terminal keeps its outcomes in `journal` (one the suite controls), before any tap."""
        raise NotApplicable(f"a {self.kind} DUT keeps its own journal: the suite cannot give it one")

    def close(self) -> None:
        """Release what `open` took."""


def _as_dict(outcome: Any) -> dict[str, Any] | None:
    if outcome is None:
        return None
    if isinstance(outcome, dict):
        return outcome
    if hasattr(outcome, "to_dict"):
        return dict(outcome.to_dict())
    if isinstance(outcome, (str, bytes)):
        value = json.loads(outcome)
        return value if isinstance(value, dict) else None
    raise TypeError(f"tap() returned a {type(outcome).__name__}, not an outcome")


class CardSlot:
    """The card slot an in-process terminal reads (a Reader): the test card inserted straight, or over the
    air link when it has `wtx_rounds` (it sends S(WTX) before some answers), so that the terminal's ISO-DEP
    PCD engine grants the time as a reader in the field does."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._direct = InProcessReader(name=name)
        self._active: Any = self._direct
        self._endpoint: Any = None

    def insert(self, card: TestCard) -> None:
        rounds = card.wtx_rounds
        if rounds is None:
            self._direct.insert(card)
            self._active = self._direct
            return
        from apdu.transport.air import AirCardEndpoint, AirReader, LossyChannel
        channel = LossyChannel()
        self._endpoint = AirCardEndpoint(card, channel, wtx_rounds=rounds)
        self._endpoint.serve_in_thread(name=f"terminal suite air link ({card.name})")
        if not self._endpoint.wait_ready(5.0):
            raise Inconclusive(f"card {card.name}: the air link did not come up ({self._endpoint.error})")
        self._active = AirReader(channel, name=self.name)

    def remove(self) -> None:
        if self._endpoint is not None:
            self._endpoint.stop()
            self._endpoint = None
        else:
            self._direct.remove()
        self._active = self._direct

    def connect(self) -> bytes:
        return self._active.connect()

    def transmit(self, capdu: bytes) -> bytes:
        return self._active.transmit(capdu)

    def disconnect(self) -> None:
        self._active.disconnect()

    def card_present(self) -> bool:
        return self._active.card_present()


class InProcessDut(TerminalDut):
    """A terminal made by a factory with make_terminal's signature, one per case (see the module doc)."""

    def __init__(self, spec: str, kind: str, factory: Callable[..., Any], default_modes: list[str]) -> None:
        super().__init__(spec, kind, default_modes, {"clock"})
        self.factory = factory
        self.slot = CardSlot("terminal suite card slot")
        self.psam_reader: Reader | None = None
        self.terminal: Any = None
        self._session: Any = None
        self._mode = ""
        self._case_psam: Reader | None = None
        self._case_journal: Any = None

    def open(self, session: Any) -> dict[str, Any]:
        self._session = session
        ics = session.ics
        if ics is not None and ics.psam:
            from ykt_card.host.readers import open_reader
            opened = open_reader(ics.psam, rng=session.rng.fork("psam"), expect="psam", option="ics psam")
            self.psam_reader = opened.reader
            return {"psam": ics.psam}
        from ykt_card.psam.cos import PsamOS
        from ykt_card.psam.issue import issue_psam
        psam = PsamOS(issue_psam(session.keysets, session.terminal_id), random=session.rng.fork("psam"))
        self.psam_reader = InProcessReader(psam, name="terminal suite PSAM")
        return {"psam": f"virtual PSAM issued from {', '.join(k.name for k in session.keysets)}, "
                        f"terminal ID {session.terminal_id.hex().upper()}"}

    def begin_case(self, mode: str) -> None:
        self._mode, self._case_psam, self._case_journal = mode, None, None
        self._make()

    def _make(self) -> None:
        s, mode = self._session, self._mode
        psam = self._case_psam if self._case_psam is not None else self.psam_reader
        self.terminal = self.factory(s.profile(mode), psam, self.slot, self._case_journal, s.clock,
                                     s.rng.fork(f"terminal {mode}"))

    def use_psam(self, psam_reader: Reader) -> None:
        self._case_psam = psam_reader
        self._make()                           # a new terminal of the case's mode: no tap has happened yet

    def use_journal(self, journal: Any) -> None:
        self._case_journal = journal
        self._make()

    def tap(self, card: TestCard, amount: int | None, mode: str, now: _dt.datetime) -> TapResult:
        self.slot.insert(card)
        try:
            outcome = self.terminal.tap(amount) if amount is not None else self.terminal.tap()
            return TapResult(_as_dict(outcome))
        except Exception as exc:  # noqa: BLE001 - a terminal's failure is a finding, not a suite crash
            return TapResult(None, f"tap() raised {type(exc).__name__}: {exc}")
        finally:
            self.slot.remove()

    def scan(self, code: bytes, amount: int | None, mode: str, now: _dt.datetime) -> TapResult:
        scan = getattr(self.terminal, "scan", None)
        if scan is None:
            raise NotApplicable(f"the terminal of mode {mode} has no scan(code, amount): it takes no QR code")
        try:
            return TapResult(_as_dict(scan(code, amount) if amount is not None else scan(code)))
        except Exception as exc:  # noqa: BLE001 - a terminal's failure is a finding, not a suite crash
            return TapResult(None, f"scan() raised {type(exc).__name__}: {exc}")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.psam_reader is not None:
                self.psam_reader.disconnect()


def last_json_object(text: str) -> dict[str, Any] | None:
    """The last line of `text` that is a JSON object (what a terminal program printed as its outcome)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


class CommandDut(TerminalDut):
    """A terminal program run once per tap, the card served to pcscd through vpcd slot 0."""

    slot = 0

    def __init__(self, spec: str, command: str) -> None:
        super().__init__(spec, "command")
        if not command.strip():
            raise ValueError(f"--dut {spec!r}: command: needs the program to run (command:CMD)")
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise ValueError(f"--dut {spec!r}: the command does not parse ({exc})") from None
        self.command = command
        self._stack = contextlib.ExitStack()
        self.pcscd: Any = None
        self.reader_name = ""
        self.clock_option: str | None = None
        self.runs = 0

    def open(self, session: Any) -> dict[str, Any]:
        from apdu.transport.pcsc.daemon import Pcscd, PcscdError, card_state, vpcd_reader_name
        from specs.conformance.pcsc_session import vpcd_session
        ics = session.ics
        if ics is not None and "clock" in ics.optional:
            self.clock_option = ics.clock_option
            self.features.add("clock")
        self.reader_name = vpcd_reader_name(self.slot)
        try:
            self._stack.enter_context(vpcd_session())  # shared, not awaited, when our parent holds it
            daemon = Pcscd()
            daemon.start()
        except PcscdError as exc:
            self._stack.close()
            raise Inconclusive(f"pcscd with the vpcd driver is not available: {exc}") from None
        self.pcscd = daemon
        self._stack.callback(daemon.stop)
        started = f"started by the suite (pid {daemon.pid})" if daemon.owned else "already running"
        present, atr = card_state(self.reader_name)
        if present:
            raise Inconclusive(f"{self.reader_name} already holds a card (ATR {atr.hex().upper()}): the suite "
                               "serves its test cards there; remove it first")
        return {"command": self.command, "reader": self.reader_name, "pcscd": started,
                "clock_option": self.clock_option}

    def argv_for(self, mode: str, amount: int | None, now: _dt.datetime) -> list[str]:
        values = {"{reader}": self.reader_name, "{mode}": mode, "{amount}": "" if amount is None else str(amount)}
        argv = []
        for arg in self.argv:
            for key, value in values.items():
                arg = arg.replace(key, value)
            argv.append(arg)
        if self.clock_option:
            argv += [self.clock_option, now.strftime("%Y%m%d%H%M%S")]
        return argv

    def tap(self, card: TestCard, amount: int | None, mode: str, now: _dt.datetime) -> TapResult:
        from apdu.transport.pcsc.vpcd import VpcdEndpoint, slot_port
        endpoint = VpcdEndpoint(card, "localhost", slot_port(self.slot), card.atr)
        endpoint.serve_in_thread(name=f"terminal-suite-{card.name}")
        try:
            self.pcscd.wait_card(self.reader_name, present=True, atr=card.atr)
            argv = self.argv_for(mode, amount, now)
            self.runs += 1
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                                      stdin=subprocess.DEVNULL)
            except FileNotFoundError:
                return TapResult(None, f"the command {argv[0]!r} was not found")
            except subprocess.TimeoutExpired:
                return TapResult(None, f"the command did not end within {COMMAND_TIMEOUT:.0f} s")
        finally:
            endpoint.stop()
            with contextlib.suppress(Exception):
                self.pcscd.wait_card(self.reader_name, present=False)
        output = (proc.stdout[-2000:] + ("\n" + proc.stderr[-2000:] if proc.stderr else "")).strip()
        outcome = last_json_object(proc.stdout)
        if outcome is None:
            last = (proc.stderr.strip().splitlines() or ["(nothing on stderr)"])[-1]
            return TapResult(None, f"the program printed no JSON object on stdout (exit status "
                                   f"{proc.returncode}; {last})", output)
        return TapResult(outcome, None, output)

    def close(self) -> None:
        self._stack.close()


def _factory(path: str, spec: str) -> Callable[..., Any]:
    module_name, _, name = path.rpartition(":")
    if not module_name or not name:
        raise ValueError(f"--dut {spec!r}: python:MODULE:FACTORY (e.g. python:terminal_sim.terminal:make_terminal)")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--dut {spec!r}: module {module_name!r} does not import ({exc})") from None
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ValueError(f"--dut {spec!r}: {module_name} has no callable {name!r}")
    return factory


def open_terminal_dut(spec: str) -> TerminalDut:
    """The adapter of a `--dut` text: `ykt[:PROFILE]`, `python:MODULE:FACTORY` or `command:CMD`."""
    scheme, _, rest = spec.partition(":")
    if scheme == "ykt":
        from terminal_sim.terminal import make_terminal
        return InProcessDut(spec, "ykt", make_terminal, [rest or DEFAULT_PROFILE])
    if scheme == "python":
        return InProcessDut(spec, "python", _factory(rest, spec), [])
    if scheme == "command":
        return CommandDut(spec, rest)
    raise ValueError(f"--dut {spec!r}: the terminal suite takes ykt[:PROFILE], python:MODULE:FACTORY or "
                     "command:CMD")


def keyset_names(keysets: list[KeySet]) -> list[str]:
    return [k.name for k in keysets]
