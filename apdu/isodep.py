"""ISO/IEC 14443-4 half-duplex block transmission protocol (ISO-DEP): the block codec, a PCD engine and a
PICC engine.

Why one module: the in-process air link (`apdu.transport.air`), the nfcpy card endpoint
(`apdu.transport.nfc.card`) and the trace exporter (`apdu.trace`) all speak this protocol, and a
retransmission rule written twice is a rule that drifts. Everything here is pure: an engine is told which
frame arrived (or that none arrived within the frame waiting time) and answers what to send next; sockets,
threads and clocks belong to the transports.

Frames are bytes as they travel: without CRC_A (nfcpy's udp driver, which has no bit errors) or, built
with `crc=True`, ending in CRC_A; a frame whose CRC_A is wrong is an invalid block, as a lost one is.

The rules, numbered as in ISO/IEC 14443-4 §7.5 (block numbering rules A-E, block handling rules 1-13):
  A  the PCD's block number starts at 0;      C  the PICC's starts at 1;
  B  the PCD toggles on an I-block or R(ACK) carrying its number;
  D  the PICC toggles on every I-block;        E  and on an R(ACK) not carrying its number.
  2  a chained I-block is answered R(ACK);     3  S-blocks come in request/response pairs;
  4  PCD: no valid block within FWT -> R(NAK); 5  but R(ACK) while the PICC chains;
  6  PCD: R(ACK) with the other number -> send the last I-block again;
  7  PCD: R(ACK) with its number -> next part of its chain;
  8  PCD: an unanswered S(DESELECT) is sent again, or the PICC is given up;
  9  PICC: S(WTX) instead of an I-block or R(ACK) when it needs more time;
  10 PICC: an unchained I-block is answered with an I-block (the response);
  11 PICC: R(ACK) or R(NAK) with its number -> its last block again;
  12 PICC: R(NAK) with the other number -> R(ACK);
  13 PICC: R(ACK) with the other number while it chains -> next part of its chain.
A PICC ignores invalid blocks (§7.5.6.2). A PCD gives up (§7.5.6.1 leaves the count to it; 2 is the
figure of EMV contactless and the NFC Forum Digital Protocol) when more than `max_retries` receptions in
a row brought nothing valid (rules 4, 5), or when, since the exchange last progressed, the card asked
more than `max_retries` times for the same I-block (rule 6) or S(WTX) answer again: it raises
`RetryLimitExceeded` naming the rule. A card that answers is not gone; one that stays silent is. Because the PICC toggles
only on a new I-block and answers a repeated request with its last block, a command that reached the card
is never executed twice, whatever frames are lost or corrupted.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from apdu.iso14443 import DEFAULT_FWI, Ats, check_crc_a, fwt_us, with_crc_a
from apdu.reader import ReaderError

__all__ = [
    "BlockType", "SCommand", "Pcb", "Block", "i_block", "r_block", "s_deselect", "s_wtx",
    "Send", "Deliver", "Deselected", "PcdEngine", "PiccEngine",
    "IsoDepError", "RetryLimitExceeded", "DEFAULT_MAX_RETRIES",
]

#: Retransmissions a PCD attempts without progress before it gives the card up.
DEFAULT_MAX_RETRIES = 2

#: Bytes of a frame that are not INF: PCB and CRC_A (a CID byte adds one more).
_OVERHEAD = 3


# --- blocks (§7.1) -------------------------------------------------------------------------------------


class BlockType(Enum):
    """The three block kinds of the half-duplex block transmission protocol."""

    I = "I"  # noqa: E741  - the standard's name: information block
    R = "R"  # receive ready: ACK or NAK
    S = "S"  # supervisory: DESELECT, WTX, PARAMETERS


class SCommand(Enum):
    """S-block commands, PCB bits b6..b5."""

    DESELECT = 0b00
    PARAMETERS = 0b10
    WTX = 0b11


@dataclass(frozen=True)
class Pcb:
    """Protocol control byte. `block_number` is meaningful for I- and R-blocks only."""

    type: BlockType
    block_number: int = 0
    chaining: bool = False  # I-block b5
    nak: bool = False  # R-block b5
    s_command: SCommand | None = None  # S-block b6..b5
    cid_following: bool = False  # b4
    nad_following: bool = False  # I-block b3

    def __post_init__(self) -> None:
        if self.block_number not in (0, 1):
            raise ValueError(f"PCB block number: {self.block_number} is not 0 or 1")
        if self.type is BlockType.S and self.s_command is None:
            raise ValueError("PCB S-block: s_command is required")
        if self.type is not BlockType.S and self.s_command is not None:
            raise ValueError(f"PCB {self.type.value}-block: s_command is for S-blocks only")
        if self.type is not BlockType.I and (self.chaining or self.nad_following):
            raise ValueError(f"PCB {self.type.value}-block: chaining and NAD are for I-blocks only")
        if self.type is not BlockType.R and self.nak:
            raise ValueError(f"PCB {self.type.value}-block: NAK is for R-blocks only")

    def to_byte(self) -> int:
        cid = 0x08 if self.cid_following else 0
        if self.type is BlockType.I:
            return (0x02 | self.block_number | cid | (0x10 if self.chaining else 0)
                    | (0x04 if self.nad_following else 0))
        if self.type is BlockType.R:
            return 0xA2 | self.block_number | cid | (0x10 if self.nak else 0)
        assert self.s_command is not None
        return 0xC2 | self.s_command.value << 4 | cid

    @classmethod
    def parse(cls, byte: int) -> Pcb:
        """Decode a PCB; raises ValueError when it is no valid I-, R- or S-block coding."""
        if not 0 <= byte <= 0xFF:
            raise ValueError(f"PCB: {byte} is not a byte")
        cid = bool(byte & 0x08)
        if byte & 0xE2 == 0x02:
            return cls(BlockType.I, block_number=byte & 1, chaining=bool(byte & 0x10),
                       cid_following=cid, nad_following=bool(byte & 0x04))
        if byte & 0xE6 == 0xA2:
            return cls(BlockType.R, block_number=byte & 1, nak=bool(byte & 0x10), cid_following=cid)
        if byte & 0xC7 == 0xC2:
            code = (byte >> 4) & 0b11
            try:
                command = SCommand(code)
            except ValueError:
                raise ValueError(f"PCB: {byte:02X} is an S-block with RFU command {code:02b}") from None
            return cls(BlockType.S, s_command=command, cid_following=cid)
        raise ValueError(f"PCB: {byte:02X} is no I-, R- or S-block coding")

    def describe(self) -> str:
        """`I(1, chaining)`, `R(NAK, 0)`, `S(WTX)`: how frame tables and errors name a block."""
        if self.type is BlockType.I:
            return f"I({self.block_number}{', chaining' if self.chaining else ''})"
        if self.type is BlockType.R:
            return f"R({'NAK' if self.nak else 'ACK'}, {self.block_number})"
        assert self.s_command is not None
        return f"S({self.s_command.name})"


@dataclass(frozen=True)
class Block:
    """One ISO-DEP block without CRC: PCB [CID] [NAD] [INF]."""

    pcb: Pcb
    inf: bytes = b""
    cid: int | None = None
    nad: int | None = None

    def to_bytes(self) -> bytes:
        if (self.cid is not None) != self.pcb.cid_following:
            raise ValueError("block CID: the PCB's CID bit and the CID byte disagree")
        if (self.nad is not None) != self.pcb.nad_following:
            raise ValueError("block NAD: the PCB's NAD bit and the NAD byte disagree")
        if self.pcb.type is BlockType.R and self.inf:
            raise ValueError("block INF: R-blocks carry no INF")
        head = bytes([self.pcb.to_byte()])
        if self.cid is not None:
            head += bytes([self.cid])
        if self.nad is not None:
            head += bytes([self.nad])
        return head + self.inf

    @classmethod
    def parse(cls, frame: bytes) -> Block:
        """Decode a block given without CRC."""
        frame = bytes(frame)
        if not frame:
            raise ValueError("block PCB: empty frame")
        pcb = _pcb(frame[0])
        pos = 1
        cid = nad = None
        if pcb.cid_following:
            if len(frame) <= pos:
                raise ValueError("block CID: announced by PCB but missing")
            cid = frame[pos]
            pos += 1
        if pcb.nad_following:
            if len(frame) <= pos:
                raise ValueError("block NAD: announced by PCB but missing")
            nad = frame[pos]
            pos += 1
        inf = frame[pos:]
        if pcb.type is BlockType.R and inf:
            raise ValueError(f"block INF: R-block carries {len(inf)} INF bytes")
        if pcb.type is BlockType.S and pcb.s_command is SCommand.WTX and len(inf) != 1:
            raise ValueError(f"block INF: S(WTX) needs one INF byte, got {len(inf)}")
        return cls(pcb=pcb, inf=inf, cid=cid, nad=nad)


@lru_cache(maxsize=None)
def _pcb(byte: int) -> Pcb:
    """`Pcb.parse`, remembered: a link sees the same few PCBs over and over."""
    return Pcb.parse(byte)


@lru_cache(maxsize=None)
def _header(type_: BlockType, number: int, chaining: bool, nak: bool, s_command: SCommand | None,
            cid: int | None) -> bytes:
    pcb = Pcb(type_, block_number=number, chaining=chaining, nak=nak, s_command=s_command,
              cid_following=cid is not None)
    return Block(pcb, cid=cid).to_bytes()


def _build(type_: BlockType, *, number: int = 0, chaining: bool = False, nak: bool = False,
           s_command: SCommand | None = None, inf: bytes = b"", cid: int | None = None) -> bytes:
    if inf and type_ is BlockType.R:
        raise ValueError("block INF: R-blocks carry no INF")
    return _header(type_, number, chaining, nak, s_command, cid) + bytes(inf)


def i_block(inf: bytes, block_number: int, chaining: bool = False) -> bytes:
    """I-block without CID/NAD, no CRC."""
    return _build(BlockType.I, number=block_number, chaining=chaining, inf=inf)


def r_block(block_number: int, nak: bool = False) -> bytes:
    """R(ACK) or R(NAK) without CID, no CRC."""
    return _build(BlockType.R, number=block_number, nak=nak)


def s_deselect() -> bytes:
    """S(DESELECT) without CID, no CRC."""
    return _build(BlockType.S, s_command=SCommand.DESELECT)


def s_wtx(wtxm: int) -> bytes:
    """S(WTX) request/response with multiplier WTXM 1..59, no CRC."""
    _check_wtxm(wtxm)
    return _build(BlockType.S, s_command=SCommand.WTX, inf=bytes([wtxm]))


def _check_wtxm(wtxm: int) -> None:
    if not 1 <= wtxm <= 59:
        raise ValueError(f"WTXM: {wtxm} is not in 1..59")


def _chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)] or [b""]


# --- what an engine asks its transport to do ------------------------------------------------------------


@dataclass(frozen=True)
class Send:
    """Send this frame to the peer (a PCD then waits `PcdEngine.wait_us` for the answer)."""

    frame: bytes


@dataclass(frozen=True)
class Deliver:
    """A whole APDU arrived: for a PCD the response, for a PICC the command to process and `respond` to."""

    apdu: bytes


@dataclass(frozen=True)
class Deselected:
    """The S(DESELECT) exchange ended: `acknowledged` False when the PCD gave the PICC up (rule 8)."""

    acknowledged: bool


class IsoDepError(ReaderError):
    """The block protocol cannot go on (the link failed, or an engine was used out of turn)."""


class RetryLimitExceeded(IsoDepError):
    """The PCD recovered `retries` times by `rule` (4, 5 or 6) without getting anywhere and gives the card up."""

    def __init__(self, rule: int, reason: str, retries: int) -> None:
        self.rule = rule
        self.reason = reason
        self.retries = retries
        super().__init__(f"ISO-DEP link lost: {reason}, still after {retries} retransmissions by "
                         f"ISO/IEC 14443-4 rule {rule} ({_RULES[rule]}); the card is taken as gone")


_RULES = {
    4: "R(NAK) after a timeout or an invalid block",
    5: "R(ACK) after a timeout or an invalid block while the card chains",
    6: "the last I-block again after an R(ACK) with the other block number",
}


class _Codec:
    """What PCD and PICC share: CRC_A or not, a CID or not, and turning frames into blocks."""

    def __init__(self, crc: bool, cid: int | None) -> None:
        self.crc = crc
        self.cid = cid

    def seal(self, type_: BlockType, **fields: object) -> bytes:
        frame = _build(type_, cid=self.cid, **fields)  # type: ignore[arg-type]
        return with_crc_a(frame) if self.crc else frame

    def open(self, frame: bytes | None, limit: int) -> Block | str:
        """The block a received frame carries, or why it is no valid block (a reason for errors)."""
        if frame is None:
            return "no block within the frame waiting time"
        frame = bytes(frame)
        if self.crc:
            if not check_crc_a(frame):
                return "a frame with a wrong CRC_A"
            frame = frame[:-2]
        if len(frame) + 2 > limit:
            return f"a frame of {len(frame) + 2} bytes, more than the {limit} agreed"
        try:
            block = Block.parse(frame)
        except ValueError as exc:
            return f"an invalid block ({exc})"
        if block.nad is not None:
            return "a block with a NAD (not supported)"
        return block


# --- the PCD --------------------------------------------------------------------------------------------


class _PcdState(Enum):
    IDLE = "idle"
    SENDING = "sending"  # our I-block(s) are out: waiting for R(ACK) or the answer
    RECEIVING = "receiving"  # the PICC chains its answer: we sent R(ACK)
    DESELECTING = "deselecting"
    DESELECTED = "deselected"
    FAILED = "failed"


class PcdEngine:
    """The reader's side of one activated PICC: `send(capdu)` gives the first frame, then `receive(answer)`
    (None = nothing valid within `wait_us`) gives `Send(frame)` until the response comes as `Deliver`.

    `fsc` is the card's frame size (from its ATS), `fsd` ours (from RATS); `cid` the CID RATS assigned
    when the card supports CIDs (else None). Raises `RetryLimitExceeded` when the link is lost.
    """

    def __init__(self, fsc: int = 256, fsd: int = 256, *, cid: int | None = None, crc: bool = False,
                 fwt_us: float = fwt_us(DEFAULT_FWI), max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        if fsc < 16 or fsd < 16:
            raise ValueError(f"frame size: FSC {fsc} / FSD {fsd} below 16")
        if cid is not None and not 0 <= cid <= 14:
            raise ValueError(f"CID: {cid} is not in 0..14")
        if max_retries < 0:
            raise ValueError(f"max_retries: {max_retries} is negative")
        self.fsc, self.fsd, self.fwt_us, self.max_retries = fsc, fsd, fwt_us, max_retries
        self.number = 0  # rule A
        self.wtxm = 1
        #: receptions in a row that brought nothing valid (timeouts, invalid blocks)
        self.retries = 0
        #: requests to repeat ourselves (rule 6, repeated S(WTX)) since the exchange last progressed
        self.resends = 0
        self._codec = _Codec(crc, cid)
        self._state = _PcdState.IDLE
        self._parts: list[bytes] = []
        self._last_i = b""
        self._rx = bytearray()
        self._recovering = False  # our last frame asked the card to send its last block again (rules 4, 5)

    @classmethod
    def for_card(cls, ats: Ats, *, fsd: int = 256, cid: int = 0, crc: bool = False,
                 max_retries: int = DEFAULT_MAX_RETRIES) -> PcdEngine:
        """An engine for the card that answered RATS(`fsd`, `cid`) with `ats`."""
        return cls(ats.fsc, fsd, cid=cid if ats.cid_supported and cid else None, crc=crc,
                   fwt_us=ats.fwt_us, max_retries=max_retries)

    @property
    def wait_us(self) -> float:
        """How long to wait for the answer to the frame just sent: FWT, or FWT x WTXM after an S(WTX)."""
        return self.fwt_us * self.wtxm

    @property
    def idle(self) -> bool:
        """No exchange in progress: `send` may start one."""
        return self._state is _PcdState.IDLE

    def send(self, capdu: bytes) -> bytes:
        """Start exchanging one command APDU; returns the first frame (chained when longer than FSC)."""
        if self._state is not _PcdState.IDLE:
            raise IsoDepError(f"ISO-DEP: cannot send a command while the link is {self._state.value}")
        room = self.fsc - _OVERHEAD - (self._codec.cid is not None)
        self._parts = _chunks(bytes(capdu), room)
        self._rx = bytearray()
        self._progress()
        self._state = _PcdState.SENDING
        return self._next_part()

    def deselect(self) -> bytes:
        """Start S(DESELECT); `receive` then answers `Deselected` (or `Send` to try again, rule 8)."""
        self._state = _PcdState.DESELECTING
        self._progress()
        return self._transmit(self._codec.seal(BlockType.S, s_command=SCommand.DESELECT))

    def receive(self, frame: bytes | None) -> Send | Deliver | Deselected:
        """The PICC's answer to our last frame (None: none within `wait_us`); what to do next."""
        if self._state in (_PcdState.IDLE, _PcdState.DESELECTED, _PcdState.FAILED):
            raise IsoDepError(f"ISO-DEP: no exchange in progress (the link is {self._state.value})")
        block = self._codec.open(frame, self.fsd)
        if isinstance(block, str):
            return self._recover(block)
        cid = None if block.cid is None else block.cid & 0x0F
        if cid != self._codec.cid:
            return self._recover(f"a block for CID {cid} (ours: {self._codec.cid})")
        pcb = block.pcb
        if self._state is _PcdState.DESELECTING:
            if pcb.type is BlockType.S and pcb.s_command is SCommand.DESELECT:
                self._state = _PcdState.DESELECTED
                return Deselected(True)
            return self._recover(f"{pcb.describe()} instead of S(DESELECT)")
        if pcb.type is BlockType.S and pcb.s_command is SCommand.WTX:
            return self._grant_wtx(block.inf[0])
        if pcb.type is BlockType.I:
            return self._on_i_block(block)
        if pcb.type is BlockType.R and not pcb.nak and self._state is _PcdState.SENDING:
            return self._on_r_ack(pcb.block_number)
        return self._recover(f"{pcb.describe()}, which a PICC never sends here")

    # --- internals -------------------------------------------------------------------------------------

    def _on_i_block(self, block: Block) -> Send | Deliver:
        pcb = block.pcb
        if pcb.block_number != self.number:
            return self._recover(f"{pcb.describe()} while expecting block number {self.number}")
        if self._state is _PcdState.SENDING and self._parts:
            return self._recover(f"{pcb.describe()} before our command chain ended")
        self.number ^= 1  # rule B
        self._progress()
        self._rx += block.inf
        if pcb.chaining:  # rule 2
            self._state = _PcdState.RECEIVING
            return Send(self._transmit(self._codec.seal(BlockType.R, number=self.number)))
        self._state = _PcdState.IDLE
        response, self._rx = bytes(self._rx), bytearray()
        return Deliver(response)

    def _on_r_ack(self, number: int) -> Send:
        if number != self.number:  # rule 6: the PICC did not get our last I-block
            self._repeat(6, f"R(ACK, {number}) asking again for I-block {self.number}")
            return Send(self._transmit(self._last_i))
        if not self._parts:
            return self._recover(f"R(ACK, {number}) for an I-block that did not chain")
        self.number ^= 1  # rule B
        self._progress()
        return Send(self._next_part())  # rule 7

    def _grant_wtx(self, inf: int) -> Send:
        wtxm = inf & 0x3F
        if not 1 <= wtxm <= 59:
            return self._recover(f"S(WTX) with WTXM {wtxm}, outside 1..59")
        if self._recovering:  # our R(NAK) made the card send its last block again: this request, repeated
            self._repeat(4, "S(WTX) asked again: our answers to it were lost")
        else:
            self._progress()
        frame = self._transmit(self._codec.seal(BlockType.S, s_command=SCommand.WTX, inf=bytes([wtxm])))
        self.wtxm = wtxm
        return Send(frame)

    def _next_part(self) -> bytes:
        part = self._parts.pop(0)
        self._last_i = self._codec.seal(BlockType.I, number=self.number, chaining=bool(self._parts), inf=part)
        return self._transmit(self._last_i)

    def _recover(self, reason: str) -> Send | Deselected:
        """Rules 4, 5 and 8: nothing valid came back; ask again, up to the retry limit."""
        self.retries += 1
        if self._state is _PcdState.DESELECTING:
            if self.retries > self.max_retries:
                self._state = _PcdState.DESELECTED
                return Deselected(False)
            return Send(self._transmit(self._codec.seal(BlockType.S, s_command=SCommand.DESELECT), True))
        rule = 5 if self._state is _PcdState.RECEIVING else 4
        if self.retries > self.max_retries:
            self._state = _PcdState.FAILED
            raise RetryLimitExceeded(rule, reason, self.max_retries)
        return Send(self._transmit(self._codec.seal(BlockType.R, number=self.number, nak=rule == 4), True))

    def _progress(self) -> None:
        self.retries = self.resends = 0

    def _repeat(self, rule: int, reason: str) -> None:
        """A valid block asking us to repeat ourselves: the card is there, but the exchange is stuck."""
        self.retries = 0
        self.resends += 1
        if self.resends > self.max_retries:
            self._state = _PcdState.FAILED
            raise RetryLimitExceeded(rule, reason, self.max_retries)

    def _transmit(self, frame: bytes, recovering: bool = False) -> bytes:
        self._recovering = recovering
        self.wtxm = 1
        return frame


# --- the PICC -------------------------------------------------------------------------------------------


class _PiccState(Enum):
    LISTENING = "listening"
    PROCESSING = "processing"  # a command was delivered: waiting for `respond`
    WTX = "asking for more time"  # our S(WTX) request is out
    DESELECTED = "deselected"  # HALT: silent until the next activation


class PiccEngine:
    """The card's side of one activation: `receive(frame)` answers `Send(frame)`, `Deliver(capdu)` (process it,
    then `respond(rapdu)` gives the frame to send) or None (stay silent: invalid block, not for us).

    `ats` is what the card answered to RATS, `fsd` and `cid` what RATS asked for; the card uses the CID only
    when its ATS says it supports CIDs. While processing, `wtx_request(wtxm)` asks for more time (rule 9);
    `receive` then takes the PCD's S(WTX) answer. No NAD, no S(PARAMETERS); a PPS request right after the
    ATS is accepted at 106 kbit/s only. After S(DESELECT) the PICC is `deselected` and silent.
    """

    def __init__(self, ats: Ats, fsd: int = 256, cid: int = 0, *, crc: bool = False) -> None:
        if fsd < 16:
            raise ValueError(f"frame size: FSD {fsd} below 16")
        self.ats = ats
        self.fsc = ats.fsc
        self.fsd = fsd
        self.cid = cid if ats.cid_supported else None  # the CID RATS assigned, when the card supports CIDs
        self.crc = crc
        self.number = 1  # rule C
        self.started = False  # a block (or PPS) was received since the ATS
        self._state = _PiccState.LISTENING
        self._codec = _Codec(crc, None)  # the CID of each answer echoes the command's
        self._rx = bytearray()
        self._tx: list[bytes] = []
        self._last: bytes | None = None
        self._wtxm = 0

    @property
    def deselected(self) -> bool:
        return self._state is _PiccState.DESELECTED

    @property
    def processing(self) -> bool:
        """A command was delivered and awaits `respond` (also while asking for more time)."""
        return self._state in (_PiccState.PROCESSING, _PiccState.WTX)

    @property
    def awaiting_wtx(self) -> bool:
        """Our S(WTX) request is out and the PCD's answer has not come yet."""
        return self._state is _PiccState.WTX

    def receive(self, frame: bytes) -> Send | Deliver | None:
        """One frame from the PCD; see the class docstring for the answers."""
        if self._state is _PiccState.DESELECTED:
            return None
        if not self.started and self._is_pps(frame):
            return self._pps(frame)
        block = self._open(frame)
        if block is None or self._state is _PiccState.PROCESSING:
            return None  # invalid blocks are ignored (§7.5.6.2); a busy card is not listening
        if self._state is _PiccState.WTX:
            return self._while_asking_time(block)
        self.started = True
        pcb = block.pcb
        if pcb.type is BlockType.I:
            return self._on_i_block(block)
        if pcb.type is BlockType.R:
            return self._on_r_block(pcb)
        if pcb.s_command is SCommand.DESELECT:
            frame = self._seal(BlockType.S, s_command=SCommand.DESELECT)
            self._state = _PiccState.DESELECTED
            return Send(frame)
        return None  # a stray S(WTX) answer, S(PARAMETERS)

    def respond(self, rapdu: bytes) -> bytes:
        """The first frame of the response to the delivered command (rule 10), chained beyond FSD."""
        if self._state is not _PiccState.PROCESSING:
            what = "the PCD has not answered our S(WTX)" if self.awaiting_wtx else "no command was delivered"
            raise IsoDepError(f"ISO-DEP: cannot respond: {what}")
        room = self.fsd - _OVERHEAD - (self._codec.cid is not None)
        self._tx = _chunks(bytes(rapdu), room)
        self._state = _PiccState.LISTENING
        return self._next_part()

    def wtx_request(self, wtxm: int) -> bytes:
        """S(WTX) asking the PCD for `wtxm` times FWT more for the command being processed (rule 9)."""
        _check_wtxm(wtxm)
        if self._state is not _PiccState.PROCESSING:
            raise IsoDepError("ISO-DEP: S(WTX) is only sent while a command is processed")
        self._wtxm = wtxm
        self._state = _PiccState.WTX
        return self._send(self._seal(BlockType.S, s_command=SCommand.WTX, inf=bytes([wtxm])))

    # --- internals -------------------------------------------------------------------------------------

    def _open(self, frame: bytes) -> Block | None:
        """The block if it is valid and for us (no CID = CID 0); answers then echo its CID."""
        block = self._codec.open(frame, self.fsc)
        if isinstance(block, str):
            return None
        if block.cid is not None:
            if self.cid is None or block.cid & 0x0F != self.cid:
                return None
        elif self.cid not in (None, 0):
            return None
        self._codec.cid = None if block.cid is None else block.cid & 0x0F
        return block

    def _on_i_block(self, block: Block) -> Send | Deliver:
        self.number ^= 1  # rule D
        self._tx = []  # an I-block while we chain: the PCD gave our response up
        self._rx += block.inf
        if block.pcb.chaining:  # rule 2
            return Send(self._send(self._seal(BlockType.R, number=self.number)))
        command, self._rx = bytes(self._rx), bytearray()
        self._state = _PiccState.PROCESSING
        return Deliver(command)

    def _on_r_block(self, pcb: Pcb) -> Send | None:
        if pcb.block_number == self.number:  # rule 11
            return Send(self._last if self._last is not None else self._send(self._ack()))
        if pcb.nak:  # rule 12 (also the PCD's presence check)
            return Send(self._send(self._ack()))
        if not self._tx:
            return None  # an R(ACK) continuing nothing: a protocol error, ignored
        self.number ^= 1  # rule E
        return Send(self._next_part())  # rule 13

    def _while_asking_time(self, block: Block) -> Send | None:
        pcb = block.pcb
        if pcb.s_command is SCommand.WTX and block.inf[0] & 0x3F == self._wtxm:
            self._state = _PiccState.PROCESSING
            return None
        if pcb.type is BlockType.R and pcb.block_number == self.number:
            assert self._last is not None
            return Send(self._last)  # rule 11: our S(WTX) request was lost
        return None

    def _next_part(self) -> bytes:
        part = self._tx.pop(0)
        return self._send(self._seal(BlockType.I, number=self.number, chaining=bool(self._tx), inf=part))

    def _ack(self) -> bytes:
        return self._seal(BlockType.R, number=self.number)

    def _seal(self, type_: BlockType, **fields: object) -> bytes:
        return self._codec.seal(type_, **fields)

    def _send(self, frame: bytes) -> bytes:
        self._last = frame
        return frame

    def _is_pps(self, frame: bytes) -> bool:
        return bool(frame) and frame[0] & 0xF0 == 0xD0

    def _pps(self, frame: bytes) -> Send | None:
        """PPS request (ISO/IEC 14443-4 §5.3): accepted at 106 kbit/s only (TA(1) offers no other rate)."""
        frame = bytes(frame)
        if self.crc:
            if not check_crc_a(frame):
                return None
            frame = frame[:-2]
        if frame[0] & 0x0F != (self.cid or 0) or len(frame) not in (2, 3):
            return None
        if len(frame) == 3 and frame[2] & 0x0F:
            return None  # DSI/DRI other than 106 kbit/s
        self.started = True
        return Send(with_crc_a(frame[:1]) if self.crc else frame[:1])
