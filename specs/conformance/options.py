"""One run's options, as the command line gives them and as report.json keeps them for `rerun`.

`run_suite(options)` is the whole run without the command line: open the DUT, start the session, choose
the cases, run them. The benchmark, the tests and `ykt conformance run|rerun` all go through it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from keysets import KeySet
from specs.catalog import card_profile_path, keyset_path
from ykt_card.clock import SimulatedClock, SystemClock
from ykt_card.issuance.profile import load_card_profile
from ykt_files.schema import load_document

from .results import CaseResult, Inconclusive, RunResult
from .runner import execute, select_cases, suite_by_name
from .schema import CaseError, Ics

__all__ = ["RunOptions", "run_suite", "load_ics"]


@dataclass
class RunOptions:
    suite: str
    dut: str
    keysets: list[str] = field(default_factory=list)
    profile: str | None = None
    ics: str | None = None
    cases: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    exclude_tags: list[str] = field(default_factory=list)
    seed: int | None = None
    clock: str | None = None
    ef1e_layout: str = "A"
    terminal_id: str = "112233445566"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "RunOptions":
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        return cls(**known)


def load_ics(path: str) -> Ics:
    return load_document(path, Ics, "yaml", "ICS", CaseError)


def run_suite(options: RunOptions, progress: Callable[[CaseResult], None] | None = None,
              on_selected: Callable[[int], None] | None = None, dut: Any = None) -> RunResult:
    """Run the chosen cases of `options.suite` against `options.dut` (or the DUT object given)."""
    suite = suite_by_name(options.suite)
    cases = select_cases(suite.load(), options.cases, options.tags, options.exclude_tags)
    ics = load_ics(options.ics) if options.ics else None
    keysets = [KeySet.load(keyset_path(k)) for k in options.keysets]
    profile = load_card_profile(card_profile_path(options.profile)) if options.profile else None
    clock = SimulatedClock.parse(options.clock) if options.clock else SystemClock()
    started = clock.peek() if isinstance(clock, SimulatedClock) else clock.now()
    try:
        terminal_id = bytes.fromhex(options.terminal_id)
    except ValueError:
        terminal_id = b""
    if len(terminal_id) != 6:
        raise ValueError(f"--terminal-id {options.terminal_id!r}: 6 bytes in hex (12 digits)")
    from .card import CardSession, open_dut   # the only suite so far; the terminal suite adds its own
    own = dut is None
    dut = dut if dut is not None else open_dut(options.dut, options.seed)
    session = CardSession(dut, keysets, profile=profile, clock=clock, terminal_id=terminal_id,
                          ef1e_layout=options.ef1e_layout)
    if on_selected is not None:
        on_selected(len(cases))
    run = {**options.to_json(), "started": started.isoformat(),
           "keyset_kcvs": [{"name": k.name, "algorithm": k.algorithm.value,
                            "purchase_kcv": k.entry("purchase").kcv} for k in keysets]}
    try:
        try:
            session.start()
        except Inconclusive as exc:
            results = [CaseResult(lc.case.id, lc.case.title, suite.name, list(lc.case.tags),
                                  list(lc.case.reference), "inconclusive", [f"session start: {exc}"],
                                  covers=list(lc.case.covers)) for lc in cases]
            for r in results:
                if progress is not None:
                    progress(r)
            from .coverage import matrix
            from .runner import SUITE_VERSION, environment
            return RunResult(suite.name, SUITE_VERSION, run, _identity(session, ics), environment(), results,
                             matrix(suite.commands, suite.conditions, results))
        return execute(suite, session, cases, run, _identity(session, ics), progress,
                       timing=options.clock is None)
    finally:
        if own:
            dut.close()


def _identity(session: Any, ics: Ics | None) -> dict[str, Any]:
    ident = dict(session.identity) or {"spec": session.dut.spec}
    if ics is not None:
        ident["ics"] = ics.model_dump(exclude_none=True)
    return ident

