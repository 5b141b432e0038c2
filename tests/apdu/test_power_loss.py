"""A card that loses power mid-command leaves the field on every transport (no status word is invented)."""
import pytest

from apdu.cardos import CardPowerLoss
from apdu.transport.inprocess import InProcessReader
from apdu.reader import ReaderError


class FlakyCard:
    """Answers 9000, except that the command 00 99 cuts its power; counts power-ons."""

    def __init__(self) -> None:
        self.power_ons = 0

    def power_on(self) -> bytes:
        self.power_ons += 1
        return bytes.fromhex("3B8080010101")

    def power_off(self) -> None:
        pass

    def process(self, capdu: bytes) -> bytes:
        if capdu[:2] == b"\x00\x99":
            raise CardPowerLoss()
        return b"\x90\x00"


def test_in_process_reader_reports_the_card_leaving_and_repowers_it():
    card = FlakyCard()
    reader = InProcessReader(card)
    reader.connect()
    assert reader.transmit(bytes.fromhex("00A4040000")) == b"\x90\x00"
    with pytest.raises(ReaderError, match="lost power"):
        reader.transmit(bytes.fromhex("0099000000"))
    with pytest.raises(ReaderError, match="connect"):
        reader.transmit(bytes.fromhex("00A4040000"))
    reader.connect()
    assert card.power_ons == 2 and reader.transmit(bytes.fromhex("00A4040000")) == b"\x90\x00"


def test_power_loss_is_not_an_exception_a_dispatcher_could_swallow():
    assert not issubclass(CardPowerLoss, Exception)
    from ykt_card.card.state import PowerLoss
    assert issubclass(PowerLoss, CardPowerLoss)


@pytest.mark.pcsc
def test_vpcd_card_leaves_the_slot_and_comes_back(vpcd_card):
    from apdu.transport.pcsc.reader import PcscReader

    card = FlakyCard()
    served = vpcd_card(card, slot=0, atr=bytes.fromhex("3B8080010101"))
    reader = PcscReader(served.reader_name)
    reader.connect()
    assert reader.transmit(bytes.fromhex("00A4040000")) == b"\x90\x00"
    with pytest.raises(ReaderError):
        reader.transmit(bytes.fromhex("0099000000"))
    reader.disconnect()
    served.pcscd.wait_card(served.reader_name, present=False, timeout=15)
    served.pcscd.wait_card(served.reader_name, present=True, timeout=15)
    again = PcscReader(served.reader_name)
    again.connect()
    assert again.transmit(bytes.fromhex("00A4040000")) == b"\x90\x00"
    again.disconnect()
    assert card.power_ons >= 2


@pytest.mark.pcsc
def test_a_served_card_reconnects_when_pcscd_restarts(vpcd_card, pcscd):
    """vpcd goes away with pcscd; the endpoint keeps trying and the card is back once pcscd is."""
    from apdu.transport.pcsc.reader import PcscReader

    assert pcscd.owned, "this test restarts pcscd, so the session must have started it"
    card = FlakyCard()
    served = vpcd_card(card, slot=0, atr=bytes.fromhex("3B8080010101"))
    pcscd.stop()
    pcscd.start()
    pcscd.wait_card(served.reader_name, present=True, timeout=20)
    reader = PcscReader(served.reader_name)
    reader.connect()
    assert reader.transmit(bytes.fromhex("00A4040000")) == b"\x90\x00"
    reader.disconnect()
    assert served.endpoint.error is None
