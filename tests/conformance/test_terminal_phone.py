"""The phone-card cases of the terminal suite (TU-TERM-090..092) against ykt's validator: what the test
card saw proves how the terminal found its extended AID, and the WTX card really asked for more time over
the in-process ISO-DEP air link."""
from __future__ import annotations

import pytest

from specs.conformance.options import RunOptions, run_suite
from specs.conformance.terminal.personalities import PHONE_PERSONALITIES

from .conftest import K3, K4

PHONE_CASES = ["TU-TERM-090", "TU-TERM-091", "TU-TERM-092"]
SELECT_PPSE = "00A404000E325041592E5359532E444446303100"


def run(mode: str):
    return run_suite(RunOptions("terminal", f"ykt:{mode}", [K3, K4], clock="20260301120000", seed=5,
                                cases=PHONE_CASES))


def selects(result, case_id: str) -> list[tuple[str, str]]:
    case = next(r for r in result.results if r.case_id == case_id)
    return [(e.command.hex().upper(), (e.response or b"")[-2:].hex().upper()) for e in case.exchange
            if e.command[:2] == b"\x00\xa4"]


@pytest.mark.parametrize("mode", ["bus-flat", "metro-entry", "load"])
def test_phone_cards_are_found_through_the_ppse_or_by_partial_selection(mode):
    result = run(mode)
    assert [(r.case_id, r.verdict) for r in result.results] == [(c, "pass") for c in PHONE_CASES]
    assert selects(result, "TU-TERM-090") == [(SELECT_PPSE, "9000"),
                                              ("00A4040010A000000632010105580002205810000000", "9000")]
    # no PPSE: partial selection by the T-Union EP's 8 bytes (P2 00), answered with the extended AID's FCI
    partial = selects(result, "TU-TERM-091")
    assert partial[0] == (SELECT_PPSE, "6A82")
    assert partial[1] == ("00A4040008A00000063201010500", "9000")
    case = next(r for r in result.results if r.case_id == "TU-TERM-091")
    fci = next(e.response for e in case.exchange if e.command.hex().upper() == partial[1][0])
    assert fci[2:4] == b"\x84\x10" and fci[4:12] == bytes.fromhex("A000000632010105")   # 84: 16-byte AID


def test_the_wtx_phone_card_asks_for_more_time_on_every_command():
    result = run("bus-flat-capp")
    case = next(r for r in result.results if r.case_id == "TU-TERM-092")
    assert case.verdict == "pass", case.reasons
    notes = [e.error for e in case.exchange]
    assert len(case.exchange) >= 6
    assert notes == ["the card asked for more time: 2 × S(WTX) before its answer"] * len(case.exchange)


def test_a_terminal_that_ignores_the_ppse_or_needs_it_fails_the_phone_cases():
    from .terminal_mutants import MUTANTS
    by_name = {m.name: m for m in MUTANTS}
    with by_name["ppse_ignored"].applied():
        ignored = {r.case_id: r for r in run("bus-flat").results}
    assert ignored["TU-TERM-090"].verdict == "fail" and ignored["TU-TERM-092"].verdict == "fail"
    assert ignored["TU-TERM-091"].verdict == "pass"            # partial selection alone finds a card without PPSE
    with by_name["ppse_required"].applied():
        required = {r.case_id: r for r in run("bus-flat").results}
    assert [required[c].verdict for c in PHONE_CASES] == ["pass", "fail", "pass"]
    assert any("does not select by partial name" in reason for reason in required["TU-TERM-091"].reasons)


def test_phone_personalities_are_listed():
    assert set(PHONE_PERSONALITIES) == {"phone", "phone_no_ppse", "phone_wtx"}
