"""The card suite against ykt's own card: every applicable case passes, in 3DES, SM4 and dual; the
cases load and validate; selection, applicability and the coverage matrix behave as documented."""
from __future__ import annotations

import pytest

from specs.conformance import SelectionError, select_cases
from specs.conformance.card import CardDut, CardSuite
from specs.conformance.options import RunOptions, run_suite
from ykt_card.card.cos import TUnionCardOS

from .conftest import K3, K4, card_os

SUITE = CardSuite()
CASES = SUITE.load()


def run_against(algorithms, keysets, profile="reference", **kw):
    options = RunOptions("card", "ykt", keysets, profile=profile, clock="20260301120000", **kw)
    return run_suite(options, dut=CardDut.in_process(card_os(TUnionCardOS, algorithms)))


@pytest.mark.parametrize("algorithms,keysets", [
    (("3des",), [K3]), (("sm4",), [K4]), (("3des", "sm4"), [K3, K4]),
], ids=["3des", "sm4", "dual"])
def test_our_card_passes_every_applicable_case(algorithms, keysets):
    result = run_against(algorithms, keysets)
    bad = [(r.case_id, r.verdict, r.reasons) for r in result.results if r.verdict in ("fail", "inconclusive")]
    assert bad == []
    assert result.passed
    applicable = [r for r in result.results if r.verdict == "pass"]
    assert len(applicable) >= 100
    skipped = {r.case_id: r.reasons[0] for r in result.results if r.verdict == "not applicable"}
    if len(algorithms) == 2:
        assert skipped == {}
    else:
        other = "sm4" if algorithms == ("3des",) else "3des"
        assert skipped and all(other in reason or "dual" in reason for reason in skipped.values())


def test_without_profile_the_issuance_cases_are_not_applicable():
    result = run_against(("3des",), [K3], profile=None, tags=["issuance"])
    assert {r.verdict for r in result.results} == {"not applicable"}
    assert all("--profile" in r.reasons[0] for r in result.results)
    assert result.passed


def test_a_card_of_another_issuer_fails_issuance_against_guangzhou():
    result = run_against(("3des",), [K3], profile="gd-guangzhou", tags=["issuance"])
    verdicts = {r.case_id: r for r in result.results}
    issuer = verdicts["TU-CARD-160"]
    assert issuer.verdict == "fail"
    assert any("issuer ID is 58105810FFFFFFFF, profile gd-guangzhou issues 02205810FFFFFFFF" in x
               for x in issuer.reasons)
    assert verdicts["TU-CARD-161"].verdict == "fail"          # card number prefix 031048703
    assert verdicts["TU-CARD-165"].verdict == "pass"          # same EF1A records 01, 02


def test_at_least_sixty_card_cases_with_unique_ids_and_levels():
    ids = [lc.case.id for lc in CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    for lc in CASES:
        c = lc.case
        assert sum(t in c.tags for t in ("core", "profile", "issuance")) == 1, c.id
        assert c.suite == "card"
    core = [lc for lc in CASES if "core" in lc.case.tags]
    assert len(core) >= 40
    assert any("sm4" in lc.case.tags and "core" in lc.case.tags for lc in CASES)


def test_destructive_cases_run_only_when_asked():
    chosen = select_cases(CASES)
    assert not any("destructive" in lc.case.tags for lc in chosen)
    asked = select_cases(CASES, tags=["destructive"])
    assert [lc.case.id for lc in asked] == ["TU-CARD-125"]
    assert [lc.case.id for lc in select_cases(CASES, ids=["TU-CARD-125"])] == ["TU-CARD-125"]


def test_selection_by_tag_and_exclusion_and_unknown_ids():
    core = select_cases(CASES, tags=["core"], exclude_tags=["sm4"])
    assert core and all("core" in lc.case.tags and "sm4" not in lc.case.tags for lc in core)
    with pytest.raises(SelectionError, match="TU-CARD-999: no such case"):
        select_cases(CASES, ids=["TU-CARD-999"])
    with pytest.raises(SelectionError, match="selects no case"):
        select_cases(CASES, tags=["terminal"])


def test_destructive_permanent_block_locks_the_card_for_good():
    card = card_os(TUnionCardOS, ("3des",))
    options = RunOptions("card", "ykt", [K3], cases=["TU-CARD-125", "TU-CARD-001"], clock="20260301120000")
    result = run_suite(options, dut=CardDut.in_process(card))
    verdicts = {r.case_id: r for r in result.results}
    assert verdicts["TU-CARD-125"].verdict == "pass"
    after = verdicts["TU-CARD-001"]                           # the card can no longer be put in any state
    assert after.verdict == "inconclusive" and "permanently locked" in after.reasons[0]
    assert card.state.lock.value == "permanent"


def test_tearing_cases_need_a_dut_that_can_be_torn():
    from apdu.transport.inprocess import InProcessReader
    plain = CardDut(InProcessReader(card_os(TUnionCardOS, ("3des",))), "plain", "pcsc")
    result = run_suite(RunOptions("card", "x", [K3], tags=["tearing"], clock="20260301120000"), dut=plain)
    assert {r.verdict for r in result.results} == {"not applicable"}
    assert "tear" in result.results[0].reasons[0]


def test_coverage_matrix_lists_every_command_and_shows_gaps():
    result = run_against(("3des", "sm4"), [K3, K4])
    cov = result.coverage
    assert [c["key"] for c in cov["commands"]][:3] == ["select", "read_binary", "read_record"]
    cells = cov["cells"]
    assert {"id": "TU-CARD-062", "verdict": "pass"} in cells["debit"]["wrong_mac"]
    assert cells["debit"]["tearing"] and cells["credit_load"]["tearing"]
    assert cells["write_key"]["normal"] == []                 # a gap the report shows
    assert cov["gaps"] == sum(1 for row in cells.values() for v in row.values() if not v)


def test_reports_carry_the_ics_and_never_a_key(tmp_path):
    from keysets import TEST_KEYSET_DIR, KeySet
    from specs.conformance.report import write_reports

    ics = tmp_path / "ics.yaml"
    ics.write_text("name: ykt virtual card\nvendor: ykt\nalgorithms: [3des, sm4]\n", encoding="utf-8")
    card = card_os(TUnionCardOS, ("3des", "sm4"))
    options = RunOptions("card", "ykt", [K3, K4], profile="reference", ics=str(ics), clock="20260301120000")
    result = run_suite(options, dut=CardDut.in_process(card))
    assert result.dut["ics"] == {"name": "ykt virtual card", "vendor": "ykt", "algorithms": ["3des", "sm4"],
                                 "modes": [], "optional": []}
    paths = write_reports(result, tmp_path / "r")
    text = "".join(p.read_text(encoding="utf-8").upper() for p in paths.values())
    state = card.state
    for path in (K3, K4):
        master = KeySet.load(path)
        for ks in (master, master.card_keys(state.issuer_id, state.serial8)):
            for entry in ks.keys.values():
                value = entry.key.value.hex().upper()
                for part in (value, value[:16], value[16:]):
                    assert part not in text, f"{entry.role} key material in a report"
    assert KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml").entry("purchase").kcv in text
