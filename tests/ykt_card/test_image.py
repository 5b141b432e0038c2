"""Card images: round trip to an equal card, atomic writes, and precise refusal of corrupt images."""
import copy
import json
import os
import stat
from pathlib import Path

import pytest

from keysets.randomness import RandomSource
from keysets import Algorithm, SecretKey
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import (
    ImageError, card_from_doc, card_to_doc, load_card, read_image, save_card,
)
from ykt_card.card.state import BinaryFile, FaultInjector, Lock, PowerLoss
from ykt_card.card.writes import WRITE_KINDS, KeyWrite
from ykt_files.atomic import write_json_atomic

from tests.ykt_card.helpers import (
    HostTerminal, capp_update_1a, capp_update_1e, gd_keyset, make_card,
)


def used_card():
    """A card with history in every file, both key sets, a transport key, proofs, a used PIN try."""
    card = make_card(rng=RandomSource(7), balance=3000, overdraft_limit=200,
                     transport_key=SecretKey(Algorithm.TDES, b"\xFF" * 16),
                     capp_records=[0x01, 0x02, 0x07, 0x0D],
                     extra_files=[BinaryFile(0x05, bytes(range(16)))], pin="2468")
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    t.select()
    for i in range(12):                       # wraps EF18
        assert t.load(100 + i, key_index=1 + i % 2)["sw"] == 0x9000
    assert t.purchase(77, key_index=2, capp=[capp_update_1a(1, 0x31), capp_update_1e(0x41)])["sw"] == 0x9000
    assert t.x("0020000002 1357".replace(" ", "")).sw == 0x63C2
    return card, t


def test_round_trip_gives_the_same_card(tmp_path):
    card, _ = used_card()
    path = tmp_path / "card.json"
    save_card(path, card.state)
    again = load_card(path)
    assert again == card.state
    assert again.snapshot() == card.state.snapshot()
    # and the reloaded card behaves the same: same answers to the same commands
    a = TUnionCardOS(card.state, rng=RandomSource(1))
    b = TUnionCardOS(again, rng=RandomSource(1))
    for capdu in ("00A4040008A00000063201010500", "00B201C400", "00B207D400", "805A000902000108",
                  "805C000204", "00B0850000", "805001020B0100000005112233445566" "0F"):
        assert a.process(bytes.fromhex(capdu)) == b.process(bytes.fromhex(capdu))


def test_image_is_json_with_hex_and_kcvs(tmp_path):
    card, _ = used_card()
    path = tmp_path / "card.json"
    save_card(path, card.state)
    doc = json.loads(path.read_text())
    assert (doc["format"], doc["kind"]) == (1, "card")
    assert doc["card_no"] == "03105810000000001234"
    assert doc["purse"]["balance"] == card.state.purse.balance
    entry = doc["key_sets"]["02"]["keys"]["purchase"]
    assert entry["kcv"] == card.state.key_sets[2].entry("purchase").kcv
    assert doc["key_sets"]["01"]["algorithm"] == "3des" and doc["key_sets"]["02"]["algorithm"] == "sm4"
    assert doc["pin"] == {"value": "2468", "tries_left": 2, "max_tries": 3, "required_for_load": False}
    assert doc["proofs"]["purchase"]["type"] == "09"
    assert doc["files"]["18"]["count"] == 10 and doc["files"]["1A"]["records"]["0D"][:6] == "270D1B"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600          # it holds (test) keys


def test_a_torn_card_saved_with_its_journal_recovers_after_reload(tmp_path):
    card, t = used_card()
    card.fault = FaultInjector(cut_after=12)                     # inside the apply phase of a CAPP debit
    with pytest.raises(PowerLoss):
        t.purchase(5, capp=[capp_update_1a(2, 0x99), capp_update_1e(0x98)])
    assert card.state.journal and card.state.journal_complete
    save_card(tmp_path / "torn.json", card.state)
    reloaded = load_card(tmp_path / "torn.json")
    assert reloaded == card.state
    card.fault = None
    card.power_on()
    other = TUnionCardOS(reloaded)
    other.power_on()
    assert other.last_recovery == "rolled forward"
    assert reloaded == card.state


def test_atomic_write_keeps_the_old_file_on_failure_and_leaves_no_temp(tmp_path):
    path = tmp_path / "x.json"
    write_json_atomic(path, {"format": 1, "kind": "psam", "n": 1})
    with pytest.raises(TypeError):
        write_json_atomic(path, {"format": 1, "kind": "psam", "bad": object()})
    assert json.loads(path.read_text())["n"] == 1
    assert sorted(os.listdir(tmp_path)) == ["x.json"]
    write_json_atomic(path, {"format": 1, "kind": "psam", "n": 2})
    assert read_image(path, "psam")["n"] == 2
    assert sorted(os.listdir(tmp_path)) == ["x.json"]


def test_envelope_refusals(tmp_path):
    path = tmp_path / "c.json"
    with pytest.raises(ImageError, match="no such card image file"):
        read_image(path)
    for text, field in [("", None), ("{", None), ("[]", None), ('{"format": 2, "kind": "card"}', "format"),
                        ('{"format": 1, "kind": "psam"}', "kind"), ('{"kind": "card"}', "format"),
                        ('{"format": true, "kind": "card"}', "format")]:
        path.write_text(text)
        with pytest.raises(ImageError) as err:
            load_card(path)
        assert err.value.field == field
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ImageError, match="UTF-8"):
        load_card(path)
    with pytest.raises(ValueError):
        read_image(path, "wallet")


def test_truncated_images_are_refused_never_half_loaded(tmp_path):
    card, _ = used_card()
    path = tmp_path / "c.json"
    save_card(path, card.state)
    full = path.read_bytes()
    for cut in range(0, len(full) - 2, max(1, len(full) // 97)):
        path.write_bytes(full[:cut])
        with pytest.raises(ImageError) as err:
            load_card(path)
        assert "truncated" in str(err.value) or err.value.field


def corrupt(doc, dotted, value):
    d = copy.deepcopy(doc)
    node = d
    parts = dotted.split(".")
    for p in parts[:-1]:
        node = node[int(p)] if isinstance(node, list) else node[p]
    last = parts[-1]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return d


CORRUPTIONS = [
    ("purse.balance", "12", "purse.balance"),
    ("purse.balance", 2**31, "purse.balance"),
    ("purse.balance", -5000, "purse.balance"),                       # below -overdraft_limit
    ("purse.online_counter", 70000, "purse.online_counter"),
    ("purse.overdraft_limit", KeyError, "purse.overdraft_limit"),
    ("purse.max_balance", True, "purse.max_balance"),
    ("files.15.data", "00" * 29, "files.15"),
    ("files.15.data", "XYZ", "files.15.data"),
    ("files.15.type", "tape", "files.15.type"),
    ("files.18.slots.0", "00" * 22, "files.18.slots[0]"),
    ("files.18.count", 11, "files.18.count"),
    ("files.18.head", 10, "files.18.head"),
    ("files.1A.records.01", "ZZ", "files.1A.records.01"),
    ("files.1A.records", {"1": "00"}, "files.1A.records.1"),
    ("files.1F", {"type": "binary", "data": "00"}, "files.1F"),
    ("key_sets.01.keys.purchase.kcv", "000000", "key_sets.01.keys.purchase.kcv"),
    ("key_sets.01.keys.purchase.value", "0011", "key_sets.01.keys.purchase.value"),
    ("key_sets.01.keys.purchase.value", "not hex at all!", "key_sets.01.keys.purchase.value"),
    ("key_sets.01.keys.wallet", {"index": 1, "version": 1, "value": "00" * 16, "kcv": "000000"},
     "key_sets.01.keys.wallet"),
    ("key_sets.01.test_only", False, "key_sets.01.test_only"),
    ("key_sets.01.algorithm", "aes", "key_sets.01.algorithm"),
    ("key_sets.00", {}, "key_sets.00"),
    ("transport_key.kcv", "ABCDEF", "transport_key.kcv"),
    ("pin.value", "12a4", "pin.value"),
    ("pin.tries_left", 4, "pin.tries_left"),
    ("lock", "sort of", "lock"),
    ("proofs.purchase.mac2", "0011", "proofs.purchase.mac2"),
    ("proofs.refund", {"type": "02", "counter": 1, "mac2": "00" * 4, "tac": "00" * 4}, "proofs.refund"),
    ("journal.writes", [["balance", 5]], "journal.writes[0]"),
    ("journal.writes", [["binary", 21, 29, "0000"]], "journal.writes[0]"),
    ("journal.writes", [["slot", 24, 10, "00" * 23]], "journal.writes[0]"),
    ("journal.writes", [["record", 26, 3, "00" * 128]], "journal.writes[0]"),
    ("journal.writes", [["purse", "balance"]], "journal.writes[0]"),
    ("journal.writes", [["binary", 21, "0", "0000"]], "journal.writes[0].offset"),
    ("journal.writes", [["proof", "purchase", {"type": "D6", "counter": 1, "mac2": "00" * 4, "tac": "00" * 4}]],
     "journal.writes[0]"),
    ("journal.writes", [["key", 1, {"role": "purchase", "index": 1, "version": 1, "algorithm": "3des",
                                    "value": "00" * 16, "kcv": "000000"}]], "journal.writes[0].entry.kcv"),
    ("journal.complete", "yes", "journal.complete"),
    ("card_no", "03105810000000009999", "card_no"),
    ("application.aid", "A0", "application.aid"),
    ("application.ats_historical", "00" * 16, "application.ats_historical"),
    ("application.ppse.0.label", 5, "application.ppse[0].label"),
    ("application.ppse.0.label", "MOT\x01", "application.ppse[0].label"),
    ("proofs.purchase.type", "D6", "proofs.purchase.type"),
    ("proofs.load.type", "09", "proofs.load.type"),
    ("purse.offline_counter", 70000, "purse.offline_counter"),
    ("files.15.colour", "red", "files.15.colour"),
    ("key_sets.01.keys.purchase.index", 256, "key_sets.01.keys.purchase.index"),
    ("extra", 1, "extra"),
    ("uid", "0102030405", "uid"),                                   # 5 bytes: no ISO 14443-3 UID size
    ("uid", "88010203", "uid"),                                     # starts with the cascade tag
    ("uid", "XY", "uid"),
]


@pytest.mark.parametrize("dotted,value,field", CORRUPTIONS, ids=[c[0] + "=" + repr(c[1])[:12] for c in CORRUPTIONS])
def test_each_corrupt_field_is_named(dotted, value, field):
    card, _ = used_card()
    doc = card_to_doc(card.state)
    bad = corrupt(doc, dotted, value)
    with pytest.raises(ImageError) as err:
        card_from_doc(bad, "card.json")
    assert err.value.field == field, str(err.value)
    assert str(err.value).startswith("card.json: ")
    assert_no_key_values(str(err.value), card)


def assert_no_key_values(text: str, card) -> None:
    for ks in card.state.key_sets.values():
        for e in ks.keys.values():
            assert e.key.value.hex().upper() not in text.upper()
    if card.state.transport_key is not None:
        assert card.state.transport_key.value.hex().upper() not in text.upper()


def test_key_values_never_in_repr_or_str():
    card, _ = used_card()
    # a WRITE KEY journal entry would hold a key: put one in the journal by hand and print everything
    from keysets import KeyEntry
    card.state.journal.append(KeyWrite(1, KeyEntry("purchase", 1, 9, card.state.key_sets[1].entry("tac").key)))
    for text in (repr(card.state), str(card.state), repr(card.state.key_sets), repr(card.state.journal),
                 repr(card.state.pin), str(card.state.snapshot())):
        assert_no_key_values(text, card)
    assert repr(card.state.pin) == "Pin(<2 bytes>, tries_left=2, max_tries=3)"    # the PIN is hidden too


def test_image_lock_and_states_round_trip(tmp_path):
    card, _ = used_card()
    card.state.lock = Lock.PERMANENT
    save_card(tmp_path / "c.json", card.state)
    assert load_card(tmp_path / "c.json").lock is Lock.PERMANENT


# -- format 1 stays format 1 ---------------------------------------------------------------------------

IMAGES = Path(__file__).resolve().parents[1] / "data" / "images"
"""Images written by the code before the schema layer (commit d0132f6): a used card, the same card saved
torn inside a CAPP debit, one whose journal holds every kind of write, and a PSAM with MAC2 failures."""


@pytest.mark.parametrize("name", ["card-used.json", "card-torn.json", "card-journal.json"])
def test_images_of_the_previous_code_load_and_save_the_same_json(tmp_path, name):
    state = load_card(IMAGES / name)
    save_card(tmp_path / name, state)
    assert (tmp_path / name).read_bytes() == (IMAGES / name).read_bytes()


def test_a_journal_of_every_write_kind_loads_typed_and_rolls_forward():
    state = load_card(IMAGES / "card-journal.json")
    assert {w.tag for w in state.journal} == set(WRITE_KINDS)
    assert all(isinstance(w, WRITE_KINDS[w.tag]) for w in state.journal)
    card = TUnionCardOS(state)
    card.power_on()
    assert card.last_recovery == "rolled forward" and state.journal == []
    assert state.files[0x16].data[:1] == b"\x01" and state.pin.tries_left == 2


def test_psam_image_of_the_previous_code_loads_and_saves_the_same_json(tmp_path):
    from ykt_card.psam.issue import load_psam, save_psam
    state = load_psam(IMAGES / "psam.json")
    assert state.next_terminal_seq == 42 and state.mac2_failures.count == 3
    save_psam(tmp_path / "psam.json", state)
    assert (tmp_path / "psam.json").read_bytes() == (IMAGES / "psam.json").read_bytes()


def test_a_card_key_set_may_be_partial_as_write_key_leaves_it():
    """WRITE KEY adds one key at a time, so a card saved during its personalisation holds a partial key
    set (the script writes the TAC key first); the image keeps it as it is."""
    card, _ = used_card()
    doc = card_to_doc(card.state)
    for role in ("purchase", "load"):
        del doc["key_sets"]["01"]["keys"][role]
    state = card_from_doc(doc, "card.json")
    assert "purchase" not in state.key_sets[1].keys and card_to_doc(state) == doc


def test_a_card_key_set_with_money_keys_but_no_tac_key_is_refused():
    """A key set that can purchase or load but not prove it (no TAC key) is not a card anyone may use."""
    card, _ = used_card()
    doc = card_to_doc(card.state)
    del doc["key_sets"]["01"]["keys"]["tac"]
    with pytest.raises(ImageError) as refused:
        card_from_doc(doc, "card.json")
    assert str(refused.value) == ("card.json: key_sets.01.keys.tac: missing: a key set with purchase or load keys "
                                  "needs its TAC key (the card could not prove a transaction)")


def test_the_uid_round_trips_and_older_images_get_the_default(tmp_path):
    from apdu.iso14443 import DEFAULT_UID
    card, _ = used_card()
    assert "uid" not in card_to_doc(card.state) and card.state.uid == DEFAULT_UID
    card.state.uid = bytes.fromhex("04A1B2C3D4E5F6")
    save_card(tmp_path / "c.json", card.state)
    assert json.loads((tmp_path / "c.json").read_text())["uid"] == "04A1B2C3D4E5F6"
    assert load_card(tmp_path / "c.json").uid == bytes.fromhex("04A1B2C3D4E5F6")
    assert load_card(IMAGES / "card-used.json").uid == DEFAULT_UID
