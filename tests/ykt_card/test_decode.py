"""`ykt decode EF HEX`: picking the layout, tolerant hex input, status words, errors by field (the text is
tests/tools/test_render.py's)."""
from __future__ import annotations

import json

import pytest

from tests.reference import h
from ykt_card.layouts.decode import CHOICES, decode_bytes, decode_ef, parse_hex
from ykt_card.layouts import (ALL, EF15, EF18, EF1ABus, EF1AMetro, EF1AOther, EF1EA, EF1EB, AdfFci,
                              FileLayout, LayoutError, PpseFci)

# the EF argument that selects each layout (EF1A picks its layout from the record number itself)
WHICH = {"PPSE": ("ppse", "A"), "FCI": ("fci", "A"), "EF15": ("15", "A"), "EF16": ("16", "A"),
         "EF17": ("17", "A"), "EF18": ("18", "A"), "EF1A-metro": ("1A", "A"), "EF1A-bus": ("1A", "A"),
         "EF1A-other": ("1A", "A"), "EF1E-A": ("1E", "A"), "EF1E-B": ("1E", "B"),
         "PSAM-EF15": ("psam15", "A"), "PSAM-EF16": ("psam16", "A"), "PSAM-EF17": ("psam17", "A")}
CASES = [pytest.param(cls, i, id=f"{cls.name}-{i}") for cls in ALL for i in range(len(cls.vectors))]


def test_every_layout_is_reachable_from_the_command_line() -> None:
    assert set(WHICH) == {cls.name for cls in ALL}
    assert {which for which, _ in WHICH.values()} == set(CHOICES)


@pytest.mark.parametrize("cls,index", CASES)
def test_decode_ef_decodes_every_vector(cls: type[FileLayout], index: int) -> None:
    hex_text, expected = cls.vectors[index]
    which, layout = WHICH[cls.name]
    out = decode_ef(which, hex_text, layout)  # the vectors keep their grouping spaces
    raw = h(hex_text)
    assert out == {"file": cls.name, "title": cls.title, "length": len(raw), "fields": expected}
    assert json.loads(json.dumps(out, ensure_ascii=False)) == out


@pytest.mark.parametrize("text", [
    "00:79:00:00:00:00:00:00:00:09:41:31:06:16:36:75:20:20:12:28:21:45:11",
    "0079 000000 00000000 09 413106163675 20201228 214511",
    "0079|000000|00000000|09|413106163675|20201228|214511",
    "  0079000000000000000941310616367520201228214511\n",
    "0079\t000000 00000000 09 413106163675\r\n20201228 214511",
    "0079000000000000000941310616367520201228214511".lower(),
])
def test_hex_may_be_grouped_with_spaces_colons_and_bars(text: str) -> None:
    assert decode_ef("18", text)["fields"] == EF18.vectors[0][1]


@pytest.mark.parametrize("which", ["18", "EF18", "ef18", "Ef-18", " 18 ", "0x18"])
def test_file_names_are_forgiving(which: str) -> None:
    assert decode_ef(which, EF18.vectors[0][0])["file"] == "EF18"


@pytest.mark.parametrize("which,name", [("psam15", "PSAM-EF15"), ("PSAM-EF16", "PSAM-EF16"),
                                        ("psam_ef17", "PSAM-EF17"), ("PPSE", "PPSE"), ("FCI", "FCI")])
def test_psam_and_fci_names(which: str, name: str) -> None:
    cls = {c.name: c for c in ALL}[name]
    assert decode_ef(which, cls.vectors[0][0])["file"] == name


def test_1a_picks_the_layout_from_the_record_number() -> None:
    assert decode_ef("1A", EF1AMetro.vectors[0][0])["file"] == "EF1A-metro"
    assert decode_ef("1a", EF1ABus.vectors[0][0])["file"] == "EF1A-bus"
    parking = decode_ef("1A", "27076D010200" + "00" * 106)
    summary = (parking["file"], parking["length"], parking["fields"]["record_type"])
    assert summary == ("EF1A-other", 112, "parking")


def test_1e_layout_is_the_users_choice() -> None:
    hex_text = EF1EB.vectors[0][0]
    as_b = decode_ef("1E", hex_text, "b")
    as_a = decode_ef("1E", hex_text)  # A is the default (D8)
    assert as_b["fields"] == EF1EB.vectors[0][1]
    assert as_a["file"] == "EF1E-A" and as_a["fields"] == EF1EA.decode(h(hex_text))
    assert as_a["fields"]["industry"] == "00" and as_b["fields"]["trade_serial"] == "0000000000000078"


@pytest.mark.parametrize("which,cls,sw", [("18", EF18, "9000"), ("fci", AdfFci, "9000"),
                                          ("fci", AdfFci, "6283"), ("ppse", PpseFci, "9000"),
                                          ("1A", EF1AMetro, "9000")])
def test_a_trailing_status_word_is_split_off(which: str, cls: type[FileLayout], sw: str) -> None:
    hex_text, expected = cls.vectors[0]
    out = decode_ef(which, f"{hex_text} {sw}")
    assert out["sw"] == sw and out["fields"] == expected and out["length"] == len(h(hex_text))


def test_an_error_status_word_is_not_data() -> None:
    with pytest.raises(LayoutError, match=r"^EF18: wrong length 25 bytes, expected 23$"):
        decode_ef("18", EF18.vectors[0][0] + "6A82")


@pytest.mark.parametrize("args,layout,field,message", [
    (("15", "01011000FFFFFFFF 02 01 0310A170010170907984 20190806 20401231 0000"), "EF15", "card_no",
     "EF15.card_no: bad BCD digit 'A' at byte 12"),
    (("18", "0079000000000000000941310616367520201228 2145"), "EF18", None,
     "EF18: wrong length 22 bytes, expected 23"),
    (("1A", "27"), "EF1A", None,
     "EF1A: wrong length 1 bytes, expected 128 (or the size of its record number)"),
    (("1A", "270D1B010100" + "00" * 30), "EF1A-other", None,
     "EF1A-other: wrong length 36 bytes, expected 30"),
    (("1E", "00" * 48, "C"), "decode", "layout", "decode.layout: must be A or B, got 'C'"),
    (("19", "00"), "decode", "EF", "decode.EF: unknown file '19'; choose one of " + ", ".join(CHOICES)),
    (("15", "0G"), "input", "hex", "input.hex: not a hex digit 'G' at character 2"),
    (("15", "01011000…"), "input", "hex", "input.hex: not a hex digit '…' at character 9"),
    (("15", "ABC"), "input", "hex", "input.hex: odd number of hex digits (3)"),
    (("15", " : "), "input", "hex", "input.hex: no hex digits"),
    (("18", "0079 000000 00000000 09 413106163675 20201328 214511"), "EF18", "datetime",
     "EF18.datetime: not a date-time: 20201328214511 at byte 16"),
    (("fci", "6F31 8408A000000632010105 A525 9F080102 9F0C1E"), "FCI", None,
     "FCI: tag 6F: length 49 runs past the end of the data (19 bytes left) at byte 1"),
])
def test_errors_are_one_line_and_name_the_field(args: tuple, layout: str, field: str | None,
                                                message: str) -> None:
    with pytest.raises(LayoutError) as err:
        decode_ef(*args)
    assert (err.value.layout, err.value.field, str(err.value)) == (layout, field, message)


def test_parse_hex_refuses_non_text() -> None:
    with pytest.raises(LayoutError):
        parse_hex(b"0079")  # type: ignore[arg-type]
    assert parse_hex("0a:0B") == b"\x0a\x0b"


def test_decode_bytes_takes_raw_bytes() -> None:
    raw, expected = EF15.vector_bytes()[0]
    assert decode_bytes("15", raw)["fields"] == expected
