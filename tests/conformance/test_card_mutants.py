"""Mutation test of the card suite: each named mutant of ykt's card is caught by a case that names it.

Every mutant carries one planted defect (tests/conformance/card_mutants.py). The whole non-destructive
card suite runs against it in-process (dual-algorithm card, reference profile); the expected case must
fail with a reason that names the defect.
"""
from __future__ import annotations

import re

import pytest

from specs.conformance.card import CardDut
from specs.conformance.options import RunOptions, run_suite

from .card_mutants import EXPECTATIONS, Mutant
from .conftest import K3, K4, card_os


def test_at_least_twenty_named_mutants():
    names = {e.mutant.name for e in EXPECTATIONS}
    assert len(names) == len(EXPECTATIONS) >= 20
    assert all(e.mutant.defect for e in EXPECTATIONS)


@pytest.mark.parametrize("expectation", EXPECTATIONS, ids=lambda e: e.mutant.name)
def test_mutant_is_caught_by_a_case_naming_the_defect(expectation):
    mutant: Mutant = card_os(expectation.mutant)
    options = RunOptions("card", "mutant", [K3, K4], profile="reference", clock="20260301120000")
    result = run_suite(options, dut=CardDut.in_process(mutant, f"mutant:{mutant.name}"))
    naming = [r.case_id for r in result.results if r.verdict == "fail"
              and any(re.search(expectation.reason, reason, re.IGNORECASE) for reason in r.reasons)]
    assert expectation.case in naming, (expectation.mutant.name, naming,
                                        next(r.reasons for r in result.results if r.case_id == expectation.case))
    assert not result.passed
