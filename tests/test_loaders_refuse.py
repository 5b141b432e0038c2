"""Loaders reject what they do not understand (issue 12, part 4).

Every file a user hands ykt (card and PSAM images, key sets, card and terminal profiles, lists,
personalisation scripts) is read by a loader that refuses an unknown field and an out-of-range value
with one line: the file, the field and the reason. Each case edits one shipped or freshly written file
in one place and checks the exact line, so a loader that starts accepting it fails here.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path
from terminal_sim.lists import load_blacklist
from terminal_sim.profile import load_terminal_profile
from ykt_card.card.image import card_to_doc, load_card
from ykt_card.host.script import build_script, load_script, save_script
from ykt_card.issuance.personalise import issue_card, select_key_sets, transport_key_for
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.issue import issue_psam, load_psam, psam_to_doc

ROOT = Path(__file__).resolve().parents[1]
K3 = KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml")
K4 = KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")
BLACKLIST = ROOT / "specs" / "lists" / "blacklist-gd.txt"


def refused(load, path: Path) -> str:
    """The one-line refusal of `load(path)`, without the folder: it starts with the file's name (some
    loaders give the path as given, some the name alone)."""
    with pytest.raises(ValueError) as caught:
        load(path)
    text = str(caught.value).replace(f"{path.parent}/", "")
    assert "\n" not in text and text.startswith(path.name), text
    return text


def edited(tmp_path: Path, source: Path, old: str, new: str, name: str) -> Path:
    text = source.read_text(encoding="utf-8")
    assert text.count(old) >= 1, old
    path = tmp_path / name
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


# --- images -------------------------------------------------------------------------------------------

def card_doc() -> dict:
    prof = load_card_profile(card_profile_path("reference"))
    return card_to_doc(issue_card(prof, [K3, K4], prof.card_number(1234), dt.date(2026, 11, 24)).state)


def write_json(tmp_path: Path, doc: dict, name: str) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _card_unknown_top(doc):
    doc["colour"] = "red"


def _card_unknown_nested(doc):
    doc["purse"]["colour"] = "red"


def _card_no_tac(doc):
    del doc["key_sets"]["01"]["keys"]["tac"]


def _card_proof_d6(doc):
    doc["proofs"]["purchase"] = {"type": "D6", "counter": 1, "mac2": "00" * 4, "tac": "00" * 4}


def _card_counter_range(doc):
    doc["purse"]["offline_counter"] = 65536


@pytest.mark.parametrize("edit,says", [
    (_card_unknown_top, "card.json: colour: unknown field"),
    (_card_unknown_nested, "card.json: purse.colour: unknown field"),
    (_card_no_tac, "card.json: key_sets.01.keys.tac: missing: a key set with purchase or load keys needs its TAC "
                   "key (the card could not prove a transaction)"),
    (_card_proof_d6, "card.json: proofs.purchase.type: D6 is not a purchase type (06, 09)"),
    (_card_counter_range, "card.json: purse.offline_counter: 65536 out of range 0..65535"),
])
def test_the_card_image_loader(tmp_path, edit, says):
    doc = card_doc()
    edit(doc)
    assert refused(load_card, write_json(tmp_path, doc, "card.json")) == says


def psam_doc() -> dict:
    return psam_to_doc(issue_psam([K3, K4], bytes.fromhex("440300000001")))


def _psam_count(doc):
    doc["mac2_failures"]["count"] = 4294967296


def _psam_unknown(doc):
    doc["files"]["EF18"] = "00"


def _psam_pending_amount(doc):
    doc["pending_purchase"] = {"algorithm_id": "00", "key_version": "01", "serial": "00" * 8, "issuer_id": "00" * 8,
                               "random": "00" * 4, "card_counter": 1, "terminal_seq": 1, "amount": 4294967296}


def _psam_pending_unknown(doc):
    doc["next_terminal_seq"] = 2
    doc["pending_purchase"] = {"algorithm_id": "00", "key_version": "01", "serial": "00" * 8, "issuer_id": "00" * 8,
                               "random": "00" * 4, "card_counter": 1, "terminal_seq": 1, "amount": 200,
                               "session_key": "00" * 16}


def _psam_pending_not_handed_out(doc):
    doc["pending_purchase"] = {"algorithm_id": "00", "key_version": "01", "serial": "00" * 8, "issuer_id": "00" * 8,
                               "random": "00" * 4, "card_counter": 1, "terminal_seq": 1, "amount": 200}


@pytest.mark.parametrize("edit,says", [
    (_psam_count, "psam.json: mac2_failures.count: 4294967296 out of range 0..4294967295"),
    (_psam_unknown, "psam.json: files.EF18: unknown field"),
    (_psam_pending_amount, "psam.json: pending_purchase.amount: 4294967296 out of range 0..4294967295"),
    (_psam_pending_unknown, "psam.json: pending_purchase.session_key: unknown field"),
    (_psam_pending_not_handed_out, "psam.json: pending_purchase.terminal_seq: 1 was not handed out yet "
                                   "(next_terminal_seq 1)"),
])
def test_the_psam_image_loader(tmp_path, edit, says):
    doc = psam_doc()
    edit(doc)
    assert refused(load_psam, write_json(tmp_path, doc, "psam.json")) == says


# --- key sets, profiles, lists, scripts ----------------------------------------------------------------

@pytest.mark.parametrize("old,new,says", [
    ('algorithm = "3des"\n', 'algorithm = "3des"\ncolour = "red"\n', "k.toml: colour: unknown field"),
    ("purchase = { index = 1,", "purchase = { colour = 1, index = 1,", "k.toml: keys.purchase.colour: unknown field"),
    ("purchase = { index = 1,", "purchase = { index = 256,", "k.toml: keys.purchase.index: 256 out of range 0..255"),
])
def test_the_key_set_loader(tmp_path, old, new, says):
    path = edited(tmp_path, TEST_KEYSET_DIR / "gd-test-3des.toml", old, new, "k.toml")
    assert refused(KeySet.load, path) == says


@pytest.mark.parametrize("old,new,says", [
    ("ef18_records: 10", "ef18_records: 10\ncolour: red", "c.yaml: colour: unknown field"),
    ("{algorithm: 3des, index: 1}", "{algorithm: 3des, index: 1, colour: 1}", "c.yaml: keys[0].colour: unknown field"),
    ("ef18_records: 10", "ef18_records: 300", "c.yaml: ef18_records: must be an integer 1..255, got 300"),
    ("max_balance: 100000", "max_balance: 4294967296",
     "c.yaml: max_balance: must be an integer 0..2147483647, got 4294967296"),
])
def test_the_card_profile_loader(tmp_path, old, new, says):
    path = edited(tmp_path, card_profile_path("reference"), old, new, "c.yaml")
    assert refused(load_card_profile, path) == says


@pytest.mark.parametrize("old,new,says", [
    ("recovery_window: 120", "recovery_window: 120\ncolour: red", "t.yaml: colour: unknown field"),
    ("  flat: 200", "  flat: 200\n  colour: 1", "t.yaml: fares.colour: unknown field"),
    ("  flat: 200", "  flat: 4294967296", "t.yaml: fares.flat: 4294967296 out of range 0..4294967295"),
    ("recovery_window: 120", "recovery_window: -1", "t.yaml: recovery_window: "),
])
def test_the_terminal_profile_loader(tmp_path, old, new, says):
    source = edited(tmp_path, ROOT / "specs" / "profiles" / "terminals" / "bus-flat.yaml",
                    "../../lists/blacklist-gd.txt", str(BLACKLIST), "base.yaml")
    path = edited(tmp_path, source, old, new, "t.yaml")
    assert refused(load_terminal_profile, path).startswith(says)


@pytest.mark.parametrize("old,new,says", [
    ("kind: blacklist\n", "kind: blacklist\ncolour: red\n", "l.txt:5: unknown header 'colour' (known: kind, version)"),
    ("version: 2024112401", "version: 20241124019999",
     "l.txt:5: version: expected 10 digits YYYYMMDDnn, got '20241124019999'"),
    ("03104870300000000017", "031048703000000000170", "l.txt:6: not a 20-digit card number: '031048703000000000170'"),
])
def test_the_list_loader(tmp_path, old, new, says):
    assert refused(load_blacklist, edited(tmp_path, BLACKLIST, old, new, "l.txt")) == says


def script_file(tmp_path: Path) -> Path:
    prof = load_card_profile(card_profile_path("reference"))
    state = issue_card(prof, [K3], prof.card_number(1234), dt.date(2026, 11, 24)).state
    path = tmp_path / "s.jsonl"
    save_script(path, build_script(state, transport_key_for(select_key_sets(prof, [K3], None)), prof.name))
    return path


def _edit_line(path: Path, number: int, edit) -> Path:
    lines = path.read_text(encoding="utf-8").splitlines()
    doc = json.loads(lines[number - 1])
    edit(doc)
    lines[number - 1] = json.dumps(doc)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("number,edit,says", [
    (1, lambda d: d.update(colour="red"), "s.jsonl: line 1: colour: unknown field"),
    (2, lambda d: d.update(colour="red"), "s.jsonl: line 2: colour: unknown field"),
    (1, lambda d: d.update(format=2), "s.jsonl: line 1: format: "),
    (2, lambda d: d.update(expect="19000"), "s.jsonl: line 2: expect: "),
])
def test_the_script_loader(tmp_path, number, edit, says):
    path = _edit_line(script_file(tmp_path), number, edit)
    assert refused(load_script, path).startswith(says)
