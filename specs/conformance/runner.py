"""Choose cases, run them one after the other (a failure never stops the run), gather one RunResult.

Suite-neutral. A suite object supplies `name`, `load()` (its cases), `open_session(options, dut)` (the
session of one run and a close function), `run_case(session, loaded) -> CaseResult`, and `commands` and
`conditions` (the coverage axes). A session offers `start()` (raise Inconclusive when the DUT cannot be
reached), `identity` (a dict for the report) and `run_record()`. The terminal suite plugs in with the
same members (specs.conformance.terminal) and both register in `suite_by_name`.
"""
from __future__ import annotations

import platform
import sys
from importlib.metadata import PackageNotFoundError, version as _version
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .coverage import matrix
from .results import CaseResult, RunResult
from .schema import LoadedCase

__all__ = ["SUITE_VERSION", "SelectionError", "select_cases", "execute", "suite_by_name", "environment"]

SUITE_VERSION = "1.0"
"""Version of the case set and its semantics; reports carry it so a lab can say what it ran."""


class SelectionError(ValueError):
    """A --case or --tag choice that selects nothing or names an unknown case."""


def suite_by_name(name: str):
    """The suite object for `--suite`: `card` or `terminal`."""
    if name == "card":
        from .card.suite import CardSuite
        return CardSuite()
    if name == "terminal":
        from .terminal.suite import TerminalSuite
        return TerminalSuite()
    raise SelectionError(f"--suite {name!r}: known suites: card, terminal")


def select_cases(cases: Sequence[LoadedCase], ids: Iterable[str] = (), tags: Iterable[str] = (),
                 exclude_tags: Iterable[str] = ()) -> list[LoadedCase]:
    """--case IDs (else all), then --tag (a case with any of them), then --exclude-tag.

    Destructive cases run only when named by --case or selected with --tag destructive.
    """
    ids, tags, exclude = list(ids), set(tags), set(exclude_tags)
    known = {lc.case.id: lc for lc in cases}
    for i in ids:
        if i not in known:
            raise SelectionError(f"--case {i}: no such case (see `ykt conformance list`)")
    chosen = [known[i] for i in dict.fromkeys(ids)] if ids else list(cases)
    if tags:
        chosen = [lc for lc in chosen if tags & set(lc.case.tags)]
    chosen = [lc for lc in chosen if not exclude & set(lc.case.tags)]
    chosen = [lc for lc in chosen if "destructive" not in lc.case.tags or lc.case.id in ids
              or "destructive" in tags]
    if not chosen:
        raise SelectionError("the --case/--tag/--exclude-tag choice selects no case")
    return chosen


def environment() -> dict[str, Any]:
    """Where the run happened (stable on one machine, so repeated runs compare byte for byte)."""
    try:
        ykt_version = _version("ykt")
    except PackageNotFoundError:
        ykt_version = "0.0.0+source"
    return {"ykt": ykt_version, "python": platform.python_version(), "implementation": sys.implementation.name,
            "platform": platform.platform(), "machine": platform.machine()}


def execute(suite: Any, session: Any, cases: Sequence[LoadedCase], run: dict[str, Any],
            dut: dict[str, Any], progress: Callable[[CaseResult], None] | None = None,
            timing: bool = True) -> RunResult:
    """Run `cases` in order; `timing` False drops durations (repeatable reports under --clock)."""
    results = []
    for lc in cases:
        result = suite.run_case(session, lc)
        if not timing:
            result.duration = None
        results.append(result)
        if progress is not None:
            progress(result)
    return RunResult(suite.name, SUITE_VERSION, run, dut, environment(), results,
                     matrix(suite.commands, suite.conditions, results))
