"""The suite's own PSAMs (specs/conformance/terminal/psams.py): every PSAM personality is served by a case,
the test PSAM bends exactly the exchange it says, cases that give one are refused or not applicable as
documented, and named mutants of the validator's PSAM failure paths are each caught by a case naming them."""
from __future__ import annotations

import dataclasses
import re

import pytest

from apdu.reader import ReaderError
from apdu.status import CardError
from keysets import KeySet
from keysets.randomness import RandomSource
from specs.conformance.options import RunOptions, run_suite
from specs.conformance.schema import CaseError
from specs.conformance.terminal import TerminalSuite
from specs.conformance.terminal.psams import PSAM_PERSONALITIES, PsamParams, build_psam, psam_params_of
from terminal_sim.links import PsamLink, PsamLinkError
from ykt_card.host.psam import CardResponseError, Psam

from .conftest import K3, K4
from .terminal_mutants import ValidatorMutant

SUITE = TerminalSuite()
CASES = SUITE.load()
PSAM_CASES = [lc for lc in CASES if lc.case.terminal and "psam" in lc.case.terminal]
TERMINAL_ID = bytes.fromhex("112233445566")


def run(dut: str, **kw):
    return run_suite(RunOptions("terminal", dut, [K3, K4], clock="20260301120000", seed=7, **kw))


def _psam(**params):
    keysets = [KeySet.load(K3), KeySet.load(K4)]
    test_psam, reader = build_psam(PsamParams(**params), keysets, TERMINAL_ID, RandomSource(1))
    link = PsamLink(reader)
    link.connect()
    psam = Psam(link)
    psam.select_mf()
    psam.select_tunion()
    return test_psam, psam


def _grant(psam: Psam):
    return psam.init_purchase(bytes(4), 0, 100, 0x06, bytes.fromhex("20260301120000"), 1, 0x00, bytes(8), bytes(8))


def test_every_psam_personality_is_served_by_some_case_and_every_psam_case_claims_suite_psam():
    used = {psam_params_of(lc.case.terminal, "x", lc.case.id).personality for lc in PSAM_CASES}
    assert used == set(PSAM_PERSONALITIES)
    assert len(PSAM_CASES) >= 14
    for lc in PSAM_CASES:
        assert "suite_psam" in lc.case.applies.features, lc.case.id


def test_the_test_psam_bends_only_the_exchange_it_says():
    test_psam, psam = _psam(personality="memory_failure", command="init_purchase")
    with pytest.raises(CardError) as err:
        _grant(psam)
    assert err.value.sw == 0x6581
    assert _grant(psam).terminal_seq == 1                       # once (times 1), and nothing was handed out
    _, psam = _psam(personality="unexpected_sw", command="init_purchase", sw="6988")
    with pytest.raises(CardError) as err:
        _grant(psam)
    assert err.value.sw == 0x6988
    _, psam = _psam(personality="malformed", command="init_purchase")
    with pytest.raises(CardResponseError, match="expected 8 bytes, got 4"):
        _grant(psam)
    _, psam = _psam(personality="last_sequence")
    assert _grant(psam).terminal_seq == 0xFFFFFFFF
    with pytest.raises(CardError) as err:
        _grant(psam)
    assert err.value.sw == 0x9402
    test_psam, psam = _psam(personality="link_lost", command="init_purchase")
    with pytest.raises(PsamLinkError):
        _grant(psam)
    with pytest.raises(PsamLinkError):                          # unpowered until the terminal starts it again
        psam.select_mf()
    assert test_psam.seen[-1].response is None and "link failed" in test_psam.seen[-1].note


def test_a_foreign_key_psam_makes_another_mac1():
    _, good = _psam()
    _, foreign = _psam(personality="foreign_keys")
    assert _grant(good).mac1 != _grant(foreign).mac1


def test_a_bad_psam_setting_is_refused_naming_file_and_field():
    with pytest.raises(CaseError) as err:
        psam_params_of({"psam": {"personality": "link_lost"}}, "psam.yaml", "TU-TERM-900")
    assert str(err.value).startswith("psam.yaml: TU-TERM-900.terminal.psam.command: ")
    with pytest.raises(CaseError, match=r"TU-TERM-900.terminal.psam.personality: "):
        psam_params_of({"psam": {"personality": "haunted"}}, "psam.yaml", "TU-TERM-900")
    with pytest.raises(CaseError, match=r"TU-TERM-900.terminal.colour: unknown terminal setting"):
        psam_params_of({"colour": "red"}, "psam.yaml", "TU-TERM-900")
    with pytest.raises(CaseError, match=r"terminal.psam.command: only an answer with data"):
        psam_params_of({"psam": {"personality": "malformed", "command": "verify_mac2"}}, "psam.yaml", "TU-TERM-900")


def test_psam_cases_apply_only_to_duts_that_accept_a_suite_psam(tmp_path):
    ids = [lc.case.id for lc in PSAM_CASES]
    own = tmp_path / "own.yaml"
    own.write_text("name: brings its PSAM\nalgorithms: [3des, sm4]\nmodes: [bus-flat]\nfare: 200\n"
                   "optional: [recovery, blacklist]\npsam: psam.json\n", encoding="utf-8")
    suite = TerminalSuite()
    session, close = suite.open_session(RunOptions("terminal", "python:terminal_sim.terminal:make_terminal",
                                                   [K3, K4], ics=str(own)))
    try:
        mode, why = suite.choose_mode(PSAM_CASES[0].case, session)
        assert mode is None and "suite_psam" in why
    finally:
        close()
    allowed = tmp_path / "allowed.yaml"
    allowed.write_text(own.read_text().replace("psam: psam.json\n", "suite_psam: true\n"), encoding="utf-8")
    result = run("python:terminal_sim.terminal:make_terminal", ics=str(allowed), cases=ids)
    assert result.passed and {r.verdict for r in result.results} == {"pass"}


MUTANTS = (
    ValidatorMutant("psam_refusal_ignored", "sends DEBIT with a made-up MAC1 when its PSAM refuses 8070", "bus-flat",
                    "TU-TERM-150", r"without a MAC1 from its PSAM", (("terminal_sim.flows", "_psam_grant", "refusal"),)),
    ValidatorMutant("psam_never_restarted", "never starts its PSAM again after the PSAM's link failed", "bus-flat",
                    "TU-TERM-153", r"does not start its PSAM again", (("terminal_sim.validator", "Validator.start",
                                                                       "no_restart"),)),
    ValidatorMutant("unverified_mac2_claimed", "reports MAC2 verified when its PSAM's 8072 failed", "bus-flat",
                    "TU-TERM-155", r"treats a PSAM fault at 8072 as MAC2 verified",
                    (("terminal_sim.flows", "_verify_mac2", "claims_verified"),)),
    ValidatorMutant("recovered_mac2_claimed", "reports a recovered proof's MAC2 verified whenever it is accepted",
                    "bus-flat", "TU-TERM-159", r"recovered proof's MAC2 verified although its PSAM answered 6581",
                    (("terminal_sim.validator", "purchase_check", "claims_verified"),)),
    ValidatorMutant("lock_without_mac", "sends APPLICATION BLOCK with a zero MAC when its PSAM gives none",
                    "bus-flat", "TU-TERM-161", r"sends APPLICATION BLOCK \(or DEBIT\) without the PSAM's MAC",
                    (("terminal_sim.prechecks", "Psam.block_mac", "zero_mac"),)),
)


def _refusal(original):
    from ykt_card.host.psam import PsamPurchase

    def psam_grant(device, tx, view, plan_, init, dt7):
        out = original(device, tx, view, plan_, init, dt7)
        if isinstance(out, PsamPurchase):
            return out
        tx.add(terminal_seq=0)
        return PsamPurchase(0, bytes(4))
    return psam_grant


def _no_restart(original):
    def start(self):
        return self._device if self._device is not None else original(self)
    return start


def _claims_verified(original):
    if original.__name__ == "purchase_check":
        def purchase_check(device):
            check = original(device)
            return lambda grey, proof: dataclasses.replace(check(grey, proof), mac2_verified=True)
        return purchase_check

    def verify_mac2(device, tx, debit, balance_after):
        out = original(device, tx, debit, balance_after)
        return out.replace(mac2_verified=True) if out.status == "approved" else out
    return verify_mac2


def _zero_mac(original):
    def block_mac(self, *args, **kwargs):
        try:
            return original(self, *args, **kwargs)
        except (CardError, CardResponseError, ReaderError):
            return bytes(4)
    return block_mac


_MAKERS = {"refusal": _refusal, "no_restart": _no_restart, "claims_verified": _claims_verified, "zero_mac": _zero_mac}


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_psam_path_mutant_is_caught_by_a_case_naming_the_defect(mutant: ValidatorMutant):
    real = dataclasses.replace(mutant, patches=tuple((m, a, _MAKERS[k]) for m, a, k in mutant.patches))
    with real.applied():
        result = run(f"ykt:{mutant.mode}", cases=[lc.case.id for lc in PSAM_CASES])
    by_id = {r.case_id: r for r in result.results}
    expected = by_id[mutant.case]
    assert expected.verdict == "fail", (mutant.name, expected.verdict, expected.reasons)
    assert any(re.search(mutant.reason, reason) for reason in expected.reasons), (mutant.name, expected.reasons)


# -- the suite's own journals (specs/conformance/terminal/journals.py) ------------------------------------

def test_every_journal_failure_is_served_by_some_case_and_claims_suite_journal():
    from specs.conformance.terminal.journals import JournalParams, journal_params_of
    cases = [lc for lc in CASES if lc.case.terminal and "journal" in lc.case.terminal]
    kinds = {journal_params_of(lc.case.terminal, "x", lc.case.id).fails for lc in cases}
    assert kinds == set(JournalParams.model_fields["fails"].annotation.__args__)
    assert all("suite_journal" in lc.case.applies.features for lc in cases)
    with pytest.raises(CaseError, match=r"TU-TERM-900.terminal.journal.fails: "):
        journal_params_of({"journal": {"fails": "sometimes"}}, "j.yaml", "TU-TERM-900")


def test_the_failing_journal_fails_only_where_and_as_often_as_it_says():
    from specs.conformance.terminal.journals import FailingJournal, JournalParams
    from terminal_sim.journal import JournalError
    from terminal_sim.outcome import Outcome
    journal = FailingJournal(JournalParams(fails="lookup", skip=1, times=1))
    assert journal.pending_for("1") == []
    with pytest.raises(JournalError, match="storage failed"):
        journal.pending_for("1")
    assert journal.pending_for("1") == []
    assert journal.append(Outcome(status="declined", reason="x", type="06", terminal_id="112233445566",
                                  datetime="20260301120000")) >= 1


def test_journal_cases_apply_to_ykt_and_to_duts_that_claim_suite_journal(tmp_path):
    ids = [lc.case.id for lc in CASES if lc.case.terminal and "journal" in lc.case.terminal]
    ics = tmp_path / "ics.yaml"
    ics.write_text("name: seam\nalgorithms: [3des, sm4]\nmodes: [bus-flat]\nfare: 200\noptional: [recovery]\n",
                   encoding="utf-8")
    result = run("python:terminal_sim.terminal:make_terminal", ics=str(ics), cases=ids)
    assert {r.verdict for r in result.results} == {"not applicable"}
    assert all("suite_journal" in r.reasons[0] or "load" in r.reasons[0] for r in result.results)
    ics.write_text(ics.read_text() + "suite_journal: true\n", encoding="utf-8")
    result = run("python:terminal_sim.terminal:make_terminal", ics=str(ics), cases=ids)
    assert result.passed and "pass" in {r.verdict for r in result.results}
    result = run("ykt:load", cases=ids)
    assert result.passed and {r.case_id for r in result.results if r.verdict == "pass"} == {"TU-TERM-182",
                                                                                           "TU-TERM-183"}
