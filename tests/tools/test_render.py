"""tools/render.py: the text of `ykt card read` and `ykt decode`, rendered by rich at a fixed width.

The dumps and decoded files come from the real layouts and the real virtual card (the scenarios of
tests/ykt_card/test_dump.py); the text is checked for what a reader needs to see, for alignment, and
for being the same bytes every time.
"""
from __future__ import annotations

import json
import re

from tests.reference import h
from tests.ykt_card.test_dump import NoPpseCard, used_card  # noqa: F401 - used_card is a fixture
from tests.ykt_card.test_host import EF15, Rig, card_keys
from tools.render import WIDTH, render_card, render_decoded, yuan
from ykt_card.host.dump import read_card
from ykt_card.layouts import EF18, EF1AOther, EF1EA, AdfFci, PpseFci
from ykt_card.layouts.decode import decode_ef


# -- ykt decode ------------------------------------------------------------------------------------------

def _value_columns(text: str) -> set[int]:
    """Column where the value starts on each 'field: value' line."""
    return {m.end() for line in text.splitlines()[1:] for m in [re.match(r"\s+\S+:\s+", line)] if m}


def test_decoded_text_aligns_fields_and_values() -> None:
    out = decode_ef("18", EF18.vectors[3][0])
    text = render_decoded(out)
    lines = text.splitlines()
    assert lines[0] == "EF18: transaction log record (交易明细), 23 bytes"
    assert len(lines) == 1 + len(out["fields"])
    assert len(_value_columns(text)) == 1
    for name, value in out["fields"].items():
        assert any(re.fullmatch(rf"  {name}:\s+{re.escape(str(value))}( \(.*\))?", line) for line in lines)
    assert "  amount:" in text and "200 (2.00 yuan)" in text and "1000 (10.00 yuan)" in text


def test_decoded_text_flattens_nested_fields_and_shows_empty_values() -> None:
    text = render_decoded(decode_ef("fci", AdfFci.vectors[0][0] + "9000"))
    assert text.splitlines()[0].endswith("51 bytes (SW 9000)")
    assert re.search(r"^  ef15\.card_no_printed:\s+3105170010170907984$", text, re.M)
    assert len(_value_columns(text)) == 1
    text = render_decoded(decode_ef("ppse", PpseFci.vectors[2][0]))
    assert re.search(r"^  entries\[0\]\.label:\s+-$", text, re.M)
    text = render_decoded(decode_ef("1E", EF1EA.vectors[1][0]))
    assert "-100 (-1.00 yuan)" in text
    text = render_decoded(decode_ef("17", "00000156 1000 1000 0000 01 00000000" + "00" * 45))
    assert re.search(r"^  interoperable:\s+no$", text, re.M)


def test_decoded_text_of_a_bare_fields_dict() -> None:
    fields = EF1AOther.decode(EF1AOther.vector_bytes()[1][0])
    text = render_decoded(fields, width=300)
    assert text.splitlines()[0].startswith("record_id:")
    assert len(text.splitlines()) == len(fields)
    assert render_decoded({"entries": []}) == "entries: (none)"


def test_long_values_fold_at_the_fixed_width_and_no_line_ends_in_blanks() -> None:
    fields = EF1AOther.decode(EF1AOther.vector_bytes()[0][0])     # a 244-digit body
    text = render_decoded(fields)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= WIDTH
    body = [line for line in lines[lines.index(next(x for x in lines if x.startswith("body:"))):]]
    assert "".join(line.split()[-1] for line in body) == fields["body"]
    assert all(line == line.rstrip() for line in lines)
    assert render_decoded(fields, width=300).count("\n") == len(fields) - 1    # wide enough: one line each
    assert render_decoded(fields) == text


def test_yuan() -> None:
    assert [yuan(v) for v in (0, 5, 1234, -100, -5, None, True, "12")] == [
        "0.00", "0.05", "12.34", "-1.00", "-0.05", "-", "-", "-"]


# -- ykt card read ---------------------------------------------------------------------------------------

def test_card_text_shows_what_the_dump_holds(used_card: Rig) -> None:  # noqa: F811
    dump = read_card(used_card.card)
    text = render_card(dump)
    assert text.splitlines()[0] == f"T-Union card {dump['public_data']['fields']['card_no_printed']}"
    assert "open" in text.splitlines()[1]
    assert "Balance  48.00 yuan (overdraft limit 0.00, total available 48.00)" in text
    for t in dump["transactions"]:
        f = t["fields"]
        assert f"{f['type']} {f['type_name']}" in text and f["datetime"] in text
    assert "record 01 metro" in text and "in_station: " in text
    assert "max_fare:     900 (9.00 yuan)" in text
    assert "Transit history (EF1E, layout A, newest first)" in text
    assert render_card(dump) == text


def test_card_text_tables_of_records(used_card: Rig) -> None:  # noqa: F811
    text = render_card(read_card(used_card.card))
    lines = text.splitlines()
    head = lines.index("Transactions (EF18, newest first)")
    assert lines[head + 1].split() == ["record", "counter", "type", "amount", "terminal", "date-time"]
    assert lines[head + 2].split()[:5] == ["1", "1", "09", "capp_purchase", "2.00"]
    assert lines[head + 3].split()[:5] == ["2", "1", "02", "ep_load", "50.00"]
    history = lines.index("Transit history (EF1E, layout A, newest first)")
    assert lines[history + 1].split() == ["record", "type", "amount", "balance", "after", "date-time", "terminal"]
    assert lines[history + 2].split() == ["1", "03", "2.00", "48.00", "2026-11-23", "08:15:30", "0000581000000123"]


def test_card_text_of_a_fresh_card_says_none() -> None:
    text = render_card(read_card(Rig().card))
    assert "Transactions (EF18, newest first)\n  (none)" in text
    assert "Transit history (EF1E, layout A, newest first)\n  (none)" in text


def test_card_text_of_locked_and_strange_cards(used_card: Rig) -> None:  # noqa: F811
    used_card.card.application_block_with_key(card_keys("3des").entry("app_block").key)
    assert "LOCKED (temporary, SW 6283)" in render_card(read_card(used_card.card))
    used_card.card.application_block_with_key(card_keys("3des").entry("app_block").key, permanent=True)
    assert "refused: 9303 application permanently locked" in render_card(read_card(used_card.card))
    text = render_card(read_card(Rig(card_cls=NoPpseCard).card))
    assert "  PPSE         refused: 6A82 file or application not found" in text


def test_card_text_shows_an_undecodable_file_raw_with_the_reason() -> None:
    bad = EF15[:10] + h("0310581000000000123A") + EF15[20:]
    dump = read_card(Rig(ef15=bad).card)
    text = render_card(dump)
    assert "cannot decode: " + dump["public_data"]["decode_error"] in text
    assert "cannot decode: " + dump["application"]["decode_error"] in text


# -- the commands ------------------------------------------------------------------------------------------

def test_the_commands_print_the_rendering_at_the_fixed_width(tmp_path) -> None:
    from tests.tools.cli import ykt
    image = tmp_path / "card.json"
    assert ykt("card", "issue", "--keyset", "gd-test-3des", "--out", image, "--clock", "20261124090000").returncode == 0
    text = ykt("card", "read", "--reader", f"image:{image}")
    dump = ykt("card", "read", "--reader", f"image:{image}", "--json")
    assert text.returncode == dump.returncode == 0
    assert text.stdout == render_card(json.loads(dump.stdout)) + "\n"
    body = EF1AOther.vectors[0][0]
    shown = ykt("decode", "1A", body)
    assert shown.stdout == render_decoded(decode_ef("1A", body)) + "\n"
    assert max(len(line) for line in shown.stdout.splitlines()) <= WIDTH
