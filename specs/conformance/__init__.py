"""ykt conformance: card and terminal test plans as data, a runner, and the reports a lab files.

Cases live under specs/cases/<suite>/ (schema in `schema`); a suite supplies the action and check
vocabulary and runs one case (`card.CardSuite`); `runner` chooses and runs cases; `report` writes
JUnit XML, report.json and a self-contained HTML page.
"""
from .results import CaseResult, RunResult
from .runner import SUITE_VERSION, SelectionError, execute, select_cases, suite_by_name
from .schema import Case, CaseError, Ics, LoadedCase

__all__ = ["SUITE_VERSION", "Case", "CaseError", "Ics", "LoadedCase", "CaseResult", "RunResult",
           "SelectionError", "execute", "select_cases", "suite_by_name"]
