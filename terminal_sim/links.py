"""The terminal's reader wrappers: the link policies of its two slots, and decorators for measurement and
fault injection (they wrap any `apdu.reader.Reader`: in-process, PC/SC, NFC, or another decorator).

Link policies (the validator and the load terminal always wrap their readers in these):
* `PsamLink`: the PSAM slot. Its `ReaderError` becomes `PsamLinkError`, so a PSAM pulled out of its
  slot (a terminal fault) can never be mistaken for a card leaving the field (a rider's doing).
* `CardLink`: the card slot. Letting go of a card that already left is not an error.

A card leaving the field is `apdu.ReaderError` from the card reader. A virtual card's power cut inside a
write (`apdu.cardos.CardPowerLoss`) reaches the terminal the same way: the in-process reader turns it
into ReaderError and the vpcd endpoint leaves the slot, so tearing is testable exactly as on a real reader.

Decorators: `CountingReader` (APDUs and bytes per direction, for benchmarks), `TearingReader` (the card
leaves at the Nth command, before or after the card processed it), `TamperingReader` (alters one
response, e.g. flips a MAC2 bit), `TappingReader` (a card that is presented once per transaction, for
`Validator.run()`).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apdu.reader import Reader, ReaderDecorator, ReaderError

__all__ = ["PsamLinkError", "PsamLink", "CardLink", "Counts", "CountingReader", "TearingReader",
           "TamperingReader", "TappingReader"]


# ---------------------------------------------------------------------------------------------------
# Link policies of the two slots

class PsamLinkError(Exception):
    """The PSAM's reader failed (PSAM pulled, daemon gone): a terminal fault, never a card leaving."""


class PsamLink(ReaderDecorator):
    """A Reader decorator for the PSAM slot: its ReaderError becomes PsamLinkError."""

    def connect(self) -> bytes:
        try:
            return self.inner.connect()
        except ReaderError as exc:
            raise PsamLinkError(f"PSAM reader {self.inner.name!r}: {exc}") from None

    def transmit(self, capdu: bytes) -> bytes:
        try:
            return self.inner.transmit(capdu)
        except ReaderError as exc:
            raise PsamLinkError(f"PSAM reader {self.inner.name!r}: {exc}") from None

    def disconnect(self) -> None:
        try:
            self.inner.disconnect()
        except ReaderError:
            pass


class CardLink(ReaderDecorator):
    """The card slot as a terminal sees it: letting go of a card that already left is not an error.

    (A virtual card's power cut reaches the terminal as ReaderError from its transport, as on a real reader.)
    """

    def disconnect(self) -> None:
        try:
            self.inner.disconnect()
        except ReaderError:
            pass


# ---------------------------------------------------------------------------------------------------
# Decorators: measurement and fault injection

@dataclass
class Counts:
    """APDUs and bytes through one reader: commands sent, bytes out (C-APDUs), bytes in (R-APDUs)."""

    commands: int = 0
    bytes_out: int = 0
    bytes_in: int = 0
    by_ins: dict[int, int] = field(default_factory=dict)


class CountingReader(ReaderDecorator):
    """Counts commands and bytes (per INS too); `reset()` between flows, `counts` to read them."""

    def __init__(self, inner: Reader) -> None:
        super().__init__(inner)
        self.counts = Counts()

    def reset(self) -> Counts:
        """Return the counts so far and start again from zero."""
        counts, self.counts = self.counts, Counts()
        return counts

    def transmit(self, capdu: bytes) -> bytes:
        c = self.counts
        c.commands += 1
        c.bytes_out += len(capdu)
        ins = capdu[1] if len(capdu) > 1 else -1
        c.by_ins[ins] = c.by_ins.get(ins, 0) + 1
        rapdu = self.inner.transmit(capdu)
        c.bytes_in += len(rapdu)
        return rapdu


class TearingReader(ReaderDecorator):
    """The card leaves the field at the `at`-th command (1-based, counted from construction or `arm`), or
    at the first command with instruction byte `at_ins` (e.g. 0x54: DEBIT).

    when="before": the card never receives that command; when="after": the card processes it and the
    answer is lost. Either way the card is powered off (its volatile state is gone) and every command
    raises ReaderError until the card is presented again (`connect`). `fired` says whether it happened.
    """

    def __init__(self, inner: Reader, at: int | None = None, when: str = "before",
                 at_ins: int | None = None) -> None:
        super().__init__(inner)
        self.at: int | None = None
        self.at_ins: int | None = None
        self.when = "before"
        self.sent = 0
        self.fired = False
        self._gone = False
        if at is not None or at_ins is not None:
            self.arm(at, when, at_ins=at_ins)

    def arm(self, at: int | None = None, when: str = "before", *, at_ins: int | None = None) -> None:
        """Tear at command number `at` (from now) or at the next command with INS `at_ins`; once."""
        if (at is None) == (at_ins is None):
            raise ValueError("give either at (a command number) or at_ins (an instruction byte)")
        if at is not None and at < 1:
            raise ValueError(f"at: {at} must be >= 1")
        if at_ins is not None and not 0 <= at_ins <= 0xFF:
            raise ValueError(f"at_ins: {at_ins} is not one byte")
        if when not in ("before", "after"):
            raise ValueError(f"when: expected 'before' or 'after', got {when!r}")
        self.at, self.at_ins, self.when, self.sent, self.fired = at, at_ins, when, 0, False

    def connect(self) -> bytes:
        self._gone = False
        return self.inner.connect()

    def transmit(self, capdu: bytes) -> bytes:
        if self._gone:
            raise ReaderError(f"reader {self.name!r}: card removed")
        self.sent += 1
        hit = (self.at is not None and self.sent == self.at) or (
            self.at_ins is not None and len(capdu) > 1 and capdu[1] == self.at_ins)
        if hit:
            self.fired = True
            self.at = self.at_ins = None
            if self.when == "after":
                try:
                    self.inner.transmit(capdu)
                except ReaderError:
                    pass
            self._leave()
            raise ReaderError(f"reader {self.name!r}: card removed (tear at command {self.sent}, {self.when})")
        return self.inner.transmit(capdu)

    def _leave(self) -> None:
        self._gone = True
        try:
            self.inner.disconnect()
        except ReaderError:
            pass


class TamperingReader(ReaderDecorator):
    """Passes every exchange through, but the response to commands with INS `ins` goes through
    `tamper(rapdu) -> rapdu` (e.g. flip a MAC2 bit in the DEBIT answer). `times` limits how often."""

    def __init__(self, inner: Reader, ins: int, tamper: Callable[[bytes], bytes], times: int | None = 1) -> None:
        super().__init__(inner)
        self.ins = ins
        self.tamper = tamper
        self.times = times
        self.tampered = 0

    def transmit(self, capdu: bytes) -> bytes:
        rapdu = self.inner.transmit(capdu)
        if len(capdu) > 1 and capdu[1] == self.ins and (self.times is None or self.tampered < self.times):
            self.tampered += 1
            return self.tamper(rapdu)
        return rapdu


class TappingReader(ReaderDecorator):
    """A card that is tapped: present until the terminal lets go of it (disconnect), then absent for one
    `card_present()` poll, then presented again. Drives `Validator.run()` with one virtual card.

    `taps_left` (None = endless) limits how many times the card comes back.
    """

    def __init__(self, inner: Reader, taps_left: int | None = None) -> None:
        super().__init__(inner)
        self.taps_left = taps_left
        self._lifted = False

    def disconnect(self) -> None:
        self.inner.disconnect()
        self._lifted = True

    def card_present(self) -> bool:
        if self._lifted:
            self._lifted = False
            if self.taps_left is not None:
                self.taps_left -= 1
            return False
        if self.taps_left is not None and self.taps_left <= 0:
            return False
        return self.inner.card_present()
