"""Dispatch: the one place where handlers' data and exceptions become response APDUs.

Written as exact exchange tables (command in, response out) against a tiny test application.
"""
from __future__ import annotations

import logging

import pytest

from apdu.command import CommandApdu
from apdu.dispatch import CardApplication, InstructionTable, instruction, respond
from apdu.status import SW_CONDITIONS, SW_FILE_NOT_FOUND, SW_WRONG_OFFSET, CardError

H = bytes.fromhex
AID = H("A000000632010105")
FCI = H("6F0A8408A000000632010105")
FILE = bytes(range(30))
SECRET = H("CAFEBABE11223344")


class Tiny(CardApplication):
    """Just enough of a card to exercise every path of `respond`."""

    def __init__(self) -> None:
        self.locked = False
        self.seen: list[str] = []
        self.refuse_all = False

    def before_command(self, cmd: CommandApdu) -> None:
        self.seen.append(f"{cmd.cla:02X}{cmd.ins:02X}")
        if self.refuse_all:
            raise CardError(SW_CONDITIONS, "card refuses everything")

    @instruction(0xA4, cla=0x00)
    def select(self, cmd: CommandApdu):
        if cmd.data != AID:
            raise CardError(SW_FILE_NOT_FOUND)
        return (FCI, 0x6283) if self.locked else FCI

    @instruction(0xB0, cla=(0x00, 0x04))
    def read_binary(self, cmd: CommandApdu) -> bytes:
        if cmd.p2 >= len(FILE):
            raise CardError(SW_WRONG_OFFSET)
        return FILE[cmd.p2:cmd.p2 + (cmd.le or 0)]

    @instruction(0x5C, cla=0x80)
    def get_balance(self, cmd: CommandApdu) -> bytes:
        return H("000003E8")

    @instruction(0x20, cla=0x00)
    def verify(self, cmd: CommandApdu) -> None:
        return None

    @instruction(0xEE, cla=0x80)
    def crash(self, cmd: CommandApdu) -> bytes:
        raise KeyError(f"secret {cmd.data.hex().upper()}")

    @instruction(0xE0, cla=0x80)
    def wrong_type(self, cmd: CommandApdu):
        return "9000"

    @instruction(0xE1, cla=0x80)
    def data_with_error(self, cmd: CommandApdu):
        return (b"\x01", 0x6A82)

    @instruction(0xE2, cla=0x80)
    def invalid_sw(self, cmd: CommandApdu):
        return (b"", 0x1234)

    @instruction(0xE3, cla=0x80)
    def invalid_card_error(self, cmd: CommandApdu):
        raise CardError(0x0102)


EXCHANGES = [
    # (command, response, what it shows)
    ("00A4040008A00000063201010500", "6F0A8408A000000632010105" "9000", "data ‖ 9000"),
    ("00A4040002 3F00", "6A82", "CardError → its SW, no data"),
    ("00B0000004", "00010203" "9000", "handler sees Le"),
    ("04B0000202", "0203" "9000", "second CLA of the same handler"),
    ("00B0001E01", "6B00", "CardError from a handler"),
    ("805C000204", "000003E8" "9000", "CLA 80 handler"),
    ("0020000003 123456", "9000", "None → 9000 alone"),
    ("00A404", "6700", "header too short → wrong length"),
    ("00A4040002 01", "6700", "Lc/body mismatch → wrong length"),
    ("00A4040000 01", "6700", "Lc zero → wrong length"),
    ("A0A4040000", "6E00", "unknown CLA"),
    ("84A4040000", "6E00", "unknown CLA (secure messaging bit)"),
    ("0084000004", "6D00", "known CLA, unknown INS"),
    ("04A4040002 3F00", "6D00", "INS known only under another CLA"),
    ("80EE000004 CAFEBABE", "6F00", "unexpected exception → 6F00"),
    ("80E00000", "6F00", "handler returned a str"),
    ("80E10000", "6F00", "handler returned data with an error SW"),
    ("80E20000", "6F00", "handler returned an invalid SW"),
    ("80E30000", "6F00", "CardError with an invalid SW"),
]


@pytest.mark.parametrize("capdu, rapdu, why", EXCHANGES, ids=[e[2] for e in EXCHANGES])
def test_exchange_table(capdu, rapdu, why):
    card = Tiny()
    assert card.process(H(capdu.replace(" ", ""))) == H(rapdu.replace(" ", ""))


def test_warning_with_data():
    card = Tiny()
    card.locked = True
    assert card.process(H("00A4040008A00000063201010500")) == FCI + H("6283")


def test_crash_is_logged_without_apdu_data(caplog):
    card = Tiny()
    with caplog.at_level(logging.ERROR, logger="apdu.dispatch"):
        assert card.process(H("80EE000008") + SECRET) == H("6F00")
    [record] = caplog.records
    text = record.getMessage()
    assert "Tiny.crash for CLA 80 INS EE raised KeyError; answered 6F00" in text
    assert "in crash" in text  # the stack is there for the developer
    assert SECRET.hex().upper() not in text.upper()
    assert "80EE" not in text.upper().replace(" ", "")


def test_handler_result_bugs_are_logged_with_the_reason(caplog):
    card = Tiny()
    with caplog.at_level(logging.ERROR, logger="apdu.dispatch"):
        card.process(H("80E10000"))
        card.process(H("80E30000"))
    assert [r.getMessage() for r in caplog.records] == [
        "card bug: Tiny.data_with_error for CLA 80 INS E1 returned data with error status 6A82 "
        "(ISO: errors carry no data); answered 6F00",
        "card bug: Tiny.invalid_card_error for CLA 80 INS E3 raised CardError with invalid status "
        "word 0102; answered 6F00",
    ]


def test_before_command_sees_every_parsed_command_with_a_known_cla():
    card = Tiny()
    for capdu in ("00A4040002 3F00", "0084000004", "A0A4040000", "00A404", "805C000204"):
        card.process(H(capdu.replace(" ", "")))
    assert card.seen == ["00A4", "0084", "805C"]


def test_before_command_may_refuse():
    card = Tiny()
    card.refuse_all = True
    assert card.process(H("805C000204")) == H("6985")
    assert card.process(H("0084000004")) == H("6985")


def test_subclass_inherits_overrides_and_adds():
    class Bigger(Tiny):
        def get_balance(self, cmd: CommandApdu) -> bytes:  # override keeps INS 5C
            return H("00000001")

        @instruction(0x84, cla=0x00)
        def get_challenge(self, cmd: CommandApdu) -> bytes:
            return bytes(cmd.le or 0)

    card = Bigger()
    assert card.process(H("805C000204")) == H("000000019000")
    assert card.process(H("0084000004")) == H("000000009000")
    assert Tiny().process(H("0084000004")) == H("6D00")


def test_stacked_marks_serve_several_instructions():
    class Twice(CardApplication):
        @instruction(0xB0, cla=0x00)
        @instruction(0xB2, cla=0x00)
        def read(self, cmd: CommandApdu) -> bytes:
            return bytes([cmd.ins])

    assert Twice().process(H("00B0000001")) == H("B09000")
    assert Twice().process(H("00B2010C01")) == H("B29000")


def test_two_methods_for_one_instruction_is_refused_at_class_creation():
    with pytest.raises(TypeError, match="Clash: INS A4 under CLA 00 marked on both one and two"):
        class Clash(CardApplication):
            @instruction(0xA4, cla=0x00)
            def one(self, cmd):
                return b""

            @instruction(0xA4, cla=0x00)
            def two(self, cmd):
                return b""


def test_instruction_decorator_validates():
    with pytest.raises(ValueError, match=r"^INS 256 out of range 0..255$"):
        instruction(0x100)
    with pytest.raises(ValueError, match=r"^CLA -1 out of range 0..255$"):
        instruction(0xA4, cla=-1)
    with pytest.raises(ValueError, match="cla=\\(\\) would register the handler for no class"):
        instruction(0xA4, cla=())


# -- InstructionTable used directly -----------------------------------------------------------------
def test_table_with_only_any_cla_handlers_accepts_every_cla():
    table = InstructionTable()

    @table.register(0xCA)
    def get_data(cmd: CommandApdu) -> bytes:
        return bytes([cmd.cla])

    assert respond(table, H("80CA000000")) == H("809000")
    assert respond(table, H("00CA000000")) == H("009000")
    assert respond(table, H("00CB000000")) == H("6D00")


def test_table_declared_classes_and_specific_handler_wins():
    table = InstructionTable(classes=(0x00, 0x80))
    table.add(0xCA, lambda cmd: b"\x01")
    table.add(0xCA, lambda cmd: b"\x02", cla=0x80)
    assert respond(table, H("00CA0000")) == H("019000")
    assert respond(table, H("80CA0000")) == H("029000")
    assert respond(table, H("90CA0000")) == H("6E00")
    assert len(table) == 2


def test_table_refuses_duplicates_and_bad_handlers():
    table = InstructionTable()
    table.add(0xA4, lambda cmd: b"", cla=0x00)
    with pytest.raises(ValueError, match=r"^INS A4 under CLA 00 already handled by .*<lambda>$"):
        table.add(0xA4, lambda cmd: b"", cla=(0x80, 0x00))
    assert respond(table, H("80A40000")) == H("6E00")  # the refused registration left no trace
    assert len(table) == 1
    with pytest.raises(TypeError, match="handler for INS B0 is not callable"):
        table.add(0xB0, b"not callable")  # type: ignore[arg-type]


def test_response_data_over_65536_bytes_is_a_card_bug():
    table = InstructionTable()
    table.add(0xB0, lambda cmd: bytes(65537))
    assert respond(table, H("00B00000")) == H("6F00")
