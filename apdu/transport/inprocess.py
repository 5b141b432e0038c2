"""A Reader wired straight to a Card OS object: no daemon, no sockets, same semantics as a slot.

Flows, terminals and tests run against virtual cards at function-call speed through the very same
Reader seam they use with pcscd or NFC, including the card leaving the field.
"""
from __future__ import annotations

from apdu.cardos import CardOS, CardPowerLoss
from apdu.reader import ReaderError

__all__ = ["InProcessReader"]


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
