"""NFC through nfcpy 1.0.4: NfcReader against NfcCardEndpoint over nfcpy's real udp driver (activation,
chaining both ways, WTX, DESELECT, removal, power loss, errors). The PICC engine the card endpoint runs
has its exact frame tables in test_isodep.py. No mocks: every udp test runs both nfcpy sides on its own
free UDP port."""
from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

import nfc
import nfc.clf
from apdu.cardos import CardOS, CardPowerLoss
from apdu.iso14443 import Ats, pseudo_atr
from apdu.transport.nfc import DEFAULT_UID, parse_udp_path
from apdu.transport.nfc.card import NfcCardEndpoint, PortInUse
from apdu.transport.nfc.reader import CardRemoved, NfcDeviceError, NfcReader, NoCard, NotIsoDep
from apdu.reader import Reader, ReaderError

#: ATS of a real T-Union card (reference 1.1): FSCI 8 (256), TA 80, TB 80 (FWI 8), TC 02 (CID supported).
T_UNION_ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
#: FSCI 0: the card takes frames of 16 bytes at most (13 INF bytes), so commands arrive chained.
SMALL_FSC_ATS = bytes.fromhex("05 70 80 80 02")
#: FSCI 2 (32 bytes), no TA(1): nfcpy 1.0.4 would read FWI from TC(1).
NO_TA_ATS = bytes.fromhex("06 62 80 02 41 42")


class EchoCard:
    """A test Card OS. INS 01 echoes its data; INS 02 answers P2 bytes (0 = 256) counting up; INS 03 works
    for 0.3 s (longer than its FWT) before echoing; INS 04 loses power; anything else 6D00.
    Power events are logged so tests can see what the link did to the card."""

    def __init__(self, ats: bytes = T_UNION_ATS) -> None:
        self.ats = ats
        self.events: list[str] = []
        self.commands: list[bytes] = []

    def power_on(self) -> bytes:
        self.events.append("on")
        return self.ats

    def power_off(self) -> None:
        self.events.append("off")

    def process(self, capdu: bytes) -> bytes:
        self.commands.append(capdu)
        ins = capdu[1]
        if ins in (0x01, 0x03):
            if ins == 0x03:
                time.sleep(0.3)
            return capdu[5:5 + capdu[4]] + b"\x90\x00" if len(capdu) > 5 else b"\x90\x00"
        if ins == 0x02:
            return bytes(i & 0xFF for i in range(capdu[3] or 256)) + b"\x90\x00"
        if ins == 0x04:
            raise CardPowerLoss()
        return b"\x6D\x00"


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# --- over nfcpy's udp driver ---------------------------------------------------------------------------


def free_udp_port() -> int:
    """A UDP port nobody holds right now (parallel runs get different ones)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


@pytest.fixture
def serve() -> Iterator[Callable[..., NfcCardEndpoint]]:
    """Factory: `serve(card_os, **endpoint_options)` -> a listening NfcCardEndpoint on a free port."""
    endpoints: list[NfcCardEndpoint] = []

    def start(card_os: CardOS, **options) -> NfcCardEndpoint:
        endpoint = NfcCardEndpoint(card_os, f"udp:localhost:{free_udp_port()}", **options)
        endpoints.append(endpoint)
        endpoint.serve_in_thread()
        assert endpoint.wait_listening(5.0), endpoint.error
        return endpoint

    yield start
    for endpoint in endpoints:
        endpoint.stop()


@pytest.fixture
def readers() -> Iterator[Callable[..., NfcReader]]:
    made: list[NfcReader] = []

    def make(path: str, **options) -> NfcReader:
        reader = NfcReader(path, **options)
        made.append(reader)
        return reader

    yield make
    for reader in made:
        reader.close()


def wait_failed(endpoint: NfcCardEndpoint, timeout: float = 5.0) -> BaseException | None:
    """The error that ended the endpoint's serving thread (None if it still serves after `timeout`)."""
    deadline = time.monotonic() + timeout
    while endpoint.error is None and time.monotonic() < deadline:
        time.sleep(0.01)
    return endpoint.error


def exchange(reader: NfcReader, endpoint: NfcCardEndpoint, capdu: bytes) -> tuple[bytes, int]:
    """Transmit one APDU; return the response and how many frames the card received for it."""
    before = endpoint.frames
    rapdu = reader.transmit(capdu)
    return rapdu, endpoint.frames - before


def test_nfcpy_logger_is_turned_down():
    assert logging.getLogger("nfc").level == logging.WARNING


def test_udp_path_parsing():
    assert parse_udp_path("udp") == ("localhost", 54321)
    assert parse_udp_path("udp:10.0.0.2") == ("10.0.0.2", 54321)
    assert parse_udp_path("udp::5000") == ("localhost", 5000)
    assert parse_udp_path("udp:card-host:5001") == ("card-host", 5001)
    for bad, field in (("udp:h:0", "port '0'"), ("udp:h:70000", "port '70000'"), ("udp:h:x", "port 'x'"),
                       ("usb", "expected udp"), ("udp:a:1:2", "expected udp")):
        with pytest.raises(ValueError, match=field):
            parse_udp_path(bad)


def test_echo_card_exchange_table_with_chaining_both_ways(serve, readers):
    card = EchoCard()
    endpoint = serve(card)
    reader = readers(endpoint.path)
    assert isinstance(reader, Reader)
    atr = reader.connect()
    assert atr == pseudo_atr(Ats.parse(T_UNION_ATS).historical)
    assert reader.uid == DEFAULT_UID and reader.sak == 0x20 and reader.ats == Ats.parse(T_UNION_ATS)
    long_data = bytes(range(255))
    table = [
        (h("00 01 00 00 03 0A 0B 0C"), h("0A 0B 0C 90 00"), 1),
        (h("00 02 00 10"), bytes(range(16)) + h("90 00"), 1),
        (h("00 02 00 00"), bytes(range(256)) + h("90 00"), 2),         # 258 > FSD-3 = 253: I(chain) + R(ACK)
        (h("00 01 00 00 FF") + long_data, long_data + h("90 00"), 3),  # 260 and 257 bytes: 2 I + 1 R(ACK)
        (h("80 CA 00 00"), h("6D 00"), 1),
    ]
    for capdu, expected, frames in table:
        assert exchange(reader, endpoint, capdu) == (expected, frames), capdu.hex()
    assert reader.card_present()  # R(NAK) presence check, answered R(ACK)
    assert card.events == ["on"] and endpoint.activations == 1 and endpoint.apdu_count == len(table)


def test_small_fsc_card_gets_chained_commands(serve, readers):
    card = EchoCard(NO_TA_ATS)  # FSC 32: nfcpy sends 29 INF bytes per block; the card refuses longer frames
    endpoint = serve(card)
    reader = readers(endpoint.path)
    reader.connect()
    assert reader.ats is not None and reader.ats.fsc == 32 and reader.ats.fwi == 8
    data = bytes(range(60))
    assert exchange(reader, endpoint, h("00 01 00 00 3C") + data) == (data + h("90 00"), 3)
    assert card.commands == [h("00 01 00 00 3C") + data]


def test_slow_card_asks_for_more_time(serve, readers):
    endpoint = serve(EchoCard())
    reader = readers(endpoint.path)
    reader.connect()
    assert reader.transmit(h("00 03 00 00 02 51 52")) == h("51 52 90 00")  # 0.3 s > FWT 77 ms
    assert endpoint.wtx_requests >= 1
    assert reader.transmit(h("00 01 00 00 01 53")) == h("53 90 00")


def test_deselect_then_reactivation(serve, readers):
    card = EchoCard()
    endpoint = serve(card)
    reader = readers(endpoint.path)
    reader.connect()
    assert reader.transmit(h("00 01 00 00 01 01")) == h("01 90 00")
    reader.disconnect()  # S(DESELECT): the card powers off and listens again
    assert reader.card_present()  # found again by anticollision, without activating it
    atr = reader.connect()
    assert atr == pseudo_atr(Ats.parse(T_UNION_ATS).historical)
    for n in range(3):  # block numbers restart at activation
        assert reader.transmit(bytes([0, 1, 0, 0, 1, n])) == bytes([n, 0x90, 0])
    assert card.events == ["on", "off", "on"] and endpoint.activations == 2


def test_card_removed_mid_session(serve, readers):
    card = EchoCard()
    endpoint = serve(card)
    reader = readers(endpoint.path)
    reader.connect()
    assert reader.transmit(h("00 01 00 00 01 07")) == h("07 90 00")
    endpoint.stop()  # the card leaves the field
    with pytest.raises(CardRemoved, match="left the field"):
        reader.transmit(h("00 01 00 00 01 08"))
    assert isinstance(CardRemoved("x"), ReaderError)
    assert not reader.card_present()
    with pytest.raises(CardRemoved):
        reader.transmit(h("00 01 00 00 01 09"))
    reader.disconnect()
    quick = readers(endpoint.path, timeout=0)
    with pytest.raises(NoCard, match="no ISO 14443-4 Type A card in the field"):
        quick.connect()
    assert card.events == ["on", "off"]


def test_power_loss_is_the_card_leaving_and_it_comes_back(serve, readers):
    card = EchoCard()
    endpoint = serve(card, absence=0.2)
    reader = readers(endpoint.path)
    reader.connect()
    with pytest.raises(CardRemoved):
        reader.transmit(h("00 04 00 00"))
    reader.disconnect()
    reader.connect()  # back after its absence; power_on is where a torn card recovers
    assert reader.transmit(h("00 01 00 00 01 0E")) == h("0E 90 00")
    assert card.events == ["on", "on"]  # no power_off: the card lost power instead
    assert endpoint.error is None


def test_card_os_raising_answers_6f00_and_owner_failure_stops_serving(serve, readers):
    class Broken(EchoCard):
        def process(self, capdu: bytes) -> bytes:
            if capdu[1] == 0x66:
                raise KeyError("a bug")
            return super().process(capdu)

    saved = []
    endpoint = serve(Broken(), on_exchange=lambda: saved.append(1) if len(saved) < 2 else 1 / 0)
    reader = readers(endpoint.path)
    reader.connect()
    assert reader.transmit(h("00 66 00 00")) == h("6F 00")
    assert reader.transmit(h("00 01 00 00 01 02")) == h("02 90 00")
    with pytest.raises(CardRemoved):
        reader.transmit(h("00 01 00 00 01 03"))  # the owner could not save: nothing is answered
    assert isinstance(wait_failed(endpoint), ZeroDivisionError)


def test_card_os_without_an_ats_fails_the_endpoint(serve, readers):
    endpoint = serve(EchoCard(ats=bytes.fromhex("3B 80 80 01 01")))  # a contact ATR is no ATS
    reader = readers(endpoint.path, timeout=0)
    with pytest.raises(NoCard, match="not RATS"):
        reader.connect()
    error = wait_failed(endpoint)
    assert isinstance(error, ValueError) and "no valid ATS" in str(error)


def test_ats_given_to_the_endpoint_wins_and_uid_sak_atqa_are_announced(serve, readers):
    endpoint = serve(EchoCard(), ats=NO_TA_ATS, uid=bytes.fromhex("04112233445566"))
    reader = readers(endpoint.path)
    assert reader.connect() == pseudo_atr(b"AB")
    assert reader.uid == bytes.fromhex("04112233445566") and reader.ats == Ats.parse(NO_TA_ATS)
    assert endpoint.atqa == h("48 00")  # double-size UID


def test_not_iso_dep_card_is_refused(readers):
    port = free_udp_port()
    frontend = nfc.ContactlessFrontend(f"udp:localhost:{port}")
    target = nfc.clf.LocalTarget("106A")
    target.sens_res, target.sdd_res, target.sel_res = h("44 00"), h("04 01 02 03 04 05 06"), h("00")  # Type 2
    listener = threading.Thread(target=frontend.listen, args=(target, 1.5), daemon=True)
    listener.start()
    try:
        time.sleep(0.2)  # the listener binds its port
        reader = readers(f"udp:localhost:{port}")
        with pytest.raises(NotIsoDep, match="SAK 00"):
            reader.connect()
    finally:
        listener.join(5)
        frontend.close()


def test_reader_errors_name_the_cause(readers):
    with pytest.raises(ValueError, match="port '99999'"):
        NfcReader("udp:localhost:99999")
    with pytest.raises(ValueError, match="empty"):
        NfcReader("")
    with pytest.raises(NfcDeviceError, match="no NFC readers found on nfcpy path 'usb:ffff:ffff'"):
        readers("usb:ffff:ffff").connect()
    with pytest.raises(NfcDeviceError, match="host of 'udp:no-such-host.invalid:5' not found"):
        readers("udp:no-such-host.invalid:5").connect()
    unconnected = readers("udp:localhost:5")
    with pytest.raises(ReaderError, match="not connected"):
        unconnected.transmit(h("00 A4 04 00"))


def test_endpoint_refuses_bad_parameters():
    card = EchoCard()
    for kwargs, field in (({"path": "usb"}, "udp driver only"), ({"path": "udp:h:0"}, "port '0'"),
                          ({"uid": b"\x01\x02\x03"}, "UID: 3 bytes"), ({"uid": h("88010203")}, "cascade tag"),
                          ({"sak": 0x08}, "SAK"), ({"atqa": h("00 00")}, "ATQA"),
                          ({"ats": h("05 78 80")}, "ATS TL")):
        with pytest.raises(ValueError, match=field):
            NfcCardEndpoint(card, **kwargs)


def test_one_card_per_port(serve):
    first = serve(EchoCard())
    second = NfcCardEndpoint(EchoCard(), first.path)
    thread = second.serve_in_thread()
    thread.join(5)
    assert isinstance(second.error, PortInUse) and f"UDP port {first.port} is in use" in str(second.error)
    assert first.listening
