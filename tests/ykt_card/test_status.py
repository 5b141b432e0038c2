"""The purse's status words (reference section 2): named once, registered with apdu.status."""
from __future__ import annotations

import re

import pytest

import ykt_card.status as purse
from apdu.status import STATUS_WORDS, CardError, describe, register_meanings
from tests.reference import reference_text


def _reference_status_words() -> set[int]:
    """Every fixed status word listed in section 2 "Status words" of the reference."""
    text = reference_text("tunion.md")
    section = text.split("### Status words", 1)[1].split("\n---", 1)[0]
    words = set()
    for line in section.splitlines():
        if line.startswith("|"):
            first_cell = line.split("|")[1]
            words.update(int(w, 16) for w in re.findall(r"\b[69][0-9A-F]{3}\b", first_cell))
            words.update(int(w, 16) for w in re.findall(r"\b6[0-9A-F]{3}\b", line.split("|")[2])
                         if "vendor" in line)
    return words


def test_reference_section_2_is_parsed():
    words = _reference_status_words()
    assert {0x9000, 0x9302, 0x9401, 0x9406, 0x6A88, 0x6988, 0x6974} <= words
    assert len(words) >= 30


def test_every_reference_status_word_has_a_meaning():
    missing = sorted(f"{sw:04X}" for sw in _reference_status_words() if sw not in STATUS_WORDS)
    assert missing == []



def test_purse_words_named_once_and_described():
    expected = dict(SW_MAC_INVALID=0x9302, SW_APP_LOCKED_PERM=0x9303, SW_INSUFFICIENT_BALANCE=0x9401,
                    SW_COUNTER_MAX=0x9402, SW_KEY_INDEX_UNSUPPORTED=0x9403, SW_NO_PROOF=0x9406,
                    SW_APP_LOCKED=0x6283, SW_APP_LOCKED_PBOC=0x6284, SW_STATE=0x6901, SW_CAPP_UPDATE_FAILED=0x6974)
    assert {name: getattr(purse, name) for name in expected} == expected
    assert describe(0x9302) == "MAC invalid"
    assert describe(0x6283) == "application temporarily locked (ISO: selected file invalidated)"
    assert str(CardError(0x9401, "balance 100 < amount 200")) == "9401 insufficient balance: balance 100 < amount 200"


@pytest.mark.parametrize("meanings, message", [
    ({0x1234: "x"}, "SW1 must be 61..6F or 90..9F"),
    ({0x9F00: ""}, "meaning must be non-empty text"),
])
def test_register_refuses_bad_meanings(meanings, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        register_meanings(meanings)
