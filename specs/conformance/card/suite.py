"""The card suite: its vocabulary, its coverage axes, and how one case runs against a card.

One case: establish its card setting (power cycle, select, unblock a temporary lock, load or spend to
the balance it needs), read the state its checks need, run the steps (each answer judged by the step's
`expect`), read the state again, run the checks, then the cleanup steps whatever happened.
"""
from __future__ import annotations

import re
import time
from typing import Any

from apdu.reader import ReaderError
from keysets import KeySet
from specs.catalog import card_profile_path, keyset_path
from ykt_card.clock import SimulatedClock, SystemClock
from ykt_card.issuance.profile import load_card_profile
from apdu.status import ResponseApdu, describe
from ykt_card.layouts import LayoutError, by_name

from ..coverage import COMMAND_NAMES
from ..results import CaseFailed, CaseResult, Inconclusive, NotApplicable, resolve
from ..schema import CASES_DIR, Vocabulary, Case, Expect, LoadedCase, Step, load_cases
from .actions import ACTIONS, LoadParams, PurchaseParams, SmParams, run_action
from .actions import application_unblock, load, purchase
from .checks import CHECKS, needs_of, run_check
from .context import CardCase, CardSession, lock_of, read_state
from .dut import CardDut, open_dut

__all__ = ["CardSuite", "COMMANDS", "CONDITIONS"]

COMMANDS: dict[str, str] = dict(COMMAND_NAMES)
"""The commands of tunion.md section 2, the rows of the coverage matrix."""
CONDITIONS: dict[str, str] = {
    "normal": "normal", "wrong_length": "wrong length", "wrong_p1p2": "wrong P1/P2",
    "wrong_state": "wrong state", "wrong_mac": "wrong MAC", "limits": "limits", "tearing": "tearing",
}


def _matches(sw: int, pattern: str) -> bool:
    text = f"{sw:04X}"
    return all(p in ("x", t) for p, t in zip(pattern, text))


def judge(expect: Expect, resp: ResponseApdu | None, variables: dict[str, Any]) -> list[str]:
    """What is wrong with an answer, measured against the step's expectation (empty: nothing)."""
    if resp is None:
        return []
    got = f"answered {resp.sw:04X} ({describe(resp.sw)})"
    out = []
    statuses = expect.statuses()
    if statuses and not any(_matches(resp.sw, s) for s in statuses):
        out.append(f"{got}, expected {' or '.join(statuses)}")
    if expect.refused is True and (resp.sw == 0x9000 or resp.sw1 == 0x61):
        out.append(f"{got}: accepted, expected a refusal")
    if expect.refused is False and resp.sw != 0x9000:
        out.append(f"{got}, expected 9000")
    if expect.length is not None and len(resp.data) != expect.length:
        out.append(f"answered {len(resp.data)} bytes of data, expected {expect.length}")
    if expect.data is not None:
        want = resolve(expect.data, variables)
        want_bytes = bytes.fromhex(want) if isinstance(want, str) else want
        if resp.data != want_bytes:
            out.append(f"answered data {resp.data.hex().upper()}, expected {want_bytes.hex().upper()}")
    if expect.decode is not None and resp.sw in (0x9000, 0x6283):
        try:
            fields = by_name(expect.decode).decode(resp.data)
        except LayoutError as exc:
            out.append(f"the data does not decode as {expect.decode}: {exc}")
            return out
        for name, want in (expect.fields or {}).items():
            value = resolve(want, variables)
            have = fields.get(name, "<absent>")
            if isinstance(value, list):
                if have not in value:
                    out.append(f"{expect.decode}.{name} is {have!r}, expected one of {value!r}")
            elif have != value:
                out.append(f"{expect.decode}.{name} is {have!r}, expected {value!r}")
    return out


def _names(value: Any) -> set[str]:
    return set(re.findall(r"\$([A-Za-z_]+)", repr(value)))


class CardSuite(Vocabulary):
    """The card suite (`--suite card`), cases under specs/cases/card/."""

    name = "card"
    folder = CASES_DIR / "card"
    commands = COMMANDS
    conditions = CONDITIONS

    action_registry = ACTIONS
    check_registry = CHECKS

    def load(self) -> list[LoadedCase]:
        return load_cases(self.folder, self.actions, self.checks, tuple(COMMANDS), tuple(CONDITIONS))

    def open_session(self, options: Any, dut: CardDut | None = None) -> tuple[CardSession, Any]:
        """The session of one run (RunOptions): key sets, profile, clock, terminal ID, the DUT opened
        from `options.dut` unless given; returns it with the function that closes what it opened."""
        keysets = [KeySet.load(keyset_path(k)) for k in options.keysets]
        profile = load_card_profile(card_profile_path(options.profile)) if options.profile else None
        clock = SimulatedClock.parse(options.clock) if options.clock else SystemClock()
        try:
            terminal_id = bytes.fromhex(options.terminal_id)
        except ValueError:
            terminal_id = b""
        if len(terminal_id) != 6:
            raise ValueError(f"--terminal-id {options.terminal_id!r}: 6 bytes in hex (12 digits)")
        own = dut is None
        dut = open_dut(options.dut, options.seed) if own else dut
        session = CardSession(dut, keysets, profile=profile, clock=clock, terminal_id=terminal_id,
                              ef1e_layout=options.ef1e_layout)
        return session, (dut.close if own else (lambda: None))

    # -- applicability ----------------------------------------------------------------------------
    def not_applicable(self, case: Case, session: CardSession) -> str | None:
        a = case.applies
        algorithms = session.algorithms()
        if a.algorithm == "dual" and len(algorithms) < 2:
            return "needs a dual-algorithm card: give a 3DES and an SM4 key set"
        if a.algorithm in ("3des", "sm4") and a.algorithm not in algorithms:
            return f"needs the card's {a.algorithm} key set (--keyset)"
        if a.profile and session.profile is None:
            return "checks the personalisation against an issuance profile: give --profile"
        if a.ef1e_layout is not None and a.ef1e_layout != session.ef1e_layout:
            return f"for EF1E layout {a.ef1e_layout}; this run uses layout {session.ef1e_layout}"
        missing = [f for f in a.features if f not in session.dut.features]
        if missing:
            return f"needs a DUT that offers {', '.join(missing)} (this one: {session.dut.kind})"
        return None

    # -- one case ---------------------------------------------------------------------------------
    def run_case(self, session: CardSession, loaded: LoadedCase) -> CaseResult:
        case = loaded.case
        result = CaseResult(case.id, case.title, "card", list(case.tags), list(case.reference), "pass",
                            covers=list(case.covers))
        reason = self.not_applicable(case, session)
        if reason is not None:
            result.verdict, result.reasons = "not applicable", [reason]
            return result
        ctx = CardCase(session)
        ctx.tags = tuple(case.tags)
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
        except ReaderError as exc:
            result.verdict = "inconclusive"
            result.reasons.append(f"{ctx.phase}: the link to the card failed: {exc}")
        except Exception as exc:  # noqa: BLE001 - one case's surprise must not stop the run
            result.verdict = "inconclusive"
            result.reasons.append(f"{ctx.phase}: the suite could not judge this answer "
                                  f"({type(exc).__name__}: {exc})")
        self._cleanup(ctx, loaded, result)
        if ctx.failures and result.verdict in ("pass", "fail"):
            result.verdict = "fail"
            result.reasons = ctx.failures + result.reasons
        result.exchange = ctx.exchange
        result.duration = time.perf_counter() - start
        return result

    def _run(self, ctx: CardCase, loaded: LoadedCase) -> None:
        case = loaded.case
        self._prepare(ctx, case)
        needs = {"balance"}
        for i, c in enumerate(case.checks):
            needs |= needs_of(c.name, loaded.checks[i])
        needs |= {n for n in _names(loaded.steps) if n in ("online_counter", "offline_counter", "overdraft_limit")}
        ctx.phase = "state before"
        ctx.before = read_state(ctx, needs)
        for i, step in enumerate(case.steps):
            self._step(ctx, i, step, loaded.steps[i], "step")
        ctx.phase = "state after"
        ctx.after = read_state(ctx, needs)
        for i, c in enumerate(case.checks):
            ctx.phase = f"check {i + 1} ({c.name})"
            for problem in run_check(ctx, c.name, loaded.checks[i]):
                ctx.failures.append(f"{ctx.phase}: {c.defect + ': ' if c.defect else ''}{problem}")

    def _step(self, ctx: CardCase, i: int, step: Step, params: Any, kind: str) -> None:
        ctx.phase = f"{kind} {i + 1} ({step.name})"
        resp = run_action(ctx, step.name, params)
        if step.expect is None:
            return
        problems = judge(step.expect, resp, ctx.variables())
        if problems:
            defect = f"{step.defect}: " if step.defect else ""
            raise CaseFailed(f"{ctx.phase}: {defect}{'; '.join(problems)}")

    def _prepare(self, ctx: CardCase, case: Case) -> None:
        """Put the card in the state the case needs; what cannot be established makes it inconclusive."""
        ctx.phase = "setup"
        ctx.saved["answer_to_reset"] = ctx.power_cycle().hex().upper()
        sw = ctx.select()
        state = lock_of(sw)
        if state == "permanent":
            raise Inconclusive("the application is permanently locked")
        if state is None:
            raise Inconclusive(f"SELECT of the T-Union application answered {sw:04X}")
        if state == "temporary" and case.card.unlocked:
            resp = application_unblock(ctx, SmParams())
            if resp.sw != 0x9000:
                raise Inconclusive(f"the temporarily locked application could not be unblocked ({resp.sw:04X})")
            ctx.select()
        setting = case.card
        if setting.balance_at_least is None and setting.balance_at_most is None:
            return
        balance = read_state(ctx, {"balance"})["balance"]
        if balance is None:
            raise Inconclusive("GET BALANCE gave no balance")
        if setting.balance_at_least is not None and balance < setting.balance_at_least:
            need = setting.balance_at_least - balance
            resp = load(ctx, LoadParams(amount=need))
            if resp.sw != 0x9000:
                raise Inconclusive(f"could not load {need} fen to reach {setting.balance_at_least} ({resp.sw:04X})")
        if setting.balance_at_most is not None and balance > setting.balance_at_most:
            spend = balance - setting.balance_at_most
            resp = purchase(ctx, PurchaseParams(amount=spend))
            if resp.sw != 0x9000:
                raise Inconclusive(f"could not spend {spend} fen to come down to {setting.balance_at_most} "
                                   f"({resp.sw:04X})")
        ctx.pending = None

    def _cleanup(self, ctx: CardCase, loaded: LoadedCase, result: CaseResult) -> None:
        for i, step in enumerate(loaded.case.cleanup):
            try:
                self._step(ctx, i, step, loaded.cleanup[i], "cleanup")
            except (CaseFailed, Inconclusive, ReaderError) as exc:
                result.reasons.append(f"cleanup did not complete, the card may keep this case's changes: {exc}")
                if result.verdict == "pass":
                    result.verdict = "inconclusive"
                return

