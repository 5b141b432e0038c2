"""The QR cases of the terminal suite (TU-TERM-200..218, specs/cases/terminal/qr.yaml) against ykt's
validator: every case passes at `ykt:bus-qr`, none applies to a terminal without a qr table, and a
validator that skips one §1.5 check fails the case that names it."""
from __future__ import annotations

import re

import pytest

from specs.conformance.options import RunOptions, run_suite
from specs.conformance.schema import load_ics
from specs.conformance.terminal.qr_codes import QR_PERSONALITIES

from .conftest import K3, K4
from .terminal_mutants import QR_MUTANTS, ValidatorMutant

QR_CASES = [f"TU-TERM-{n}" for n in range(200, 219)]
DECLINED = {
    "TU-TERM-201": "cert_sig", "TU-TERM-202": "issuer_sig", "TU-TERM-203": "user_sig", "TU-TERM-204": "cert_sig",
    "TU-TERM-205": "root_unknown", "TU-TERM-206": "cert_expired", "TU-TERM-207": "auth_expired",
    "TU-TERM-208": "time_window", "TU-TERM-209": "time_window", "TU-TERM-212": "length",
    "TU-TERM-213": "custom_len", "TU-TERM-214": "account_type", "TU-TERM-215": "not_accepted",
    "TU-TERM-216": "over_limit",
}


def run(dut: str, **kw):
    return run_suite(RunOptions("terminal", dut, [K3, K4], clock="20260301120000", seed=7, cases=QR_CASES, **kw))


def test_every_qr_case_passes_against_the_qr_validator():
    result = run("ykt:bus-qr")
    assert [(r.case_id, r.verdict) for r in result.results] == [(c, "pass") for c in QR_CASES], \
        [(r.case_id, r.reasons) for r in result.results if r.verdict != "pass"]


def test_the_qr_cases_check_the_reason_token_of_each_defect():
    from specs.conformance.terminal.suite import TerminalSuite
    cases = {lc.case.id: lc.case for lc in TerminalSuite().load() if lc.case.id in QR_CASES}
    assert sorted(cases) == QR_CASES
    for case_id, token in DECLINED.items():
        outcome = cases[case_id].checks[0]
        assert outcome.name == "outcome" and outcome.params["fields"]["reason"] == token, case_id
    assert all("qr" in c.applies.features for c in cases.values())
    scanned = {s.params["code"] for c in cases.values() for s in c.steps if s.name == "scan"}
    assert scanned == set(QR_PERSONALITIES)          # every personality is shown to the scanner


def test_the_qr_cases_do_not_apply_to_a_terminal_without_a_qr_table():
    result = run("ykt:bus-flat")
    assert {r.verdict for r in result.results} == {"not applicable"}
    assert all("qr table" in r.reasons[0] for r in result.results)


def test_an_ics_that_does_not_claim_qr_makes_the_qr_cases_not_applicable(tmp_path):
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: qr terminal\nmodes: [bus-qr]\nalgorithms: [3des, sm4]\nfare: 200\n", encoding="utf-8")
    result = run("python:terminal_sim.terminal:make_terminal", ics=str(ics))
    assert {r.verdict for r in result.results} == {"not applicable"}
    ics.write_text("name: qr terminal\nmodes: [bus-qr]\nalgorithms: [3des, sm4]\nfare: 200\noptional: [qr]\n",
                   encoding="utf-8")
    assert load_ics(str(ics)).optional == ["qr"]
    result = run("python:terminal_sim.terminal:make_terminal", ics=str(ics))
    assert [r.verdict for r in result.results] == ["pass"] * len(QR_CASES)


@pytest.mark.parametrize("mutant", QR_MUTANTS, ids=lambda m: m.name)
def test_a_qr_mutant_fails_the_case_naming_its_defect(mutant: ValidatorMutant):
    with mutant.applied():
        result = run(f"ykt:{mutant.mode}")
    by_id = {r.case_id: r for r in result.results}
    expected = by_id[mutant.case]
    assert expected.verdict == "fail", (mutant.name, expected.reasons)
    assert any(re.search(mutant.reason, reason) for reason in expected.reasons), (mutant.name, expected.reasons)
    others = {r.case_id for r in result.results if r.verdict == "fail"}
    assert mutant.case in others and not result.passed
