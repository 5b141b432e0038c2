"""A phone T-Union card (extended AID, mobile.md M1/M2) tapped through real pcscd + vpcd by every shipped
terminal profile: `ykt terminal tap` in its own process reaches the card only as `Virtual PCD 00 00`, the
PSAM in slot 1. The card records what it was sent, so the test sees how each terminal found the EP: the
PPSE's extended AID, or partial selection once the card has no PPSE.
"""
from __future__ import annotations

import datetime as _dt

import pytest

from apdu.iso14443 import pseudo_atr
from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path, terminal_profile_names, terminal_profile_path
from terminal_sim.outcome import Outcome
from terminal_sim.profile import load_terminal_profile
from ykt_card.card.cos import TUnionCardOS
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import ATR as PSAM_ATR
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam

from .cli import ykt

pytestmark = pytest.mark.pcsc
K3, K4 = TEST_KEYSET_DIR / "gd-test-3des.toml", TEST_KEYSET_DIR / "gd-test-sm4.toml"
KEYSETS = [KeySet.load(K3), KeySet.load(K4)]
CARD = f"pcsc:{vpcd_reader_name(0)}"
PSAM = f"pcsc:{vpcd_reader_name(1)}"
GZ_PHONE = bytes.fromhex("A0000006320101055800022058100000")
SELECT_PPSE = bytes.fromhex("00A404000E325041592E5359532E444446303100")


class PhoneInTheField:
    """The phone card in slot 0: one of two phone cards answers (the PPSE one, or the same without a PPSE),
    and every command it receives is kept (the card's side of the exchange)."""

    def __init__(self, card: TUnionCardOS) -> None:
        self.card, self.commands = card, []

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def process(self, capdu: bytes) -> bytes:
        self.commands.append(bytes(capdu))
        return self.card.process(capdu)

    def selects(self) -> list[bytes]:
        return [c for c in self.commands if c[:2] == b"\x00\xa4"]


def tap(profile: str, clock: str) -> Outcome:
    """`ykt terminal tap` for a validator's profile; `ykt terminal load` (the load host's TEST keys) for a load one."""
    flow = load_terminal_profile(terminal_profile_path(profile)).flow
    if flow == "load":
        p = ykt("terminal", "load", "--card", CARD, "--keyset", str(K3), "--keyset", str(K4), "--amount", "500",
                "--terminal-id", "581000009001", "--json", "--clock", clock)
    else:
        extra = ["--amount", "500"] if flow == "taxi" else []
        p = ykt("terminal", "tap", "--profile", profile, "--card", CARD, "--psam", PSAM, "--json", "--clock", clock,
                *extra)
    assert not p.stderr, p.stderr
    return Outcome.from_json(p.stdout.strip())


def test_a_phone_card_through_pcscd_is_accepted_by_every_shipped_terminal_profile(vpcd_card):
    profile = load_card_profile(card_profile_path("gd-guangzhou-virtual"))
    with_ppse = issue_card(profile, KEYSETS, profile.card_number(8), _dt.date(2026, 1, 5), balance=20000).state
    without = issue_card(profile, KEYSETS, profile.card_number(9), _dt.date(2026, 1, 5), balance=20000).state
    without.ppse = ()                                           # SELECT PPSE answers 6A82
    cards = {"ppse": TUnionCardOS(with_ppse), "partial": TUnionCardOS(without)}
    field = PhoneInTheField(cards["ppse"])
    vpcd_card(field, slot=0, atr=pseudo_atr(with_ppse.ats_historical))
    vpcd_card(PsamOS(issue_psam(KEYSETS, bytes.fromhex("581000000001"))), slot=1, atr=PSAM_ATR)
    names = terminal_profile_names()
    assert len(names) >= 9
    start = _dt.datetime(2026, 11, 24, 8, 0, 0)
    for i, name in enumerate(names):
        for j, how in enumerate(("ppse", "partial")):
            field.card = cards[how]
            field.commands.clear()
            out = tap(name, (start + _dt.timedelta(minutes=10 * i + j)).strftime("%Y%m%d%H%M%S"))
            assert out.status == "approved", (name, how, out.reason)
            assert out.card_no == cards[how].state.card_no
            first, second = field.selects()[:2]
            assert first == SELECT_PPSE, (name, how)
            if how == "ppse":
                assert second == bytes.fromhex("00A4040010") + GZ_PHONE + b"\x00", (name, second.hex())
            else:
                assert second == bytes.fromhex("00A4040008A00000063201010500"), (name, second.hex())
    for state in (with_ppse, without):
        assert state.purse.online_counter == 1                  # the load profile's one load each
