"""Traces: every APDU exchange with direction, time and bytes; JSON Lines and pcapng export.

Why: a trace is the evidence of a transaction (what the terminal sent, what the card said, when).
`TracingReader` wraps any Reader, so the same recording works in-process, through pcscd or over NFC.

JSON Lines schema (stable; one object per line, keys in this order):

    {"t": 1700000000.123456, "reader": "Virtual PCD 00 00", "dir": "C>", "hex": "00A4040008A000000632010105"}

- ``t``: float seconds from the recording clock (``time.time`` unless injected; JSON keeps the float
  exactly, so a run with an injected clock repeats byte for byte);
- ``reader``: the reader name the exchange went through;
- ``dir``: ``"C>"`` command APDU, host to card; ``"R<"`` response APDU, card to host;
- ``hex``: the APDU bytes, upper-case hex, no spaces (a response includes SW1 SW2).

Only APDUs are recorded: no key field exists, and APDUs carry MACs, never keys.

pcapng export: link type 264 (LINKTYPE_ISO_14443, http://www.kaiser.cx/pcap-iso14443.html); each
packet = pseudo-header (version 0, event 0xFE data PCD→PICC or 0xFF data PICC→PCD, 2-byte big-endian
length) ‖ ISO 14443-4 block ‖ CRC_A. APDUs travel as I-blocks with alternating block numbers, chained
with R(ACK)s when larger than FSC/FSD. Wireshark hands I-block payloads to the ISO 7816 dissector
only through "Decode As": ``tshark -r FILE -V -d iso14443.subdissector,iso7816`` (see
`TSHARK_DECODE_AS`). With ``ats=`` given, a RATS/ATS pair opens the capture, which also tells
Wireshark the card is Type A so it verifies every CRC_A.
"""
from __future__ import annotations

import json
import os
import struct
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import IO, Literal

from apdu.iso14443 import Ats, frame_size_code, rats, with_crc_a
from apdu.isodep import Deliver, PcdEngine, PiccEngine, Send
from apdu.reader import Reader, ReaderDecorator

Direction = Literal["C", "R"]

#: JSON form of each direction.
_DIR_TO_JSON = {"C": "C>", "R": "R<"}
_JSON_TO_DIR = {v: k for k, v in _DIR_TO_JSON.items()}

#: LINKTYPE_ISO_14443.
LINKTYPE_ISO_14443 = 264
#: Pseudo-header event bytes (kaiser.cx format, Wireshark packet-iso14443.c).
EVENT_DATA_PICC_TO_PCD = 0xFF
EVENT_DATA_PCD_TO_PICC = 0xFE
#: tshark option that routes I-block payloads to the ISO 7816 APDU dissector.
TSHARK_DECODE_AS = ("-d", "iso14443.subdissector,iso7816")


@dataclass(frozen=True)
class Exchange:
    """One APDU on the wire: `direction` 'C' = command to the card, 'R' = response from the card."""

    direction: Direction
    t: float
    data: bytes
    reader: str = ""

    def __post_init__(self) -> None:
        if self.direction not in _DIR_TO_JSON:
            raise ValueError(f"exchange direction: {self.direction!r} is not 'C' or 'R'")

    def to_json(self) -> str:
        """One JSON Lines record (without newline), keys in the documented order."""
        record = {"t": self.t, "reader": self.reader, "dir": _DIR_TO_JSON[self.direction],
                  "hex": self.data.hex().upper()}
        return json.dumps(record, ensure_ascii=False, separators=(", ", ": "))

    @classmethod
    def from_json(cls, line: str) -> Exchange:
        """Parse one record; raises ValueError naming the field that is wrong."""
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not JSON: {exc.msg}") from None
        if not isinstance(record, dict):
            raise ValueError("record: not a JSON object")
        for key in ("t", "reader", "dir", "hex"):
            if key not in record:
                raise ValueError(f"field {key!r}: missing")
        t = record["t"]
        if isinstance(t, bool) or not isinstance(t, (int, float)):
            raise ValueError(f"field 't': {t!r} is not a number")
        if not isinstance(record["reader"], str):
            raise ValueError(f"field 'reader': {record['reader']!r} is not a string")
        if record["dir"] not in _JSON_TO_DIR:
            raise ValueError(f"field 'dir': {record['dir']!r} is not 'C>' or 'R<'")
        text = record["hex"]
        if not isinstance(text, str):
            raise ValueError(f"field 'hex': {text!r} is not a string")
        try:
            data = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"field 'hex': {text[:40]!r} is not hex") from None
        return cls(_JSON_TO_DIR[record["dir"]], float(t), data, record["reader"])


def write_jsonl(exchanges: Iterable[Exchange], path: str | os.PathLike[str]) -> None:
    """Write a whole trace as JSON Lines (replacing the file)."""
    with open(path, "w", encoding="utf-8") as out:
        for exchange in exchanges:
            out.write(exchange.to_json() + "\n")


def read_jsonl(path: str | os.PathLike[str]) -> list[Exchange]:
    """Read a JSON Lines trace; blank lines are skipped; errors name the file and line."""
    exchanges = []
    with open(path, encoding="utf-8") as src:
        for number, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                exchanges.append(Exchange.from_json(line))
            except ValueError as exc:
                raise ValueError(f"{os.fspath(path)} line {number}: {exc}") from None
    return exchanges


class TracingReader(ReaderDecorator):
    """A Reader decorator that records every APDU exchange of the reader it wraps.

    `clock` gives float seconds (inject a fake one for repeatable traces). With `jsonl` set, each
    exchange is also appended to that file at once and flushed, so a crash loses nothing.
    """

    def __init__(self, inner: Reader, clock: Callable[[], float] = time.time,
                 jsonl: str | os.PathLike[str] | None = None) -> None:
        super().__init__(inner)
        self.clock = clock
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._sink: IO[str] | None = open(jsonl, "a", encoding="utf-8") if jsonl is not None else None

    def transmit(self, capdu: bytes) -> bytes:
        capdu = bytes(capdu)
        self._record("C", capdu)
        rapdu = self.inner.transmit(capdu)
        self._record("R", bytes(rapdu))
        return rapdu

    def write_jsonl(self, path: str | os.PathLike[str]) -> None:
        """Write everything recorded so far as JSON Lines."""
        with self._lock:
            snapshot = list(self.exchanges)
        write_jsonl(snapshot, path)

    def close(self) -> None:
        """Close the streaming JSON Lines file, if any (the wrapped reader is left alone)."""
        with self._lock:
            if self._sink is not None:
                self._sink.close()
                self._sink = None

    def __enter__(self) -> TracingReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record(self, direction: Direction, data: bytes) -> None:
        exchange = Exchange(direction, float(self.clock()), data, self.inner.name)
        with self._lock:
            self.exchanges.append(exchange)
            if self._sink is not None:
                self._sink.write(exchange.to_json() + "\n")
                self._sink.flush()


# --- pcapng -------------------------------------------------------------------------------------------

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_OPT_ENDOFOPT = 0
_OPT_SHB_USERAPPL = 4
_OPT_IF_NAME = 2
_OPT_IF_TSRESOL = 9


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + _pad4(value)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def _iso14443_packet(pcd_to_picc: bool, frame: bytes) -> bytes:
    event = EVENT_DATA_PCD_TO_PICC if pcd_to_picc else EVENT_DATA_PICC_TO_PCD
    return struct.pack(">BBH", 0, event, len(frame)) + frame


class IsoDepFramer:
    """Rebuilds the frames a PCD and an activated PICC exchanged for a log of APDUs.

    It runs the two ISO-DEP engines of `apdu.isodep` against each other over a perfect link, so block
    numbers and chaining by FSC/FSD come out as on the air. Frames come back as (pcd_to_picc, frame ‖
    CRC_A). A command left without its response (the exchange failed: the card left the field) ends that
    activation; the next command starts a new one, block numbers from their start.
    """

    def __init__(self, ats: Ats | None = None, fsd: int = 256) -> None:
        self.ats = ats if ats is not None else Ats(fsci=frame_size_code(256))
        self.fsd = fsd
        self._activate()

    def _activate(self) -> None:
        self._pcd = PcdEngine.for_card(self.ats, fsd=self.fsd, crc=True)
        self._picc = PiccEngine(self.ats, self.fsd, crc=True)

    def command(self, capdu: bytes) -> list[tuple[bool, bytes]]:
        """Frames for one command: PCD I-block(s), each chained part acknowledged by the PICC."""
        if not self._pcd.idle:
            self._activate()
        frames: list[tuple[bool, bytes]] = []
        frame = self._pcd.send(capdu)
        while True:
            frames.append((True, frame))
            action = self._picc.receive(frame)
            if isinstance(action, Deliver):
                return frames
            assert isinstance(action, Send)
            frames.append((False, action.frame))
            step = self._pcd.receive(action.frame)
            assert isinstance(step, Send)
            frame = step.frame

    def response(self, rapdu: bytes) -> list[tuple[bool, bytes]]:
        """Frames for the response to the last command: PICC I-block(s), chained parts acknowledged."""
        if not self._picc.processing:
            raise ValueError("a response without a command before it")
        frames: list[tuple[bool, bytes]] = []
        frame = self._picc.respond(rapdu)
        while True:
            frames.append((False, frame))
            step = self._pcd.receive(frame)
            if isinstance(step, Deliver):
                return frames
            assert isinstance(step, Send)
            frames.append((True, step.frame))
            action = self._picc.receive(step.frame)
            assert isinstance(action, Send)
            frame = action.frame


def iso14443_frames(exchanges: Iterable[Exchange], ats: bytes | None = None,
                    fsd: int = 256) -> list[tuple[float, bool, bytes]]:
    """The over-the-air frames (time, pcd_to_picc, frame ‖ CRC_A) that carry these APDUs.

    Without `ats` the card's FSC is taken as 256. With it, RATS (for `fsd`) and the ATS come first.
    """
    exchanges = list(exchanges)
    frames: list[tuple[float, bool, bytes]] = []
    parsed = None
    if ats is not None:
        parsed = Ats.parse(ats)
        t0 = exchanges[0].t if exchanges else 0.0
        frames.append((t0, True, with_crc_a(rats(frame_size_code(fsd)))))
        frames.append((t0, False, with_crc_a(parsed.to_bytes())))
    framer = IsoDepFramer(parsed, fsd=fsd)
    for number, exchange in enumerate(exchanges, 1):
        try:
            blocks = framer.command(exchange.data) if exchange.direction == "C" else framer.response(exchange.data)
        except ValueError as exc:
            raise ValueError(f"exchange {number} ({_DIR_TO_JSON[exchange.direction]} at t={exchange.t}): "
                             f"{exc}") from None
        frames.extend((exchange.t, pcd_to_picc, frame) for pcd_to_picc, frame in blocks)
    return frames


def export_pcapng(exchanges: Iterable[Exchange], path: str | os.PathLike[str], *,
                  ats: bytes | None = None, fsd: int = 256, application: str = "apdu.trace") -> int:
    """Write the exchanges as a pcapng capture (LINKTYPE_ISO_14443); returns the packet count.

    `application` names the writer in the capture's section header (shb_userappl).
    """
    frames = iso14443_frames(exchanges, ats=ats, fsd=fsd)
    for t, _, _ in frames:
        if t < 0:
            raise ValueError(f"exchange time: {t} is negative; pcapng times count from 1970")
    shb_body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1)
    shb_body += _option(_OPT_SHB_USERAPPL, application.encode()) + _option(_OPT_ENDOFOPT, b"")
    idb_body = struct.pack("<HHI", LINKTYPE_ISO_14443, 0, 0)
    idb_body += _option(_OPT_IF_NAME, b"iso14443") + _option(_OPT_IF_TSRESOL, b"\x06")
    idb_body += _option(_OPT_ENDOFOPT, b"")
    with open(path, "wb") as out:
        out.write(_block(_SHB, shb_body))
        out.write(_block(_IDB, idb_body))
        for t, pcd_to_picc, frame in frames:
            micros = round(t * 1_000_000)
            packet = _iso14443_packet(pcd_to_picc, frame)
            body = struct.pack("<IIIII", 0, micros >> 32, micros & 0xFFFFFFFF, len(packet), len(packet))
            out.write(_block(_EPB, body + _pad4(packet)))
    return len(frames)
