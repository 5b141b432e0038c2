"""InProcessReader: the Reader seam around a Card OS object, including the card leaving the field; and
InProcessEndpoint, the card half of the in-process transport (its shared contract: test_endpoints.py)."""
from __future__ import annotations

import pytest

from apdu.cardos import CardOS
from apdu.command import CommandApdu
from apdu.dispatch import CardApplication, instruction
from apdu.cardos import CardPowerLoss
from apdu.endpoint import CardEndpoint
from apdu.transport.inprocess import InProcessEndpoint, InProcessReader
from apdu.reader import Reader, ReaderError

H = bytes.fromhex
ATS = H("1278808002 4D54009D0040869B19705D1401")  # a real T-Union ATS (tunion.md §1.1)


class EchoCard(CardApplication):
    """A Card OS that echoes its command data and counts power cycles."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.received: list[bytes] = []

    def power_on(self) -> bytes:
        self.events.append("on")
        return ATS

    def power_off(self) -> None:
        self.events.append("off")

    def process(self, capdu: bytes) -> bytes:
        self.received.append(capdu)
        return super().process(capdu)

    @instruction(0xEC, cla=0x00)
    def echo(self, cmd: CommandApdu) -> bytes:
        return cmd.data


class MuteCard(EchoCard):
    def process(self, capdu: bytes) -> bytes:
        return b"\x90"


def test_is_a_reader_and_card_is_a_card_os():
    reader = InProcessReader(EchoCard())
    assert isinstance(reader, Reader)
    assert isinstance(reader.card, CardOS)
    assert reader.name == "in-process"
    assert InProcessReader(EchoCard(), name="card slot").name == "card slot"


def test_connect_transmit_disconnect():
    card = EchoCard()
    reader = InProcessReader(card)
    assert reader.card_present() and not reader.powered
    assert reader.connect() == ATS
    assert reader.transmit(H("00EC000002ABCD")) == H("ABCD9000")
    reader.disconnect()
    assert card.events == ["on", "off"]
    assert reader.card_present() and not reader.powered
    reader.disconnect()  # idempotent: no second power_off
    assert card.events == ["on", "off"]


def test_connect_twice_is_a_reset():
    card = EchoCard()
    reader = InProcessReader(card)
    reader.connect()
    reader.connect()
    assert card.events == ["on", "off", "on"]


def test_transmit_needs_connect():
    reader = InProcessReader(EchoCard())
    with pytest.raises(ReaderError, match=r"^reader 'in-process': card not connected; call connect\(\) first$"):
        reader.transmit(H("00EC0000"))


def test_remove_takes_the_card_out_of_the_field():
    card = EchoCard()
    reader = InProcessReader(card, name="gate")
    reader.connect()
    assert reader.remove() is card
    assert card.events == ["on", "off"]
    assert not reader.card_present() and reader.card is None
    with pytest.raises(ReaderError, match=r"^no card in reader 'gate'$"):
        reader.transmit(H("00EC0000"))
    with pytest.raises(ReaderError, match=r"^no card in reader 'gate'$"):
        reader.connect()
    assert reader.remove() is None
    reader.insert(card)  # the same card comes back: unpowered until connect
    assert reader.card_present() and not reader.powered
    assert reader.connect() == ATS
    assert card.events == ["on", "off", "on"]


def test_remove_of_an_unpowered_card_does_not_power_it_off():
    card = EchoCard()
    reader = InProcessReader(card)
    reader.remove()
    assert card.events == []


def test_empty_reader_and_insert():
    reader = InProcessReader()
    assert not reader.card_present()
    card = EchoCard()
    reader.insert(card)
    with pytest.raises(ReaderError, match=r"^reader 'in-process' already holds a card; remove it first$"):
        reader.insert(EchoCard())
    assert reader.card is card
    with pytest.raises(TypeError, match=r"^bytes is not a Card OS \(power_on, process, power_off\)$"):
        InProcessReader(b"card")  # type: ignore[arg-type]


def test_card_gets_immutable_bytes():
    card = EchoCard()
    reader = InProcessReader(card)
    reader.connect()
    buffer = bytearray(H("00EC000001AA"))
    assert reader.transmit(buffer) == H("AA9000")
    buffer[5] = 0xBB
    assert card.received == [H("00EC000001AA")] and type(card.received[0]) is bytes


def test_a_card_answering_less_than_a_status_word_is_a_link_failure():
    reader = InProcessReader(MuteCard())
    reader.connect()
    with pytest.raises(ReaderError, match=r"^reader 'in-process': card answered 1 byte, a response "
                                          r"APDU needs at least SW1 SW2$"):
        reader.transmit(H("00EC0000"))


class TornCard(EchoCard):
    """Loses power on INS DE."""

    def process(self, capdu: bytes) -> bytes:
        if capdu[1] == 0xDE:
            raise CardPowerLoss()
        return super().process(capdu)


def test_endpoint_puts_the_card_in_the_slot_while_it_serves():
    card, reader = TornCard(), InProcessReader(name="gate")
    endpoint = InProcessEndpoint(card, reader)
    assert isinstance(endpoint, CardEndpoint) and not endpoint.ready and not reader.card_present()
    endpoint.serve_in_thread()
    assert endpoint.wait_ready(5.0) and reader.card_present()
    assert reader.connect() == ATS
    assert reader.transmit(H("00EC000001AA")) == H("AA9000") and endpoint.apdu_count == 1
    with pytest.raises(ReaderError, match="lost power during the command"):
        reader.transmit(H("00DE0000"))
    assert reader.card_present() and endpoint.power_losses == 1  # absence 0: it stays, unpowered
    assert reader.connect() == ATS and reader.transmit(H("00EC000001BB")) == H("BB9000")
    endpoint.stop()
    assert not reader.card_present() and endpoint.error is None
    assert card.events == ["on", "on", "off"]  # no power_off after the loss: it lost power instead


def test_endpoint_into_a_full_slot_fails_with_the_reason():
    reader = InProcessReader(EchoCard(), name="gate")
    endpoint = InProcessEndpoint(EchoCard(), reader)
    endpoint.serve_in_thread().join(5.0)
    assert isinstance(endpoint.error, ReaderError) and "already holds a card" in str(endpoint.error)
