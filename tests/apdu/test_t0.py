"""T=0 response handling (61xx, 6Cxx) and Channel, as exact exchange tables against a T=0 card.

The card below is a small but honest T=0 Card OS (it IS a card OS, not a mock): case-4 commands get
61xx and their data is fetched with GET RESPONSE; a wrong Le on READ BINARY gets 6Cxx.
"""
from __future__ import annotations

import pytest

from apdu.command import ApduError, CommandApdu
from apdu.dispatch import CardApplication, instruction
from apdu.transport.inprocess import InProcessReader
from apdu.reader import ReaderError
from apdu.status import SW_CONDITIONS, SW_FILE_NOT_FOUND, CardError, ResponseApdu
from apdu.t0 import MAX_GET_RESPONSE, Channel, get_response, transceive

H = bytes.fromhex
EF15 = H("01011000FFFFFFFF02010310517001017090798420190806204012310000")  # 30 bytes
BIG = bytes(i & 0xFF for i in range(600))


class T0Card(CardApplication):
    """PSAM-like T=0 card: 8070 (case 4) answers via 61xx, READ BINARY insists on the exact Le."""

    def __init__(self) -> None:
        self.pending = b""
        self.log: list[tuple[str, str]] = []

    def power_on(self) -> bytes:
        return H("3B0214")

    def power_off(self) -> None:
        self.pending = b""

    def process(self, capdu: bytes) -> bytes:
        rapdu = super().process(capdu)
        self.log.append((capdu.hex().upper(), rapdu.hex().upper()))
        return rapdu

    def before_command(self, cmd: CommandApdu) -> None:
        if cmd.ins != 0xC0:
            self.pending = b""  # T=0: the response is lost unless fetched next

    def _queue(self, data: bytes):
        self.pending = data
        return (b"", 0x6100 | (len(data) & 0xFF)) if len(data) < 256 else (b"", 0x6100)

    @instruction(0x70, cla=0x80)
    def init_sam_for_purchase(self, cmd: CommandApdu):
        return self._queue(H("00000001") + H("1A2B3C4D"))

    @instruction(0x72, cla=0x80)
    def big(self, cmd: CommandApdu):
        return self._queue(BIG)

    @instruction(0xA4, cla=0x00)
    def select(self, cmd: CommandApdu):
        if cmd.data != H("8011"):
            raise CardError(SW_FILE_NOT_FOUND)
        return (b"", 0x9000)

    @instruction(0xB0, cla=0x00)
    def read_binary(self, cmd: CommandApdu):
        if cmd.le != len(EF15):
            return (b"", 0x6C00 | len(EF15))
        return EF15

    @instruction(0xC0, cla=0x00)
    def get_response(self, cmd: CommandApdu):
        if not self.pending:
            raise CardError(SW_CONDITIONS)
        if cmd.le > len(self.pending):
            return (b"", 0x6C00 | len(self.pending))
        chunk, self.pending = self.pending[:cmd.le], self.pending[cmd.le:]
        if self.pending:
            return (chunk, 0x6100 | (len(self.pending) & 0xFF if len(self.pending) < 256 else 0))
        return chunk


class Stuck(T0Card):
    @instruction(0xC0, cla=0x00)
    def get_response(self, cmd: CommandApdu):
        return (b"\x00", 0x6101)  # never finishes


class AlwaysWrongLe(T0Card):
    def read_binary(self, cmd: CommandApdu):
        return (b"", 0x6C00 | ((cmd.le + 1) & 0xFF))


def connected(card: T0Card) -> InProcessReader:
    reader = InProcessReader(card, name="psam")
    reader.connect()
    return reader


def test_61xx_is_fetched_with_get_response():
    card = T0Card()
    capdu = H("8070000024") + bytes(36) + H("08")
    resp = transceive(connected(card), capdu)
    assert resp == ResponseApdu(H("000000011A2B3C4D"), 0x9000)
    assert card.log == [
        (capdu.hex().upper(), "6108"),
        ("00C0000008", "000000011A2B3C4D9000"),
    ]


def test_long_answer_is_fetched_in_256_byte_chunks():
    card = T0Card()
    resp = transceive(connected(card), H("8072000004AABBCCDD"))
    assert resp.data == BIG and resp.ok
    assert [(c, r[-4:]) for c, r in card.log] == [
        ("8072000004AABBCCDD", "6100"),  # 600 bytes waiting: 256 or more
        ("00C0000000", "6100"),  # 256 bytes, 344 left
        ("00C0000000", "6158"),  # 256 bytes, 88 left
        ("00C0000058", "9000"),
    ]
    assert [len(H(r)) - 2 for _, r in card.log] == [0, 256, 256, 88]


def test_6cxx_resends_with_the_right_le():
    card = T0Card()
    resp = transceive(connected(card), H("00B0950000"))
    assert resp == ResponseApdu(EF15, 0x9000)
    assert card.log == [
        ("00B0950000", "6C1E"),
        ("00B095001E", EF15.hex().upper() + "9000"),
    ]


def test_6cxx_on_get_response_is_followed_too():
    card = T0Card()
    reader = connected(card)
    card.process(H("8070000024") + bytes(36) + H("08"))
    card.log.clear()
    resp = transceive(reader, get_response(16))  # asks too much: card says 6C08
    assert resp.data == H("000000011A2B3C4D") and resp.ok
    assert card.log == [("00C0000010", "6C08"), ("00C0000008", "000000011A2B3C4D9000")]


def test_6cxx_is_followed_once_then_returned():
    card = AlwaysWrongLe()
    resp = transceive(connected(card), H("00B0950000"))
    assert resp.sw == 0x6C02 and resp.data == b""
    assert card.log == [("00B0950000", "6C01"), ("00B0950001", "6C02")]


def test_errors_and_plain_answers_pass_through():
    card = T0Card()
    reader = connected(card)
    assert transceive(reader, H("00A40000023F00")) == ResponseApdu(b"", 0x6A82)
    assert transceive(reader, CommandApdu(0x00, 0xA4, 0x00, 0x00, H("8011"))).ok
    assert card.log == [("00A40000023F00", "6A82"), ("00A40000028011", "9000")]


def test_a_card_stuck_in_61xx_is_a_link_failure():
    card = Stuck()
    with pytest.raises(ReaderError, match=f"^reader 'psam': card still answers 61xx after "
                                          f"{MAX_GET_RESPONSE} GET RESPONSE commands$"):
        transceive(connected(card), H("8072000004AABBCCDD"))
    assert len(card.log) == MAX_GET_RESPONSE + 1


def test_malformed_command_is_refused_before_sending():
    card = T0Card()
    with pytest.raises(ApduError, match="^Lc says 2 bytes, 1 follows$"):
        transceive(connected(card), H("00A400000201"))
    assert card.log == []


def test_get_response_command():
    assert get_response(8).to_bytes() == H("00C0000008")
    assert get_response(256).to_bytes() == H("00C0000000")


# -- Channel -----------------------------------------------------------------------------------------
def test_channel_send_and_check():
    card = T0Card()
    channel = Channel(connected(card))
    assert channel.name == "psam"
    assert channel.check(H("00B095001E")) == EF15
    assert channel.check(CommandApdu(0x80, 0x70, 0, 0, bytes(36), le=8)) == H("000000011A2B3C4D")
    assert channel.send(H("00A40000023F00")).sw == 0x6A82
    with pytest.raises(CardError) as err:
        channel.check(H("00A40000023F00"))
    assert err.value.sw == 0x6A82
    assert str(err.value) == "6A82 file or application not found: command 00 A4 00 00"
