"""One contract for every card endpoint: in-process, the air link, vpcd behind pcscd, nfcpy's udp card.

Each transport's two halves side by side: the endpoint serves a Card OS, its reader talks to it. Whatever
the transport, the endpoint answers, turns a raising Card OS into 6F00, holds each answer until the owner's
`on_exchange` has run (and gives none when it fails, ending serving with that error), treats a power loss
as the card leaving the field and coming back, and stops cleanly.
"""
from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from apdu.cardos import CardPowerLoss
from apdu.endpoint import CardEndpoint
from apdu.iso14443 import Ats, pseudo_atr
from apdu.reader import Reader, ReaderError

ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
ATR = pseudo_atr(Ats.parse(ATS).historical)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class ContractCard:
    """INS 01 echoes its data; INS 66 raises (a Card OS bug); INS 99 loses power. Power events are logged."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def power_on(self) -> bytes:
        self.events.append("on")
        return ATS

    def power_off(self) -> None:
        self.events.append("off")

    def process(self, capdu: bytes) -> bytes:
        if capdu[1] == 0x66:
            raise KeyError("a bug")
        if capdu[1] == 0x99:
            raise CardPowerLoss()
        return capdu[5:] + b"\x90\x00"


@dataclass
class Transport:
    """An endpoint and its reader; `back` brings the reader to the card again after the card left, `settle`
    waits until the card is seen gone after the endpoint stopped."""

    endpoint: CardEndpoint
    reader: Reader
    back: Callable[[], bytes]
    settle: Callable[[], None] = lambda: None

    def close(self) -> None:
        """Reader first (pcscd 1.9 must not power off a card that already vanished), then the card."""
        self.reader.disconnect()
        if hasattr(self.reader, "close"):
            self.reader.close()
        self.endpoint.stop()
        self.settle()


def in_process(card: ContractCard, **options) -> Transport:
    from apdu.transport.inprocess import InProcessEndpoint, InProcessReader

    reader = InProcessReader(name="slot")
    endpoint = InProcessEndpoint(card, reader, **options)
    return Transport(endpoint, reader, lambda: returned(endpoint, reader))


def air(card: ContractCard, **options) -> Transport:
    from apdu.transport.air import AirCardEndpoint, AirReader, LossyChannel

    channel = LossyChannel()
    reader = AirReader(channel)
    endpoint = AirCardEndpoint(card, channel, **options)
    return Transport(endpoint, reader, lambda: returned(endpoint, reader))


def returned(endpoint: CardEndpoint, reader: Reader) -> bytes:
    """In-process, a card that left comes back by itself after its absence: wait for it, then connect."""
    assert endpoint.wait_ready(5.0)
    return reader.connect()


def nfc_udp(card: ContractCard, **options) -> Transport:
    from apdu.transport.nfc.card import NfcCardEndpoint
    from apdu.transport.nfc.reader import NfcReader

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    endpoint = NfcCardEndpoint(card, f"udp:localhost:{port}", **options)
    reader = NfcReader(endpoint.path)

    def back() -> bytes:
        reader.disconnect()
        return reader.connect()

    return Transport(endpoint, reader, back)


def make_vpcd(pcscd) -> Callable[..., Transport]:
    from apdu.transport.pcsc.daemon import vpcd_reader_name
    from apdu.transport.pcsc.reader import PcscReader
    from apdu.transport.pcsc.vpcd import VpcdEndpoint, slot_port

    def vpcd(card: ContractCard, **options) -> Transport:
        name = vpcd_reader_name(0)
        endpoint = VpcdEndpoint(card, "localhost", slot_port(0), ATR, **options)
        reader = PcscReader(name)

        def back() -> bytes:
            reader.disconnect()
            pcscd.wait_card(name, present=False, timeout=15)
            pcscd.wait_card(name, present=True, timeout=15)
            return reader.connect()

        return Transport(endpoint, reader, back, lambda: pcscd.wait_card(name, present=False, timeout=15))

    return vpcd


@pytest.fixture(params=["in-process", "air", pytest.param("vpcd", marks=pytest.mark.pcsc), "nfc"])
def serve(request) -> Iterator[Callable[..., Transport]]:
    """Factory: `serve(card, **endpoint_options)` -> a transport whose endpoint serves and whose reader is
    connected."""
    factory = {"in-process": in_process, "air": air, "nfc": nfc_udp}.get(request.param)
    if factory is None:
        factory = make_vpcd(request.getfixturevalue("pcscd"))
    opened: list[Transport] = []

    def start(card: ContractCard, **options) -> Transport:
        transport = factory(card, **options)
        opened.append(transport)
        transport.endpoint.serve_in_thread()
        assert transport.endpoint.wait_ready(10.0), transport.endpoint.error
        if request.param == "vpcd":
            request.getfixturevalue("pcscd").wait_card(transport.reader.name, present=True, atr=ATR)
        assert transport.reader.connect() in (ATS, ATR)
        return transport

    yield start
    for transport in opened:
        transport.close()


def test_serves_answers_and_stops(serve):
    card = ContractCard()
    transport = serve(card)
    assert isinstance(transport.endpoint, CardEndpoint)
    assert transport.reader.transmit(h("00 01 00 00 02 AB CD")) == h("AB CD 90 00")
    assert transport.endpoint.apdu_count == 1 and transport.endpoint.ready
    transport.endpoint.stop()
    assert not transport.endpoint.ready and transport.endpoint.error is None
    with pytest.raises(ReaderError):
        transport.reader.transmit(h("00 01 00 00 01 EF"))


def test_a_card_os_that_raises_is_answered_6f00(serve):
    transport = serve(ContractCard())
    assert transport.reader.transmit(h("00 66 00 00")) == h("6F 00")
    assert transport.reader.transmit(h("00 01 00 00 01 01")) == h("01 90 00")


def test_no_answer_leaves_before_the_owner_saved_it(serve):
    saved: list[int] = []

    def save() -> None:
        if len(saved) == 1:
            raise OSError("disk full")
        saved.append(transport.endpoint.apdu_count)

    transport = serve(ContractCard(), on_exchange=save)
    assert transport.reader.transmit(h("00 01 00 00 01 01")) == h("01 90 00")
    assert saved == [1]  # ran after the card processed the command, before the answer arrived
    with pytest.raises(ReaderError):
        transport.reader.transmit(h("00 01 00 00 01 02"))  # could not be saved: never answered
    transport.endpoint.stop()
    assert isinstance(transport.endpoint.error, OSError) and "disk full" in str(transport.endpoint.error)


def test_power_loss_is_the_card_leaving_and_coming_back(serve):
    card = ContractCard()
    transport = serve(card, absence=1.0)  # long enough for pcscd, which polls every 0.4 s, to see it go
    with pytest.raises(ReaderError):
        transport.reader.transmit(h("00 99 00 00"))
    assert transport.back() in (ATS, ATR)  # power_on again: where a torn card recovers
    assert transport.reader.transmit(h("00 01 00 00 01 0E")) == h("0E 90 00")
    assert card.events.count("on") >= 2 and transport.endpoint.power_losses == 1
    assert transport.endpoint.error is None
