"""The in-process transport: a card slot (`InProcessReader`) and the endpoint serving a Card OS into it.

Flows, terminals and tests run against virtual cards at function-call speed through the very same
Reader seam they use with pcscd or NFC, including the card leaving the field. `InProcessReader(card_os)`
alone is the short form; `InProcessEndpoint` is the card half, with the life cycle and Card OS handling
every endpoint shares (apdu.endpoint), for tests that hold a transport's two halves side by side.
"""
from __future__ import annotations

from collections.abc import Callable

from apdu.cardos import CardOS, CardPowerLoss
from apdu.endpoint import DirectEndpoint
from apdu.reader import ReaderError

__all__ = ["InProcessReader", "InProcessEndpoint"]


class InProcessReader:
    """One slot holding (or not) a Card OS. `connect` powers it, `remove` pulls it out of the field.

    Like PC/SC, `transmit` needs a connected card: a terminal that forgets `connect` fails here too.
    """

    def __init__(self, card_os: CardOS | None = None, name: str = "in-process") -> None:
        self.name = name
        self._card: CardOS | None = None
        self._powered = False
        if card_os is not None:
            self.insert(card_os)

    @property
    def card(self) -> CardOS | None:
        """The Card OS in the slot, if any."""
        return self._card

    @property
    def powered(self) -> bool:
        return self._powered

    def insert(self, card_os: CardOS) -> None:
        """Put a card into the slot (unpowered); a slot holds one card."""
        if not isinstance(card_os, CardOS):
            raise TypeError(f"{type(card_os).__name__} is not a Card OS (power_on, process, power_off)")
        if self._card is not None:
            raise ReaderError(f"reader {self.name!r} already holds a card; remove it first")
        self._card = card_os
        self._powered = False

    def remove(self) -> CardOS | None:
        """Take the card out of the field (it loses power) and return it, e.g. to insert it again."""
        card, self._card = self._card, None
        if card is not None and self._powered:
            card.power_off()
        self._powered = False
        return card

    # -- the Reader protocol ---------------------------------------------------------------------
    def connect(self) -> bytes:
        """Power (or re-power: a reset) the card and return its ATR/ATS."""
        card = self._require_card()
        if self._powered:
            card.power_off()
        try:
            atr = bytes(card.power_on())
        except CardPowerLoss:  # power cut again while the card was finishing a torn commit
            self._powered = False
            raise ReaderError(f"reader {self.name!r}: the card lost power during power-on") from None
        self._powered = True
        return atr

    def transmit(self, capdu: bytes) -> bytes:
        card = self._require_card()
        if not self._powered:
            raise ReaderError(f"reader {self.name!r}: card not connected; call connect() first")
        try:
            rapdu = bytes(card.process(bytes(capdu)))
        except CardPowerLoss:
            self._powered = False
            raise ReaderError(f"reader {self.name!r}: the card lost power during the command "
                              "(it left the field); connect() again to power it") from None
        if len(rapdu) < 2:
            got = "1 byte" if len(rapdu) == 1 else f"{len(rapdu)} bytes"
            raise ReaderError(f"reader {self.name!r}: card answered {got}, a response APDU needs "
                              f"at least SW1 SW2")
        return rapdu

    def disconnect(self) -> None:
        """Power the card off; it stays in the slot."""
        if self._card is not None and self._powered:
            self._card.power_off()
        self._powered = False

    def card_present(self) -> bool:
        return self._card is not None

    def _require_card(self) -> CardOS:
        if self._card is None:
            raise ReaderError(f"no card in reader {self.name!r}")
        return self._card

    def __repr__(self) -> str:
        state = "empty" if self._card is None else ("powered" if self._powered else "card present")
        return f"InProcessReader({self.name!r}, {state})"


class InProcessEndpoint(DirectEndpoint):
    """Serves a Card OS into an `InProcessReader`'s slot: inserted while served, removed by `stop()`.

    Commands pass through `answer` (apdu.endpoint): a Card OS that raises is answered 6F00 and
    `on_exchange` runs before the answer returns (if it fails, the card leaves the slot and the reader
    raises ReaderError). A power loss unpowers the card (the reader raises ReaderError); with `absence` > 0
    the card also leaves the slot and comes back after that many seconds.
    """

    kind = "in-process"

    def __init__(self, card_os: CardOS, reader: InProcessReader, *,
                 on_exchange: Callable[[], None] | None = None, absence: float = 0.0) -> None:
        super().__init__(card_os, on_exchange=on_exchange, absence=absence)
        self.reader = reader
        self._contacts = _Contacts(self)

    def __repr__(self) -> str:
        return f"InProcessEndpoint({self.reader.name!r})"

    def __str__(self) -> str:
        return f"card in {self.reader.name!r}"

    @property
    def ready(self) -> bool:
        return self.reader.card is self._contacts

    def _enter(self) -> None:
        self.reader.insert(self._contacts)

    def _leave(self) -> None:
        if self.reader.card is self._contacts:
            self.reader.remove()


class _Contacts:
    """The card as the slot sees it: power from the reader, commands through the endpoint."""

    def __init__(self, endpoint: InProcessEndpoint) -> None:
        self._endpoint = endpoint

    def power_on(self) -> bytes:
        try:
            return self._endpoint.card_os.power_on()
        except CardPowerLoss:
            self._endpoint.note_power_loss()
            raise

    def process(self, capdu: bytes) -> bytes:
        rapdu = self._endpoint.answer_or_leave(capdu)
        if rapdu is None:
            raise ReaderError(f"reader {self._endpoint.reader.name!r}: the card left the slot (its owner failed "
                              f"to keep its state: {self._endpoint._failure!r})")
        return rapdu

    def power_off(self) -> None:
        self._endpoint.card_os.power_off()
