"""The terminal suite against ykt's own validator: every applicable case passes for every shipped terminal
profile; the cases load; adapters, ICS applicability, the clock and the coverage matrix behave as documented."""
from __future__ import annotations

import pytest

from specs.catalog import SHELVES
from specs.conformance import SelectionError, select_cases
from specs.conformance.options import RunOptions, run_suite
from specs.conformance.schema import CaseError, load_case_file
from specs.conformance.terminal import PERSONALITIES, TerminalSuite
from specs.conformance.terminal.dut import CommandDut, last_json_object, open_terminal_dut

from .conftest import K3, K4

SUITE = TerminalSuite()
CASES = SUITE.load()
PROFILES = SHELVES["terminal-profile"].names()


def run(dut: str, keysets=(K3, K4), **kw):
    return run_suite(RunOptions("terminal", dut, list(keysets), clock="20260301120000", seed=7, **kw))


def bad(result):
    return [(r.case_id, r.verdict, r.reasons) for r in result.results if r.verdict in ("fail", "inconclusive")]


@pytest.mark.parametrize("profile", PROFILES)
def test_our_validator_passes_every_applicable_case_of_every_shipped_profile(profile):
    result = run(f"ykt:{profile}")
    assert bad(result) == []
    assert result.passed
    passed = [r for r in result.results if r.verdict == "pass"]
    assert len(passed) >= (4 if profile == "load" else 30)
    assert all(r.reasons == [f"mode {profile}"] for r in passed)


def test_at_least_forty_terminal_cases_with_unique_ids_levels_and_references():
    ids = [lc.case.id for lc in CASES]
    assert len(ids) >= 40 and len(set(ids)) == len(ids)
    assert all(i.startswith("TU-TERM-") for i in ids)
    for lc in CASES:
        assert sum(t in lc.case.tags for t in ("core", "profile")) == 1, lc.case.id
        assert lc.case.suite == "terminal"
    assert len([lc for lc in CASES if "core" in lc.case.tags]) >= 30


def test_every_personality_of_the_issue_is_served_by_some_case():
    used = {params.personality for lc in CASES for params in lc.cards.values()}
    assert used == set(PERSONALITIES)
    algorithms = {params.algorithm for lc in CASES for params in lc.cards.values()}
    assert {"sm4", "3des", "dual"} <= algorithms


def test_a_case_with_a_bad_test_card_is_refused_naming_file_and_field(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("""
cases:
  - id: TU-TERM-900
    title: t
    purpose: p
    reference: [D12]
    tags: [core, recovery]
    cards:
      A: {personality: tearing}
    steps:
      - tap: {card: A}
""", encoding="utf-8")
    with pytest.raises(CaseError) as err:
        load_case_file(path, SUITE.actions, SUITE.checks, cards=type(CASES[0].cards["A"]))
    assert str(err.value).startswith(f"{path}: cases[0].cards.A.command: ")
    assert "needs the command it bends" in str(err.value)
    path.write_text(path.read_text().replace("personality: tearing", "personality: haunted"))
    with pytest.raises(CaseError, match=r"cases\[0\].cards.A.personality: "):
        load_case_file(path, SUITE.actions, SUITE.checks, cards=type(CASES[0].cards["A"]))


def test_the_python_adapter_runs_the_seam_factory_with_an_ics(tmp_path):
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: make_terminal\nalgorithms: [3des, sm4]\nmodes: [bus-flat, metro-entry]\nfare: 200\n"
                   "optional: [recovery, blacklist, discounts]\n", encoding="utf-8")
    result = run("python:terminal_sim.terminal:make_terminal", ics=str(ics))
    assert bad(result) == [] and result.passed
    verdicts = {r.case_id: r for r in result.results}
    assert verdicts["TU-TERM-001"].reasons == ["mode bus-flat"]
    assert verdicts["TU-TERM-060"].reasons == ["mode metro-entry"]          # the second mode claimed
    assert result.dut["ics"]["name"] == "make_terminal" and result.dut["kind"] == "python"
    with pytest.raises(ValueError, match="--ics: a python: DUT needs"):
        run("python:terminal_sim.terminal:make_terminal")


def test_the_ics_decides_what_applies(tmp_path):
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: a 3DES-only flat bus\nalgorithms: [3des]\nmodes: [bus-flat]\nfare: 200\noptional: []\n",
                   encoding="utf-8")
    result = run("ykt:bus-flat", ics=str(ics))
    assert result.passed
    na = {r.case_id: r.reasons[0] for r in result.results if r.verdict == "not applicable"}
    assert "sm4" in na["TU-TERM-003"] and "dual" in na["TU-TERM-005"]
    assert "'recovery'" in na["TU-TERM-041"] and "'blacklist'" in na["TU-TERM-026"]
    assert "metro-entry" in na["TU-TERM-009"] and "load" in na["TU-TERM-070"]
    assert {r.case_id for r in result.results if r.verdict == "pass"} >= {"TU-TERM-001", "TU-TERM-020"}


def test_a_wrong_fare_claim_fails_the_fare_cases(tmp_path):
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: claims 3 yuan\nalgorithms: [3des, sm4]\nmodes: [bus-flat]\nfare: 300\n", encoding="utf-8")
    result = run("ykt:bus-flat", ics=str(ics), cases=["TU-TERM-001"])
    [case] = result.results
    assert case.verdict == "fail"
    assert any("amount 200, expected 300" in reason for reason in case.reasons)


def test_time_passes_on_the_suite_clock_never_on_the_wall(tmp_path):
    import time
    start = time.perf_counter()
    result = run("ykt:bus-flat", cases=["TU-TERM-043"])
    assert [r.verdict for r in result.results] == ["pass"]
    assert time.perf_counter() - start < 10                   # the 180 s window was crossed on the clock


def test_a_command_dut_without_clock_option_skips_the_window_case(tmp_path):
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: no clock\nalgorithms: [3des, sm4]\nmodes: [bus-flat]\nfare: 200\n"
                   "optional: [recovery]\n", encoding="utf-8")
    suite = TerminalSuite()
    session, close = suite.open_session(RunOptions("terminal", "command:true", [K3, K4], ics=str(ics)))
    try:
        case = next(lc.case for lc in CASES if lc.case.id == "TU-TERM-043")
        mode, why = suite.choose_mode(case, session)
        assert mode is None and "--real-time" in why
        session.real_time = True
        assert suite.choose_mode(case, session) == ("bus-flat", None)
    finally:
        close()
    with pytest.raises(ValueError, match="--ics: a command: DUT needs"):
        suite.open_session(RunOptions("terminal", "command:true", [K3, K4]))


def test_command_dut_parsing_and_outcome_extraction():
    dut = open_terminal_dut("command:tap --card 'pcsc:{reader}' --amount {amount} --mode {mode}")
    assert isinstance(dut, CommandDut)
    dut.reader_name = "Virtual PCD 00 00"
    dut.clock_option = "--clock"
    import datetime as _dt
    argv = dut.argv_for("taxi", 1500, _dt.datetime(2026, 3, 1, 12, 0, 5))
    assert argv == ["tap", "--card", "pcsc:Virtual PCD 00 00", "--amount", "1500", "--mode", "taxi",
                    "--clock", "20260301120005"]
    assert last_json_object('starting\n{"status": "torn"}\nnoise {x}\n{"status":"approved","amount":200}\n') == \
        {"status": "approved", "amount": 200}
    assert last_json_object("APPROVED card 1 2.00 yuan\n") is None
    for spec, message in (("command:", "needs the program"), ("python:nomodule", "python:MODULE:FACTORY"),
                          ("python:no_such_module_x:f", "does not import"), ("ykx", "takes ykt")):
        with pytest.raises(ValueError, match=message):
            open_terminal_dut(spec)


def test_a_terminal_that_prints_no_outcome_is_inconclusive_not_passed(tmp_path):
    """A python DUT whose tap() raises gives no outcome: the cases that need one are inconclusive."""
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: broken\nmodes: [bus-flat]\nfare: 200\n", encoding="utf-8")
    result = run("python:tests.conformance.test_terminal_suite:broken_terminal", ics=str(ics),
                 cases=["TU-TERM-001", "TU-TERM-020"])
    assert [r.verdict for r in result.results] == ["inconclusive", "inconclusive"]
    assert "the terminal gave no outcome (tap() raised RuntimeError: out of order)" in result.results[0].reasons[0]
    assert not result.passed


class _Broken:
    def tap(self, amount=None):
        raise RuntimeError("out of order")


def broken_terminal(profile, psam_reader, card_reader, journal=None, clock=None, rng=None):
    return _Broken()


def test_selection_and_listing_of_terminal_cases():
    chosen = select_cases(CASES, tags=["recovery"])
    assert chosen and all("recovery" in lc.case.tags for lc in chosen)
    with pytest.raises(SelectionError, match="TU-TERM-999: no such case"):
        select_cases(CASES, ids=["TU-TERM-999"])


def test_coverage_matrix_of_the_terminal_suite():
    result = run("ykt:bus-flat-capp")
    cells = result.coverage["cells"]
    assert [c["key"] for c in result.coverage["commands"]][:2] == ["select", "read_binary"]
    assert {"id": "TU-TERM-041", "verdict": "pass"} in cells["get_transaction_prove"]["normal"]
    assert {"id": "TU-TERM-050", "verdict": "pass"} in cells["debit"]["wrong_mac"]
    assert cells["debit"]["tearing"] and cells["debit"]["slow"] and cells["update_capp_cache"]["refused"]
    assert result.coverage["gaps"] == sum(1 for row in cells.values() for v in row.values() if not v) > 0
