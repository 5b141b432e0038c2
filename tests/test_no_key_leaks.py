"""Key values never reach reprs, strings, summaries, exceptions or JSON output (only KCVs do)."""
from __future__ import annotations

import datetime as _dt
import json
import logging

import pytest

from apdu.transport.inprocess import InProcessReader
from ykt_card.clock import SimulatedClock
from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path, terminal_profile_path
from terminal_sim.load_host import LoadHost
from terminal_sim.profile import load_terminal_profile
from terminal_sim.validator import Validator
from ykt_card.card.cos import TUnionCardOS
from ykt_card.host.dump import read_card, to_json
from ykt_card.host.card import TUnionCard
from ykt_card.card.image import ImageError, card_to_doc, card_from_doc
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import PsamOS, state_summary
from ykt_card.psam.issue import issue_psam

KEYSETS = [KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml"), KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")]


def secrets(state) -> set[str]:
    """Every master and card key value, and every 8-byte half (a leak of half a key is a leak)."""
    values = set()
    for ks in KEYSETS + [ks.card_keys(state.issuer_id, state.serial8) for ks in KEYSETS]:
        for e in ks.keys.values():
            v = e.key.value.hex().upper()
            values |= {v, v[:16], v[16:]}
    return values


def assert_clean(text: str, values: set[str]) -> None:
    upper = text.upper()
    leaked = [v for v in values if v in upper]
    assert not leaked, f"key material in output: {len(leaked)} value(s)"


@pytest.fixture
def world(caplog):
    caplog.set_level(logging.DEBUG)
    profile = load_card_profile(card_profile_path("gd-guangzhou"))
    state = issue_card(profile, KEYSETS, profile.card_number(3), _dt.date(2026, 11, 24), balance=1000).state
    card = TUnionCardOS(state)
    psam_state = issue_psam(KEYSETS, bytes.fromhex("440300000001"))
    psam = PsamOS(psam_state)
    return state, card, psam_state, psam, caplog


def test_reprs_summaries_and_json(world):
    state, card, psam_state, psam, caplog = world
    values = secrets(state)
    clock = SimulatedClock.parse("20261124080000")
    validator = Validator(load_terminal_profile(terminal_profile_path("bus-flat")), InProcessReader(psam),
                          InProcessReader(card), clock=clock)
    outcome = validator.tap()
    reader = InProcessReader(card)
    reader.connect()
    texts = [repr(state), str(state.snapshot()), repr(card), repr(psam_state), repr(psam), repr(KEYSETS),
             json.dumps(state_summary(psam_state)), repr(LoadHost(KEYSETS, clock=clock)), repr(validator),
             outcome.to_json(), to_json(read_card(TUnionCard(reader))), caplog.text]
    for t in texts:
        assert_clean(t, values)


def test_image_errors_name_the_field_not_the_key(world):
    state, *_ = world
    doc = card_to_doc(state)
    text = json.dumps(doc)
    values = secrets(state)
    assert any(v in text.upper() for v in values)      # images hold test keys in clear, by design
    first_index = next(iter(doc["key_sets"]))
    entry = doc["key_sets"][first_index]["keys"]["purchase"]
    entry["kcv"] = "000000" if entry["kcv"] != "000000" else "111111"
    with pytest.raises(ImageError) as info:
        card_from_doc(doc, "x.json")
    assert "kcv" in str(info.value).lower()
    assert_clean(str(info.value), values)
