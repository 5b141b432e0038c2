"""Shared fixtures: a real pcscd with the vpcd driver, and virtual cards served into its slots.

How to use them (any test under tests/ can):

    def test_balance(vpcd_card):
        card = vpcd_card(MyCardOS(), slot=0, atr=pseudo_atr(ats.historical))
        reader = PcscReader(card.reader_name)          # 'Virtual PCD 00 00'
        reader.connect()
        ...

- `pcscd` (session): a running pcscd that lists 'Virtual PCD 00 00' and 'Virtual PCD 00 01'. Started
  with `pcscd -f` (and stopped at the end) unless a usable one already runs. The session holds the
  machine-wide lock /tmp/ykt-vpcd.lock while it uses pcscd, so parallel test runs of several
  engineers queue instead of stealing each other's slots. A missing pcscd or vpcd driver FAILS.
- `vpcd_card(card_os, slot=0, atr=DEFAULT_ATR, on_exchange=None, quickack=True) -> ServedCard`
  (DEFAULT_ATR = 3B 80 80 01 01, the pseudo-ATR of a contactless card without historical bytes; give a
  T-Union card `apdu.iso14443.pseudo_atr(Ats.parse(ats).historical)`):
  serves a Card OS on slot 0 (TCP 35963) or 1 (35964) in a thread, returns once pcscd reports the
  card present with that ATR, and removes it (stops the thread, waits until pcscd sees the slot
  empty) at the end of the test, so no card process is left to "insert" itself later. Call
  `served.remove()` to take the card out during a test (card-removal cases).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import os

import pytest
from hypothesis import HealthCheck, settings

from apdu.cardos import CardOS
from apdu.transport.pcsc.daemon import Pcscd, card_state, vpcd_reader_name
from apdu.transport.pcsc.vpcd import DEFAULT_ATR, VpcdEndpoint, slot_port
from specs.conformance.pcsc_session import vpcd_session


# Property tests: no per-example deadline (CI machines are shared and slow at times); in CI the examples
# are derived from the test itself, so a red run repeats exactly and a green one is not luck.
settings.register_profile("ykt", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ykt-ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
settings.load_profile("ykt-ci" if os.environ.get("CI") else "ykt")


@pytest.fixture(scope="session")
def pcscd() -> Iterator[Pcscd]:
    """A pcscd listing both vpcd readers, for the whole session (see the module docstring)."""
    with vpcd_session():
        daemon = Pcscd()
        daemon.start()
        try:
            yield daemon
        finally:
            daemon.stop()


@dataclass
class ServedCard:
    """A Card OS sitting in a vpcd slot."""

    endpoint: VpcdEndpoint
    reader_name: str
    slot: int
    atr: bytes
    pcscd: Pcscd
    removed: bool = False

    def remove(self, wait: bool = True) -> None:
        """Take the card out: stop serving; with `wait`, until pcscd reports the slot empty."""
        if not self.removed:
            self.removed = True
            self.endpoint.stop()
        if wait:
            self.pcscd.wait_card(self.reader_name, present=False)


@pytest.fixture
def vpcd_card(pcscd: Pcscd) -> Iterator[Callable[..., ServedCard]]:
    """Factory: `vpcd_card(card_os, slot=0, atr=DEFAULT_ATR, on_exchange=None, quickack=True)`."""
    served: list[ServedCard] = []

    def serve(card_os: CardOS, slot: int = 0, atr: bytes = DEFAULT_ATR,
              on_exchange: Callable[[], None] | None = None, quickack: bool = True) -> ServedCard:
        reader = vpcd_reader_name(slot)
        present, other_atr = card_state(reader)
        if present:
            pytest.fail(f"slot {slot} ({reader}) already holds a card (ATR {other_atr.hex().upper()}): "
                        "a card process was left running; stop it by its PID")
        endpoint = VpcdEndpoint(card_os, "localhost", slot_port(slot), atr, on_exchange,
                                quickack=quickack)
        card = ServedCard(endpoint, reader, slot, atr, pcscd)
        served.append(card)
        endpoint.serve_in_thread(name=f"vpcd-card-slot{slot}")
        pcscd.wait_card(reader, present=True, atr=atr)
        return card

    yield serve
    errors = []
    for card in served:
        try:
            card.remove()
        except Exception as exc:  # keep removing the others, then report
            errors.append(f"slot {card.slot}: {exc}")
        if card.endpoint.error is not None:
            errors.append(f"slot {card.slot}: card thread failed: {card.endpoint.error!r}")
    if errors:
        pytest.fail("vpcd cards did not end cleanly: " + "; ".join(errors))

