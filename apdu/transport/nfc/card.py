"""The NFC card (PICC) through nfcpy's udp driver: `NfcCardEndpoint` serves a Card OS as an ISO 14443-4
Type A card, one card per UDP port.

nfcpy answers the anticollision (`clf.listen`); from RATS on, the frames are ours: the ISO-DEP PICC engine
of `apdu.isodep` decides every answer, this module only carries frames and powers the card. Nothing on a
wire waits for a slow Python card, so a watchdog thread asks the reader for more time with S(WTX) while
the Card OS works.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator

import nfc
import nfc.clf

from apdu.cardos import CardOS, CardPowerLoss
from apdu.endpoint import EndpointBase
from apdu.iso14443 import Ats, frame_size
from apdu.isodep import Deliver, PiccEngine, Send
from apdu.transport.nfc import DEFAULT_UDP_HOST, DEFAULT_UDP_PORT, DEFAULT_UID, SAK_ISO_DEP, parse_udp_path

__all__ = ["NfcCardEndpoint", "PortInUse"]

log = logging.getLogger(__name__)

#: Frames a PCD sends to start a new activation (REQA, WUPA): seen mid-session, the field was reset.
_NEW_FIELD = (b"\x26", b"\x52")
#: S(WTX) round trips the watchdog tries (an R(NAK) from the reader asks for our request again).
_WTX_ATTEMPTS = 3


class _Watchdog:
    """Asks the reader for more time while the Card OS works: nothing on a wire waits for a slow Python
    card, so after half its FWT the card sends S(WTX) and waits for the reader's S(WTX) answer.

    One thread per endpoint; it polls only during an activation, the card thread marks each APDU with
    `busy()`. The lock is held during a WTX round trip, so the answer to the command never overtakes it.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._session: tuple[Callable[[], bool], float, float] | None = None
        self._busy_since: float | None = None
        self._job = 0
        self._closed = False
        self.lost = False
        self.requests = 0
        self._thread = threading.Thread(target=self._run, name="nfc-wtx", daemon=True)
        self._thread.start()

    def open(self, round_trip: Callable[[], bool], first_after: float, next_after: float) -> None:
        with self._cond:
            self._session = (round_trip, first_after, next_after)
            self.lost = False
            self._cond.notify_all()

    def end(self) -> None:
        with self._cond:
            self._session = None

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self._cond:
            self._busy_since = time.monotonic()
            self._job += 1
        try:
            yield
        finally:
            with self._cond:
                self._busy_since = None

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(2.0)

    def _run(self) -> None:
        with self._cond:
            while not self._closed:
                session = self._session
                if session is None:
                    self._cond.wait()
                    continue
                round_trip, first_after, next_after = session
                poll = max(first_after / 2, 0.002)
                since, job = self._busy_since, self._job
                if since is None or self.lost or time.monotonic() - since < first_after:
                    self._cond.wait(poll)
                    continue
                # This command has run past half the FWT: keep the reader waiting until it is done.
                due = time.monotonic()
                while self._busy_since is not None and self._job == job and not self._closed:
                    wait = due - time.monotonic()
                    if wait > 0:
                        self._cond.wait(wait)
                        continue
                    self.requests += 1
                    if not round_trip():
                        self.lost = True
                        break
                    due = time.monotonic() + next_after
                while self._busy_since is not None and self._job == job and not self._closed:
                    self._cond.wait(poll)


class PortInUse(OSError):
    """Another process (another card) holds the endpoint's UDP port."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EADDRINUSE


class NfcCardEndpoint(EndpointBase):
    """A Card OS served as an ISO 14443-4 Type A card through nfcpy's udp driver (one card per UDP port).

    Anticollision answers ATQA (`atqa`, transmission order; default `08 00` = ATQA 0x0008, a 4-byte UID,
    `48 00` for a 7-byte UID), `uid` (4 or 7 bytes: nfcpy 1.0.4's listener mishandles cascade level 3)
    and `sak` (0x20). RATS powers the card on and is answered with `ats`, or else with what the Card OS's
    `power_on()` returns (a contactless Card OS answers its ATS). Then the PICC engine runs the blocks.
    S(DESELECT) or the reader's field going off (RFOFF, or a new REQA) powers the card off, and it
    listens again. A `CardPowerLoss` from the Card OS is the card leaving the field: no answer, the
    socket closes, and after `absence` seconds it listens again (the next activation's power_on
    recovers). `on_exchange` runs after every APDU, before its answer leaves (persist there).
    """

    kind = "nfc-card"
    #: how long one nfcpy listen() lasts before it is renewed; stop() wakes it with a datagram, so the
    #: window is long: renewing closes and rebinds the socket, and a reader polling then would miss the card.
    listen_window = 3600.0
    #: how long the card waits for the reader's next frame before it checks for stop again
    wait_slice = 0.5

    def __init__(self, card_os: CardOS, path: str = f"udp:{DEFAULT_UDP_HOST}:{DEFAULT_UDP_PORT}",
                 uid: bytes = DEFAULT_UID, ats: bytes | None = None, *, sak: int = SAK_ISO_DEP,
                 atqa: bytes | None = None, on_exchange: Callable[[], None] | None = None,
                 absence: float = 1.0) -> None:
        if path.split(":")[0] != "udp":
            raise ValueError(f"NFC card path {path!r}: a card is served on nfcpy's udp driver only "
                             "(udp[:HOST[:PORT]])")
        self.host, self.port = parse_udp_path(path)
        uid = bytes(uid)
        if len(uid) not in (4, 7):
            raise ValueError(f"UID: {len(uid)} bytes, must be 4 or 7")
        if uid[0] == 0x88:
            raise ValueError("UID: first byte 88 is the cascade tag, not a UID byte")
        if not 0 <= sak <= 0xFF or not sak & SAK_ISO_DEP or sak & 0x04:
            raise ValueError(f"SAK: {sak:#04x} must be a byte with b6 (ISO 14443-4) set and no cascade bit")
        if atqa is None:
            atqa = bytes([0x08 | (0x40 if len(uid) == 7 else 0), 0x00])
        atqa = bytes(atqa)
        if len(atqa) != 2 or atqa[0] & 0x1F == 0:
            raise ValueError(f"ATQA: {atqa.hex().upper()} must be 2 bytes with a bit frame anticollision bit set")
        if ats is not None:
            Ats.parse(ats)
        super().__init__(card_os, on_exchange=on_exchange, absence=absence)
        self.path = f"udp:{self.host}:{self.port}"
        self.uid, self.sak, self.atqa = uid, sak, atqa
        self.ats = None if ats is None else bytes(ats)
        #: blocks received from readers after their RATS (chained parts, R and S blocks included)
        self.frames = 0
        self.activations = 0
        self._listening = threading.Event()
        self._active = threading.Event()
        self._clf: nfc.clf.ContactlessFrontend | None = None
        self._watchdog: _Watchdog | None = None

    def __repr__(self) -> str:
        return f"NfcCardEndpoint({self.path!r}, uid={self.uid.hex().upper()})"

    def __str__(self) -> str:
        return f"NFC card on {self.path}"

    # --- state ----------------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """True while the card waits in the field for a reader (its UDP port is bound)."""
        return self._listening.is_set() and self._bound()

    @property
    def active(self) -> bool:
        """True while a reader has the card activated (between ATS and DESELECT/field off)."""
        return self._active.is_set()

    @property
    def ready(self) -> bool:
        """In the field: listening for a reader, or activated by one."""
        return self.listening or self.active

    @property
    def wtx_requests(self) -> int:
        """How many S(WTX) the card sent so far."""
        return self._watchdog.requests if self._watchdog is not None else 0

    def wait_listening(self, timeout: float) -> bool:
        """Wait until a reader can find the card (start the card before the reader)."""
        deadline = time.monotonic() + timeout
        while not self.listening:
            if self.error is not None or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    # --- serving --------------------------------------------------------------------------------------

    def _serve(self) -> None:
        self._check_port()
        try:
            clf = nfc.ContactlessFrontend(self.path)
        except OSError as exc:
            raise OSError(exc.errno, f"nfcpy cannot open {self.path!r}: {exc.strerror or exc}") from None
        self._clf = clf
        self._watchdog = _Watchdog()
        log.info("NFC card %s on %s: listening", self.uid.hex().upper(), self.path)
        try:
            while not self._stop.is_set():
                if self._power_lost():  # a torn card stays out of the field long enough for the reader to see it go
                    clf.device.mute()
                    if self._stay_away():
                        break
                target = self._listen(clf)
                if target is None or self._stop.is_set():
                    continue
                if target.tt4_cmd is None or len(target.tt4_cmd) != 2:
                    log.debug("NFC card %s: first frame after selection is not RATS; ignored", self.path)
                    continue
                self._session(clf, bytes(target.tt4_cmd))
        finally:
            self._listening.clear()
            self._active.clear()
            self._watchdog.close()
            clf.close()
            self._clf = None

    def _wake(self) -> None:
        """One frame to our own port: nfcpy's listen() returns on any non-anticollision frame."""
        with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"106A 00", ("127.0.0.1", self.port))

    def _bound(self) -> bool:
        clf = self._clf
        sock = getattr(clf.device, "socket", None) if clf is not None and clf.device is not None else None
        try:
            return sock is not None and sock.getsockname()[1] == self.port
        except OSError:
            return False

    def _check_port(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            try:
                probe.bind(("0.0.0.0", self.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUse(f"UDP port {self.port} is in use (another card is served there? one card "
                                    "per port)") from None
                raise

    def _listen(self, clf: nfc.clf.ContactlessFrontend) -> nfc.clf.LocalTarget | None:
        target = nfc.clf.LocalTarget("106A")
        target.sens_res, target.sdd_res, target.sel_res = self.atqa, self.uid, bytes([self.sak])
        started = time.monotonic()
        self._listening.set()
        try:
            found = clf.listen(target, self.listen_window)
        finally:
            self._listening.clear()
        if found is None and not self._stop.is_set() and time.monotonic() - started < self.listen_window - 1:
            self._check_port()  # nfcpy's listen returns None at once when it cannot bind: say who holds it
        return found

    def _session(self, clf: nfc.clf.ContactlessFrontend, rats: bytes) -> None:
        """One activation: RATS → ATS, then blocks until DESELECT, field off or power loss."""
        fsdi, cid = rats[1] >> 4, rats[1] & 0x0F
        if cid == 0x0F:
            return  # RFU CID: a PICC does not answer
        ats_bytes = self._power_on()
        if ats_bytes is None:
            return
        ats = Ats.parse(ats_bytes)
        picc = PiccEngine(ats, frame_size(fsdi), cid)
        assert self._watchdog is not None
        fwt = ats.fwt_us / 1e6
        wtxm = max(1, min(59, math.ceil(1.0 / fwt)))
        self._watchdog.open(lambda: self._wtx(clf, picc, wtxm), fwt / 2, wtxm * fwt / 2)
        self._active.set()
        self.activations += 1
        log.info("NFC card %s activated (FSD %d, CID %d)", self.path, picc.fsd, cid)
        powered = True
        try:
            self._run_blocks(clf, picc, ats_bytes)
        except CardPowerLoss:
            powered = False  # `answer` noted it: the serving loop takes the card out of the field
        finally:
            self._watchdog.end()
            self._active.clear()
            if powered:
                self.card_os.power_off()

    def _power_on(self) -> bytes | None:
        """Power the Card OS for a RATS; its ATS (None: it lost power again, it leaves the field)."""
        try:
            answer = self.card_os.power_on()
        except CardPowerLoss:
            self.note_power_loss()
            return None
        ats_bytes = self.ats if self.ats is not None else bytes(answer)
        try:
            Ats.parse(ats_bytes)
        except ValueError as exc:
            self.card_os.power_off()
            raise ValueError(f"NFC card on {self.path}: the Card OS answers no valid ATS "
                             f"({ats_bytes.hex().upper()}): {exc}") from None
        return ats_bytes

    def _run_blocks(self, clf: nfc.clf.ContactlessFrontend, picc: PiccEngine, ats: bytes) -> None:
        """Answer the reader's frames with the PICC engine until DESELECT, field off or the reader vanishing."""
        assert self._watchdog is not None
        frame = self._exchange(clf, ats)
        while frame is not None and not self._stop.is_set():
            if frame in _NEW_FIELD:
                return  # the reader reset its field without RFOFF (a reader process that died)
            self.frames += 1
            action = picc.receive(frame)
            if isinstance(action, Deliver):
                with self._watchdog.busy():
                    rapdu = self.answer(action.apdu)
                if self._watchdog.lost:
                    return  # the reader stopped answering our S(WTX): it is gone
                reply: bytes | None = picc.respond(rapdu)
            else:
                reply = None if action is None else action.frame
            if picc.deselected:
                assert reply is not None
                clf.exchange(reply, 0)
                return
            frame = self._exchange(clf, reply)

    def _exchange(self, clf: nfc.clf.ContactlessFrontend, reply: bytes | None) -> bytes | None:
        """Send `reply` (if any) and wait for the reader's next frame; None when the field went away."""
        while not self._stop.is_set():
            try:
                frame = clf.exchange(reply, self.wait_slice)
            except nfc.clf.BrokenLinkError:
                return None  # RFOFF
            except (nfc.clf.TimeoutError, nfc.clf.TransmissionError):
                reply = None
                continue
            return None if frame is None else bytes(frame)
        return None

    def _wtx(self, clf: nfc.clf.ContactlessFrontend, picc: PiccEngine, wtxm: int) -> bool:
        """S(WTX) until the reader grants it (watchdog thread; the card thread is busy in the Card OS)."""
        frame = picc.wtx_request(wtxm)
        for _ in range(_WTX_ATTEMPTS):
            try:
                answer = clf.exchange(frame, 1.0)
            except (nfc.clf.CommunicationError, OSError):
                return False
            if answer is None:
                return False
            action = picc.receive(bytes(answer))
            if not picc.awaiting_wtx:
                return True
            if not isinstance(action, Send):
                return False
            frame = action.frame
        return False
