"""Recovery across processes with an image PSAM (issue 12, part 6).

Every `ykt terminal tap` opens a new PSAM session, so before the PSAM kept its pending purchase in its
image a recovery in a later process could never verify MAC2. Two separate processes here: a torn tap
(the card commits DEBIT, saves, and leaves before answering), then a plain tap that recovers it.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from keysets import TEST_KEYSET_DIR
from ykt_card.card.image import load_card
from ykt_card.psam.issue import load_psam

from .cli import ROOT, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
TORN_TAP = [sys.executable, str(ROOT / "tests" / "tools" / "torn_tap.py")]


@pytest.fixture
def parts(tmp_path):
    card, psam, db = tmp_path / "card.json", tmp_path / "psam.json", tmp_path / "j.db"
    assert ykt("card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--balance", "5000", "--out", card,
               "--clock", "20261124080000").returncode == 0
    assert ykt("psam", "issue", "--keyset", K3, "--terminal-id", "440300000001", "--out", psam).returncode == 0
    return card, psam, db


def tap_args(card, psam, db, profile, clock):
    return ["terminal", "tap", "--profile", profile, "--card", f"image:{card}", "--psam", f"image:{psam}",
            "--journal", str(db), "--json", "--seed", "3", "--clock", clock]


@pytest.mark.parametrize("profile,amount", [("bus-flat", 200), ("bus-flat-capp", 200)])
def test_a_torn_tap_is_recovered_by_a_later_process_with_mac2_verified(parts, profile, amount):
    card, psam, db = parts
    torn = subprocess.run([*TORN_TAP, *tap_args(card, psam, db, profile, "20261124081000")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert torn.returncode == 4, torn.stderr
    grey = json.loads(torn.stdout)
    assert grey["status"] == "torn" and grey["terminal_seq"] == 1
    assert load_card(card).purse.balance == 5000 - amount           # committed and saved, never answered
    pending = load_psam(psam).pending_purchase
    assert pending is not None and pending.terminal_seq == 1 and pending.amount == amount

    again = ykt(*tap_args(card, psam, db, profile, "20261124081030"))   # 30 s later: inside the window
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["status"] == "recovered" and out["mac2_verified"] is True, out
    assert out["reason"] == "recovered with GET TRANSACTION PROVE; MAC2 verified by the PSAM"
    assert out["terminal_seq"] == 1 and out["balance_after"] == 5000 - amount
    assert load_psam(psam).pending_purchase is None                     # 8072 consumed the session
    assert load_card(card).purse.balance == 5000 - amount               # charged once


def test_another_card_in_between_leaves_mac2_unverified(parts, tmp_path):
    """D12: a PSAM that served another card since has replaced the session; the journal knows it, so
    the recovering process does not ask the PSAM (and never blames the card for a foreign session)."""
    card, psam, db = parts
    batch = tmp_path / "batch"
    assert ykt("card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--balance", "5000", "--out", batch,
               "--count", "2", "--clock", "20261124080000").returncode == 0
    other = sorted(batch.glob("*.json"))[1]                  # the profile's second card number
    torn = subprocess.run([*TORN_TAP, *tap_args(card, psam, db, "bus-flat", "20261124081000")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert torn.returncode == 4 and json.loads(torn.stdout)["status"] == "torn", torn.stderr
    between = ykt(*tap_args(other, psam, db, "bus-flat", "20261124081010"))
    assert between.returncode == 0 and json.loads(between.stdout)["terminal_seq"] == 2, between.stderr
    again = ykt(*tap_args(card, psam, db, "bus-flat", "20261124081030"))
    out = json.loads(again.stdout)
    assert out["status"] == "recovered" and out["mac2_verified"] is False
    assert "the PSAM no longer held the session" in out["reason"]
    assert load_psam(psam).mac2_failures.count == 0
