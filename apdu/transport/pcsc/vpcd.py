"""Serve a Card OS to pcscd through vsmartcard's vpcd driver (the card side of a virtual reader).

Why: with vpcd, any PC/SC application (pcsc_scan, opensc, a terminal under test, our own PcscReader)
talks to a virtual card exactly as to a card in a USB reader. The driver listens on TCP (slot 0 on
35963, slot 1 on 35964); the card connects to it as a client. While the connection is open the card
is "inserted"; closing it removes the card.

Wire format (both directions): 2-byte big-endian length ‖ payload. A 1-byte payload from vpcd is a
control message: 0 power off, 1 power on, 2 reset, 4 get ATR (answered with the ATR; pcscd asks for
it every time it polls for card presence). Any longer payload is a command APDU, answered with the
response APDU. Power on/off/reset get no answer.

A card that closes its connection between a command and the answer makes Debian 12's vpcd report
an empty response to pcscd; `apdu.transport.pcsc.reader.PcscReader` turns that into CardRemoved.

The reader's own commands: a real contactless reader answers PC/SC's GET DATA (`FF CA`: the UID, the
ATS historical bytes) itself; so does this endpoint, from `uid` and the ATR's historical bytes
(`apdu.transport.pcsc.pseudo`). They never reach the Card OS.

Latency: Debian 12's vpcd writes the length and the body in two send() calls; without TCP_QUICKACK
before every recv() each APDU waits about 44 ms for a delayed ACK. We set it before every recv.
"""
from __future__ import annotations

import logging
import socket
import struct
import threading
from collections.abc import Callable

from apdu.cardos import CardOS, CardPowerLoss
from apdu.endpoint import EndpointBase
from apdu.iso14443 import DEFAULT_UID, check_uid, pseudo_atr
from apdu.transport.pcsc.pseudo import SW_NOT_SUPPORTED, answer_get_data, atr_historical, is_get_data

log = logging.getLogger(__name__)

DEFAULT_HOST = "localhost"
#: Slot 0 of /etc/reader.conf.d/vpcd ('Virtual PCD 00 00'); slot n listens on DEFAULT_PORT + n.
DEFAULT_PORT = 35963

CTRL_OFF = 0
CTRL_ON = 1
CTRL_RESET = 2
CTRL_ATR = 4

#: ATR used when none is given: the PC/SC pseudo-ATR of a contactless card without historical bytes.
DEFAULT_ATR = pseudo_atr(b"")

_TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


def slot_port(slot: int, base: int = DEFAULT_PORT) -> int:
    """TCP port of a vpcd slot (vpcd gives each reader consecutive ports)."""
    if slot < 0:
        raise ValueError(f"vpcd slot: {slot} is negative")
    return base + slot


def parse_endpoint(text: str) -> tuple[str, int]:
    """'HOST:PORT', ':PORT', 'HOST' or 'PORT' -> (host, port), defaults localhost:35963."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = (text, "") if not text.isdigit() else ("", text)
    host = host or DEFAULT_HOST
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"vpcd port: {port_text!r} is not a TCP port")
    return host, int(port_text)


class _Closed(Exception):
    """vpcd closed the connection (pcscd stopped or restarted)."""


class VpcdEndpoint(EndpointBase):
    """One virtual card in one vpcd slot.

    `atr` is what pcscd reports for the card (for a contactless card the PC/SC pseudo-ATR, see
    `apdu.iso14443.pseudo_atr`). Commands pass through `answer` (apdu.endpoint): `on_exchange` runs after
    every APDU and before its answer leaves. A power loss closes the connection (the card leaves the slot)
    for `absence` seconds, enough for pcscd's poll to see it go. `quickack=False` exists only to measure
    what TCP_QUICKACK saves.
    """

    kind = "vpcd"

    def __init__(self, card_os: CardOS, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 atr: bytes = DEFAULT_ATR, on_exchange: Callable[[], None] | None = None,
                 *, quickack: bool = True, backoff_max: float = 2.0, absence: float = 1.0,
                 uid: bytes | None = DEFAULT_UID, historical: bytes | None = None) -> None:
        if not atr or len(atr) > 33:
            raise ValueError(f"ATR: {len(atr)} bytes, must be 1..33")
        if uid is not None:
            check_uid(uid)
        super().__init__(card_os, on_exchange=on_exchange, absence=absence)
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.uid = None if uid is None else bytes(uid)
        self.historical = atr_historical(self.atr) if historical is None else bytes(historical)
        self.quickack = quickack
        self.backoff_max = backoff_max
        self._connected = threading.Event()
        self._sock: socket.socket | None = None  # read without a lock: stop() may run in a signal handler

    def __repr__(self) -> str:
        return f"VpcdEndpoint({self.host}:{self.port})"

    def __str__(self) -> str:
        return f"vpcd {self.host}:{self.port} card"

    # --- life cycle -----------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """True while our TCP connection to vpcd is open, i.e. while the card is 'in the reader'
        (pcscd sees it at its next poll, a few hundred ms later)."""
        return self._connected.is_set()

    connected = ready

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _serve(self) -> None:
        """Connect to vpcd and serve; reconnect with backoff when vpcd goes away."""
        delay = 0.05
        reported = False
        while not self._stop.is_set():
            if self._power_lost() and self._stay_away():  # out long enough for pcscd's poll to see it leave
                break
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
            except OSError as exc:
                if not reported:
                    log.warning("vpcd %s:%d not reachable (%s); retrying until it is", self.host,
                                self.port, exc.strerror or exc)
                    reported = True
                self._stop.wait(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            delay = 0.05
            reported = False
            try:
                self._serve_connection(sock)
            except _Closed:
                if not self._away:
                    log.warning("vpcd %s:%d closed the connection; reconnecting", self.host, self.port)
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("vpcd %s:%d connection lost (%s); reconnecting", self.host, self.port,
                                exc.strerror or exc)
            finally:
                self._drop(sock)

    def _wake(self) -> None:
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv()
            except OSError:
                pass

    # --- the connection -------------------------------------------------------------------------------

    def _serve_connection(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        if self._stop.is_set():
            return
        self._connected.set()
        log.info("vpcd %s:%d connected: card inserted", self.host, self.port)
        while not self._stop.is_set():
            (length,) = struct.unpack(">H", self._recv_exact(sock, 2))
            payload = self._recv_exact(sock, length) if length else b""
            answer = self._handle(payload)
            if answer is not None:
                sock.sendall(struct.pack(">H", len(answer)) + answer)

    def _drop(self, sock: socket.socket) -> None:
        self._connected.clear()
        self._sock = None
        try:
            sock.close()
        except OSError:
            pass

    def _recv_exact(self, sock: socket.socket, count: int) -> bytes:
        chunks = []
        while count:
            if self.quickack and _TCP_QUICKACK is not None:
                sock.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            chunk = sock.recv(count)
            if not chunk:
                if self._stop.is_set():
                    raise OSError("stopped")
                raise _Closed()
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def _handle(self, payload: bytes) -> bytes | None:
        """The one place that maps vpcd messages to Card OS calls."""
        if len(payload) == 1:
            self._control(payload[0])
            return self.atr if payload[0] == CTRL_ATR else None
        if not payload:
            log.warning("vpcd %s:%d sent an empty message; ignored", self.host, self.port)
            return None
        if is_get_data(payload):  # the reader's own command (PC/SC Part 3 GET DATA): the card never sees it
            if self.uid is None:
                return SW_NOT_SUPPORTED  # a contact card: no UID, no ATS
            return answer_get_data(payload, self.uid, self.historical)
        try:
            return self.answer(payload)
        except CardPowerLoss:
            # The card lost power mid-command: it leaves the slot without answering, and comes back.
            raise _Closed() from None

    def _control(self, code: int) -> None:
        try:
            if code == CTRL_ON:
                self.card_os.power_on()
            elif code == CTRL_OFF:
                self.card_os.power_off()
            elif code == CTRL_RESET:
                self.card_os.power_off()
                self.card_os.power_on()
            elif code != CTRL_ATR:
                log.warning("vpcd %s:%d sent unknown control byte %02X; ignored", self.host, self.port, code)
        except CardPowerLoss:  # power cut again while the card was finishing a torn commit
            self.note_power_loss()
            raise _Closed() from None
