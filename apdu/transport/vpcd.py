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
an empty response to pcscd; `apdu.transport.pcsc.PcscReader` turns that into CardRemoved.

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
from apdu.iso14443 import pseudo_atr

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

#: Answer sent when a Card OS breaks its contract and raises: "no precise diagnosis".
SW_UNKNOWN = b"\x6F\x00"

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


class _OwnerFailed(Exception):
    """`on_exchange` raised: kept apart from socket errors (an OSError from a full disk is no reason
    to reconnect)."""


class VpcdEndpoint:
    """One virtual card in one vpcd slot.

    `atr` is what pcscd reports for the card (for a contactless card the PC/SC pseudo-ATR, see
    `apdu.iso14443.pseudo_atr`). `on_exchange` runs after every APDU the card processed and before
    its answer leaves, the way a card writes its EEPROM before answering: an owner that persists the
    card image there never acknowledges a change it has not saved. `quickack=False` exists only to
    measure what TCP_QUICKACK saves.
    """

    def __init__(self, card_os: CardOS, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                 atr: bytes = DEFAULT_ATR, on_exchange: Callable[[], None] | None = None,
                 *, quickack: bool = True, backoff_max: float = 2.0) -> None:
        if not atr or len(atr) > 33:
            raise ValueError(f"ATR: {len(atr)} bytes, must be 1..33")
        self.card_os = card_os
        self.host = host
        self.port = port
        self.atr = bytes(atr)
        self.on_exchange = on_exchange
        self.quickack = quickack
        self.backoff_max = backoff_max
        self.apdu_count = 0
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._sock: socket.socket | None = None  # read without a lock: stop() may run in a signal handler
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        #: seconds a card that lost power stays out of the slot before it comes back (pcscd polls ~0.4 s)
        self.absence = 1.0
        self._away = False

    # --- life cycle -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """True while our TCP connection to vpcd is open, i.e. while the card is 'in the reader'
        (pcscd sees it at its next poll, a few hundred ms later)."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def serve_forever(self, stop_event: threading.Event | None = None) -> None:
        """Serve until `stop_event` (or `stop()`) fires; reconnect with backoff when vpcd goes away."""
        stop = stop_event if stop_event is not None else self._stop
        if stop is not self._stop:
            threading.Thread(target=self._relay_stop, args=(stop,), daemon=True).start()
        delay = 0.05
        reported = False
        while not self._stop.is_set():
            if self._away:  # a torn card stays out long enough for pcscd's poll to see it leave
                self._away = False
                if self._stop.wait(self.absence):
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
            except _OwnerFailed as failure:
                raise failure.__cause__ from None  # type: ignore[misc]
            except _Closed:
                log.warning("vpcd %s:%d closed the connection; reconnecting", self.host, self.port)
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("vpcd %s:%d connection lost (%s); reconnecting", self.host, self.port,
                                exc.strerror or exc)
            finally:
                self._drop(sock)
        log.info("vpcd %s:%d card stopped after %d APDUs", self.host, self.port, self.apdu_count)

    def serve_in_thread(self, name: str | None = None) -> threading.Thread:
        """Start `serve_forever` in a daemon thread (tests, one process holding several cards)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"vpcd card on port {self.port} is already being served")
        self._stop.clear()
        self._thread = threading.Thread(target=self._run_thread, name=name or f"vpcd-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and close the connection (the card leaves the reader). Safe from a signal handler
        or any thread; waits for the serving thread when it was started by `serve_in_thread`."""
        self._request_stop()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if thread.is_alive():
                raise RuntimeError(f"vpcd card on port {self.port} did not stop within {timeout} s")

    # --- the connection -------------------------------------------------------------------------------

    def _run_thread(self) -> None:
        try:
            self.serve_forever()
        except BaseException as exc:  # surfaced to the owner through .error
            self.error = exc
            log.exception("vpcd card on port %d failed", self.port)

    def _request_stop(self) -> None:
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv()
            except OSError:
                pass

    def _relay_stop(self, event: threading.Event) -> None:
        while not self._stop.is_set():
            if event.wait(0.1):
                self._request_stop()
                return

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
            code = payload[0]
            if code == CTRL_ATR:
                return self.atr
            if code == CTRL_ON:
                self.card_os.power_on()
            elif code == CTRL_OFF:
                self.card_os.power_off()
            elif code == CTRL_RESET:
                self.card_os.power_off()
                self.card_os.power_on()
            else:
                log.warning("vpcd %s:%d sent unknown control byte %02X; ignored", self.host, self.port,
                            code)
            return None
        if not payload:
            log.warning("vpcd %s:%d sent an empty message; ignored", self.host, self.port)
            return None
        try:
            rapdu = self.card_os.process(payload)
        except CardPowerLoss:
            # The card lost power mid-command: it leaves the slot without answering, and comes back.
            log.warning("vpcd %s:%d card lost power during a command; leaving the slot for %.1f s", self.host,
                        self.port, self.absence)
            self._away = True
            raise _Closed() from None
        except Exception:
            log.exception("card OS raised on a command APDU (INS %02X); answering 6F00",
                          payload[1] if len(payload) > 1 else 0)
            rapdu = SW_UNKNOWN
        self.apdu_count += 1
        if self.on_exchange is not None:
            try:
                self.on_exchange()
            except Exception as exc:  # ends serving: an unsaved change is never answered
                raise _OwnerFailed() from exc
        return bytes(rapdu)

