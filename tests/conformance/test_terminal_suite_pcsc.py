"""The terminal suite against a terminal program through real pcscd and vpcd: `--dut command:CMD`.

The DUT is ykt's own `ykt terminal tap … --card "pcsc:{reader}" --psam image:PSAM --journal DB --json`, a
separate process per tap that reaches each test card only as `Virtual PCD 00 00`; its ICS claims the
`--clock` option, so the recovery-window case runs on the suite's time. Representative cases only (each
tap costs a process start and two pcscd polls); the whole applicable suite is measured in
docs/conformance.md.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from keysets import KeySet
from specs.conformance.options import RunOptions, run_suite
from ykt_card.psam.issue import issue_psam, save_psam

from .conftest import K3, K4

pytestmark = pytest.mark.pcsc

YKT = Path(sys.executable).parent / "ykt"
CASES = ["TU-TERM-001", "TU-TERM-020", "TU-TERM-026", "TU-TERM-041", "TU-TERM-043", "TU-TERM-050"]


def command_dut(tmp_path: Path, journal: bool = True) -> tuple[str, Path]:
    psam = tmp_path / "psam.json"
    save_psam(psam, issue_psam([KeySet.load(K3), KeySet.load(K4)], bytes.fromhex("112233445566")))
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: ykt terminal tap\nvendor: ykt\nalgorithms: [3des, sm4]\nmodes: [bus-flat]\nfare: 200\n"
                   "optional: [recovery, blacklist, discounts, clock]\nclock_option: --clock\n", encoding="utf-8")
    cmd = f"command:{YKT} terminal tap --profile bus-flat --card 'pcsc:{{reader}}' --psam image:{psam} --json"
    if journal:
        cmd += f" --journal {tmp_path / 'journal.db'}"
    return cmd, ics


def test_our_terminal_program_passes_through_pcscd_and_vpcd(pcscd, tmp_path):
    cmd, ics = command_dut(tmp_path)
    result = run_suite(RunOptions("terminal", cmd, [K3, K4], ics=str(ics), cases=CASES, clock="20260301120000",
                                  seed=4))
    bad = [(r.case_id, r.verdict, r.reasons) for r in result.results if r.verdict != "pass"]
    assert bad == []
    assert result.dut["reader"] == "Virtual PCD 00 00" and result.dut["kind"] == "command"
    assert result.dut["pcscd"] in ("already running",) or result.dut["pcscd"].startswith("started by the suite")
    recovered = next(r for r in result.results if r.case_id == "TU-TERM-041")
    assert any(e.command.hex().upper().startswith("805A0006") for e in recovered.exchange)


def test_a_program_that_prints_no_outcome_is_inconclusive(pcscd, tmp_path):
    _, ics = command_dut(tmp_path)
    result = run_suite(RunOptions("terminal", "command:true {reader}", [K3, K4], ics=str(ics),
                                  cases=["TU-TERM-001"], clock="20260301120000"))
    [case] = result.results
    assert case.verdict == "inconclusive" and not result.passed
    assert "printed no JSON object on stdout (exit status 0" in case.reasons[0]


def test_without_a_journal_our_program_cannot_recover_and_the_suite_says_so(pcscd, tmp_path):
    cmd, ics = command_dut(tmp_path, journal=False)
    result = run_suite(RunOptions("terminal", cmd, [K3, K4], ics=str(ics), cases=["TU-TERM-041"],
                                  clock="20260301120000"))
    [case] = result.results
    assert case.verdict == "fail"
    assert any("charges twice after a tear" in reason for reason in case.reasons)
