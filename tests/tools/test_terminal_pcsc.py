"""The whole validator through real pcscd + vpcd: `ykt terminal load/tap/run` in their own processes,
the virtual card in slot 0 and the PSAM in slot 1, a purchase torn after DEBIT and recovered once, a card
whose MAC2 is corrupted, and the journal's clearing file checked TAC by TAC.
"""
from __future__ import annotations

import datetime as _dt
import json

import pytest

from apdu.cardos import CardPowerLoss
from apdu.iso14443 import pseudo_atr
from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path
from clearing import tac_verifies
from terminal_sim.export import clearing_entries
from terminal_sim.journal import Journal
from terminal_sim.outcome import Outcome
from ykt_card.card.cos import TUnionCardOS
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import ATR as PSAM_ATR
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam

from .cli import ykt

pytestmark = pytest.mark.pcsc
K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"
KEYSETS = [KeySet.load(K3), KeySet.load(K4)]
CARD = f"pcsc:{vpcd_reader_name(0)}"
PSAM = f"pcsc:{vpcd_reader_name(1)}"


class CardOnTheWire:
    """The virtual card as a terminal meets it, with two faults a test can arm: the card leaves right
    after it committed a DEBIT (answer lost), or a bit of MAC2 flips on the way back."""

    def __init__(self, card: TUnionCardOS) -> None:
        self.card, self.lose_debit_answer, self.corrupt_mac2 = card, False, False

    def power_on(self) -> bytes:
        return self.card.power_on()

    def power_off(self) -> None:
        self.card.power_off()

    def process(self, capdu: bytes) -> bytes:
        rapdu = self.card.process(capdu)
        if capdu[:2] == b"\x80\x54" and rapdu[-2:] == b"\x90\x00":
            if self.lose_debit_answer:
                self.lose_debit_answer = False
                raise CardPowerLoss()
            if self.corrupt_mac2:
                self.corrupt_mac2 = False
                rapdu = rapdu[:4] + bytes([rapdu[4] ^ 0x01]) + rapdu[5:]
        return rapdu


EXIT_BY_STATUS = {"approved": 0, "recovered": 0, "declined": 3, "failed": 4, "torn": 4}   # docs/exit-codes.md


def tap(*args: str) -> Outcome:
    """One `ykt terminal tap`; its exit code must be the one its outcome's status documents."""
    p = ykt("terminal", "tap", "--card", CARD, "--psam", PSAM, "--json", *args)
    assert not p.stderr, p.stderr
    outcome = Outcome.from_json(p.stdout.strip())
    assert p.returncode == EXIT_BY_STATUS[outcome.status], (p.returncode, outcome.status)
    return outcome


def test_validator_through_pcscd(vpcd_card, tmp_path):
    profile = load_card_profile(card_profile_path("gd-foshan"))
    state = issue_card(profile, KEYSETS, profile.card_number(7), _dt.date(2026, 11, 24)).state
    card = CardOnTheWire(TUnionCardOS(state))
    served = vpcd_card(card, slot=0, atr=pseudo_atr(state.ats_historical))
    vpcd_card(PsamOS(issue_psam(KEYSETS, bytes.fromhex("588000000001"))), slot=1, atr=PSAM_ATR)
    db = str(tmp_path / "journal.db")

    p = ykt("terminal", "load", "--card", CARD, "--keyset", K3, "--keyset", K4, "--amount", "3000",
            "--terminal-id", "588000009001", "--journal", db, "--json", "--clock", "20261124080000")
    assert p.returncode == 0, p.stderr
    assert Outcome.from_json(p.stdout).status == "approved" and state.purse.balance == 3000

    bus = tap("--profile", "bus-flat", "--journal", db, "--clock", "20261124081000")
    assert bus.status == "approved" and bus.amount == 200 and bus.balance_after == 2800
    entry = tap("--profile", "metro-entry", "--station", "0301", "--journal", db, "--clock", "20261124082000")
    assert entry.status == "approved" and entry.amount == 0 and entry.type == "09" and entry.tac
    exit_ = tap("--profile", "metro-exit", "--station", "0306", "--journal", db, "--clock", "20261124083000")
    assert exit_.status == "approved" and exit_.amount > 0

    # Torn after DEBIT: the card committed, the answer never arrived; it leaves the slot and comes back.
    card.lose_debit_answer = True
    torn = tap("--profile", "bus-flat-capp", "--journal", db, "--clock", "20261124084000")
    assert torn.status == "torn" and torn.tac is None
    debited = state.purse.balance
    served.pcscd.wait_card(served.reader_name, present=False, timeout=15)
    served.pcscd.wait_card(served.reader_name, present=True, timeout=15)
    back = tap("--profile", "bus-flat-capp", "--journal", db, "--clock", "20261124084030")
    assert back.status == "recovered" and back.tac and back.amount == torn.amount
    assert state.purse.balance == debited                     # recovered, not charged twice
    again = tap("--profile", "bus-flat-capp", "--journal", db, "--clock", "20261124084500")
    assert again.status == "approved"                          # a new ride is a new charge

    # A corrupted MAC2: the card is debited (TAC held), the outcome fails, the card is refused next time.
    card.corrupt_mac2 = True
    bad = tap("--profile", "bus-flat", "--journal", db, "--clock", "20261124090000")
    assert bad.status == "failed" and bad.tac and bad.mac2_verified is False
    refused = tap("--profile", "bus-flat", "--journal", db, "--clock", "20261124090100")
    assert refused.status == "declined" and "refused" in refused.reason

    run = ykt("terminal", "run", "--profile", "bus-flat", "--card", CARD, "--psam", PSAM, "--journal", db,
              "--taps", "1", "--json", "--clock", "20261124091000")
    assert run.returncode == 0, run.stderr
    assert Outcome.from_json(run.stdout.splitlines()[0]).status == "approved"

    clearing = tmp_path / "clearing.jsonl"
    assert ykt("journal", "export", db, "--format", "jsonl", "--out", clearing).returncode == 0
    records = [Outcome.from_json(line) for line in clearing.read_text().splitlines()]
    assert [r.status for r in records].count("recovered") == 1
    assert all(tac_verifies(r, KEYSETS) for r in records if r.tac)
    charged = sum(r.amount for r in records if r.type != "02" and r.status in ("approved", "recovered", "failed"))
    assert state.purse.balance == 3000 - charged
    with Journal(db) as j:
        assert not any(e.pending for e in j.all())
        assert len(clearing_entries(j)) == len(records)
    json.dumps([r.to_dict() for r in records])  # the clearing records are plain JSON


def test_a_card_answering_debit_with_6581_through_pcscd_fails_nothing_charged(vpcd_card, tmp_path):
    """The terminal side of issue 12 part 1: a card whose memory failed answers DEBIT 6581 and guarantees
    it undid the debit. `ykt terminal tap` records `failed`, nothing charged, settles the grey record,
    prints one line and exits 4 (tools.errors: failed or torn)."""
    from tests.terminal_sim.test_journal_faults import MemoryFailingCard
    from ykt_card.card.image import card_to_doc

    profile = load_card_profile(card_profile_path("gd-foshan"))
    state = issue_card(profile, KEYSETS, profile.card_number(8), _dt.date(2026, 11, 24), balance=1000).state
    card = MemoryFailingCard(TUnionCardOS(state), 0x54)
    vpcd_card(card, slot=0, atr=pseudo_atr(state.ats_historical))
    vpcd_card(PsamOS(issue_psam(KEYSETS, bytes.fromhex("588000000001"))), slot=1, atr=PSAM_ATR)
    before = card_to_doc(state)
    db = tmp_path / "journal.db"
    p = ykt("terminal", "tap", "--card", CARD, "--psam", PSAM, "--profile", "bus-flat", "--journal", db,
            "--json", "--clock", "20261124081000")
    assert p.returncode == 4 and p.stderr == "" and len(p.stdout.splitlines()) == 1, (p.returncode, p.stderr)
    out = Outcome.from_json(p.stdout)
    assert (out.status, out.tac) == ("failed", None) and card.fired == 1
    assert out.reason == "the card could not save DEBIT (6581 memory failure) and undid it; nothing charged"
    assert card_to_doc(state) == before and state.purse.balance == 1000
    with Journal(db, readonly=True) as journal:
        assert [(e.outcome.status, e.pending) for e in journal.all()] == [("torn", False), ("failed", False)]
        assert clearing_entries(journal) == []                 # nothing moved: nothing for clearing
    text = ykt("terminal", "tap", "--card", CARD, "--psam", PSAM, "--profile", "bus-flat", "--journal", db,
               "--clock", "20261124081100")
    assert text.returncode == 4 and text.stdout.startswith("FAILED card ") and len(text.stdout.splitlines()) == 1
