"""The Reader seam: the host side of a card link (in-process, PC/SC, NFC, tracing decorator).

Terminals, host APIs and tools talk to cards only through `Reader.transmit`, so the same flow runs
against a virtual card in-process, a card behind pcscd, or a real card on a USB reader.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Reader(Protocol):
    """One card slot seen from the host."""

    name: str

    def connect(self) -> bytes:
        """Power the card and return its ATR; raises ReaderError when there is no card."""
        ...

    def transmit(self, capdu: bytes) -> bytes:
        """Send one command APDU, return the raw response APDU (data ‖ SW1 SW2)."""
        ...

    def disconnect(self) -> None:
        """Power the card off and release the slot."""
        ...

    def card_present(self) -> bool:
        """True while a card sits in the field."""
        ...


class ReaderError(Exception):
    """The link failed (no reader, no card, card removed, daemon gone): not a card status word."""


class ReaderDecorator:
    """A Reader wrapping another (tracing, counting, fault injection, link policies): everything passes
    through unless a subclass overrides it, so each decorator states only what it changes."""

    def __init__(self, inner: Reader) -> None:
        self.inner = inner

    @property
    def name(self) -> str:
        return self.inner.name

    def connect(self) -> bytes:
        return self.inner.connect()

    def transmit(self, capdu: bytes) -> bytes:
        return self.inner.transmit(capdu)

    def disconnect(self) -> None:
        self.inner.disconnect()

    def card_present(self) -> bool:
        return self.inner.card_present()
