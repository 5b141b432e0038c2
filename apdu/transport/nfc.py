"""NFC through nfcpy: a reader (the PCD side) and an ISO 14443-4 Type A card endpoint (the PICC side).

Why: with nfcpy's udp driver a terminal and a virtual card talk over the same activation and block
protocol as over the air, without hardware: `NfcReader('udp:localhost:54321')` senses, sends RATS and
exchanges I-blocks; `NfcCardEndpoint(card_os, 'udp:localhost:54321')` answers them. The same
`NfcReader('usb')` drives a real USB reader.

nfcpy 1.0.4 facts this module leans on (measured, see platform-notes.md):
- Reader: `clf.sense(RemoteTarget('106A'))` runs the anticollision; `nfc.tag.activate` sends RATS
  (`E0 80`: FSD 256, CID 0), waits 30 ms for the ATS, and gives a Type4ATag whose `transceive` does
  the I-block chaining, R(NAK) retries and S(WTX). It keeps no copy of the ATS (we record it from
  the frontend's exchange) and reads FSCI from ATS byte 1 and FWI from byte 3, i.e. it assumes TA(1)
  and TB(1) are present: we set both from the parsed ATS.
- Card: nfcpy emulates only Type 3 tags. `clf.listen(LocalTarget('106A'))` answers the anticollision
  and returns on the first other frame (the RATS); everything after it (ATS, blocks) is ours:
  `IsoDepPicc` is that block protocol, free of I/O.
- udp driver: frames travel as text datagrams, one card per UDP port (bound on all interfaces); an
  absent card costs the reader a 1 s SENS_REQ timeout (Linux reports no ICMP error on an
  unconnected UDP socket); a reader muting its field sends `RFOFF`. Neither side has RF timing, so
  the card asks for more time with S(WTX) when its Card OS works longer than half its FWT.
- nfcpy sets its logger to INFO on import; we turn it down to WARNING unless the application chose
  a level (set `logging.getLogger('nfc')` to DEBUG to see every frame).
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

from apdu.cardos import CardOS, CardPowerLoss
from apdu.iso14443 import Ats, Block, BlockType, Pcb, SCommand, frame_size, pseudo_atr, s_deselect
from apdu.reader import ReaderError

try:
    import nfc
    import nfc.clf
    import nfc.tag
    import nfc.tag.tt4
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("apdu.transport.nfc needs nfcpy: pip install 'ykt[nfc]'") from exc

log = logging.getLogger(__name__)

_NFCPY_LOG = logging.getLogger("nfc")
if _NFCPY_LOG.level == logging.INFO:  # nfcpy's own import-time choice, not the application's
    _NFCPY_LOG.setLevel(logging.WARNING)

#: nfcpy's udp driver defaults (`udp` = `udp:localhost:54321`).
DEFAULT_UDP_HOST = "localhost"
DEFAULT_UDP_PORT = 54321

#: SAK of an ISO 14443-4 compliant Type A PICC (b6 set, no cascade bit), as T-Union cards answer (ref 1.1).
SAK_ISO_DEP = 0x20
#: A 4-byte UID starting with 08: ISO 14443-3 reserves that first byte for random IDs, i.e. no vendor's.
DEFAULT_UID = bytes.fromhex("08594B54")
#: How long the reader keeps its field off after releasing a card (ISO 14443-3 t_RESET ≥ 5.1 ms): the
#: card gets time to go back to listening before the next poll.
FIELD_RESET_S = 0.0051
#: Answer sent when a Card OS breaks its contract and raises: "no precise diagnosis".
SW_UNKNOWN = b"\x6F\x00"

#: Frames a PCD sends to start a new activation (REQA, WUPA): seen mid-session, the field was reset.
_NEW_FIELD = (b"\x26", b"\x52")
_RATS = 0xE0


def parse_udp_path(path: str) -> tuple[str, int]:
    """nfcpy's `udp[:HOST[:PORT]]` path -> (host, port), defaults localhost:54321; ValueError names the field."""
    parts = path.split(":")
    if parts[0] != "udp" or len(parts) > 3:
        raise ValueError(f"nfcpy path {path!r}: expected udp[:HOST[:PORT]]")
    host = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_UDP_HOST
    port_text = parts[2] if len(parts) > 2 else ""
    if not port_text:
        return host, DEFAULT_UDP_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"nfcpy path {path!r}: port {port_text!r} is not a UDP port")
    return host, int(port_text)


# =====================================================================================================
# The reader (PCD)
# =====================================================================================================


class NfcError(ReaderError):
    """An NFC link failure seen by `NfcReader`."""


class NfcDeviceError(NfcError):
    """nfcpy cannot open the device path (nothing there, no permission, busy, bad host)."""


class NoCard(NfcError):
    """No ISO 14443-4 Type A card answered within the timeout."""


class NotIsoDep(NfcError):
    """A Type A card is in the field but does not speak ISO 14443-4 (its SAK says so): no APDUs."""


class CardRemoved(NfcError):
    """The card stopped answering during the session (left the field, lost power)."""


class _Frontend(nfc.clf.ContactlessFrontend):
    """nfcpy's frontend, remembering the answer to RATS: Type4ATag reads the ATS but keeps no copy."""

    rats_answer: bytes | None = None

    def exchange(self, send_data, timeout):  # type: ignore[no-untyped-def]
        data = super().exchange(send_data, timeout)
        if send_data and len(send_data) == 2 and send_data[0] == _RATS:
            self.rats_answer = None if data is None else bytes(data)
        return data


class NfcReader:
    """An nfcpy contactless reader, implementing the Reader protocol for ISO 14443-4 Type A cards.

    `path` is an nfcpy device path: `usb[:...]`, `tty:PORT:DRIVER`, `udp[:HOST[:PORT]]`. The frontend is
    opened at the first `connect`/`card_present` and kept (`close()` releases it). `connect` waits up to
    `timeout` seconds for a card and returns the PC/SC pseudo-ATR of its ATS, so tools see the same ATR
    as through pcscd. After connect: `uid`, `sak`, `ats`.
    """

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        if not path:
            raise ValueError("nfc device path: empty (try usb or udp:HOST:PORT)")
        if path.split(":")[0] == "udp":
            parse_udp_path(path)
        if timeout < 0:
            raise ValueError(f"nfc timeout: {timeout} s is negative")
        self.path = path
        self.name = f"nfc:{path}"
        self.timeout = timeout
        self.uid: bytes | None = None
        self.sak: int | None = None
        self.ats: Ats | None = None
        self._clf: _Frontend | None = None
        self._tag: nfc.tag.tt4.Type4Tag | None = None
        self._fwt = 0.0
        self._gone = False
        self._seen = False

    def __repr__(self) -> str:
        state = "connected" if self._tag is not None else "idle"
        return f"NfcReader({self.path!r}, {state})"

    # --- Reader protocol --------------------------------------------------------------------------------

    def connect(self) -> bytes:
        """Sense a Type A card, activate it (RATS/ATS) and return its pseudo-ATR."""
        if self._tag is not None:
            self.disconnect()
        clf = self._frontend()
        deadline = time.monotonic() + self.timeout
        why = f"no ISO 14443-4 Type A card in the field within {self.timeout:g} s"
        while True:
            target = self._sense(clf)
            if target is not None:
                self._seen = True
                tag = self._activate(clf, target)
                if tag is not None:
                    break
                why = (f"a card answered the anticollision but not RATS within nfcpy's 30 ms "
                       f"(UID {bytes(target.sdd_res).hex().upper()})")
            if time.monotonic() >= deadline:
                raise NoCard(f"{self.name}: {why}")
            time.sleep(0.01)
        assert self.ats is not None
        return pseudo_atr(self.ats.historical)

    def transmit(self, capdu: bytes) -> bytes:
        """Send one command APDU as I-block(s), return the response APDU (SW1 SW2 included)."""
        tag = self._tag
        if tag is None:
            raise NfcError(f"{self.name}: not connected (call connect() first)")
        if self._gone:
            raise CardRemoved(f"{self.name}: the card left the field; connect again")
        try:
            rapdu = tag.transceive(bytes(capdu))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            self._gone = True
            raise CardRemoved(f"{self.name}: the card stopped answering during the exchange, it left the "
                              f"field ({_describe(exc)})") from None
        except OSError as exc:
            self._gone = True
            raise CardRemoved(f"{self.name}: the link failed during the exchange "
                              f"({exc.strerror or exc})") from None
        if rapdu is None or len(rapdu) < 2:
            self._gone = True
            raise CardRemoved(f"{self.name}: the card answered no status word ({0 if rapdu is None else len(rapdu)} "
                              "bytes)")
        return bytes(rapdu)

    def disconnect(self) -> None:
        """S(DESELECT) the card (unless it already left), then switch the field off; never raises."""
        tag, clf, gone = self._tag, self._clf, self._gone
        self._tag, self._gone = None, False
        if tag is None or clf is None:
            return
        if not gone:
            with contextlib.suppress(nfc.clf.CommunicationError, OSError):
                clf.exchange(s_deselect(), self._fwt)
        with contextlib.suppress(OSError):
            clf.device.mute()  # field off: the udp driver tells the card with RFOFF
        time.sleep(FIELD_RESET_S)

    def card_present(self) -> bool:
        """Connected: an R(NAK) presence check. Otherwise one anticollision (a card seen before gets a
        second one before it counts as gone, so a poll landing in its re-listen gap cannot fake a removal)."""
        tag = self._tag
        if tag is not None:
            if self._gone:
                return False
            try:
                present = bool(tag.is_present)
            except OSError:
                present = False
            self._gone = not present
            return present
        clf = self._frontend()
        found = self._sense(clf) is not None
        if not found and self._seen:
            found = self._sense(clf) is not None
        self._seen = found
        return found

    # --- extras -------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the device (the USB reader, the udp socket)."""
        self.disconnect()
        clf, self._clf = self._clf, None
        if clf is not None:
            clf.close()

    def __enter__(self) -> NfcReader:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------------------

    def _frontend(self) -> _Frontend:
        if self._clf is not None:
            return self._clf
        hint = ("plug a reader in, or serve a card with `ykt card serve IMAGE --nfc udp:HOST:PORT` and read it "
                "with nfc:udp:HOST:PORT")
        try:
            self._clf = _Frontend(self.path)
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise NfcDeviceError(f"{self.name}: no NFC readers found on nfcpy path {self.path!r} "
                                     f"({hint})") from None
            if exc.errno == errno.EACCES:
                raise NfcDeviceError(f"{self.name}: permission denied opening {self.path!r} (run as root or add "
                                     "a udev rule for the reader)") from None
            if exc.errno == errno.EBUSY:
                raise NfcDeviceError(f"{self.name}: {self.path!r} is in use by another process") from None
            if isinstance(exc, socket.gaierror):
                raise NfcDeviceError(f"{self.name}: host of {self.path!r} not found ({exc.strerror})") from None
            raise NfcDeviceError(f"{self.name}: nfcpy cannot open {self.path!r} ({exc.strerror or exc})") from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise NfcDeviceError(f"{self.name}: nfcpy cannot open {self.path!r} ({exc})") from None
        return self._clf

    def _sense(self, clf: _Frontend) -> nfc.clf.RemoteTarget | None:
        try:
            return clf.sense(nfc.clf.RemoteTarget("106A"))
        except nfc.clf.UnsupportedTargetError as exc:
            raise NfcDeviceError(f"{self.name}: the device cannot poll for Type A cards ({exc})") from None
        except nfc.clf.CommunicationError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                return None  # a udp peer that is not there
            raise NfcDeviceError(f"{self.name}: the device failed while polling ({exc.strerror or exc})") from None

    def _activate(self, clf: _Frontend, target: nfc.clf.RemoteTarget) -> nfc.tag.tt4.Type4Tag | None:
        """RATS through nfcpy; None when the card did not answer it (the caller polls again)."""
        sak = target.sel_res[0] if target.sel_res else None
        if sak is None or not sak & SAK_ISO_DEP:
            what = "no SAK (a Type 1 tag)" if sak is None else f"SAK {sak:02X}"
            raise NotIsoDep(f"{self.name}: the card in the field has {what}: it is not ISO 14443-4 and takes no "
                            "APDUs")
        clf.rats_answer = None
        try:
            tag = nfc.tag.activate(clf, target)
        except IndexError:
            answer = (clf.rats_answer or b"").hex().upper()
            raise NfcError(f"{self.name}: the card's ATS {answer or '(none)'} is too short for nfcpy 1.0.4, which "
                           "reads FWI from its fourth byte (TB(1))") from None
        except OSError:
            return None
        if tag is None or clf.rats_answer is None:
            return None
        if not isinstance(tag, nfc.tag.tt4.Type4Tag):
            raise NotIsoDep(f"{self.name}: nfcpy activated a {type(tag).__name__}, not a Type 4 tag")
        try:
            ats = Ats.parse(clf.rats_answer)
            pseudo_atr(ats.historical)  # more than 15 historical bytes fit no ATR
        except ValueError as exc:
            raise NfcError(f"{self.name}: the card answered RATS with a bad ATS "
                           f"{clf.rats_answer.hex().upper()}: {exc}") from None
        # nfcpy assumed TA(1) and TB(1) present; set frame size and waiting time from the real ATS.
        fsc = min(ats.fsc, 256, clf.max_send_data_size)
        tag._dep.miu = fsc - 3
        tag._dep.fwt = ats.fwt_us / 1e6
        self._fwt = tag._dep.fwt + tag._dep.delta_fwt
        self.uid, self.sak, self.ats = bytes(target.sdd_res), sak, ats
        self._tag, self._gone = tag, False
        return tag


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# =====================================================================================================
# The card (PICC)
# =====================================================================================================


def _block(pcb: Pcb, inf: bytes = b"", cid: int | None = None) -> bytes:
    if cid is not None:
        pcb = Pcb(pcb.type, block_number=pcb.block_number, chaining=pcb.chaining, nak=pcb.nak,
                  s_command=pcb.s_command, cid_following=True)
    return Block(pcb, inf, cid=cid).to_bytes()


class IsoDepPicc:
    """The PICC side of the ISO 14443-4 half-duplex block protocol for one activation, without I/O.

    `handle(frame)` takes one frame from the PCD (no CRC) and returns the frame to answer, or None to
    stay silent (invalid blocks, another CID, nothing to say). `process(capdu) -> rapdu` is called once
    per complete (unchained) command. Rules (§7.5.4.3): the block number starts at 1 and toggles on
    every I-block received and on an R(ACK) continuing a response chain; an R block carrying the
    current number asks for the last block again; an R(NAK) with the other number gets R(ACK) (the
    PCD's presence check). Commands longer than FSC arrive chained (each part answered R(ACK));
    responses longer than FSD-3 leave chained. S(DESELECT) is answered and sets `deselected`.
    No NAD, no S(PARAMETERS); a PPS request right after the ATS is accepted at 106 kbit/s only.
    """

    def __init__(self, ats: Ats, fsd: int, cid: int, process: Callable[[bytes], bytes]) -> None:
        self.ats = ats
        self.fsc = ats.fsc
        self.fsd = fsd
        self.cid = cid if ats.cid_supported else None  # the CID RATS assigned, when the card supports CIDs
        self.process = process
        self.number = 1
        self.deselected = False
        self.started = False
        self._rx = bytearray()
        self._tx: list[bytes] = []
        self._last: bytes | None = None
        self._echo_cid: int | None = None

    def wtx_request(self, wtxm: int) -> bytes:
        """S(WTX) asking the PCD for `wtxm` times FWT more."""
        return _block(Pcb(BlockType.S, s_command=SCommand.WTX), bytes([wtxm]), self._echo_cid)

    @staticmethod
    def is_wtx_response(frame: bytes, wtxm: int) -> bool:
        try:
            block = Block.parse(frame)
        except ValueError:
            return False
        return block.pcb.s_command is SCommand.WTX and block.inf[0] & 0x3F == wtxm

    def handle(self, frame: bytes) -> bytes | None:
        frame = bytes(frame)
        if not self.started and frame and frame[0] & 0xF0 == 0xD0:
            return self._pps(frame)
        if len(frame) + 2 > self.fsc:
            return None  # longer than the card accepts: a PCD that ignored FSC
        try:
            block = Block.parse(frame)
        except ValueError:
            return None
        if block.nad is not None:
            return None
        if block.cid is not None:
            if self.cid is None or block.cid & 0x0F != self.cid:
                return None
            self._echo_cid = block.cid & 0x0F
        elif self.cid not in (None, 0):
            return None
        else:
            self._echo_cid = None
        self.started = True
        pcb = block.pcb
        if pcb.type is BlockType.I:
            return self._send(self._i_block(block))
        if pcb.type is BlockType.R:
            if pcb.block_number == self.number:
                return self._send(self._last) if self._last is not None else self._ack()
            if pcb.nak:
                return self._ack()
            if not self._tx:
                return None  # nothing to continue
            self.number ^= 1
            return self._send(self._next_part())
        if pcb.s_command is SCommand.DESELECT:
            self.deselected = True
            return _block(Pcb(BlockType.S, s_command=SCommand.DESELECT), cid=self._echo_cid)
        return None  # a stray S(WTX) response, S(PARAMETERS)

    # --- internals ------------------------------------------------------------------------------------

    def _i_block(self, block: Block) -> bytes:
        self.number ^= 1
        self._tx = []  # an I-block during a response chain starts a new command
        self._rx += block.inf
        if block.pcb.chaining:
            return self._ack()
        capdu, self._rx = bytes(self._rx), bytearray()
        rapdu = self.process(capdu)
        room = self.fsd - 3 - (self._echo_cid is not None)
        self._tx = [rapdu[i:i + room] for i in range(0, len(rapdu), room)] or [b""]
        return self._next_part()

    def _next_part(self) -> bytes:
        part = self._tx.pop(0)
        return _block(Pcb(BlockType.I, block_number=self.number, chaining=bool(self._tx)), part, self._echo_cid)

    def _ack(self) -> bytes:
        return self._send(_block(Pcb(BlockType.R, block_number=self.number), cid=self._echo_cid))

    def _send(self, frame: bytes) -> bytes:
        self._last = frame
        return frame

    def _pps(self, frame: bytes) -> bytes | None:
        if frame[0] & 0x0F != (self.cid or 0) or len(frame) not in (2, 3):
            return None
        if len(frame) == 3 and frame[2] & 0x0F:
            return None  # DSI/DRI other than 106 kbit/s: TA(1) offers none
        self.started = True
        return frame[:1]


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


class _OwnerFailed(Exception):
    """`on_exchange` raised: the owner's failure ends serving (it is no link problem)."""


class PortInUse(OSError):
    """Another process (another card) holds the endpoint's UDP port."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.errno = errno.EADDRINUSE


class NfcCardEndpoint:
    """A Card OS served as an ISO 14443-4 Type A card through nfcpy's udp driver (one card per UDP port).

    Anticollision answers ATQA (`atqa`, transmission order; default `08 00` = ATQA 0x0008 as T-Union cards,
    `48 00` for a 7-byte UID), `uid` (4 or 7 bytes: nfcpy 1.0.4's listener mishandles cascade level 3)
    and `sak` (0x20). RATS powers the card on and is answered with `ats`, or else with what the Card OS's
    `power_on()` returns (a contactless Card OS answers its ATS). Then `IsoDepPicc` runs the blocks.
    S(DESELECT) or the reader's field going off (RFOFF, or a new REQA) powers the card off, and it
    listens again. A `CardPowerLoss` from the Card OS is the card leaving the field: no answer, the
    socket closes, and after `absence` seconds it listens again (the next activation's power_on
    recovers). `on_exchange` runs after every APDU, before its answer leaves (persist there).
    """

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
        self.card_os = card_os
        self.path = f"udp:{self.host}:{self.port}"
        self.uid, self.sak, self.atqa = uid, sak, atqa
        self.ats = None if ats is None else bytes(ats)
        self.on_exchange = on_exchange
        self.absence = absence
        self.apdu_count = 0
        #: blocks received from readers after their RATS (chained parts, R and S blocks included)
        self.frames = 0
        self.activations = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._listening = threading.Event()
        self._active = threading.Event()
        self._clf: nfc.clf.ContactlessFrontend | None = None
        self._thread: threading.Thread | None = None
        self._serving_thread: threading.Thread | None = None
        self._watchdog: _Watchdog | None = None
        self._away = False

    def __repr__(self) -> str:
        return f"NfcCardEndpoint({self.path!r}, uid={self.uid.hex().upper()})"

    # --- life cycle -----------------------------------------------------------------------------------

    @property
    def listening(self) -> bool:
        """True while the card waits in the field for a reader (its UDP port is bound)."""
        return self._listening.is_set() and self._bound()

    @property
    def active(self) -> bool:
        """True while a reader has the card activated (between ATS and DESELECT/field off)."""
        return self._active.is_set()

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

    def serve_forever(self, stop_event: threading.Event | None = None) -> None:
        """Answer readers until `stop_event` (or `stop()`) fires."""
        stop = stop_event if stop_event is not None else self._stop
        self._done.clear()
        self._serving_thread = threading.current_thread()
        if stop is not self._stop:
            threading.Thread(target=self._relay_stop, args=(stop,), daemon=True).start()
        try:
            self._serve()
        finally:
            self._serving_thread = None
            self._done.set()

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
                if self._away:  # a torn card stays out of the field long enough for the reader to see it go
                    self._away = False
                    clf.device.mute()
                    if self._stop.wait(self.absence):
                        break
                target = self._listen(clf)
                if target is None or self._stop.is_set():
                    continue
                if target.tt4_cmd is None or len(target.tt4_cmd) != 2:
                    log.debug("NFC card %s: first frame after selection is not RATS; ignored", self.path)
                    continue
                self._session(clf, bytes(target.tt4_cmd))
        except _OwnerFailed as failure:
            raise failure.__cause__ from None  # type: ignore[misc]
        finally:
            self._listening.clear()
            self._active.clear()
            self._watchdog.close()
            clf.close()
            self._clf = None
            log.info("NFC card on %s stopped after %d APDUs", self.path, self.apdu_count)

    def serve_in_thread(self, name: str | None = None) -> threading.Thread:
        """Start `serve_forever` in a daemon thread (tests, one process holding several cards)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"NFC card on {self.path} is already being served")
        self._stop.clear()
        self._done.clear()
        self.error = None
        self._thread = threading.Thread(target=self._run_thread, name=name or f"nfc-card-{self.port}",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving: the card leaves the field. Safe from a signal handler or any thread; waits for
        the serving thread when `serve_in_thread` started it."""
        self._stop.set()
        if threading.current_thread() is self._serving_thread:
            self._wake()  # a signal handler inside the serving thread: the loop sees the flag when it wakes
            return
        stopped = self._wake_until_done(timeout)
        thread = self._thread
        if thread is not None:
            thread.join(max(0.0, timeout))
            stopped = stopped and not thread.is_alive()
        if not stopped:
            raise RuntimeError(f"NFC card on {self.path} did not stop within {timeout} s")

    # --- internals --------------------------------------------------------------------------------------

    def _run_thread(self) -> None:
        try:
            self.serve_forever()
        except BaseException as exc:  # surfaced to the owner through .error, who reports it
            self.error = exc
            log.debug("NFC card on %s failed", self.path, exc_info=True)

    def _wake_until_done(self, timeout: float) -> bool:
        """Wake the serving loop until it ends: a datagram ends nfcpy's blocking listen()/exchange(), and
        one sent just before the loop blocks again would be lost."""
        deadline = time.monotonic() + timeout
        while not self._done.is_set():
            if time.monotonic() >= deadline:
                return False
            self._wake()
            self._done.wait(0.05)
        return True

    def _relay_stop(self, event: threading.Event) -> None:
        while not self._done.is_set():
            if event.wait(0.1):
                self._stop.set()
                self._wake_until_done(float("inf"))
                return

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
        try:
            answer = self.card_os.power_on()
        except CardPowerLoss:
            log.warning("NFC card %s lost power while powering on; leaving the field", self.path)
            self._away = True
            return
        ats_bytes = self.ats if self.ats is not None else bytes(answer)
        try:
            ats = Ats.parse(ats_bytes)
        except ValueError as exc:
            self.card_os.power_off()
            raise ValueError(f"NFC card on {self.path}: the Card OS answers no valid ATS "
                             f"({ats_bytes.hex().upper()}): {exc}") from None
        picc = IsoDepPicc(ats, frame_size(fsdi), cid, self._process)
        assert self._watchdog is not None
        fwt = ats.fwt_us / 1e6
        wtxm = max(1, min(59, math.ceil(1.0 / fwt)))
        self._watchdog.open(lambda: self._wtx(clf, picc, wtxm), fwt / 2, wtxm * fwt / 2)
        self._active.set()
        self.activations += 1
        log.info("NFC card %s activated (FSD %d, CID %d)", self.path, picc.fsd, cid)
        powered = True
        try:
            frame = self._exchange(clf, ats_bytes)
            while frame is not None and not self._stop.is_set():
                if frame in _NEW_FIELD:
                    break  # the reader reset its field without RFOFF (a reader process that died)
                self.frames += 1
                reply = picc.handle(frame)
                if self._watchdog.lost:
                    break  # the reader stopped answering our S(WTX): it is gone
                if picc.deselected:
                    assert reply is not None
                    clf.exchange(reply, 0)
                    break
                frame = self._exchange(clf, reply)
        except CardPowerLoss:
            log.warning("NFC card %s lost power during a command; leaving the field for %.1f s", self.path,
                        self.absence)
            self._away = True
            powered = False
        finally:
            self._watchdog.end()
            self._active.clear()
            if powered:
                self.card_os.power_off()

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

    def _wtx(self, clf: nfc.clf.ContactlessFrontend, picc: IsoDepPicc, wtxm: int) -> bool:
        """One S(WTX) round trip (watchdog thread, card thread busy in the Card OS)."""
        try:
            answer = clf.exchange(picc.wtx_request(wtxm), 1.0)
        except (nfc.clf.CommunicationError, OSError):
            return False
        return answer is not None and picc.is_wtx_response(bytes(answer), wtxm)

    def _process(self, capdu: bytes) -> bytes:
        """The one place that turns a command into the Card OS's answer."""
        assert self._watchdog is not None
        with self._watchdog.busy():
            try:
                rapdu = self.card_os.process(capdu)
            except CardPowerLoss:
                raise
            except Exception:
                log.exception("card OS raised on a command APDU (INS %02X); answering 6F00",
                              capdu[1] if len(capdu) > 1 else 0)
                rapdu = SW_UNKNOWN
            self.apdu_count += 1
            if self.on_exchange is not None:
                try:
                    self.on_exchange()
                except Exception as exc:
                    raise _OwnerFailed() from exc
        return bytes(rapdu)
