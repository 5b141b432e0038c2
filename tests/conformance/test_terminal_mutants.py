"""Mutation test of the terminal suite: each named mutant of ykt's validator is caught by a case naming it.

Every mutant plants one defect in terminal_sim for the duration of a run (tests/conformance/
terminal_mutants.py). The whole terminal suite runs against `--dut ykt:MODE` for the mutant's mode; the
expected case must fail with a reason that names the defect.
"""
from __future__ import annotations

import re

import pytest

from specs.conformance.options import RunOptions, run_suite

from .conftest import K3, K4
from .terminal_mutants import MUTANTS, ValidatorMutant


def test_at_least_twenty_named_mutants():
    names = {m.name for m in MUTANTS}
    assert len(names) == len(MUTANTS) >= 20
    assert all(m.defect and m.patches for m in MUTANTS)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught_by_a_case_naming_the_defect(mutant: ValidatorMutant):
    options = RunOptions("terminal", f"ykt:{mutant.mode}", [K3, K4], clock="20260301120000", seed=3)
    with mutant.applied():
        result = run_suite(options)
    by_id = {r.case_id: r for r in result.results}
    expected = by_id[mutant.case]
    assert expected.verdict == "fail", (mutant.name, expected.verdict, expected.reasons)
    assert any(re.search(mutant.reason, reason) for reason in expected.reasons), (mutant.name, expected.reasons)
    assert not result.passed
