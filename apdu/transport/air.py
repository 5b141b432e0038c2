"""The contactless link in-process: a PCD and a PICC exchanging whole ISO 14443-4 frames through a lossy channel.

Why: nfcpy's udp driver and pcscd never lose or corrupt a frame, so the retransmission rules of the block
protocol (apdu.isodep) would go untested where they matter: a purchase whose answer is lost must not be
debited twice. Here both halves run the real engines, frames carry CRC_A, and a `LossyChannel` drops or
corrupts frames in either direction, from a seed (repeatable runs) or from an explicit list of faults
(exact frame tables, property tests).

    channel = LossyChannel(loss=0.1, corruption=0.05, seed=7)
    card = AirCardEndpoint(card_os, channel)          # the PICC half, a CardEndpoint
    card.serve_in_thread(); card.wait_ready(1.0)
    reader = AirReader(channel)                       # the PCD half, a Reader
    reader.connect(); reader.transmit(capdu)

Time is not modelled: a frame that does not arrive is the frame waiting time running out at once.
"""
from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

from apdu.cardos import CardOS, CardPowerLoss
from apdu.endpoint import DirectEndpoint
from apdu.iso14443 import (FRAME_SIZES, Ats, check_crc_a, frame_size, frame_size_code, pseudo_atr, rats,
                            with_crc_a)
from apdu.isodep import (DEFAULT_MAX_RETRIES, Deliver, Deselected, IsoDepError, PcdEngine, PiccEngine,
                         RetryLimitExceeded, Send)
from apdu.reader import ReaderError

__all__ = ["Fault", "DELIVER", "DROP", "Hop", "LossyChannel", "AirReader", "AirCardEndpoint", "NoCardInField"]


@dataclass(frozen=True)
class Fault:
    """What the channel does to one frame: deliver it, drop it, or XOR `mask` into the byte at `offset`
    (modulo the frame's length). One corrupted byte is a burst of at most 8 bits: CRC_A detects it always."""

    kind: Literal["deliver", "drop", "corrupt"] = "deliver"
    offset: int = 0
    mask: int = 0x01

    def __post_init__(self) -> None:
        if self.kind not in ("deliver", "drop", "corrupt"):
            raise ValueError(f"fault kind: {self.kind!r} is not deliver, drop or corrupt")
        if not 1 <= self.mask <= 0xFF:
            raise ValueError(f"fault mask: {self.mask} is not in 1..255")
        if self.offset < 0:
            raise ValueError(f"fault offset: {self.offset} is negative")

    def apply(self, frame: bytes) -> bytes | None:
        if self.kind == "drop":
            return None
        if self.kind == "deliver" or not frame:
            return frame
        damaged = bytearray(frame)
        damaged[self.offset % len(frame)] ^= self.mask
        return bytes(damaged)


DELIVER = Fault()
DROP = Fault("drop")


@dataclass(frozen=True)
class Hop:
    """One frame on the channel: its direction, what was sent, and what arrived (None: lost)."""

    to_picc: bool
    sent: bytes
    received: bytes | None

    def __str__(self) -> str:
        arrow = "PCD>" if self.to_picc else "<PICC"
        fate = ("" if self.received == self.sent else " lost" if self.received is None
                else f" corrupted to {self.received.hex().upper()}")
        return f"{arrow} {self.sent.hex().upper()}{fate}"


class LossyChannel:
    """The air between one PCD and the card in its field.

    Each frame, in either direction, meets the next fault of `faults`; once they are used up, it is lost
    with probability `loss`, else corrupted (one random byte, random bits) with probability `corruption`,
    drawn from `random.Random(seed)`. Every frame is logged in `log` (the last `keep` only, when given);
    `frames` counts them all.
    """

    def __init__(self, *, loss: float = 0.0, corruption: float = 0.0, seed: int = 0,
                 faults: Iterable[Fault] = (), keep: int | None = None) -> None:
        for name, value in (("loss", loss), ("corruption", corruption)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"channel {name}: {value} is not a probability")
        self.loss, self.corruption = loss, corruption
        self.log: list[Hop] | deque[Hop] = [] if keep is None else deque(maxlen=keep)
        self.frames = 0
        self._random = random.Random(seed)
        self._faults: Iterator[Fault] = iter(faults)
        self._card: AirCardEndpoint | None = None
        self._lock = threading.Lock()

    @property
    def card(self) -> AirCardEndpoint | None:
        """The card in the field, if any."""
        return self._card

    def script(self, faults: Iterable[Fault]) -> None:
        """Use these faults next (before falling back to the random ones)."""
        self._faults = iter(faults)

    def exchange(self, frame: bytes) -> bytes | None:
        """PCD to PICC and back: the PICC's answer as the PCD receives it; None when nothing (valid or not)
        came back: the frame or the answer was lost, the PICC stayed silent, or no card is in the field."""
        with self._lock:
            card = self._card
            arrived = self._carry(frame, to_picc=True)
            if arrived is None or card is None:
                return None
            answer = card.on_frame(arrived)
            return None if answer is None else self._carry(answer, to_picc=False)

    def field_off(self) -> None:
        """The PCD switches its field off: the card loses power."""
        card = self._card
        if card is not None:
            card.on_field_off()

    def enter(self, card: AirCardEndpoint) -> None:
        if self._card is not None and self._card is not card:
            raise ReaderError("the field already holds a card (one card per channel)")
        self._card = card

    def leave(self, card: AirCardEndpoint) -> None:
        if self._card is card:
            self._card = None

    def _carry(self, frame: bytes, to_picc: bool) -> bytes | None:
        fault = next(self._faults, None)
        if fault is None:
            fault = self._random_fault()
        received = fault.apply(frame)
        self.log.append(Hop(to_picc, frame, received))
        self.frames += 1
        return received

    def _random_fault(self) -> Fault:
        draw = self._random.random()
        if draw < self.loss:
            return DROP
        if draw < self.loss + (1 - self.loss) * self.corruption:
            return Fault("corrupt", self._random.randrange(1 << 16), self._random.randrange(1, 256))
        return DELIVER


class NoCardInField(ReaderError):
    """No card answered the activation (none in the field, or every RATS/ATS was lost)."""


class AirReader:
    """The PCD half: a Reader activating the card in a `LossyChannel`'s field and exchanging APDUs with
    the ISO-DEP PCD engine. A lost link raises `RetryLimitExceeded` (a ReaderError) and switches the field
    off; `connect()` activates the card again."""

    def __init__(self, channel: LossyChannel, *, fsd: int = 256, cid: int = 0,
                 max_retries: int = DEFAULT_MAX_RETRIES, name: str = "air") -> None:
        if fsd not in FRAME_SIZES:
            raise ValueError(f"FSD: {fsd} is no frame size RATS can announce ({', '.join(map(str, FRAME_SIZES))})")
        self.channel = channel
        self.fsd, self.cid, self.max_retries = fsd, cid, max_retries
        self.name = name
        self.ats: Ats | None = None
        self._pcd: PcdEngine | None = None

    def __repr__(self) -> str:
        return f"AirReader({self.name!r}, {'active' if self._pcd is not None else 'idle'})"

    def connect(self) -> bytes:
        """Activate the card (RATS, ATS; tried again after a lost or damaged ATS) and return its pseudo-ATR."""
        if self._pcd is not None:
            self.disconnect()
        request = with_crc_a(rats(frame_size_code(self.fsd), self.cid))
        for _ in range(self.max_retries + 1):
            answer = self.channel.exchange(request)
            if answer is not None and check_crc_a(answer):
                try:
                    ats = Ats.parse(answer[:-2])
                except ValueError as exc:
                    self.channel.field_off()
                    raise ReaderError(f"{self.name}: the card answered RATS with a bad ATS: {exc}") from None
                self.ats = ats
                self._pcd = PcdEngine.for_card(ats, fsd=self.fsd, cid=self.cid, crc=True,
                                               max_retries=self.max_retries)
                return pseudo_atr(ats.historical)
        self.channel.field_off()
        raise NoCardInField(f"{self.name}: no valid ATS after {self.max_retries + 1} RATS")

    def transmit(self, capdu: bytes) -> bytes:
        pcd = self._pcd
        if pcd is None:
            raise IsoDepError(f"{self.name}: not connected (call connect() first)")
        frame = pcd.send(capdu)
        while True:
            try:
                step = pcd.receive(self.channel.exchange(frame))
            except RetryLimitExceeded:
                self._pcd = None
                self.channel.field_off()
                raise
            if isinstance(step, Deliver):
                return step.apdu
            assert isinstance(step, Send)
            frame = step.frame

    def disconnect(self) -> None:
        """S(DESELECT) (given up after the retry limit, rule 8), then the field goes off."""
        pcd, self._pcd = self._pcd, None
        if pcd is not None:
            step: Send | Deliver | Deselected = Send(pcd.deselect())
            while isinstance(step, Send):
                step = pcd.receive(self.channel.exchange(step.frame))
        self.channel.field_off()

    def card_present(self) -> bool:
        return self.channel.card is not None


class AirCardEndpoint(DirectEndpoint):
    """The PICC half: serves a Card OS in a `LossyChannel`'s field with the ISO-DEP PICC engine.

    RATS powers the card and is answered with `ats`, or else with what `power_on()` returns (a contactless
    Card OS answers its ATS). `wtx_rounds(capdu)`, when given, says how many S(WTX) the card sends after
    processing a command and before answering it (a slow command). A power loss silences the card; with
    `absence` > 0 it also leaves the field and comes back after that many seconds. If `on_exchange` fails,
    the card leaves the field unanswered and serving ends with that error.
    """

    kind = "air"

    def __init__(self, card_os: CardOS, channel: LossyChannel, *, ats: bytes | None = None,
                 wtx_rounds: Callable[[bytes], int] | None = None, wtxm: int = 1,
                 on_exchange: Callable[[], None] | None = None, absence: float = 0.0) -> None:
        super().__init__(card_os, on_exchange=on_exchange, absence=absence)
        if ats is not None:
            Ats.parse(ats)
        self.channel = channel
        self.ats = None if ats is None else bytes(ats)
        self.wtx_rounds, self.wtxm = wtx_rounds, wtxm
        self.activations = 0
        self._picc: PiccEngine | None = None
        self._pending: bytes | None = None
        self._wtx_left = 0

    def __repr__(self) -> str:
        return f"AirCardEndpoint(activations={self.activations})"

    def __str__(self) -> str:
        return "card in the air link's field"

    @property
    def ready(self) -> bool:
        return self.channel.card is self

    # --- the field (called by the channel, in the reader's thread) ------------------------------------

    def on_frame(self, frame: bytes) -> bytes | None:
        """The card's answer to one frame as it arrived (CRC_A included), or None: silence."""
        if len(frame) == 4 and frame[0] == 0xE0 and check_crc_a(frame):
            if self._picc is None or not self._picc.started:
                return self._activate(frame[1])
        picc = self._picc
        if picc is None:
            return None
        granted = picc.awaiting_wtx
        action = picc.receive(frame)
        if isinstance(action, Deliver):
            try:
                self._pending = self.answer_or_leave(action.apdu)
            except CardPowerLoss:
                return None
            if self._pending is None:
                return None
            self._wtx_left = self.wtx_rounds(action.apdu) if self.wtx_rounds is not None else 0
            return self._continue(picc)
        if granted and action is None and not picc.awaiting_wtx:
            return self._continue(picc)
        return None if action is None else action.frame

    def on_field_off(self) -> None:
        if self._picc is not None:
            self._picc = None
            self.card_os.power_off()

    def note_power_loss(self) -> None:
        self._picc = None  # no answer, and no memory of the activation
        super().note_power_loss()

    def _activate(self, parameter: int) -> bytes | None:
        fsdi, cid = parameter >> 4, parameter & 0x0F
        if cid == 0x0F:
            return None  # RFU CID: a PICC does not answer
        if self._picc is not None:
            self.card_os.power_off()
        try:
            answer = self.card_os.power_on()
        except CardPowerLoss:
            self.note_power_loss()
            return None
        ats = self.ats if self.ats is not None else bytes(answer)
        try:
            parsed = Ats.parse(ats)
        except ValueError as exc:  # a Card OS that breaks its contract: serving ends, the card leaves
            self._picc = None
            self.card_os.power_off()
            self._fail(ValueError(f"{self}: the Card OS answers no valid ATS ({ats.hex().upper()}): {exc}"))
            return None
        self._picc = PiccEngine(parsed, fsd=frame_size(fsdi), cid=cid, crc=True)
        self._pending = None
        self.activations += 1
        return with_crc_a(ats)

    def _continue(self, picc: PiccEngine) -> bytes:
        """After processing: S(WTX) while `wtx_rounds` asks for more, then the response."""
        if self._wtx_left:
            self._wtx_left -= 1
            return picc.wtx_request(self.wtxm)
        assert self._pending is not None
        rapdu, self._pending = self._pending, None
        return picc.respond(rapdu)

    # --- serving --------------------------------------------------------------------------------------

    def _enter(self) -> None:
        self.channel.enter(self)

    def _leave(self) -> None:
        self.channel.leave(self)
        self.on_field_off()
