"""The case format: shipped cases validate; a bad case is refused in one line naming file and field."""
from __future__ import annotations

import pytest

from specs.conformance.card import CardSuite
from specs.conformance.schema import CaseError, load_case_file

SUITE = CardSuite()

GOOD = """
cases:
  - id: TU-CARD-900
    title: t
    purpose: p
    reference: [D6]
    tags: [core, capp]
    steps:
      - debit: {mac1: wrong}
        expect: {sw: "9302"}
"""


def load(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return load_case_file(path, SUITE.actions, SUITE.checks)


def test_a_good_case_loads_with_its_parameters_parsed(tmp_path):
    [lc] = load(tmp_path, GOOD)
    assert lc.case.id == "TU-CARD-900" and lc.case.steps[0].name == "debit"
    assert lc.steps[0].mac1 == "wrong"
    assert lc.case.steps[0].expect.statuses() == ["9302"]


@pytest.mark.parametrize("change,field,reason", [
    (("mac1: wrong", "mac1: maybe"), "cases[0].steps[0].debit.mac1", "must be"),
    (("debit:", "debet:"), "cases[0].steps[0]", "unknown action 'debet'"),
    (('sw: "9302"', 'sw: "93G2"'), "cases[0].steps[0].expect.sw", "four hex digits"),
    (("[core, capp]", "[core, profile]"), "cases[0].tags", "exactly one of core, profile, issuance"),
    (("[core, capp]", "[core, capa]"), "cases[0].tags[1]", "unknown tag 'capa'"),
    (("[D6]", "[D19]"), "cases[0].reference[0]", "a decision D1..D18"),
    (("TU-CARD-900", "TU-CARD-9"), "cases[0].id", "TU-CARD-NNN"),
    (("    purpose: p\n", ""), "cases[0].purpose", "missing"),
])
def test_a_bad_case_is_refused_naming_file_and_field(tmp_path, change, field, reason):
    with pytest.raises(CaseError) as err:
        load(tmp_path, GOOD.replace(*change))
    text = str(err.value)
    assert text.startswith(f"{tmp_path / 'c.yaml'}: {field}: "), text
    assert reason in text


def test_every_shipped_case_file_validates():
    cases = SUITE.load()
    assert {lc.path.name for lc in cases} >= {"identification.yaml", "files.yaml", "load.yaml", "purchase.yaml",
                                               "capp.yaml", "proof.yaml", "security.yaml", "block.yaml",
                                               "tearing.yaml", "issuance.yaml"}
    for lc in cases:
        for cell in lc.case.covers:
            command, condition = cell.split("/")
            assert command in SUITE.commands and condition in SUITE.conditions
