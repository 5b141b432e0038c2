"""One run's options, as the command line gives them and as report.json keeps them for `rerun`.

`run_suite(options)` is the whole run without the command line: open the DUT, start the session, choose
the cases, run them. The benchmark, the tests and `ykt conformance run|rerun` all go through it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .coverage import matrix
from .results import CaseResult, Inconclusive, RunResult
from .runner import SUITE_VERSION, environment, execute, select_cases, suite_by_name
from .schema import CaseError, Ics, load_ics

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
    real_time: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> "RunOptions":
        known = {k: doc[k] for k in cls.__dataclass_fields__ if k in doc}
        return cls(**known)


def run_suite(options: RunOptions, progress: Callable[[CaseResult], None] | None = None,
              on_selected: Callable[[int], None] | None = None, dut: Any = None) -> RunResult:
    """Run the chosen cases of `options.suite` against `options.dut` (or the DUT object given).

    The suite opens its own session (`suite.open_session(options, dut)`: the card suite opens a reader
    and derives card keys; the terminal suite makes its DUT adapter) and closes it at the end.
    """
    suite = suite_by_name(options.suite)
    cases = select_cases(suite.load(), options.cases, options.tags, options.exclude_tags)
    ics = load_ics(options.ics) if options.ics else None
    session, close = suite.open_session(options, dut)
    if on_selected is not None:
        on_selected(len(cases))
    run = {**options.to_json(), **session.run_record()}
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
            return RunResult(suite.name, SUITE_VERSION, run, _identity(session, ics), environment(), results,
                             matrix(suite.commands, suite.conditions, results))
        return execute(suite, session, cases, run, _identity(session, ics), progress,
                       timing=options.clock is None)
    finally:
        close()


def _identity(session: Any, ics: Ics | None) -> dict[str, Any]:
    ident = dict(session.identity) or {"spec": session.dut.spec}
    if ics is not None:
        ident["ics"] = ics.model_dump(exclude_none=True)
    return ident
