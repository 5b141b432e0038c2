"""How long a contactless exchange takes on the air: ISO/IEC 14443-2/-3/-4 frames, frame delay times, activation,
chaining, S(WTX) and DESELECT, as a timeline of named segments.

Why: a validator's budget (a few hundred ms) is spent on the air and in the card, not in the host; a trace records
only APDUs and the host's clock. This module turns APDUs back into the frames that carried them and prices each
frame bit by bit. It knows nothing of the application: the card's processing time per command is given to it.

The model (every figure a named constant below, with its clause):
- a Type A frame is a start of communication (1 bit period), 8 data bits plus an odd parity bit per byte, and an
  end of communication (PCD: logic 0 followed by sequence Y, 2 bit periods; PICC: sequence F, 1); a short frame
  (REQA, WUPA) carries 7 data bits and no parity (ISO/IEC 14443-3:2018 §6.2.3.1, §6.2.3.2.1, which also holds the
  standard frame for fc/64, fc/32 and fc/16 PCD bit rates and for the PICC); one bit period is 128/(D·fc) with
  D = 1, 2, 4, 8 for 106, 212, 424, 848 kbit/s (§6.1);
- after a PCD frame, the PICC starts answering no sooner than the frame delay time FDT = (n·128 + 84)/fc when the
  last bit sent was 1, (n·128 + 20)/fc when it was 0, n = 9 (§6.2.1.1); the model counts FDT from the end of the
  frame (the standard counts it from the end of the last pause, inside the frame's last two bit periods), so it
  errs long by under two bit periods per frame; at bit rates above 106 kbit/s the 106 kbit/s FDT is kept (the
  amended per-rate values are shorter: the model again errs long);
- after a PICC frame the PCD waits at least 1172/fc before its next frame (§6.2.1.2): the model takes that minimum;
- a command the card needs longer for than FWT (from FWI in the ATS, ISO/IEC 14443-4 §7.2) is held open with
  S(WTX) requests (§7.3): the card asks at once, the reader answers, and the card gets WTXM·FWT more;
- activation at 106 kbit/s: REQA (or WUPA), ATQA, one ANTICOLLISION and SELECT per cascade level (1, 2 or 3 for
  a 4-, 7- or 10-byte UID, §6.5.4), SAK, RATS, ATS, then SFGT (ISO/IEC 14443-4 §5.2.5) and, for a bit rate above
  106 kbit/s, PPS (§5.3) before the first block at the new rate.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from apdu.iso14443 import FC_HZ, Ats, frame_size_code, rats, with_crc_a
from apdu.isodep import s_deselect, s_wtx
from apdu.trace import IsoDepFramer

__all__ = [
    "BIT_RATES", "Frame", "Segment", "AirModel", "pcd_frame", "picc_frame", "short_frame",
    "fdt_pcd_to_picc_us", "FDT_PICC_TO_PCD_US", "etu_us", "Lane", "Timeline",
]

Lane = Literal["reader", "card", "psam", "host"]

# --- ISO/IEC 14443-2/-3 constants ----------------------------------------------------------------------

#: Carrier cycles in one bit period at 106 kbit/s (fc/128, ISO/IEC 14443-3:2018 §6.1 etu = 128/fc).
ETU_106_CYCLES = 128
#: Bit rate in kbit/s -> divisor D; one bit period = 128/(D·fc) (ISO/IEC 14443-3:2018 §6.1, -4 §5.3 PPS DSI/DRI).
BIT_RATES: dict[int, int] = {106: 1, 212: 2, 424: 4, 848: 8}
#: Start of communication: one bit period (sequence Z from the PCD, D from the PICC; 14443-3 §6.2.3).
SOF_BITS = 1
#: PCD end of communication: logic 0 followed by sequence Y, two bit periods (14443-2 §8.1.3.1, 14443-3 §6.2.3).
EOF_PCD_BITS = 2
#: PICC end of communication: sequence F, one bit period (14443-2 §8.2.6, 14443-3 §6.2.3).
EOF_PICC_BITS = 1
#: An odd parity bit follows each byte of a standard frame (14443-3:2018 §6.2.3.2.1).
PARITY_BITS_PER_BYTE = 1
#: Data bits of a short frame: REQA, WUPA (14443-3:2018 §6.2.3.1); no parity.
SHORT_FRAME_BITS = 7
#: n of the FDT formula for REQA, WUPA, ANTICOLLISION and SELECT, and the value the model uses throughout
#: (14443-3:2018 §6.2.1.1: n = 9 for those commands, n ≥ 9 for the others).
FDT_N = 9
#: FDT PCD→PICC additive term in carrier cycles when the PCD's last bit is 1 / 0 (14443-3:2018 §6.2.1.1).
FDT_LAST_BIT_1_CYCLES = 84
FDT_LAST_BIT_0_CYCLES = 20
#: Minimum FDT PICC→PCD, carrier cycles (14443-3:2018 §6.2.1.2).
FDT_PICC_TO_PCD_CYCLES = 1172
FDT_PICC_TO_PCD_US = FDT_PICC_TO_PCD_CYCLES / FC_HZ * 1e6
#: REQA and WUPA short-frame codes (14443-3:2018 §6.4.1).
REQA = 0x26
WUPA = 0x52
#: SEL codes of cascade levels 1, 2, 3 (14443-3:2018 §6.5.3.2).
SEL_CODES = (0x93, 0x95, 0x97)
#: NVB of ANTICOLLISION (2 bytes valid, no UID bits) and of SELECT (7 bytes) (14443-3:2018 §6.5.3.3).
NVB_ANTICOLLISION = 0x20
NVB_SELECT = 0x70
#: Cascade tag: first UID byte of a level that is not the last (14443-3:2018 §6.5.4).
CASCADE_TAG = 0x88
#: Cascade levels for a UID of 4, 7 or 10 bytes (single, double, triple size; 14443-3:2018 §6.5.4).
CASCADE_LEVELS = {4: 1, 7: 2, 10: 3}
#: ATQA of the model's card: bit frame anticollision, UID size bits b8..b7 (14443-3:2018 §6.5.2.1).
ATQA_UID_SIZE = {4: 0x0004, 7: 0x0044, 10: 0x0084}
#: PPS request PPSS ‖ PPS0 ‖ PPS1 and its answer PPSS (ISO/IEC 14443-4:2018 §5.3): 3 + 2 CRC bytes, 1 + 2.
PPS_REQUEST_BYTES = 3
PPS_RESPONSE_BYTES = 1
#: PPS1 DSI/DRI code of each divisor (ISO/IEC 14443-4:2018 §5.3.3).
PPS_CODE = {1: 0, 2: 1, 4: 2, 8: 3}
#: S(WTX) WTXM range (ISO/IEC 14443-4:2018 §7.3).
WTXM_MAX = 59


def _cycles_us(cycles: float) -> float:
    return cycles / FC_HZ * 1e6


def etu_us(kbps: int) -> float:
    """One bit period at `kbps` (106, 212, 424, 848) in µs: 128/(D·fc)."""
    return _cycles_us(ETU_106_CYCLES / _divisor(kbps))


def _divisor(kbps: int) -> int:
    try:
        return BIT_RATES[kbps]
    except KeyError:
        raise ValueError(f"bit rate: {kbps} kbit/s is not one of {', '.join(map(str, BIT_RATES))}") from None


def fdt_pcd_to_picc_us(last_bit: int, n: int = FDT_N) -> float:
    """Frame delay time PCD→PICC in µs for the PCD frame's last bit (14443-3:2018 §6.2.1.1)."""
    extra = FDT_LAST_BIT_1_CYCLES if last_bit else FDT_LAST_BIT_0_CYCLES
    return _cycles_us(n * ETU_106_CYCLES + extra)


def _odd_parity(byte: int) -> int:
    return 1 - bin(byte).count("1") % 2


@dataclass(frozen=True)
class Frame:
    """One frame on the air: who sends it, its bytes (CRC_A included when it has one), how many bits it takes."""

    sender: Literal["PCD", "PICC"]
    data: bytes
    kbps: int = 106
    short: bool = False  # a 7-bit short frame (REQA, WUPA)

    @property
    def bit_periods(self) -> int:
        """SOF + data and parity bits + EOF."""
        eof = EOF_PCD_BITS if self.sender == "PCD" else EOF_PICC_BITS
        payload = SHORT_FRAME_BITS if self.short else len(self.data) * (8 + PARITY_BITS_PER_BYTE)
        return SOF_BITS + payload + eof

    @property
    def duration_us(self) -> float:
        return self.bit_periods * etu_us(self.kbps)

    @property
    def last_bit(self) -> int:
        """The last bit before the EOF: bit 7 of a short frame, else the parity bit of the last byte."""
        if self.short:
            return self.data[0] >> 6 & 1
        return _odd_parity(self.data[-1])


def pcd_frame(data: bytes, kbps: int = 106) -> Frame:
    _divisor(kbps)
    return Frame("PCD", bytes(data), kbps)


def picc_frame(data: bytes, kbps: int = 106) -> Frame:
    _divisor(kbps)
    return Frame("PICC", bytes(data), kbps)


def short_frame(code: int) -> Frame:
    """REQA or WUPA: 7 bits at 106 kbit/s."""
    return Frame("PCD", bytes([code & 0x7F]), 106, short=True)


@dataclass(frozen=True)
class Segment:
    """A stretch of the tap on one lane: a frame on the air, the card or PSAM working, a wait, the host."""

    lane: Lane
    start_us: float
    duration_us: float
    label: str
    kind: Literal["frame", "process", "wait", "host"] = "frame"
    frame: Frame | None = None

    @property
    def end_us(self) -> float:
        return self.start_us + self.duration_us


@dataclass
class Timeline:
    """Segments laid out one after the other; `cursor` is the end of the last one."""

    cursor: float = 0.0
    segments: list[Segment] = field(default_factory=list)

    def add(self, lane: Lane, duration_us: float, label: str, kind: str = "frame",
            frame: Frame | None = None) -> Segment:
        segment = Segment(lane, self.cursor, duration_us, label, kind, frame)  # type: ignore[arg-type]
        self.segments.append(segment)
        self.cursor += duration_us
        return segment


class AirModel:
    """The air between one reader and one Type A card with this ATS, at one bit rate after activation.

    `fsd` is the reader's frame size (RATS), `uid_length` 4, 7 or 10. The model lays frames and waits onto a
    `Timeline`; `exchange` is one APDU with the card's processing time given.
    """

    def __init__(self, ats: Ats, kbps: int = 106, fsd: int = 256, uid_length: int = 4) -> None:
        _divisor(kbps)
        if uid_length not in CASCADE_LEVELS:
            raise ValueError(f"UID length: {uid_length} bytes is not 4, 7 or 10")
        self.ats, self.kbps, self.fsd, self.uid_length = ats, kbps, fsd, uid_length
        self._framer = IsoDepFramer(ats, fsd=fsd)
        #: how long the last `exchange` left the air to the card (FDT, its processing, S(WTX) rounds)
        self.card_slot_us = 0.0

    @property
    def fwt_us(self) -> float:
        return self.ats.fwt_us

    # --- pieces ----------------------------------------------------------------------------------------

    def _pcd(self, t: Timeline, frame: Frame, label: str) -> None:
        """A PCD frame, then the FDT before the PICC may answer (counted on the air, as waiting)."""
        t.add("reader", frame.duration_us, label, "frame", frame)

    def _round(self, t: Timeline, command: Frame, answer: Frame, label: str, answer_label: str,
               card_us: float = 0.0) -> None:
        """PCD frame, max(FDT, card time), PICC frame, FDT PICC→PCD."""
        self._pcd(t, command, label)
        fdt = fdt_pcd_to_picc_us(command.last_bit)
        if card_us > fdt:
            t.add("card", card_us, f"{label}: card", "process")
        else:
            t.add("reader", fdt, "FDT", "wait")
        t.add("card", answer.duration_us, answer_label, "frame", answer)
        t.add("reader", FDT_PICC_TO_PCD_US, "FDT", "wait")

    # --- activation ------------------------------------------------------------------------------------

    def activation(self, t: Timeline, wakeup: bool = False) -> None:
        """REQA/WUPA … ATS (and PPS) at 106 kbit/s, then SFGT."""
        code = WUPA if wakeup else REQA
        atqa = ATQA_UID_SIZE[self.uid_length].to_bytes(2, "little")
        self._round(t, short_frame(code), picc_frame(atqa), "WUPA" if wakeup else "REQA", "ATQA")
        uid = bytes(range(1, self.uid_length + 1))
        levels = CASCADE_LEVELS[self.uid_length]
        for level in range(levels):
            part = uid[3 * level:3 * level + 3]
            uid_cl = (bytes([CASCADE_TAG]) + part) if level < levels - 1 else uid[3 * level:3 * level + 4]
            bcc = uid_cl[0] ^ uid_cl[1] ^ uid_cl[2] ^ uid_cl[3]
            sel = SEL_CODES[level]
            self._round(t, pcd_frame(bytes([sel, NVB_ANTICOLLISION])), picc_frame(uid_cl + bytes([bcc])),
                        f"ANTICOLLISION CL{level + 1}", f"UID CL{level + 1}")
            sak = 0x04 if level < levels - 1 else 0x20
            self._round(t, pcd_frame(with_crc_a(bytes([sel, NVB_SELECT]) + uid_cl + bytes([bcc]))),
                        picc_frame(with_crc_a(bytes([sak]))), f"SELECT CL{level + 1}", "SAK")
        self._round(t, pcd_frame(with_crc_a(rats(frame_size_code(self.fsd)))),
                    picc_frame(with_crc_a(self.ats.to_bytes())), "RATS", "ATS")
        if self.ats.sfgt_us:
            t.add("reader", self.ats.sfgt_us, "SFGT", "wait")
        d = BIT_RATES[self.kbps]
        if d > 1:
            code = PPS_CODE[d]
            request = with_crc_a(bytes([0xD0, 0x11, code << 2 | code]))
            self._round(t, pcd_frame(request), picc_frame(with_crc_a(request[:1])), "PPS", "PPS response")
        self._framer = IsoDepFramer(self.ats, fsd=self.fsd)

    # --- blocks ----------------------------------------------------------------------------------------

    def exchange(self, t: Timeline, capdu: bytes, rapdu: bytes, card_us: float, label: str) -> int:
        """One APDU: the command's I-blocks (chained, each part acknowledged), the card's time (with S(WTX)
        while it exceeds FWT), the response's I-blocks. Returns the number of S(WTX) requests."""
        command = self._framer.command(capdu)
        response = self._framer.response(rapdu)
        k = self.kbps
        for i in range(0, len(command) - 1, 2):  # chained parts, each answered R(ACK)
            self._round(t, pcd_frame(command[i][1], k), picc_frame(command[i + 1][1], k),
                        f"{label} (chained)", "R(ACK)")
        last = pcd_frame(command[-1][1], k)
        self._pcd(t, last, label)
        slot_start = t.cursor
        wtx = self._card_time(t, last, card_us, label)
        self.card_slot_us = t.cursor - slot_start
        for i, (_, frame) in enumerate(response):
            if i % 2 == 0:
                t.add("card", picc_frame(frame, k).duration_us, f"{label}: response"
                      + (" (chained)" if i + 1 < len(response) else ""), "frame", picc_frame(frame, k))
                t.add("reader", FDT_PICC_TO_PCD_US, "FDT", "wait")
            else:
                ack = pcd_frame(frame, k)
                self._pcd(t, ack, "R(ACK)")
                t.add("reader", fdt_pcd_to_picc_us(ack.last_bit), "FDT", "wait")
        return wtx

    def _card_time(self, t: Timeline, last: Frame, card_us: float, label: str) -> int:
        """The card works `card_us` after the command's last frame; beyond FWT it asks for S(WTX)."""
        fdt = fdt_pcd_to_picc_us(last.last_bit)
        if card_us + fdt <= self.fwt_us:
            t.add("card", max(card_us, fdt), f"{label}: card" if card_us > fdt else "FDT",
                  "process" if card_us > fdt else "wait")
            return 0
        k, remaining, requests = self.kbps, card_us, 0
        while remaining + fdt > self.fwt_us:
            wtxm = min(WTXM_MAX, math.ceil(remaining / self.fwt_us))
            request = picc_frame(with_crc_a(s_wtx(wtxm)), k)
            t.add("card", fdt, f"{label}: card", "process")
            t.add("card", request.duration_us, f"S(WTX {wtxm})", "frame", request)
            t.add("reader", FDT_PICC_TO_PCD_US, "FDT", "wait")
            answer = pcd_frame(with_crc_a(s_wtx(wtxm)), k)
            self._pcd(t, answer, f"S(WTX {wtxm})")
            spent = fdt + request.duration_us + FDT_PICC_TO_PCD_US + answer.duration_us
            remaining = max(0.0, remaining - spent)
            requests += 1
            if remaining <= self.fwt_us * wtxm:
                break
        t.add("card", max(remaining, fdt), f"{label}: card", "process")
        return requests

    def command_frames(self, capdu: bytes) -> list[tuple[bool, bytes]]:
        """The frames of a command whose answer never came (the next command starts a new activation)."""
        return self._framer.command(capdu)

    def deselect(self, t: Timeline) -> None:
        """S(DESELECT) and its answer (ISO/IEC 14443-4:2018 §8)."""
        frame = with_crc_a(s_deselect())
        self._round(t, pcd_frame(frame, self.kbps), picc_frame(frame, self.kbps), "S(DESELECT)", "S(DESELECT)")

