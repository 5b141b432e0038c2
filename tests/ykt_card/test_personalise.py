"""Issuance: a profile, TEST key sets and a card number become a card, read back through the card's own APDUs.

Expected bytes come from the reference (tunion.md 1.3, guangdong.md) and the keys from an independent
diversification written here with pycryptodome (3DES) and cryptography (SM4), not from keysets.
"""
from __future__ import annotations

import datetime as dt
import json

import pytest
from Crypto.Cipher import DES3
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource
from apdu.status import CardError
from keysets import TEST_KEYSET_DIR, KeySet
from keysets.keyset import entry_toml
from specs.catalog import card_profile_names, card_profile_path
from ykt_card.card.cos import TUnionCardOS
from ykt_card.host.card import TUnionCard
from ykt_card.issuance.personalise import (
    IssueError, append_registry, blank_card, issue_batch, issue_card, select_key_sets, transport_key_for,
)
from ykt_card.issuance.profile import card_profile_from_dict, load_card_profile
from ykt_card.card.state import CardState, CyclicFile

DAY = dt.date(2026, 11, 24)
K3 = KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml")
K4 = KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")
REGISTRY_FIELDS = {"card_no": str, "issuer_id": str, "city": str, "medium": str, "card_type": str,
                   "issued_on": str, "price": int, "profile": str}
# guangdong.md: issuer ID bytes 0..3, IIN (card numbers are 0 ‖ IIN ‖ ...), area code
GUANGDONG = {
    "gd-guangzhou": ("02205810", "31048703", "5810"), "gd-shenzhen": ("02215840", "31048704", "5840"),
    "gd-foshan": ("02775880", "31048707", "5880"), "gd-dongguan": ("01616020", "31048702", "6020"),
    "gd-zhongshan": ("01056030", "31048705", "6030"), "gd-zhuhai": ("01355850", "31048724", "5850"),
    "gd-huizhou": ("02785950", "31048708", "5950"), "gd-shantou": ("02795860", "31048709", "5860"),
    "gd-jiangmen": ("02805890", "31048710", "5890"), "gd-maoming": ("02815920", "31048711", "5920"),
    "gd-zhaoqing": ("02825930", "31048712", "5930"), "gd-zhanjiang": ("02835910", "31048713", "5910"),
    "gd-meizhou": ("02845960", "31048714", "5960"), "gd-shanwei": ("02855970", "31048715", "5970"),
    "gd-heyuan": ("02865980", "31048716", "5980"), "gd-qingyuan": ("02876010", "31048717", "6010"),
    "gd-shaoguan": ("02885820", "31048706", "5820"), "gd-jieyang": ("02896050", "31048719", "6050"),
    "gd-yangjiang": ("02905990", "31048720", "5990"), "gd-chaozhou": ("02916040", "31048721", "6040"),
    "gd-yunfu": ("02926060", "31048722", "6060"),
}


def profile(name: str = "reference"):
    return load_card_profile(card_profile_path(name))


def card_of(state: CardState) -> tuple[TUnionCardOS, TUnionCard]:
    os_ = TUnionCardOS(state, rng=RandomSource.seeded(5))
    reader = InProcessReader(os_)
    card = TUnionCard(reader)
    card.connect()
    card.select()
    return os_, card


# -- independent diversification (tunion.md 3.1, 3.5; D2: issuer first, then serial) -----------------

def _inv(b: bytes) -> bytes:
    return bytes(x ^ 0xFF for x in b)


def div_3des(key: bytes, factor: bytes) -> bytes:
    c = DES3.new(key, DES3.MODE_ECB)
    return c.encrypt(factor) + c.encrypt(_inv(factor))


def div_sm4(key: bytes, factor: bytes) -> bytes:
    e = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return e.update(factor + _inv(factor)) + e.finalize()


def card_key(alg: str, master: bytes, issuer: bytes, serial: bytes) -> bytes:
    d = div_3des if alg == "3des" else div_sm4
    return d(d(master, issuer), serial)


# -- the reference card -------------------------------------------------------------------------------

def test_reference_card_files_read_through_the_card():
    prof = profile()
    issued = issue_card(prof, [K3, K4], prof.card_number(1234), DAY)
    _, card = card_of(issued.state)
    for rid in (1, 2):
        rec = card.read_capp_record(rid)
        assert rec == bytes((0x27, rid, 0x7D, 0x01, 0x01, 0x00)) + bytes(122)
    assert card.read_transactions() == []
    assert card.read_history() == []
    ef17 = card.read_binary(0x17)
    assert len(ef17) == 60
    assert ef17[0:4].hex() == "00000156" and ef17[4:6].hex() == "5800" and ef17[6:8].hex() == "5810"
    assert ef17[8:10] == bytes.fromhex("0001")          # 互通卡种: interoperable
    assert card.read_management().interoperable
    ef15 = card.read_binary(0x15)
    assert ef15 == bytes.fromhex("58105810FFFFFFFF" "02" "01" "03105810000000001234" "20261124" "20461124" "0000")
    assert card.get_balance() == 0


def test_reference_card_has_only_the_profile_records_and_sizes():
    prof = profile()
    st = issue_card(prof, [K3, K4], prof.card_number(1), DAY).state
    assert sorted(st.files[0x1A].records) == [1, 2]
    log, hist = st.files[0x18], st.files[0x1E]
    assert isinstance(log, CyclicFile) and (log.record_size, log.capacity, log.count) == (23, 10, 0)
    assert isinstance(hist, CyclicFile) and (hist.record_size, hist.capacity, hist.count) == (48, 30, 0)


def test_profile_capacities_and_extra_records_are_honoured():
    doc = {"name": "t", "org_code": "5810", "city": "5810", "card_no_prefix": "0310", "capp_records": [1, 2, 7, 13],
           "ef18_records": 5, "ef1e_records": 12}
    prof = card_profile_from_dict(doc)
    st = issue_card(prof, [K3], prof.card_number(9), DAY).state
    assert (st.files[0x18].capacity, st.files[0x1E].capacity) == (5, 12)
    recs = st.files[0x1A].records
    assert {rid: len(r) for rid, r in recs.items()} == {1: 128, 2: 128, 7: 112, 13: 30}
    assert recs[7][:6] == bytes((0x27, 0x07, 112 - 3, 1, 1, 0))
    blank = blank_card(prof, transport_key_for(select_key_sets(prof, [K3], None)))
    assert (blank.files[0x18].capacity, blank.files[0x1E].capacity) == (5, 12)
    assert {rid: r for rid, r in blank.files[0x1A].records.items()} == {1: bytes(128), 2: bytes(128), 7: bytes(112),
                                                                        13: bytes(30)}


# -- per profile --------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", card_profile_names())
def test_card_number_issuer_and_codes_per_profile(name):
    prof = profile(name)
    st = issue_card(prof, [K3, K4], prof.card_number(42), DAY).state
    ef15, ef17 = st.files[0x15].data, st.files[0x17].data
    assert ef15[0:8] == prof.issuer_id and ef15[4:8] == b"\xff" * 4
    assert st.card_no == prof.card_no_prefix + "42".zfill(20 - len(prof.card_no_prefix))
    assert ef17[6:8].hex() == prof.city and ef17[4:6].hex() == "5800" and ef17[8:10].hex() == "0001"
    if name in GUANGDONG:
        issuer4, iin, city = GUANGDONG[name]
        assert ef15[0:4].hex().upper() == issuer4
        assert st.card_no.startswith("0" + iin)
        assert prof.city == city


@pytest.mark.parametrize("name", ["reference", "gd-guangzhou", "gd-chaozhou"])
def test_keys_are_diversified_issuer_first_then_serial(name):
    prof = profile(name)
    st = issue_card(prof, [K3, K4], prof.card_number(77), DAY).state
    issuer, serial = st.files[0x15].data[0:8], st.files[0x15].data[12:20]
    assert sorted(st.key_sets) == [1, 2]
    for index, master in ((1, K3), (2, K4)):
        card = st.key_sets[index]
        assert card.diversification == ()
        assert set(card.keys) == set(master.keys)
        for role, e in master.keys.items():
            expect = card_key(master.algorithm.value, e.key.value, issuer, serial)
            assert card.keys[role].key.value == expect, role
            assert card.keys[role].kcv == master.card_keys(issuer, serial).keys[role].kcv
            assert card.keys[role].key.value != e.key.value
            assert (card.keys[role].index, card.keys[role].version) == (e.index, e.version)


def _card_key_set(master: KeySet, issuer: bytes, serial: bytes, tmp_path) -> KeySet:
    """A key set file with diversification = [] holding one card's keys, as an HSM hands them over."""
    ck = master.card_keys(issuer, serial)
    body = "\n".join(entry_toml(r, e) for r, e in ck.keys.items())
    path = tmp_path / f"card-{master.algorithm.value}.toml"
    path.write_text(f'name = "TEST card keys"\ntest_only = true\nalgorithm = "{master.algorithm.value}"\n'
                    f"diversification = []\n\n[keys]\n{body}\n")
    return KeySet.load(path)


def test_key_set_without_diversification_goes_in_unchanged(tmp_path):
    prof = profile()
    st0 = issue_card(prof, [K3, K4], prof.card_number(5), DAY).state
    issuer, serial = st0.issuer_id, st0.serial8
    given = [_card_key_set(K3, issuer, serial, tmp_path), _card_key_set(K4, issuer, serial, tmp_path)]
    for no in (5, 6):   # the keys are taken as they are, whatever the card number
        st = issue_card(prof, given, prof.card_number(no), DAY).state
        for index, ks in zip((1, 2), given):
            assert {r: e.key.value for r, e in st.key_sets[index].keys.items()} == \
                   {r: e.key.value for r, e in ks.keys.items()}
    assert {r: e.key.value for r, e in st0.key_sets[1].keys.items()} == \
           {r: e.key.value for r, e in given[0].keys.items()}


@pytest.mark.parametrize("algorithm,index", [("3des", 1), ("sm4", 2)])
def test_algorithm_keeps_one_key_slot(algorithm, index):
    prof = profile()
    issued = issue_card(prof, [K3, K4], prof.card_number(1), DAY, algorithm=algorithm)
    assert list(issued.state.key_sets) == [index]
    assert issued.state.key_sets[index].algorithm.value == algorithm
    assert issued.registry["algorithms"] == [algorithm]
    _, card = card_of(issued.state)
    init = card.initialize_load(index, 100, bytes(6))
    assert init.algorithm.value == algorithm


def test_algorithm_without_its_key_set_is_refused():
    prof = profile()
    with pytest.raises(IssueError, match=r"--algorithm sm4"):
        issue_card(prof, [K3], prof.card_number(1), DAY, algorithm="sm4")


def test_batch_numbers_are_consecutive():
    prof = profile("gd-shenzhen")
    cards = issue_batch(prof, [K3, K4], prof.card_number(98), 5, DAY)
    numbers = [int(c.card_no) for c in cards]
    assert numbers == list(range(numbers[0], numbers[0] + 5))
    assert [c.state.card_no for c in cards] == [c.card_no for c in cards]
    assert cards[0].card_no == "03104870400000000098" and cards[-1].card_no == "03104870400000000102"
    assert len({c.state.key_sets[1].keys["purchase"].kcv for c in cards}) == 5   # one key per card


def test_batch_past_the_last_number_is_refused():
    prof = card_profile_from_dict({"name": "t", "org_code": "5810", "city": "5810",
                                   "card_no_prefix": "0310581000000000"})
    assert len(issue_batch(prof, [K3], prof.card_number(9997), 3, DAY)) == 3
    with pytest.raises(IssueError, match=r"--count 3: card numbers would run past 03105810000000009999"):
        issue_batch(prof, [K3], prof.card_number(9998), 3, DAY)


def test_registry_lines_have_the_design_fields_and_are_appended(tmp_path):
    reg = tmp_path / "registry.jsonl"
    prof = profile("gd-guangzhou")
    first = issue_batch(prof, [K3, K4], prof.card_number(1), 2, DAY)
    append_registry(reg, [c.registry for c in first])
    before = reg.read_text()
    second = issue_batch(prof, [K3], prof.card_number(3), 1, DAY + dt.timedelta(days=1), algorithm="3des")
    append_registry(reg, [c.registry for c in second])
    text = reg.read_text()
    assert text.startswith(before)
    lines = [json.loads(x) for x in text.splitlines()]
    assert len(lines) == 3
    for line in lines:
        for field, kind in REGISTRY_FIELDS.items():
            assert isinstance(line[field], kind), field
        assert line["medium"] in ("physical", "virtual", "qr")
    assert [x["card_no"] for x in lines] == [prof.card_number(n) for n in (1, 2, 3)]
    assert lines[0] | {"card_no": None} == lines[1] | {"card_no": None}
    assert lines[0]["issuer_id"] == "02205810FFFFFFFF" and lines[0]["city"] == "5810"
    assert lines[0]["card_type"] == "01" and lines[0]["price"] == 2000 and lines[0]["profile"] == "gd-guangzhou"
    assert [x["issued_on"] for x in lines] == ["2026-11-24", "2026-11-24", "2026-11-25"]


def test_balance_up_to_the_profile_maximum():
    prof = profile()
    st = issue_card(prof, [K3], prof.card_number(1), DAY, balance=prof.max_balance).state
    assert st.purse.balance == prof.max_balance
    _, card = card_of(st)
    assert card.get_balance("real") == prof.max_balance
    with pytest.raises(IssueError, match=r"^--balance 100001: must be 0\.\.100000 fen"):
        issue_card(prof, [K3], prof.card_number(1), DAY, balance=prof.max_balance + 1)


def test_non_test_key_set_is_refused():
    doc = {"name": "GD production 3DES", "test_only": False, "algorithm": "3des",
           "keys": {r: {"index": 1, "version": 1, "value": e.key.value.hex(), "kcv": e.kcv}
                    for r, e in K3.keys.items()}}
    prod = KeySet.from_dict(doc, "prod.toml")
    prof = profile()
    with pytest.raises(IssueError, match=r"prod\.toml: GD production 3DES is not marked test_only"):
        issue_card(prof, [prod], prof.card_number(1), DAY)


def test_card_number_outside_the_profile_is_refused():
    prof = profile("gd-shenzhen")
    with pytest.raises(IssueError, match=r"numbers start with 031048704"):
        issue_card(prof, [K3], "03105810000000000001", DAY)


def test_blank_card_holds_the_structure_and_the_transport_key_only():
    prof = profile()
    tk = transport_key_for(select_key_sets(prof, [K4, K3], None))
    assert tk == K3.keys["card_master"].key          # lowest key index: 01, 3DES, as the key set holds it
    blank = blank_card(prof, tk)
    assert blank.key_sets == {} and blank.transport_key == tk
    assert blank.files[0x15].data == bytes(30) and blank.files[0x17].data == bytes(60)
    assert (blank.purse.balance, blank.purse.max_balance, blank.purse.overdraft_limit) == (0, 100000, 0)
    os_, card = card_of(blank)
    with pytest.raises(CardError) as refused:      # no purse key yet: the card says so, nothing else
        card.initialize_load(1, 100, bytes(6))
    assert refused.value.sw == 0x9403
    assert transport_key_for(select_key_sets(prof, [K3, K4], "sm4")) == K4.keys["card_master"].key


def test_transport_key_needs_a_card_master():
    ks = KeySet(K3.name, True, K3.algorithm, K3.diversification,
                {r: e for r, e in K3.keys.items() if r != "card_master"}, "no-master.toml")
    with pytest.raises(IssueError, match=r"no-master\.toml: no card_master"):
        transport_key_for({1: ks})


def test_a_key_set_is_installed_at_its_own_key_index():
    """Terminals send the index the key set's keys carry; an SM4 set numbered 01 answers at 01."""
    import tomllib
    import datetime as _dt
    from keysets import KeySet, TEST_KEYSET_DIR
    from specs.catalog import card_profile_path
    from ykt_card.card.cos import TUnionCardOS
    from ykt_card.issuance.personalise import issue_card
    from ykt_card.issuance.profile import load_card_profile

    doc = tomllib.loads((TEST_KEYSET_DIR / "gd-test-sm4.toml").read_text())
    for entry in doc["keys"].values():
        entry["index"] = 1
    sm4_at_01 = KeySet.from_dict(doc, "sm4-at-01.toml")
    profile = load_card_profile(card_profile_path("reference"))
    card = TUnionCardOS(issue_card(profile, [sm4_at_01], profile.card_number(1), _dt.date(2026, 1, 1),
                                    balance=100).state)
    card.power_on()
    assert card.process(bytes.fromhex("00A4040008A00000063201010500"))[-2:] == b"\x90\x00"
    init = card.process(bytes.fromhex("805001020B01000000014403000000010F"))
    assert init[-2:] == b"\x90\x00" and init[10] == 0x04          # index 01 answered, algorithm SM4
    assert card.process(bytes.fromhex("805001020B02000000014403000000010F")) == bytes.fromhex("9403")
