"""The files around the verifier: root stores (Q6), the terminal profile's `qr:` table, the replay file."""
from __future__ import annotations

import json

import pytest

from specs.catalog import terminal_profile_path
from terminal_sim.profile import ProfileError, load_terminal_profile, parse_terminal_profile
from ykt_qr import JsonReplayStore, RootStore, RootStoreError
from ykt_qr.policy import DEFAULT_ACCOUNT_TYPES
from ykt_qr.replay import ReplayStoreError

from . import independent as ind


def _store_file(tmp_path, doc) -> str:
    path = tmp_path / "roots.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc), encoding="utf-8")
    return str(path)


def test_a_store_of_the_real_02_and_a_bare_key(tmp_path, real_root_02, world):
    path = _store_file(tmp_path, {"02": real_root_02.hex().upper(), "f1": world.root.xy.hex()})
    store = RootStore.load(path)
    assert list(store) == [0x02, 0xF1]
    assert store[0x02].expiry == (2040, 12) and store[0x02].record == real_root_02
    assert store[0xF1].expiry is None and store[0xF1].record is None
    assert store.to_dict() == {"02": real_root_02.hex().upper(), "F1": world.root.xy.hex().upper()}


@pytest.mark.parametrize("doc, message", [
    ({"02": "00" * 144}, "roots.json: 02: header is 00, expected 21"),
    ({"F0": "zz"}, "roots.json: F0: must be a hex string (a 144-byte record or a 64-byte X‖Y)"),
    ({"F0": "00" * 100}, "roots.json: F0: 100 bytes; a root is a 144-byte record or a 64-byte X‖Y"),
    ({"F0": "00" * 64}, "roots.json: F0: not a point of the SM2 curve"),
    ({"F00": "00"}, "roots.json: F00: a root index is 2 hex digits"),
    ([1, 2], "roots.json: must be a JSON object of index -> record hex"),
    ("{", "roots.json: not valid JSON (line 1, column 2: Expecting property name enclosed in double quotes); "
          "truncated or corrupt"),
])
def test_bad_stores_are_refused_in_one_line(tmp_path, doc, message):
    with pytest.raises(RootStoreError) as info:
        RootStore.load(_store_file(tmp_path, doc))
    assert str(info.value).endswith(message)
    assert "\n" not in str(info.value)


def test_a_record_whose_self_signature_fails_is_refused_at_load(tmp_path, real_root_02, world):
    forged = bytearray(real_root_02)
    forged[11:13] = bytes.fromhex("1250")        # a later expiry than it was signed with
    with pytest.raises(RootStoreError, match=r"02: self-signature over bytes 0\.\.79 does not verify"):
        RootStore.load(_store_file(tmp_path, {"02": forged.hex()}))
    other = ind.root_record(world.root, 0xF0, sign_with=ind.Key(77))
    with pytest.raises(RootStoreError, match="F0: self-signature"):
        RootStore.from_dict({"F0": other.hex()}, "x.json")


def test_a_record_under_another_index_is_refused(real_root_02):
    with pytest.raises(RootStoreError, match="x.json: 17: the record says index 02"):
        RootStore.from_dict({"17": real_root_02.hex()}, "x.json")


# -- the profile's qr table --------------------------------------------------------------------------

BUS = """name: b
mode: bus
flow: flat
city: "5810"
province: "5800"
operator: "0301"
line: "0002"
key_index: 1
transaction_type: "06"
fares: {flat: 200}
lists: {blacklist: %s}
"""


def _profile(tmp_path, qr: str):
    black = terminal_profile_path("bus-flat").parent.parent.parent / "lists" / "blacklist-gd.txt"
    return parse_terminal_profile(BUS % black + qr, source="t.yaml", base=tmp_path)


def test_the_shipped_qr_bus_profile():
    prof = load_terminal_profile(terminal_profile_path("bus-qr"))
    q = prof.qr
    assert q.account_types == DEFAULT_ACCOUNT_TYPES and q.anti_passback_s == 60
    assert q.whitelist == {(bytes.fromhex("F0000001"), bytes.fromhex("F0000002")): "01"}
    assert q.local_issuers == {bytes.fromhex("F0000001")}
    assert load_terminal_profile(terminal_profile_path("bus-flat")).qr is None


def test_a_profile_with_an_empty_qr_table_takes_the_defaults(tmp_path):
    q = _profile(tmp_path, "qr: {}\n").qr
    assert q.account_types == DEFAULT_ACCOUNT_TYPES and not q.whitelist and not q.local_issuers


@pytest.mark.parametrize("qr, message", [
    ('qr: {account_types: ["01", "DD"]}', "t.yaml: qr.account_types[1]: account type DD is always refused (Q8)"),
    ('qr: {account_types: ["01", "01"]}', "t.yaml: qr.account_types[1]: 01 is listed twice"),
    ("qr: {account_types: [1]}", "t.yaml: qr.account_types[0]: must be 2 hex digits"),
    ('qr: {local_issuers: ["0211345"]}', "t.yaml: qr.local_issuers[0]: must be 8 hex digits, got '0211345'"),
    ('qr: {whitelist: [{issuer: "F0000001", platform: "F0000002"}]}', "t.yaml: qr.whitelist[0].ticket_type: missing"),
    ('qr: {whitelist: [{issuer: "F0000001", platform: "F0000002", ticket_type: "01"}, '
     '{issuer: "f0000001", platform: "F0000002", ticket_type: "02"}]}',
     "t.yaml: qr.whitelist[1]: issuer F0000001 with platform F0000002 is listed twice"),
    ("qr: {anti_passback_s: -1}", "t.yaml: qr.anti_passback_s: -1 out of range 0..86400"),
    ("qr: {replay_s: 5}", "t.yaml: qr.replay_s: unknown field"),
    ("qr: [1]", "t.yaml: qr: must be a table of fields"),
])
def test_qr_table_errors_name_the_field(tmp_path, qr, message):
    with pytest.raises(ProfileError) as info:
        _profile(tmp_path, qr + "\n")
    assert str(info.value) == message


# -- the replay file ---------------------------------------------------------------------------------

def test_the_replay_file_survives_a_restart(tmp_path):
    path = tmp_path / "seen.json"
    store = JsonReplayStore(path)
    store.remember(b"\xAA" * 32, "ACCOUNT", 100, 180)
    again = JsonReplayStore(path)
    assert again.code_seen(b"\xAA" * 32, 150) and again.last_accepted("ACCOUNT", 150) == 100
    path.write_text("[]", encoding="utf-8")
    with pytest.raises(ReplayStoreError, match="seen.json: not a replay file"):
        JsonReplayStore(path)
