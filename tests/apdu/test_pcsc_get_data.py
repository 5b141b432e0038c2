"""PC/SC Part 3 GET DATA (`FF CA`): the reader's own answer with the card's UID and ATS historical bytes.

The table of 3.2.2.1.3 as exact exchanges, first on the pure function, then through a real pcscd and
vpcd with pyscard, where the Card OS must never see the pseudo-APDU.
"""
from __future__ import annotations

import pytest

from apdu.iso14443 import DEFAULT_UID, Ats, pseudo_atr
from apdu.transport.pcsc.pseudo import (GetDataRefused, answer_get_data, atr_historical, get_data_command,
                                        is_get_data, read_historical, read_uid)
from apdu.transport.inprocess import InProcessReader
from apdu.transport.pcsc.reader import PcscReader
from apdu.transport.pcsc.vpcd import DEFAULT_ATR, VpcdEndpoint

T_UNION_ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
HISTORICAL = Ats.parse(T_UNION_ATS).historical
UID7 = bytes.fromhex("04A1B2C3D4E5F6")

#: (command, answer) for a card with UID7 and HISTORICAL (13 bytes), per PC/SC Part 3 3.2.2.1.3.
GET_DATA_TABLE = [
    ("FFCA000000", UID7.hex() + "9000"),                       # Le 00: all of the UID
    ("FFCA000007", UID7.hex() + "9000"),                       # Le exact
    ("FFCA000004", "6C07"),                                    # Le shorter: wrong length, 7 available
    ("FFCA000009", UID7.hex() + "6282"),                       # Le longer: end of data before Le bytes
    ("FFCA010000", HISTORICAL.hex() + "9000"),                 # the ATS historical bytes
    ("FFCA01000D", HISTORICAL.hex() + "9000"),
    ("FFCA010001", "6C0D"),
    ("FFCA0100FF", HISTORICAL.hex() + "6282"),
    ("FFCA020000", "6A81"),                                    # P1 02: not defined for Type A
    ("FFCAFF0000", "6A81"),
    ("FFCA000100", "6A81"),                                    # P2 must be 00
    ("FFCA0000", "6700"),                                      # no Le
    ("FFCA00000100", "6700"),                                  # a body where none belongs
]


@pytest.mark.parametrize("command, answer", GET_DATA_TABLE)
def test_get_data_answers_as_part_3_says(command, answer):
    assert answer_get_data(bytes.fromhex(command), UID7, HISTORICAL).hex().upper() == answer.upper()


def test_a_card_without_historical_bytes_answers_empty_data():
    assert answer_get_data(bytes.fromhex("FFCA010000"), DEFAULT_UID, b"") == b"\x90\x00"
    assert answer_get_data(bytes.fromhex("FFCA010004"), DEFAULT_UID, b"") == b"\x62\x82"


def test_only_ff_ca_is_the_readers_own():
    assert is_get_data(bytes.fromhex("FFCA000000"))
    assert not is_get_data(bytes.fromhex("00CA000000")) and not is_get_data(bytes.fromhex("FF5C000204"))
    assert get_data_command(0x01) == bytes.fromhex("FFCA010000")
    with pytest.raises(ValueError, match="P1: 0x02"):
        get_data_command(0x02)


@pytest.mark.parametrize("historical", [b"", HISTORICAL, b"\x00" * 15])
def test_historical_bytes_come_back_out_of_the_pseudo_atr(historical):
    assert atr_historical(pseudo_atr(historical)) == historical


def test_historical_bytes_of_contact_atrs_and_broken_ones():
    # TS 3B, T0 95 (TA1, TD1 follow; 5 historical), TA1 11, TD1 81 (TD2), TD2 31 (TA3, TD3?), ...
    assert atr_historical(bytes.fromhex("3B 95 11 81 31 FE 65 59 4B 54 2D 54 00")) == b"YKT-T"
    with pytest.raises(ValueError, match="announces 4 historical bytes"):
        atr_historical(bytes.fromhex("3B 84 80 01 AA"))
    with pytest.raises(ValueError, match="too short"):
        atr_historical(b"\x3B")


def test_a_contact_card_has_no_uid_for_the_reader_to_report():
    contact = VpcdEndpoint(None, atr=bytes.fromhex("3B08594B545053414D01"), uid=None)  # type: ignore[arg-type]
    assert contact._handle(bytes.fromhex("FFCA000000")) == b"\x6A\x81"
    assert contact.historical == b"YKTPSAM\x01"


def test_vpcd_refuses_a_uid_no_card_can_have():
    with pytest.raises(ValueError, match="UID: 5 bytes"):
        VpcdEndpoint(None, uid=b"\x01" * 5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cascade tag"):
        VpcdEndpoint(None, uid=bytes.fromhex("88010203"))  # type: ignore[arg-type]


class SeeingCard:
    """A Card OS that answers 6D00 to everything and remembers what reached it."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []

    def power_on(self) -> bytes:
        return T_UNION_ATS

    def power_off(self) -> None:
        pass

    def process(self, capdu: bytes) -> bytes:
        self.seen.append(bytes(capdu))
        return b"\x6D\x00"


@pytest.mark.pcsc
def test_get_data_through_pcscd_is_answered_by_the_reader_not_the_card(vpcd_card):
    card = SeeingCard()
    served = vpcd_card(card, slot=0, atr=pseudo_atr(HISTORICAL), uid=UID7)
    reader = PcscReader(served.reader_name)
    reader.connect()
    try:
        for command, answer in GET_DATA_TABLE:
            assert reader.transmit(bytes.fromhex(command)).hex().upper() == answer.upper(), command
        assert read_uid(reader) == UID7 and read_historical(reader) == HISTORICAL
        assert reader.transmit(bytes.fromhex("00CA000000")) == b"\x6D\x00"   # CLA 00 is the card's
    finally:
        reader.disconnect()
    assert card.seen == [bytes.fromhex("00CA000000")]
    assert served.endpoint.apdu_count == 1


@pytest.mark.pcsc
def test_default_uid_and_a_reader_that_refuses(vpcd_card):
    served = vpcd_card(SeeingCard(), slot=1, atr=DEFAULT_ATR)
    reader = PcscReader(served.reader_name)
    reader.connect()
    try:
        assert read_uid(reader) == DEFAULT_UID and read_historical(reader) == b""
    finally:
        reader.disconnect()
    # a reader that passes CLA FF to the card (the in-process slot): the card's refusal is the answer
    slot = InProcessReader(SeeingCard())
    slot.connect()
    with pytest.raises(GetDataRefused, match="UID.*6D00"):
        read_uid(slot)
