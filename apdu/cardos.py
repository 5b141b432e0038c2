"""The Card OS seam: what every virtual card (a transit card, a PSAM, a conformance test card) implements.

A Card OS does no I/O. Transports (in-process reader, vpcd endpoint, NFC target) own the sockets and
call these three methods; that is what lets one card run behind every transport unchanged.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class CardOS(Protocol):
    """A card seen from its contacts or antenna: power, then command APDUs in, response APDUs out."""

    def power_on(self) -> bytes:
        """Reset the card; return its ATR (contact) or ATS (contactless) bytes."""
        ...

    def process(self, capdu: bytes) -> bytes:
        """Answer one command APDU with one response APDU (data ‖ SW1 SW2). Never raises."""
        ...

    def power_off(self) -> None:
        """Field off: volatile state (selection, session keys, challenges) is lost."""
        ...


class CardPowerLoss(BaseException):
    """A card lost power in the middle of a command (a fault injector cut it, or tearing was simulated).

    A BaseException so that no `except Exception` in a card's dispatcher can turn it into a status word:
    a power cut is not an answer. Transports treat it as the card leaving the field: the in-process reader
    raises `ReaderError`, the vpcd endpoint drops its connection (the card leaves pcscd's slot) and comes
    back, and the card recovers on its next power-on.
    """
