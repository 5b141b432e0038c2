"""The card under test, seen from the suite: a Reader, and what its adapter offers besides APDUs.

Any reader string of the command line works (`image:PATH`, `pcsc[:NAME]`, `nfc:…`, via
ykt_card.host.readers.open_reader); tests hand in a Card OS object directly (`CardDut.in_process`).
The suite talks to the card only through `connect` (power on or cycle, ATR/ATS back) and `transmit`.

One feature goes beyond APDUs: `tear`, a power cut inside the card's next command, after a chosen
number of its internal write steps — what a lab does with an RF field switch and a delay line. Only an
in-process card whose Card OS carries a fault hook (ykt's virtual card and its subclasses, attribute
`fault`, apdu.cardos.CardPowerLoss semantics) offers it; cases that need it are `not applicable`
elsewhere. This is the one place the suite knows anything of ykt's own card.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from apdu.cardos import CardOS
from apdu.reader import Reader
from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource

__all__ = ["CardDut", "open_dut"]


@dataclass
class CardDut:
    reader: Reader
    spec: str
    kind: str
    card_os: object | None = None
    features: set[str] = field(default_factory=set)
    _armed: object | None = None

    def __post_init__(self) -> None:
        if self.card_os is not None and hasattr(self.card_os, "fault"):
            self.features.add("tear")

    @classmethod
    def in_process(cls, card_os: CardOS, name: str = "in-process") -> "CardDut":
        """A Card OS object as DUT (tests, mutants): the in-process reader, tearing available."""
        return cls(InProcessReader(card_os, name=name), name, "in-process", card_os)

    @property
    def name(self) -> str:
        return self.reader.name

    def connect(self) -> bytes:
        """Power the card (a power cycle when it is already powered); returns the ATR or ATS."""
        return self.reader.connect()

    def transmit(self, capdu: bytes) -> bytes:
        return self.reader.transmit(capdu)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.disconnect()

    # -- tearing (feature "tear") ---------------------------------------------------------------
    def arm_tear(self, after_steps: int) -> None:
        """Cut the power inside the next command, before its internal write step `after_steps`."""
        if "tear" not in self.features:
            raise RuntimeError(f"{self.spec}: this DUT cannot be torn inside a command")
        from ykt_card.card.state import FaultInjector  # the virtual card's own fault hook
        injector = FaultInjector(after_steps)
        self.card_os.fault = injector  # type: ignore[union-attr]
        self._armed = injector

    def disarm_tear(self) -> bool:
        """Remove the fault hook; True when it fired (the command was torn)."""
        injector, self._armed = self._armed, None
        if injector is None:
            return False
        self.card_os.fault = None  # type: ignore[union-attr]
        return bool(getattr(injector, "fired", False))


def open_dut(spec: str, seed: int | None = None) -> CardDut:
    """A DUT from a reader string (`--dut`); an `image:` card's randomness follows `seed`."""
    from ykt_card.host.readers import open_reader

    rng = RandomSource(seed) if seed is not None else RandomSource()
    opened = open_reader(spec, rng=rng, expect="card", option="--dut")
    return CardDut(opened.reader, spec, opened.kind, opened.card_os)
