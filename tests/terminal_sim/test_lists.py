"""Versioned black list and issuer white list: the shipped files, the loader's errors, the lookups."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.reference import reference_text
from terminal_sim.lists import (
    BlackList, IssuerWhiteList, ListError, acceptance_refusal, load_blacklist, load_whitelist, parse_list,
)

LISTS = Path(__file__).resolve().parents[2] / "specs" / "lists"


def test_shipped_black_list():
    black = load_blacklist(LISTS / "blacklist-gd.txt")
    assert black.version == "2024112401"
    assert "03104870300000000017" in black
    assert "03104870300000000018" not in black
    assert all(len(card) == 20 and card.isdigit() for card in black.cards)


def test_shipped_white_list_names_every_guangdong_issuer_of_the_reference():
    white = load_whitelist(LISTS / "issuers-gd.txt")
    assert white.version == "2024112401"
    # the issuer IDs of guangdong.md's table, e.g. "| 0220 5810 |"
    table = re.findall(r"^\|[^|]+\| \d{4} \|[^|]+\| (\d{4} \d{4}) \| \d{8} \|$",
                       reference_text("guangdong.md"), flags=re.MULTILINE)
    table = [issuer.replace(" ", "") for issuer in table]
    assert len(table) == 21
    for issuer in table:
        assert white.accepts(issuer + "FFFFFFFF"), issuer
    assert not white.accepts("01011000FFFFFFFF")   # Beijing


def test_comments_blank_lines_and_lower_case_hex():
    white = parse_list("# x\n\nkind: issuers  # the kind\nversion: 2024010100\n  02205810ffffffff  \n", "w.txt")
    assert isinstance(white, IssuerWhiteList)
    assert white.prefixes == ("02205810FFFFFFFF",)
    assert white.accepts("02205810ffffffff")
    assert not white.accepts("02205810FFFFFFFE")


def test_an_empty_black_list_is_a_valid_list():
    black = parse_list("kind: blacklist\nversion: 2024112401\n", "b.txt")
    assert isinstance(black, BlackList) and black.cards == frozenset()


@pytest.mark.parametrize("text, message", [
    ("kind: blacklist\nversion: 2024112401\n0310487030000000001\n",
     r"^b\.txt:3: not a 20-digit card number: '0310487030000000001'$"),
    ("kind: blacklist\nversion: 2024112401\n03104870300000000017\n\n03104870300000000017\n",
     r"^b\.txt:5: card 03104870300000000017 listed twice \(first on line 3\)$"),
    ("kind: blacklist\n03104870300000000017\nversion: 2024112401\n", r"^b\.txt:3: version: headers must come before"),
    ("kind: blacklist\n03104870300000000017\n", r"^b\.txt: version: missing header$"),
    ("version: 2024112401\n", r"^b\.txt: kind: missing header$"),
    ("kind: greylist\nversion: 2024112401\n", r"^b\.txt:1: kind: expected one of blacklist, issuers"),
    ("kind: blacklist\nversion: 24112401\n", r"^b\.txt:2: version: expected 10 digits YYYYMMDDnn"),
    ("kind: blacklist\nversion: 2024133101\n", r"^b\.txt:2: version: 20241331 is not a date$"),
    ("kind: blacklist\nkind: blacklist\n", r"^b\.txt:2: kind: given twice \(first on line 1\)$"),
    ("colour: red\n", r"^b\.txt:1: unknown header 'colour'"),
    ("kind: issuers\nversion: 2024112401\n022058\n", r"^b\.txt:3: not an issuer ID prefix"),
    ("kind: issuers\nversion: 2024112401\n02205810\n02205810\n", r"^b\.txt:4: issuer 02205810 listed twice"),
    ("kind: issuers\nversion: 2024112401\n", r"^b\.txt: an issuer white list with no issuers"),
    ("kind: issuers\nversion: 2024112401\n# a comment\n02205810\n\n0220581012345678\n0220581012345678\n",
     r"^b\.txt:7: issuer 0220581012345678 listed twice \(first on line 6\)$"),
    ("kind: blacklist\n", r"^b\.txt: version: missing header$"),
])
def test_bad_lists_are_refused_in_one_line_naming_file_and_line(text, message):
    with pytest.raises(ListError, match=message) as info:
        parse_list(text, "b.txt")
    assert "\n" not in str(info.value)


def test_loaders_check_the_kind_and_the_file(tmp_path):
    path = tmp_path / "white.txt"
    path.write_text("kind: issuers\nversion: 2024112401\n02205810\n")
    with pytest.raises(ListError, match=r"^white\.txt: kind: expected blacklist, got issuers$"):
        load_blacklist(path)
    black = tmp_path / "black.txt"
    black.write_text("kind: blacklist\nversion: 2024112401\n")
    with pytest.raises(ListError, match=r"^black\.txt: kind: expected issuers, got blacklist$"):
        load_whitelist(black)
    with pytest.raises(ListError, match=r"missing\.txt: no such list file$"):
        load_blacklist(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ListError, match=r"bin\.txt: not UTF-8 text; is it a list file\?$"):
        load_blacklist(tmp_path / "bin.txt")


def test_versions_order_lists():
    old = parse_list("kind: blacklist\nversion: 2024112401\n")
    new = parse_list("kind: blacklist\nversion: 2024112501\n")
    assert new.is_newer_than(old) and not old.is_newer_than(new) and not old.is_newer_than(old)


WHITE = parse_list("kind: issuers\nversion: 2024112401\n02205810\n02215840FFFFFFFF\n")


@pytest.mark.parametrize("issuer, card_city, interop, whitelist, refusal", [
    ("02205810FFFFFFFF", "5810", "0000", None, None),                      # local, not interoperable
    ("02205810FFFFFFFF", "5810", "0001", None, None),
    ("01011000FFFFFFFF", "1000", "0001", None, None),                      # any issuer, interoperable
    ("01011000FFFFFFFF", "1000", "0000", None, "card of city 1000 is not interoperable (EF17 interop 0000)"),
    ("01011000FFFFFFFF", "1000", "0001", WHITE, "issuer 01011000FFFFFFFF is not on issuer list 2024112401"),
    ("02215840FFFFFFFF", "5840", "0001", WHITE, None),                      # 8-byte entry
    ("02205810FFFFFFFF", "5810", "0000", WHITE, None),                      # 4-byte prefix
])
def test_acceptance(issuer, card_city, interop, whitelist, refusal):
    assert acceptance_refusal(issuer_id=issuer, card_city=card_city, interop=interop, local_city="5810",
                              whitelist=whitelist) == refusal
