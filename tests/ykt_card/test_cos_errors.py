"""Malformed and unknown commands: the right status word, never 6F00 (D17), and nothing changes."""
import itertools

import pytest

from apdu.status import is_valid_sw

from tests.ykt_card.helpers import (
    SELECT_AID, HostTerminal, capp_update_1a, gd_keyset, h, make_card, run_table, state_fingerprint,
)

#: Every status word this card may answer (reference section 2 table, plus ISO 6300/6986; 6Cxx, 63Cx).
ALLOWED = {0x9000, 0x6283, 0x9303, 0x6700, 0x6981, 0x6982, 0x6983, 0x6984, 0x6985, 0x6986, 0x6988,
           0x6A80, 0x6A82, 0x6A83, 0x6A84, 0x6A86, 0x6A88, 0x6B00, 0x6D00, 0x6E00, 0x9302, 0x9401,
           0x9402, 0x9403, 0x9406, 0x6300}


def sw_ok(sw: int) -> bool:
    return sw in ALLOWED or sw & 0xFF00 == 0x6C00 or sw & 0xFFF0 == 0x63C0


def loaded_card():
    card = make_card(balance=5000)
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    t.select()
    assert t.purchase(100, capp=[capp_update_1a()])["sw"] == 0x9000
    assert t.load(100)["sw"] == 0x9000
    return card, t


def test_class_and_instruction_errors():
    card, _ = loaded_card()
    before = state_fingerprint(card)
    run_table(card, [
        ("A0A4040008A00000063201010500", "6E00"),   # GSM class
        ("01B095001E", "6E00"),                     # logical channel 1
        ("FFB095001E", "6E00"),
        ("80A4040008A00000063201010500", "6E00"),   # SELECT under CLA 80
        ("00500002 0B0100000064112233445566 10".replace(" ", ""), "6E00"),
        ("84840000 04".replace(" ", ""), "6E00"),
        ("045C000204", "6E00"),
        ("00CA9F7F00", "6D00"),                     # GET DATA: not on this card
        ("80CA000009", "6D00"),                     # the MOHURD authentication code is not T-Union
        ("805E010003123456", "6D00"),               # CHANGE PIN: not implemented
        ("80160000", "6D00"),
        ("00C0000008", "6D00"),                     # GET RESPONSE: contactless, no 61xx
    ])
    assert state_fingerprint(card) == before


def test_length_errors():
    card, _ = loaded_card()
    before = state_fingerprint(card)
    run_table(card, [
        ("00", "6700"), ("00A4", "6700"), ("00A404", "6700"),
        ("00A4040008A000000632", "6700"),                      # Lc says 8, 5 follow
        ("00A4040002A0000000", "6700"),                        # trailing bytes
        ("00B095000000001E", "6700"),                          # extended Le: not supported
        ("00A404000008A00000063201010500", "6700"),            # extended Lc
        ("805C00020400", "6700"),
    ])
    assert state_fingerprint(card) == before


def test_sweep_every_instruction_never_6f00_and_changes_nothing():
    """Every CLA the card knows x every INS x P1/P2 corners x a few body shapes."""
    card, t = loaded_card()
    before = state_fingerprint(card)
    bodies = [b"", b"\x00", b"\x04", b"\x08", b"\x02\x00\x01\x08", b"\x04" + b"\xAA" * 4,
              b"\x04" + b"\xAA" * 4 + b"\x00", b"\x0b" + b"\xAA" * 11, b"\x0f" + b"\xAA" * 15 + b"\x08",
              b"\x1c" + b"\xAA" * 28, b"\x30" + b"\xAA" * 48, b"\x80" + b"\xAA" * 128]
    for cla, ins, (p1, p2), body in itertools.product(
            (0x00, 0x04, 0x80, 0x84, 0x0C, 0xA0), range(256), ((0, 0), (1, 2), (0x95, 0xD4), (0xFF, 0xFF)), bodies):
        if (cla, ins) == (0x00, 0x20) and len(body) > 1:
            continue  # VERIFY with AA.. is refused as non-BCD below; other bodies may count PIN tries
        r = card.process(bytes((cla, ins, p1, p2)) + body)
        sw = int.from_bytes(r[-2:], "big")
        assert is_valid_sw(sw) and sw_ok(sw), f"{cla:02X}{ins:02X}{p1:02X}{p2:02X} -> {sw:04X}"
        if sw != 0x9000 and sw != 0x6283 and sw != 0x9303:
            assert len(r) == 2, "errors carry no data"
        if (cla, ins, p1) == (0x00, 0xA4, 0x04) or r[-2:] != b"\x90\x00":
            t.select()
    assert card.process(h("0020000003AAAAAA"))[-2:] == b"\x6a\x80"
    assert state_fingerprint(card) == before


@pytest.mark.parametrize("capdu,sw", [
    ("805000020B0100000064112233445566", 0x9000),   # case 3 INITIALIZE (T=0 style) is fine
    ("80DC01D080" + "00" * 128, 0x6985),            # cache without INITIALIZE
    ("805401000F" + "00" * 15 + "08", 0x6985),
    ("805200000B" + "00" * 11 + "04", 0x6985),
])
def test_state_machine_errors(capdu, sw):
    card, _ = loaded_card()
    before = state_fingerprint(card)
    assert int.from_bytes(card.process(h(capdu))[-2:], "big") == sw
    assert state_fingerprint(card) == before


def test_a_card_never_powered_powers_itself_on():
    card = make_card([gd_keyset()])
    assert card.process(h(SELECT_AID))[-2:] == b"\x90\x00"
    assert card.powered
