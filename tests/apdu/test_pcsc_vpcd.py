"""PcscReader and VpcdEndpoint through a real pcscd with the vsmartcard vpcd driver, plus the vpcd wire
protocol against a scripted vpcd peer, and the Pcscd manager (`ykt doctor` is in tests/tools/test_doctor.py)."""
from __future__ import annotations

import os
import socket
import statistics
import struct
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apdu.cardos import CardOS
from apdu.iso14443 import Ats, pseudo_atr
from apdu.transport.pcsc.reader import (
    SCARD_E_NO_SERVICE,
    SCARD_W_REMOVED_CARD,
    AmbiguousReader,
    CardRemoved,
    NoCard,
    NoSuchReader,
    PcscReader,
    list_readers,
    resolve_reader,
)
from apdu.transport.pcsc.daemon import VPCD_READERS, Pcscd, PcscdError
from apdu.reader import Reader, ReaderError
from apdu.trace import TSHARK_DECODE_AS, TracingReader, export_pcapng
from apdu.transport.pcsc.vpcd import DEFAULT_ATR, VpcdEndpoint, parse_endpoint, slot_port
from tests.conftest import ServedCard

pytestmark = pytest.mark.pcsc

SLOT0, SLOT1 = VPCD_READERS
T_UNION_ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
REPO = Path(__file__).resolve().parents[2]


class CounterCard:
    """A tiny Card OS: INS 01 echoes its data, INS 02 counts, INS 03 tells the card's tag.

    It logs power events so tests can see what pcscd and vpcd did to it.
    """

    def __init__(self, tag: bytes = b"A") -> None:
        self.tag = tag
        self.counter = 0
        self.events: list[str] = []

    def power_on(self) -> bytes:
        self.events.append("on")
        return T_UNION_ATS

    def power_off(self) -> None:
        self.events.append("off")

    def process(self, capdu: bytes) -> bytes:
        if len(capdu) < 4:
            return b"\x67\x00"
        ins = capdu[1]
        if ins == 0x01:
            return capdu[5:5 + capdu[4]] + b"\x90\x00" if len(capdu) > 5 else b"\x90\x00"
        if ins == 0x02:
            self.counter += 1
            return self.counter.to_bytes(4, "big") + b"\x90\x00"
        if ins == 0x03:
            return self.tag + b"\x90\x00"
        return b"\x6D\x00"


def echo(payload: bytes) -> bytes:
    return bytes([0x00, 0x01, 0x00, 0x00, len(payload)]) + payload


COUNT = bytes.fromhex("00 02 00 00 04")
WHO = bytes.fromhex("00 03 00 00 01")


@pytest.fixture
def connected() -> Iterator[Callable[[str | None], PcscReader]]:
    """Factory for PcscReaders that are always disconnected at the end of the test."""
    readers: list[PcscReader] = []

    def make(name: str | None) -> PcscReader:
        reader = PcscReader(name)
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.disconnect()


# --- through pcscd + vpcd -----------------------------------------------------------------------------------

def test_exact_name_and_100_apdus(vpcd_card: Callable[..., ServedCard],
                                  connected: Callable[[str | None], PcscReader]) -> None:
    card = CounterCard()
    served = vpcd_card(card, slot=0)
    reader = connected(SLOT0)
    assert isinstance(reader, Reader)
    assert reader.connect() == DEFAULT_ATR
    assert reader.name == SLOT0 and reader.protocol == "T=1"
    assert reader.card_present()
    for i in range(100):
        if i % 2:
            assert reader.transmit(COUNT) == ((i + 1) // 2).to_bytes(4, "big") + b"\x90\x00"
        else:
            payload = bytes((i * 7 + k) % 256 for k in range(i % 200 + 1))
            assert reader.transmit(echo(payload)) == payload + b"\x90\x00"
    assert card.counter == 50
    assert served.endpoint.apdu_count == 100


def test_reader_name_rules_on_real_pcscd(vpcd_card: Callable[..., ServedCard],
                                         connected: Callable[[str | None], PcscReader]) -> None:
    vpcd_card(CounterCard(b"B"), slot=1)
    assert list_readers() == list(VPCD_READERS)
    # None = the first reader that holds a card: slot 0 is empty, so slot 1.
    first = connected(None)
    first.connect()
    assert first.name == SLOT1 and first.transmit(WHO) == b"B\x90\x00"
    # Exact name.
    exact = connected(SLOT1)
    exact.connect()
    assert exact.transmit(WHO) == b"B\x90\x00"
    # The two vpcd names differ only in their last character, so every shorter prefix is ambiguous.
    with pytest.raises(AmbiguousReader, match="'Virtual PCD 00 0' matches 2 readers: "
                                              "'Virtual PCD 00 00', 'Virtual PCD 00 01'"):
        connected("Virtual PCD 00 0").connect()
    with pytest.raises(NoSuchReader, match="no reader named or starting with 'ACS'; readers: "
                                           "'Virtual PCD 00 00', 'Virtual PCD 00 01'"):
        connected("ACS").connect()
    with pytest.raises(NoCard, match="no card in reader 'Virtual PCD 00 00'"):
        connected(SLOT0).connect()


def test_no_card_anywhere(pcscd: Pcscd, connected: Callable[[str | None], PcscReader]) -> None:
    for reader in VPCD_READERS:
        pcscd.wait_card(reader, present=False)
    with pytest.raises(NoCard, match="no reader holds a card; readers: 'Virtual PCD 00 00', "
                                     "'Virtual PCD 00 01'"):
        connected(None).connect()
    assert not PcscReader().card_present()
    assert not PcscReader(SLOT0).card_present()


@pytest.mark.parametrize(("request_name", "expected"), [
    ("ACS ACR122U", "ACS ACR122U PICC Interface 00 00"),  # unique prefix
    ("Virtual PCD 00 01", "Virtual PCD 00 01"),  # exact name
    ("ACS ACR122U PICC Interface 00 00", "ACS ACR122U PICC Interface 00 00"),
    (None, "Virtual PCD 00 01"),  # first reader holding a card
])
def test_resolve_reader_rules(request_name: str | None, expected: str) -> None:
    readers = ["ACS ACR122U PICC Interface 00 00", "Virtual PCD 00 00", "Virtual PCD 00 01"]
    assert resolve_reader(request_name, readers, with_card=["Virtual PCD 00 01"]) == expected


def test_resolve_reader_errors() -> None:
    with pytest.raises(NoSuchReader, match="lists no readers"):
        resolve_reader("x", [])
    with pytest.raises(AmbiguousReader, match="'Virtual' matches 2 readers"):
        resolve_reader("Virtual", ["Virtual PCD 00 00", "Virtual PCD 00 01"])
    with pytest.raises(NoCard, match="no reader holds a card"):
        resolve_reader(None, ["Virtual PCD 00 00"], with_card=[])


def test_power_cycle_and_reset(vpcd_card: Callable[..., ServedCard],
                               connected: Callable[[str | None], PcscReader]) -> None:
    card = CounterCard()
    vpcd_card(card, slot=0)
    reader = connected(SLOT0)
    reader.connect()
    reader.transmit(COUNT)
    card.events.clear()
    reader.disconnect()  # SCARD_UNPOWER_CARD: vpcd sends 'power off'
    assert card.events == ["off"]
    assert reader.connect() == DEFAULT_ATR  # pcscd powers the card again
    assert card.events == ["off", "on"]
    assert reader.reset() == DEFAULT_ATR  # warm reset: vpcd 'reset' = off + on
    assert card.events == ["off", "on", "off", "on"]
    assert reader.transmit(COUNT) == (2).to_bytes(4, "big") + b"\x90\x00"  # state kept, as in EEPROM


def test_pseudo_atr_and_t0_only_card(vpcd_card: Callable[..., ServedCard],
                                     connected: Callable[[str | None], PcscReader]) -> None:
    t_union_atr = pseudo_atr(Ats.parse(T_UNION_ATS).historical)
    vpcd_card(CounterCard(), slot=0, atr=t_union_atr)
    t0_atr = bytes.fromhex("3B 02 14 50")  # T=0 only (no TD1), two historical bytes
    vpcd_card(CounterCard(b"0"), slot=1, atr=t0_atr)
    contactless = connected(SLOT0)
    assert contactless.connect() == t_union_atr and contactless.protocol == "T=1"
    contact = connected(SLOT1)
    assert contact.connect() == t0_atr and contact.protocol == "T=0"
    assert contact.transmit(WHO) == b"0\x90\x00"


def test_two_cards_in_two_slots(vpcd_card: Callable[..., ServedCard],
                                connected: Callable[[str | None], PcscReader]) -> None:
    card_a, card_b = CounterCard(b"A"), CounterCard(b"B")
    vpcd_card(card_a, slot=0)
    vpcd_card(card_b, slot=1)
    reader_a, reader_b = connected(SLOT0), connected(SLOT1)
    reader_a.connect()
    reader_b.connect()
    for _ in range(10):
        assert reader_a.transmit(WHO) == b"A\x90\x00"
        assert reader_b.transmit(WHO) == b"B\x90\x00"
        reader_a.transmit(COUNT)
    reader_b.transmit(COUNT)
    assert (card_a.counter, card_b.counter) == (10, 1)


def test_card_removed_mid_session(vpcd_card: Callable[..., ServedCard], pcscd: Pcscd,
                                  connected: Callable[[str | None], PcscReader]) -> None:
    served = vpcd_card(CounterCard(), slot=0)
    reader = connected(SLOT0)
    reader.connect()
    assert reader.transmit(COUNT)[-2:] == b"\x90\x00"
    served.remove(wait=False)  # the card process stops; pcscd has not polled yet
    # vpcd turns a card that vanished before answering into an empty response (no status word); a
    # card pcscd already saw leave gives SCARD_E_NOT_TRANSACTED: both are CardRemoved.
    with pytest.raises(CardRemoved, match="reader 'Virtual PCD 00 00'"):
        reader.transmit(COUNT)
    pcscd.wait_card(SLOT0, present=False)
    with pytest.raises(CardRemoved) as later:
        reader.transmit(COUNT)
    assert later.value.code == SCARD_W_REMOVED_CARD
    assert not reader.card_present()
    reader.disconnect()  # never raises for a card that already left
    with pytest.raises(NoCard):
        reader.connect()


def test_pcscd_not_running_gives_the_precise_error(tmp_path: Path) -> None:
    # pcsc-lite's client library reads PCSCLITE_CSOCK_NAME: pointing it at a socket nobody serves is
    # exactly what a client sees when pcscd is not running, without stopping the session's pcscd.
    script = textwrap.dedent("""
        from apdu.transport.pcsc.reader import PcscReader, PcscdNotRunning, list_readers
        for call in (lambda: PcscReader().connect(), list_readers, lambda: PcscReader('x').card_present()):
            try:
                call()
            except PcscdNotRunning as exc:
                print(hex(exc.code), exc)
    """)
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "nobody.comm"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=60, check=True)
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert line.startswith(hex(SCARD_E_NO_SERVICE) + " pcscd is not running: start it with "
                               "`pcscd -f` as root")
        assert "SCARD_E_NO_SERVICE 0x8010001D" in line


def test_transmit_before_connect_is_a_reader_error() -> None:
    with pytest.raises(ReaderError, match="not connected"):
        PcscReader(SLOT0).transmit(COUNT)


def test_on_exchange_runs_after_every_apdu_only(vpcd_card: Callable[..., ServedCard],
                                                connected: Callable[[str | None], PcscReader]) -> None:
    card = CounterCard()
    seen: list[int] = []
    vpcd_card(card, slot=0, on_exchange=lambda: seen.append(card.counter))
    reader = connected(SLOT0)
    reader.connect()
    for _ in range(5):
        reader.transmit(COUNT)
    reader.reset()  # control messages (power, reset, ATR polls) are not APDUs
    reader.transmit(WHO)
    assert seen == [1, 2, 3, 4, 5, 5]  # called once per APDU, after the card changed state


def test_failed_persistence_is_never_answered(vpcd_card: Callable[..., ServedCard],
                                              connected: Callable[[str | None], PcscReader]) -> None:
    card = CounterCard()

    def save() -> None:
        if card.counter == 3:
            raise OSError("disk full")

    served = vpcd_card(card, slot=0, on_exchange=save)
    reader = connected(SLOT0)
    reader.connect()
    reader.transmit(COUNT)
    reader.transmit(COUNT)
    with pytest.raises(CardRemoved, match="answered no status word"):
        reader.transmit(COUNT)  # the card changed but could not save: no answer, card gone
    assert isinstance(served.endpoint.error, OSError)
    served.endpoint.error = None  # expected here; the fixture reports any other card-thread failure


def test_trace_of_a_real_pcsc_session_dissects(vpcd_card: Callable[..., ServedCard], tmp_path: Path,
                                               connected: Callable[[str | None], PcscReader]) -> None:
    vpcd_card(CounterCard(), slot=0, atr=pseudo_atr(Ats.parse(T_UNION_ATS).historical))
    reader = TracingReader(connected(SLOT0), jsonl=tmp_path / "session.jsonl")
    reader.connect()
    select = bytes.fromhex("00 A4 04 00 08 A0 00 00 06 32 01 01 05 00")
    assert reader.transmit(select) == b"\x6D\x00"
    reader.transmit(echo(b"\x11\x22"))
    reader.close()
    assert [e.reader for e in reader.exchanges] == [SLOT0] * 4
    capture = tmp_path / "session.pcapng"
    export_pcapng(reader.exchanges, capture, ats=T_UNION_ATS)
    result = subprocess.run(["tshark", "-r", str(capture), *TSHARK_DECODE_AS, "-T", "fields",
                             "-e", "iso7816.apdu.ins", "-e", "iso7816.apdu.sw1", "-e", "iso7816.apdu.sw2"],
                            capture_output=True, text=True, timeout=60, check=True)
    rows = [line.split("\t") for line in result.stdout.splitlines()][2:]
    assert rows == [["0xa4", "", ""], ["", "0x6d", "0x00"], ["0x01", "", ""], ["", "0x90", "0x00"]]


def test_round_trip_with_and_without_quickack(vpcd_card: Callable[..., ServedCard],
                                              connected: Callable[[str | None], PcscReader],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Measures, does not assert, the APDU round trip through pcscd + vpcd (see platform notes)."""
    medians = {}
    for quickack, count in ((True, 300), (False, 15)):
        served = vpcd_card(CounterCard(), slot=0, quickack=quickack)
        reader = connected(SLOT0)
        reader.connect()
        times = []
        for i in range(count):
            start = time.perf_counter()
            answer = reader.transmit(echo(bytes([i % 256]) * 16))
            times.append(time.perf_counter() - start)
            assert answer == bytes([i % 256]) * 16 + b"\x90\x00"
        reader.disconnect()
        served.remove()
        medians[quickack] = statistics.median(times) * 1e6
    with capsys.disabled():
        print(f"\n[vpcd round trip] median with TCP_QUICKACK {medians[True]:.0f} µs, "
              f"without {medians[False]:.0f} µs")


def test_vpcd_card_fixture_refuses_an_occupied_slot(vpcd_card: Callable[..., ServedCard]) -> None:
    vpcd_card(CounterCard(), slot=1)
    with pytest.raises(pytest.fail.Exception, match="slot 1 .* already holds a card"):
        vpcd_card(CounterCard(), slot=1)


# --- the vpcd wire protocol, against a scripted vpcd peer --------------------------------------------------

class ScriptedVpcd:
    """The driver side of vpcd (a TCP server), scripted by the test: send messages, read answers."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> None:
        self.conn, _ = self.server.accept()
        self.conn.settimeout(10)

    def send(self, payload: bytes, split: bool = False) -> None:
        assert self.conn is not None
        frame = struct.pack(">H", len(payload)) + payload
        if split:  # Debian 12's vpcd: length and body in two writes
            self.conn.sendall(frame[:2])
            time.sleep(0.01)
            self.conn.sendall(frame[2:])
        else:
            self.conn.sendall(frame)

    def receive(self) -> bytes:
        assert self.conn is not None
        (length,) = struct.unpack(">H", self._exact(2))
        return self._exact(length)

    def _exact(self, count: int) -> bytes:
        assert self.conn is not None
        data = b""
        while len(data) < count:
            chunk = self.conn.recv(count - len(data))
            assert chunk, "endpoint closed the connection"
            data += chunk
        return data

    def drop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        self.drop()
        self.server.close()


@pytest.fixture
def scripted() -> Iterator[ScriptedVpcd]:
    peer = ScriptedVpcd()
    yield peer
    peer.close()


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


def test_vpcd_wire_protocol_exchange_table(scripted: ScriptedVpcd) -> None:
    card = CounterCard()
    exchanged: list[int] = []
    endpoint = VpcdEndpoint(card, "127.0.0.1", scripted.port, atr=DEFAULT_ATR,
                            on_exchange=lambda: exchanged.append(card.counter))
    endpoint.serve_in_thread()
    try:
        scripted.accept()
        assert endpoint.wait_connected(5)
        scripted.send(b"\x04")
        assert scripted.receive() == DEFAULT_ATR
        scripted.send(b"\x01")  # power on: no answer
        scripted.send(COUNT, split=True)
        assert scripted.receive() == bytes.fromhex("00 00 00 01 90 00")
        scripted.send(b"\x02")  # reset: no answer
        scripted.send(b"\x07")  # unknown control byte: ignored, no answer
        scripted.send(bytes.fromhex("00 01 00 00 FF") + b"\xAB" * 300)  # longer than 255: 2-byte length
        assert scripted.receive() == b"\xAB" * 255 + b"\x90\x00"  # Lc is one byte: the card echoes 255
        scripted.send(b"\x00")  # power off: no answer
        scripted.send(b"\x04")
        assert scripted.receive() == DEFAULT_ATR
        assert card.events == ["on", "off", "on", "off"]
        assert exchanged == [1, 1] and endpoint.apdu_count == 2
    finally:
        endpoint.stop()
    assert not endpoint.connected


def test_vpcd_endpoint_waits_for_vpcd_and_reconnects(scripted: ScriptedVpcd) -> None:
    port = scripted.port
    scripted.close()  # nothing listens yet: the card must keep trying
    endpoint = VpcdEndpoint(CounterCard(), "127.0.0.1", port, atr=DEFAULT_ATR, backoff_max=0.1)
    endpoint.serve_in_thread()
    try:
        time.sleep(0.3)
        assert not endpoint.connected
        peer = ScriptedVpcd(port)
        try:
            peer.accept()
            peer.send(b"\x04")
            assert peer.receive() == DEFAULT_ATR
            peer.drop()  # vpcd goes away (pcscd restarted): the card reconnects by itself
            peer.accept()
            peer.send(WHO)
            assert peer.receive() == b"A\x90\x00"
        finally:
            peer.close()
    finally:
        endpoint.stop()


def test_vpcd_endpoint_stops_on_an_external_event(scripted: ScriptedVpcd) -> None:
    endpoint = VpcdEndpoint(CounterCard(), "127.0.0.1", scripted.port, atr=DEFAULT_ATR)
    stop = threading.Event()
    thread = threading.Thread(target=endpoint.serve_forever, args=(stop,), daemon=True)
    thread.start()
    scripted.accept()
    wait_for(lambda: endpoint.connected)
    stop.set()
    thread.join(5)
    assert not thread.is_alive() and not endpoint.connected


def test_vpcd_endpoint_stops_cleanly_on_sigterm(scripted: ScriptedVpcd) -> None:
    script = textwrap.dedent(f"""
        import logging, signal, sys
        from apdu.transport.pcsc.vpcd import VpcdEndpoint
        logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
        class Card:
            def power_on(self): return b""
            def power_off(self): pass
            def process(self, capdu): return b"\\x90\\x00"
        endpoint = VpcdEndpoint(Card(), "127.0.0.1", {scripted.port}, atr=bytes.fromhex("3B80800101"))
        signal.signal(signal.SIGTERM, lambda *_: endpoint.stop())
        endpoint.serve_forever()
        print("clean exit")
    """)
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        scripted.accept()
        scripted.send(b"\x00\x01\x00\x00")
        assert scripted.receive() == b"\x90\x00"
        process.terminate()  # SIGTERM
        output, _ = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert output.splitlines()[-2:] == [
        f"vpcd 127.0.0.1:{scripted.port} card stopped after 1 APDUs", "clean exit"]


def test_endpoint_helpers() -> None:
    assert parse_endpoint("localhost:35964") == ("localhost", 35964)
    assert parse_endpoint(":35964") == ("localhost", 35964)
    assert parse_endpoint("10.0.0.2") == ("10.0.0.2", 35963)
    assert parse_endpoint("35964") == ("localhost", 35964)
    with pytest.raises(ValueError, match="vpcd port"):
        parse_endpoint("host:99999")
    assert [slot_port(0), slot_port(1)] == [35963, 35964]
    with pytest.raises(ValueError, match="ATR"):
        VpcdEndpoint(CounterCard(), atr=b"")


# --- the Pcscd manager --------------------------------------------------------------------------------

def test_pcscd_reuses_a_running_daemon(pcscd: Pcscd) -> None:
    second = Pcscd()
    second.start()
    assert not second.owned and second.pid is None
    second.stop()  # leaves the shared pcscd alone
    assert pcscd.usable()


def test_pcscd_refuses_when_binary_is_missing() -> None:
    with pytest.raises(PcscdError, match="pcscd binary 'pcscd-not-installed' not found"):
        Pcscd(binary="pcscd-not-installed").start()


def test_wait_card_times_out_with_a_clear_message(pcscd: Pcscd) -> None:
    with pytest.raises(PcscdError, match="'Virtual PCD 00 01': card still absent after 0.2 s"):
        pcscd.wait_card(SLOT1, present=True, timeout=0.2)


def test_stale_pcscd_files_are_cleared_only_for_a_dead_pcscd(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import apdu.transport.pcsc.daemon as manager

    socket_path, pid_path = tmp_path / "pcscd.comm", tmp_path / "pcscd.pid"
    monkeypatch.setattr(manager, "PCSCD_SOCKET", socket_path)
    monkeypatch.setattr(manager, "PCSCD_PIDFILE", pid_path)
    finished = subprocess.Popen(["true"])
    finished.wait()  # reaped: the pid is gone
    zombie = subprocess.Popen(["true"])
    wait_for(lambda: manager._process_state(zombie.pid) == "Z")  # exited, not reaped
    fake_pcscd = tmp_path / "pcscd"  # a live process named pcscd that answers nothing
    fake_pcscd.write_bytes(Path("/bin/sleep").read_bytes())
    fake_pcscd.chmod(0o755)
    hung = subprocess.Popen([str(fake_pcscd), "30"])
    try:
        for stale in (finished.pid, zombie.pid, os.getpid()):  # gone, zombie, pid reused by another program
            socket_path.write_text("")
            pid_path.write_text(f"{stale}\n\0")
            Pcscd()._clear_stale_files()
            assert not socket_path.exists() and not pid_path.exists()
        socket_path.write_text("")
        pid_path.write_text(f"{hung.pid}\n")
        with pytest.raises(PcscdError, match=f"pcscd pid {hung.pid} is alive but does not answer"):
            Pcscd()._clear_stale_files()
        assert socket_path.exists() and pid_path.exists()  # refused: nothing touched
    finally:
        hung.kill()
        hung.wait()
        zombie.wait()


def test_card_os_protocol_is_met_by_the_test_card() -> None:
    assert isinstance(CounterCard(), CardOS)
