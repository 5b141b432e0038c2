"""The personalisation script: a blank card + the script = the issued card; tampering changes nothing.

Cards run in-process behind the Reader seam (the same seam pcscd serves through; tests/tools covers that
path). The comparison is the whole image (card_to_doc) minus the fields that legitimately differ:
- key_sets.*.name/source: WRITE KEY carries key bytes and a version, not the key set file's name; a card
  names the sets it builds ("card key set 01", source "WRITE KEY");
- transport_key: direct issuance has no transport phase (None); a scripted card keeps a transport key,
  which the script's last WRITE KEY sets to the card's own card master key (no batch key stays behind).
"""
from __future__ import annotations

import copy
import datetime as dt
import json

import pytest
from Crypto.Cipher import DES3

from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource
from apdu.trace import TracingReader
from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import card_to_doc
from ykt_card.issuance.personalise import blank_card, issue_card, select_key_sets, transport_key_for
from ykt_card.issuance.profile import load_card_profile
from ykt_card.host.script import (
    ScriptError, ScriptRefused, build_script, load_script, parse_script, run_script, save_script, script_keys,
)

DAY = dt.date(2026, 11, 24)
K3 = KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml")
K4 = KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")
SETS = [K3, K4]


def issue(algorithm: str | None = None, profile: str = "reference", number: int = 1234):
    prof = load_card_profile(card_profile_path(profile))
    issued = issue_card(prof, SETS, prof.card_number(number), DAY, algorithm=algorithm)
    transport = transport_key_for(select_key_sets(prof, SETS, algorithm))
    return prof, issued.state, transport, build_script(issued.state, transport, prof.name)


def blank_reader(prof, transport, seed: int = 1) -> tuple[TUnionCardOS, TracingReader]:
    os_ = TUnionCardOS(blank_card(prof, transport), rng=RandomSource.seeded(seed))
    reader = TracingReader(InProcessReader(os_), clock=lambda: 0.0)
    reader.connect()
    return os_, reader


def comparable(state) -> dict:
    doc = card_to_doc(state)
    for ks in doc["key_sets"].values():
        ks.pop("name")
        ks.pop("source")
    doc.pop("transport_key")
    return doc


def sent(reader: TracingReader) -> list[bytes]:
    return [e.data for e in reader.exchanges if e.direction == "C"]


# -- round trip ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["3des", "sm4", None], ids=["3des-only", "sm4-only", "dual"])
@pytest.mark.parametrize("profile", ["reference", "gd-foshan"])
def test_blank_card_plus_script_is_the_issued_card(algorithm, profile):
    prof, target, transport, script = issue(algorithm, profile)
    os_, reader = blank_reader(prof, transport)
    assert run_script(parse_script(script.dumps()), reader, script_keys(script, SETS)) == len(script.steps)
    got = os_.state
    assert comparable(got) == comparable(target)
    # the fields left out above, checked for what they must be
    assert sorted(got.key_sets) == sorted(target.key_sets)
    lowest = target.key_sets[min(target.key_sets)]
    assert target.transport_key is None
    assert got.transport_key == lowest.keys["card_master"].key != transport
    got.validate()


def test_round_tripped_card_answers_like_the_issued_one():
    prof, target, transport, script = issue()
    scripted, reader = blank_reader(prof, transport)
    run_script(script, reader, script_keys(script, SETS))
    direct = TUnionCardOS(target, rng=RandomSource.seeded(9))
    scripted.rng = RandomSource.seeded(9)
    scripted.power_off()
    session = ["00A4040008A00000063201010500", "00B0950000", "00B0960000", "00B0970000", "00B201D480",
               "00B202D480", "00B201C400", "805C000204", "805000020B01000003E8112233445566" + "10",
               "805000020B02000003E8112233445566" + "10", "805003020B01000000001122334455660F"]
    for apdu in session:
        assert scripted.process(bytes.fromhex(apdu)) == direct.process(bytes.fromhex(apdu)), apdu


def test_the_script_is_the_same_for_the_same_card():
    assert issue()[3].dumps() == issue()[3].dumps()
    assert issue(number=1)[3].dumps() != issue(number=2)[3].dumps()


def test_save_and_load(tmp_path):
    *_, script = issue()
    path = tmp_path / "card.jsonl"
    save_script(path, script)
    assert load_script(path) == script
    assert path.read_text() == script.dumps()


# -- what the script says ------------------------------------------------------------------------------

def test_script_layout_for_a_dual_card():
    _, target, transport, script = issue()
    lines = [json.loads(x) for x in script.dumps().splitlines()]
    head = lines[0]
    assert head == {"ykt": "personalisation-script", "format": 1, "card_no": "03105810000000001234",
                    "issuer_id": "58105810FFFFFFFF", "profile": "reference",
                    "keys": {"transport": {"role": "card_master", "algorithm": "3des",
                                           "kcv": K3.keys["card_master"].kcv},
                             "maintenance": {"role": "app_maintenance", "algorithm": "3des",
                                             "kcv": target.key_sets[1].keys["app_maintenance"].kcv}}}
    steps = lines[1:]
    assert steps[0]["apdu"] == "00A4040008A00000063201010500"
    heads = [s["apdu"][:8] for s in steps[1:]]
    # 10 keys x 2 sets + the transport key + EF15/16/17 + EF1A 01, 02: each a GET CHALLENGE and a MAC'd command
    assert heads[0::2] == ["00840000"] * 26
    writes = heads[1::2]
    roles = [s["note"].split()[2] for s in steps[2:42:2]]
    assert roles[:10] == ["tac", "purchase", "load", "app_maintenance", "app_block", "app_unblock", "pin_unblock",
                          "pin_reload", "external_auth", "card_master"]       # TAC first, card_master last
    assert writes[:10] == ["84D43401", "84D43E01", "84D43F01", "84D43601", "84D43A01", "84D43B01", "84D43701",
                           "84D43801", "84D43901", "84D43001"]
    assert [w[6:8] for w in writes[10:20]] == ["02"] * 10
    assert writes[20:] == ["84D43000", "04D69500", "04D69600", "04D69700", "04DC01D4", "04DC02D4"]
    assert all(s.get("mac") == "transport" for s in steps[2:44:2])
    assert all(s.get("mac") == "maintenance" for s in steps[44::2])
    assert all(s["expect"] == "9000" for s in steps)


def test_write_key_carries_the_key_encrypted_under_the_transport_key():
    _, target, transport, script = issue("3des")
    step = script.steps[4]
    assert step.apdu[:5] == bytes.fromhex("84D43E011C")            # purchase key, index 01, Lc 24 + MAC 4
    plain = DES3.new(transport.value, DES3.MODE_ECB).decrypt(step.apdu[5:])
    purchase = target.key_sets[1].keys["purchase"]
    assert plain == bytes((0x14, 0x00, purchase.version, 0, 0)) + purchase.key.value + b"\x80\x00\x00"


def test_no_key_value_appears_in_the_script():
    _, target, transport, script = issue()
    text = script.dumps().upper()
    values = {transport.value} | {e.key.value for ks in target.key_sets.values() for e in ks.keys.values()}
    values |= {e.key.value for ks in SETS for e in ks.keys.values()}
    for v in values:
        assert v.hex().upper() not in text
    for ks in target.key_sets.values():
        for e in ks.keys.values():
            assert f"KCV {e.kcv}" in text


def test_a_used_card_cannot_be_scripted():
    prof = load_card_profile(card_profile_path("reference"))
    funded = issue_card(prof, SETS, prof.card_number(1), DAY, balance=500).state
    with pytest.raises(ScriptError, match=r"^purse: a scripted card starts at 0 fen"):
        build_script(funded, K3.keys["card_master"].key)


# -- the runner ----------------------------------------------------------------------------------------

def test_runner_checks_its_keys_before_sending_anything():
    prof, _, transport, script = issue()
    os_, reader = blank_reader(prof, transport)
    before = card_to_doc(os_.state)
    keys = script_keys(script, SETS)
    wrong = dict(keys, maintenance=K3.keys["app_maintenance"].key)   # the master, not the card's key
    with pytest.raises(ScriptError, match=r"^script key 'maintenance': the script wants 3des KCV \w{6}, the runner "
                                          r"holds 3des KCV \w{6}$"):
        run_script(script, reader, wrong)
    with pytest.raises(ScriptError, match=r"^script key 'transport': not given to the runner$"):
        run_script(script, reader, {"maintenance": keys["maintenance"]})
    assert sent(reader) == [] and card_to_doc(os_.state) == before


def test_key_sets_that_cannot_give_a_script_key_are_named():
    *_, script = issue()
    with pytest.raises(ScriptError, match=r"^script key 'transport' \(3des card_master, KCV \w{6}\): none of the key "
                                          r"sets given holds it or derives it for card 03105810000000001234$"):
        script_keys(script, [K4])


def test_a_personalised_card_refuses_the_script_and_keeps_its_keys():
    prof, _, transport, script = issue()
    os_, reader = blank_reader(prof, transport)
    keys = script_keys(script, SETS)
    run_script(script, reader, keys)
    done = card_to_doc(os_.state)
    with pytest.raises(ScriptRefused) as refused:
        run_script(script, reader, keys)
    assert refused.value.sw == 0x6988 and refused.value.step.number == 3
    assert str(refused.value).startswith("step 3 (WRITE KEY tac 01 (3des, version 1, KCV ")
    assert str(refused.value).endswith("card answered 6988 (secure messaging MAC wrong), expected 9000; steps 1-2 "
                                       "were applied")
    assert card_to_doc(os_.state) == done


# -- tampering on the way to the card ------------------------------------------------------------------

class Tamper:
    """A Reader in the middle: changes the `nth` secure-messaging command (CLA 84 or 04) on its way,
    noting the card's image just before it arrives."""

    def __init__(self, inner, card: TUnionCardOS, nth: int, how: str) -> None:
        self.inner, self.card, self.nth, self.how = inner, card, nth, how
        self.name = inner.name
        self.seen = 0
        self.before: dict | None = None
        self.answer: bytes | None = None

    def connect(self) -> bytes:
        return self.inner.connect()

    def disconnect(self) -> None:
        self.inner.disconnect()

    def card_present(self) -> bool:
        return self.inner.card_present()

    def transmit(self, capdu: bytes) -> bytes:
        if capdu[0] in (0x84, 0x04):
            self.seen += 1
            if self.seen == self.nth:
                self.before = card_to_doc(self.card.state)
                if self.how == "mac":
                    capdu = capdu[:-1] + bytes((capdu[-1] ^ 0x01,))
                elif self.how == "data":
                    capdu = capdu[:6] + bytes((capdu[6] ^ 0x80,)) + capdu[7:]
                elif self.how == "interleave":      # another command spends the challenge (D18)
                    self.inner.transmit(bytes.fromhex("00B0950001"))
                self.answer = self.inner.transmit(capdu)
                return self.answer
        return self.inner.transmit(capdu)


@pytest.mark.parametrize("nth,what", [(1, "first WRITE KEY"), (10, "card_master 01"), (21, "transport key"),
                                      (22, "UPDATE BINARY EF15"), (25, "UPDATE RECORD EF1A 01")])
@pytest.mark.parametrize("how,sw", [("mac", 0x6988), ("data", 0x6988), ("interleave", 0x6984)])
def test_a_tampered_step_is_refused_and_changes_nothing(nth, what, how, sw):
    prof, _, transport, script = issue()
    os_, inner = blank_reader(prof, transport)
    reader = Tamper(inner, os_, nth, how)
    with pytest.raises(ScriptRefused) as refused:
        run_script(script, reader, script_keys(script, SETS))
    assert refused.value.sw == sw and reader.answer == sw.to_bytes(2, "big")
    assert refused.value.step.number == 1 + 2 * nth
    assert card_to_doc(os_.state) == reader.before
    assert sum(1 for c in sent(inner) if c[0] in (0x84, 0x04)) == nth     # nothing sent after the refusal


def test_a_recorded_session_replayed_on_another_blank_card_writes_nothing():
    prof, target, transport, script = issue()
    _, recorder = blank_reader(prof, transport, seed=1)
    run_script(script, recorder, script_keys(script, SETS))
    recorded = sent(recorder)
    victim, reader = blank_reader(prof, transport, seed=2)     # another card draws other challenges
    before = card_to_doc(victim.state)
    answers = [reader.transmit(c)[-2:].hex().upper() for c in recorded]
    assert answers[0] == "9000"
    assert set(answers[1::2]) == {"9000"}                         # GET CHALLENGE
    assert set(answers[2::2]) == {"6988"}                         # every MAC'd command: MAC under another challenge
    assert card_to_doc(victim.state) == before


def test_a_replayed_command_without_a_fresh_challenge_is_refused():
    prof, target, transport, script = issue()
    os_, reader = blank_reader(prof, transport)
    run_script(script, reader, script_keys(script, SETS))
    last = sent(reader)[-1]                       # UPDATE RECORD EF1A 02, accepted once
    changed = copy.deepcopy(card_to_doc(os_.state))
    assert reader.transmit(last)[-2:] == b"\x69\x84"              # the challenge was spent
    assert reader.transmit(bytes.fromhex("0084000004"))[-2:] == b"\x90\x00"
    assert reader.transmit(last)[-2:] == b"\x69\x88"              # a new challenge, the old MAC
    assert card_to_doc(os_.state) == changed


# -- reading scripts -----------------------------------------------------------------------------------

def _lines() -> list[dict]:
    return [json.loads(x) for x in issue("sm4")[3].dumps().splitlines()]


def _text(lines: list[dict]) -> str:
    return "".join(json.dumps(x) + "\n" for x in lines)


def _edit(fn) -> str:
    lines = _lines()
    fn(lines)
    return _text(lines)


BAD = [
    (lambda ls: ls[0].update(ykt="card"), r"line 1: ykt: must be 'personalisation-script'"),
    (lambda ls: ls[0].update(format=2), r"line 1: format: must be 1, got 2"),
    (lambda ls: ls[0].update(card_no="0310"), r"line 1: card_no: must be 20 decimal digits"),
    (lambda ls: ls[0].update(issuer_id="5810"), r"line 1: issuer_id: must be 8 bytes, got 2"),
    (lambda ls: ls[0]["keys"]["transport"].update(kcv="12"), r"line 1: keys\.transport\.kcv: must be 6"),
    (lambda ls: ls[0]["keys"]["transport"].update(algorithm="aes"), r"line 1: keys\.transport\.algorithm: must be"),
    (lambda ls: ls[0].update(colour="red"), r"line 1: colour: unknown field"),
    (lambda ls: ls[3].update(step=7), r"line 4: step: must be 3 \(steps count from 1 with no gaps\)"),
    (lambda ls: ls[3].update(apdu="84D4ZZ"), r"line 4: apdu: not hexadecimal"),
    (lambda ls: ls[3].update(apdu=ls[3]["apdu"][:-2]), r"line 4: apdu: a MAC'd command is CLA INS P1 P2 Lc data"),
    (lambda ls: ls[3].update(mac="master"), r"line 4: mac: names no key of the header \(transport, maintenance\)"),
    (lambda ls: ls.pop(2), r"line 3: step: must be 2"),
    (lambda ls: ls[2].update(challenge=False), r"line 4: mac: needs a challenge step right before it"),
    (lambda ls: ls[2].update(apdu="0084000000"), r"line 3: apdu: a challenge step is GET CHALLENGE"),
    (lambda ls: ls[1].update(apdu="00A40400"), None),          # a well-formed case-1 command is fine
    (lambda ls: ls[1].update(apdu="00A4040008A0"), r"line 2: apdu: Lc says 8 bytes"),
    (lambda ls: ls[1].update(expect="90"), r"line 2: expect: must be a 4-hex-digit status word"),
    (lambda ls: ls[1].update(note=5), r"line 2: note: must be a string"),
]


@pytest.mark.parametrize("edit,message", BAD)
def test_a_malformed_script_is_refused_by_line_and_field(edit, message):
    text = _edit(edit)
    if message is None:
        assert parse_script(text, "s.jsonl").steps[0].apdu == bytes.fromhex("00A40400")
        return
    with pytest.raises(ScriptError, match=r"^s\.jsonl: " + message):
        parse_script(text, "s.jsonl")


def test_empty_and_headerless_scripts_are_refused():
    with pytest.raises(ScriptError, match=r"^s: empty"):
        parse_script("\n", "s")
    with pytest.raises(ScriptError, match=r"^s: line 1: not JSON \(Expecting property name"):
        parse_script("{oops\n", "s")
    with pytest.raises(ScriptError, match=r"^s: no steps after the header"):
        parse_script(_text(_lines()[:1]), "s")


def test_card_key_sets_need_no_transport_key_change(tmp_path):
    """Key sets with diversification = [] hold the card's own keys: the blank card's transport key is then
    already the card master key, and the script does not replace it."""
    from keysets.keyset import entry_toml

    prof, target, _, _ = issue()
    given = []
    for master in SETS:
        ck = master.card_keys(target.issuer_id, target.serial8)
        path = tmp_path / f"{master.algorithm.value}.toml"
        path.write_text(f'name = "TEST card keys"\ntest_only = true\nalgorithm = "{master.algorithm.value}"\n'
                        "diversification = []\n\n[keys]\n" + "\n".join(entry_toml(r, e) for r, e in ck.keys.items()))
        given.append(KeySet.load(path))
    issued = issue_card(prof, given, target.card_no, DAY).state
    transport = transport_key_for(select_key_sets(prof, given, None))
    script = build_script(issued, transport, prof.name)
    assert not any(s.apdu.startswith(bytes.fromhex("84D43000")) for s in script.steps)
    os_, reader = blank_reader(prof, transport)
    run_script(script, reader, script_keys(script, given))
    assert comparable(os_.state) == comparable(issued) == comparable(target)
    assert os_.state.transport_key == transport == target.key_sets[1].keys["card_master"].key
