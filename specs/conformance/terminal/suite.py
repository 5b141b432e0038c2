"""The terminal suite: its vocabulary, its coverage axes, applicability, and how one case runs.

One case: choose the mode it runs in (the first mode the DUT claims that fits the case's
`applies.modes`), give the DUT a fresh terminal of that mode, issue the case's test cards, run the steps
(taps and waits), then the checks on the card's exchange, the card's end state and the outcomes.

Applicability (`not applicable`, with the reason): the case's algorithm needs a key set of it given
and claimed in the ICS; its modes need a mode the DUT claims; its features need the ICS's `optional`
list (`recovery`, `blacklist`, `load`, `discounts`, `capp`); `time` needs a clock the suite can move
(in-process DUTs always; command DUTs whose ICS claims `clock`, or `--real-time`); `exact_time` a clock
the suite sets to the second (not `--real-time`); `psam_session` a terminal whose PSAM still holds a
torn purchase's session when the card returns (in-process DUTs; command DUTs whose ICS says so); `qr`
a terminal the suite can show QR codes (`scan`): an in-process DUT whose profile has a qr table (and,
with an ICS, that claims `qr`).
"""
from __future__ import annotations

import time
from typing import Any

from keysets import KeySet
from specs.catalog import keyset_path
from ykt_card.clock import SimulatedClock, SystemClock, CHINA_TZ

from ..coverage import commands
from ..results import CaseFailed, CaseResult, Inconclusive, NotApplicable
from ..schema import CASES_DIR, Vocabulary, Case, LoadedCase, Step, load_cases, load_ics
from .context import MODE_GROUPS, TerminalCase, TerminalSession
from .dut import TerminalDut, open_terminal_dut
from .personalities import CardParams
from .psams import build_psam, psam_params_of
from .journals import FailingJournal, journal_params_of
from .vocabulary import ACTIONS, CHECKS, run_action, run_check

__all__ = ["TerminalSuite", "COMMANDS", "CONDITIONS", "FLOWS"]

COMMANDS: dict[str, str] = commands(
    "select", "read_binary", "read_record", "get_balance", "verify", "initialize_load", "credit_load",
    "initialize_purchase", "initialize_capp", "update_capp_cache", "debit", "get_transaction_prove",
    "get_challenge", "application_block")
"""The commands of tunion.md section 2 a terminal sends: the rows of the terminal coverage matrix."""
CONDITIONS: dict[str, str] = {
    "normal": "normal", "refused": "card refuses", "unexpected": "unexpected answer",
    "wrong_mac": "wrong MAC", "limits": "limits", "tearing": "tearing", "slow": "slow card",
}
"""What the card does to the terminal: answers normally, refuses (the reference's status word), answers
something unexpected (another status word, an answer of the wrong length), gives a wrong MAC, sits at a
limit (balance, maximum balance, counter, validity), tears, or takes its time."""
_LOADED: dict[str, tuple[tuple, tuple[LoadedCase, ...]]] = {}
FLOWS = ("flat", "flat-capp", "segment", "metro-entry", "metro-exit", "ferry", "taxi", "load")


class TerminalSuite(Vocabulary):
    """The terminal suite (`--suite terminal`), cases under specs/cases/terminal/."""

    name = "terminal"
    folder = CASES_DIR / "terminal"
    commands = COMMANDS
    conditions = CONDITIONS

    action_registry = ACTIONS
    check_registry = CHECKS

    def load(self) -> list[LoadedCase]:
        """The cases, parsed once per process while their files stay as they are."""
        stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(self.folder.glob("*.yaml")))
        cached = _LOADED.get(str(self.folder))
        if cached is not None and cached[0] == stamp:
            return list(cached[1])
        cases = load_cases(self.folder, self.actions, self.checks, tuple(COMMANDS), tuple(CONDITIONS),
                           cards=CardParams)
        for lc in cases:
            for mode in lc.case.applies.modes:
                if mode not in FLOWS and mode not in MODE_GROUPS:
                    raise ValueError(f"{lc.path}: {lc.case.id}.applies.modes: {mode!r} is neither a flow "
                                     f"({', '.join(FLOWS)}) nor a group ({', '.join(MODE_GROUPS)})")
            psam = psam_params_of(lc.case.terminal, str(lc.path), lc.case.id)
            if psam is not None and "suite_psam" not in lc.case.applies.features:
                raise ValueError(f"{lc.path}: {lc.case.id}.applies.features: a case with terminal.psam needs "
                                 "the feature suite_psam")
            journal = journal_params_of(lc.case.terminal, str(lc.path), lc.case.id)
            if journal is not None and "suite_journal" not in lc.case.applies.features:
                raise ValueError(f"{lc.path}: {lc.case.id}.applies.features: a case with terminal.journal needs "
                                 "the feature suite_journal")
        _LOADED[str(self.folder)] = (stamp, tuple(cases))
        return cases

    def open_session(self, options: Any, dut: TerminalDut | None = None) -> tuple[TerminalSession, Any]:
        """The session of one run (RunOptions): the DUT adapter, key sets, ICS, clock, terminal ID."""
        keysets = [KeySet.load(keyset_path(k)) for k in options.keysets]
        ics = load_ics(options.ics) if options.ics else None
        dut = dut if dut is not None else open_terminal_dut(options.dut)
        if dut.kind == "command" and ics is None:
            raise ValueError("--ics: a command: DUT needs its implementation conformance statement "
                             "(modes, algorithms, fare, optional features)")
        if dut.kind == "python" and ics is None:
            raise ValueError("--ics: a python: DUT needs its implementation conformance statement (modes …)")
        try:
            terminal_id = bytes.fromhex(options.terminal_id)
        except ValueError:
            terminal_id = b""
        if len(terminal_id) != 6:
            raise ValueError(f"--terminal-id {options.terminal_id!r}: 6 bytes in hex (12 digits)")
        settable = dut.kind != "command" or (ics is not None and "clock" in ics.optional)
        if settable:
            start = options.clock
            clock: Any = SimulatedClock.parse(start) if start else SimulatedClock(_now())
        else:
            clock = SystemClock()
        session = TerminalSession(dut, keysets, ics, clock, seed=options.seed, terminal_id=terminal_id,
                                  real_time=bool(getattr(options, "real_time", False)))
        return session, dut.close

    # -- applicability ----------------------------------------------------------------------------
    def choose_mode(self, case: Case, session: TerminalSession) -> tuple[str | None, str | None]:
        """(mode, None) or (None, why the case does not apply)."""
        a = case.applies
        algorithms = session.algorithms()
        if a.algorithm == "dual" and not {"3des", "sm4"} <= algorithms:
            return None, "needs a dual-algorithm card: 3DES and SM4 key sets given and claimed in the ICS"
        if a.algorithm in ("3des", "sm4") and a.algorithm not in algorithms:
            return None, f"needs {a.algorithm}: a key set of it given (--keyset) and claimed in the ICS"
        wanted = a.modes or ["purchase"]
        mode = next((m for m in session.modes if _fits(session.profile(m), wanted)), None)
        if mode is None:
            return None, f"for {' or '.join(wanted)} terminals; the DUT claims {', '.join(session.modes)}"
        for feature in a.features:
            if feature == "time":
                if not session.can_pass_time():
                    return None, ("time must pass (the recovery window): the ICS claims no clock option "
                                  "and --real-time was not given")
            elif feature == "exact_time":
                if not session.exact_time():
                    return None, "needs the terminal's time set to the second (an ICS clock option)"
            elif feature == "suite_psam":
                if not session.accepts_suite_psam():
                    return None, ("gives the terminal a PSAM the suite controls: an in-process DUT whose ICS "
                                  "allows it (suite_psam)")
            elif feature == "suite_journal":
                if not session.accepts_suite_journal():
                    return None, ("gives the terminal a journal the suite controls: an in-process DUT whose ICS "
                                  "allows it (suite_journal)")
            elif feature == "qr":
                if not session.takes_qr(mode):
                    return None, ("shows the terminal QR codes: an in-process DUT whose profile has a qr table "
                                  f"(mode {mode} has none, or the ICS does not claim qr)")
            elif feature == "psam_session":
                if not session.keeps_psam_session():
                    return None, ("needs a terminal whose PSAM keeps a torn purchase's session until the card "
                                  "returns (ICS keeps_psam_session)")
            elif feature not in session.features(mode):
                return None, f"the DUT does not claim the optional feature {feature!r} (ICS optional)"
        return mode, None

    # -- one case ---------------------------------------------------------------------------------
    def run_case(self, session: TerminalSession, loaded: LoadedCase) -> CaseResult:
        case = loaded.case
        result = CaseResult(case.id, case.title, "terminal", list(case.tags), list(case.reference), "pass",
                            covers=list(case.covers))
        mode, reason = self.choose_mode(case, session)
        if mode is None:
            result.verdict, result.reasons = "not applicable", [reason or "does not apply"]
            return result
        ctx = TerminalCase(session, mode)
        start = time.perf_counter()
        try:
            self._run(ctx, loaded)
        except CaseFailed as exc:
            result.verdict = "fail"
            ctx.fail(str(exc))
        except Inconclusive as exc:
            result.verdict = "inconclusive"
            result.reasons.append(f"{ctx.phase}: {exc}")
        except NotApplicable as exc:
            result.verdict = "not applicable"
            result.reasons.append(str(exc))
        except Exception as exc:  # noqa: BLE001 - one case's surprise must not stop the run
            result.verdict = "inconclusive"
            result.reasons.append(f"{ctx.phase}: the suite could not judge this ({type(exc).__name__}: {exc})")
        if ctx.failures and result.verdict in ("pass", "fail"):
            result.verdict = "fail"
            result.reasons = ctx.failures + result.reasons
        if result.verdict == "pass":
            result.reasons = [f"mode {mode}"]
        result.exchange = ctx.exchange
        result.duration = time.perf_counter() - start
        return result

    def _run(self, ctx: TerminalCase, loaded: LoadedCase) -> None:
        case = loaded.case
        ctx.phase = f"setup (mode {ctx.mode})"
        session = ctx.s
        session.dut.begin_case(ctx.mode)
        psam = psam_params_of(case.terminal, str(loaded.path), case.id)
        if psam is not None:
            ctx.psam, reader = build_psam(psam, session.keysets, session.terminal_id, session.rng.fork("test psam"))
            session.dut.use_psam(reader)
        journal = journal_params_of(case.terminal, str(loaded.path), case.id)
        if journal is not None:
            session.dut.use_journal(FailingJournal(journal))
        for name, params in loaded.cards.items():
            ctx.add_card(name, params)
        for i, step in enumerate(case.steps):
            self._step(ctx, step, loaded.steps[i])
        for i, c in enumerate(case.checks):
            ctx.phase = f"check {i + 1} ({c.name})"
            for problem in run_check(ctx, c.name, loaded.checks[i]):
                ctx.fail(f"{ctx.phase}: {c.defect + ': ' if c.defect else ''}{problem}")

    def _step(self, ctx: TerminalCase, step: Step, params: Any) -> None:
        run_action(ctx, step.name, params, step.defect)


def _fits(profile: Any, wanted: list[str]) -> bool:
    return any((MODE_GROUPS[w](profile) if w in MODE_GROUPS else profile.flow == w) for w in wanted)


def _now():
    import datetime as _dt
    return _dt.datetime.now(CHINA_TZ).replace(microsecond=0)
