"""The virtual PSAM Card OS, written as exact exchange tables (command in, response out).

The purchase tables are checked against the `computed` vectors of vectors.json: a PSAM whose master keys
are the vector's master key (diversified issuer, then serial, D2) must give the vector's MAC1 for the
vector's inputs at terminal sequence 00000102, accept its MAC2, recompute its TAC through 801A 44 /
80FA 05, and MAC an APPLICATION BLOCK the way the vector's secure-messaging MAC says.
"""
from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keysets.randomness import RandomSource
from keysets import (TEST_KEYSET_DIR, Algorithm, KeySet, PurchaseSession, SecretKey, diversify, pad80,
                     purchase_tac, purchase_tac_input, secure_messaging_mac)
from keysets.ciphers import tdes
from tests.reference import h, vectors
from ykt_card.card.image import ImageError
from ykt_card.layouts.psam import PsamEF15, PsamEF17
from ykt_card.layouts.names import KEY_TYPE_APP_BLOCK
from ykt_card.psam.cos import (ATR, SEQ_EXHAUSTED, PsamOS, PsamState, PsamStateError, raw_mac,
                               state_summary)
from ykt_card.psam.issue import (issue_psam, load_psam, psam_from_doc, psam_saver, psam_to_doc,
                                 save_psam)

TERMINAL = "112233445566"
ROLES = ("purchase", "load", "tac", "app_maintenance")


def vector(alg: str) -> dict:
    return vectors()["computed"][alg]


def keyset(alg: str, master: str, index: int, *, version: int = 1, diversification=("issuer", "serial"),
           roles=ROLES, test_only: bool = True, name: str | None = None) -> KeySet:
    """A key set whose every role holds `master` (as the computed vectors assume)."""
    algorithm = Algorithm.parse(alg)
    kcv = SecretKey(algorithm, h(master)).kcv
    return KeySet.from_dict({
        "name": name or f"vector {alg} TEST",
        "test_only": test_only,
        "algorithm": alg,
        "diversification": list(diversification),
        "keys": {r: {"index": index, "version": version, "value": master, "kcv": kcv} for r in roles},
    })


def vector_keyset(alg: str, **kw) -> KeySet:
    return keyset(alg, vector(alg)["master_key"], 1 if alg == "3des" else 2, **kw)


def gd(alg: str) -> KeySet:
    return KeySet.load(TEST_KEYSET_DIR / f"gd-test-{alg}.toml")


def make_psam(keysets, seq: int = 1, **kw) -> PsamOS:
    state = issue_psam(list(keysets), h(TERMINAL), next_terminal_seq=seq)
    os_ = PsamOS(state, random=RandomSource(7), **kw)
    os_.power_on()
    return os_


def run(psam: PsamOS, table: list[tuple[str, str]]) -> None:
    """nfcpy-style exchange table: each command must get exactly the expected response."""
    for i, (capdu, expected) in enumerate(table):
        got = psam.process(h(capdu)).hex().upper()
        assert got == expected.replace(" ", "").upper(), f"step {i}: {capdu} -> {got}, expected {expected}"


def init_data(alg: str, *, tx_type: str | None = None, key_version: str = "01", algorithm_id: str | None = None,
              with_issuer: bool = True) -> str:
    """The 8070 data field for the computed purchase vector."""
    v, p = vector(alg), vector(alg)["purchase"]
    alg_id = algorithm_id or ("00" if alg == "3des" else "04")
    return (p["random"] + p["offline_counter"] + p["amount"] + (tx_type or p["type"]) + p["datetime"]
            + key_version + alg_id + v["serial8"] + (v["issuer_id"] if with_issuer else ""))


SELECT_DF = ("00A4000002 8011", "9000")


def doc(psam: PsamOS) -> dict:
    return psam_to_doc(psam.state)


# --- the purchase: 8070 / 8072 against the vectors ------------------------------------------------------

@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_purchase_exchange_matches_vectors(alg):
    v, p = vector(alg), vector(alg)["purchase"]
    psam = make_psam([vector_keyset(alg)], seq=0x102)
    run(psam, [
        SELECT_DF,
        ("8070000024" + init_data(alg) + "08", "6108"),
        ("00C0000008", p["terminal_seq"] + p["mac1"] + "9000"),
        ("8072000004" + p["mac2"], "9000"),
        ("8072000004" + p["mac2"], "6901"),          # the session is spent
    ])
    assert psam.state.next_terminal_seq == 0x103
    assert psam.state.mac2_failures.count == 0
    assert v["serial8"] == v["card_no"][4:]          # serial8 = EF15 bytes 12..19


@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_purchase_without_le_and_partial_get_response(alg):
    p = vector(alg)["purchase"]
    psam = make_psam([vector_keyset(alg)], seq=0x102)
    run(psam, [
        SELECT_DF,
        ("8070000024" + init_data(alg), "6108"),       # T=0: Le never travels with a case-4 command
        ("00C0000009", "6C08"),                        # too much asked: the data waits
        ("00C0000004", p["terminal_seq"] + "6104"),
        ("00C0000004", p["mac1"] + "9000"),
        ("00C0000004", "6985"),                        # nothing left
    ])


def test_two_keysets_chosen_by_algorithm_id_and_version():
    psam = make_psam([vector_keyset("3des"), vector_keyset("sm4")], seq=0x102)
    sm4 = vector("sm4")["purchase"]
    run(psam, [
        SELECT_DF,
        ("8070000024" + init_data("sm4"), "6108"),
        ("00C0000008", "00000102" + sm4["mac1"] + "9000"),
        ("8070000024" + init_data("3des", key_version="02"), "9403"),   # no 3DES purchase key version 02
        ("8070000024" + init_data("3des", algorithm_id="01"), "9403"),  # no such algorithm
        ("8072000004" + sm4["mac2"], "9000"),          # the refused 8070s left the SM4 session alone
    ])
    assert psam.state.next_terminal_seq == 0x103


def test_another_8070_replaces_the_pending_purchase():
    p = vector("3des")["purchase"]
    session_103 = PurchaseSession.derive(Algorithm.TDES, h(p["dpk"]), h(p["random"]), 7, 0x103)
    mac1_103 = session_103.mac1(200, 6, h(TERMINAL), h(p["datetime"])).hex()
    psam = make_psam([vector_keyset("3des")], seq=0x102)
    run(psam, [
        SELECT_DF,
        ("8070000024" + init_data("3des"), "6108"),
        ("8070000024" + init_data("3des"), "6108"),    # sequence 103: a new session
        ("00C0000008", "00000103" + mac1_103 + "9000"),
        ("8072000004" + p["mac2"], "9302"),            # MAC2 of the session of sequence 102
        ("8072000004" + session_103.mac2(200).hex(), "9000"),
    ])


def test_wrong_mac2_is_refused_remembered_and_the_session_kept(tmp_path):
    p = vector("3des")["purchase"]
    path = tmp_path / "psam.json"
    psam = make_psam([vector_keyset("3des")], seq=0x102)
    save_psam(path, psam.state)
    psam.on_change = psam_saver(path)
    bad = bytes([h(p["mac2"])[0] ^ 1]) + h(p["mac2"])[1:]
    run(psam, [
        SELECT_DF,
        ("8070000024" + init_data("3des"), "6108"),
        ("8072000004" + bad.hex(), "9302"),
    ])
    failures = load_psam(path).mac2_failures          # saved before the answer
    assert (failures.count, failures.last_serial, failures.last_issuer_id, failures.last_terminal_seq) == (
        1, h(vector("3des")["serial8"]), h(vector("3des")["issuer_id"]), 0x102)
    run(psam, [("8072000004" + p["mac2"], "9000")])    # BJ retries 8072: the session survived
    assert load_psam(path).mac2_failures.count == 1


def test_the_wrong_mac2_count_stops_at_its_four_bytes(tmp_path):
    from ykt_card.psam.cos import MAC2_FAILURES_MAX, Mac2Failures
    p = vector("3des")["purchase"]
    path = tmp_path / "psam.json"
    psam = make_psam([vector_keyset("3des")], seq=0x102)
    psam.state.mac2_failures = Mac2Failures(MAC2_FAILURES_MAX)
    save_psam(path, psam.state)
    psam.on_change = psam_saver(path)
    bad = bytes([h(p["mac2"])[0] ^ 1]) + h(p["mac2"])[1:]
    run(psam, [SELECT_DF, ("8070000024" + init_data("3des"), "6108"), ("8072000004" + bad.hex(), "9302")])
    assert load_psam(path).mac2_failures.count == MAC2_FAILURES_MAX == 0xFFFFFFFF


def test_8072_without_a_pending_purchase_and_after_power_off():
    """A reset loses the selection but not the pending purchase: it is persistent state (reference
    section 7, "pending SESPK for 8072"), so a torn purchase recovered after a restart verifies its MAC2."""
    p = vector("3des")["purchase"]
    psam = make_psam([vector_keyset("3des")], seq=0x102)
    run(psam, [SELECT_DF, ("8072000004" + p["mac2"], "6901"), ("8070000024" + init_data("3des"), "6108")])
    assert psam.has_pending_purchase
    assert psam.power_on() == ATR
    assert psam.has_pending_purchase and psam.current_df == 0x3F00
    run(psam, [SELECT_DF, ("8072000004" + p["mac2"], "9000"), ("8072000004" + p["mac2"], "6901")])
    assert psam.state.pending_purchase is None


def test_single_factor_8070_for_a_one_level_keyset():
    """Lc 1C (serial only, CS/MOHURD style) works when the key set diversifies once, by the serial."""
    v, p = vector("3des"), vector("3des")["purchase"]
    ks = vector_keyset("3des", diversification=("serial",))
    psam = make_psam([ks], seq=0x102)
    dpk = diversify(Algorithm.TDES, h(v["master_key"]), [h(v["serial8"])])
    mac1 = PurchaseSession.derive(Algorithm.TDES, dpk, h(p["random"]), 7, 0x102).mac1(
        200, 6, h(TERMINAL), h(p["datetime"]))
    run(psam, [
        SELECT_DF,
        ("8070000024" + init_data("3des"), "6700"),    # two factors for a one-level key set
        ("807000001C" + init_data("3des", with_issuer=False), "6108"),
        ("00C0000008", "00000102" + mac1.hex().upper() + "9000"),
    ])
    two_level = make_psam([vector_keyset("3des")])
    run(two_level, [SELECT_DF, ("807000001C" + init_data("3des", with_issuer=False), "6700")])


def test_diversification_order_follows_the_keyset():
    v, p = vector("3des"), vector("3des")["purchase"]
    psam = make_psam([vector_keyset("3des", diversification=("serial", "issuer"))], seq=0x102)
    dpk = diversify(Algorithm.TDES, h(v["master_key"]), [h(v["serial8"]), h(v["issuer_id"])])
    assert dpk != h(p["dpk"])
    mac1 = PurchaseSession.derive(Algorithm.TDES, dpk, h(p["random"]), 7, 0x102).mac1(
        200, 6, h(TERMINAL), h(p["datetime"]))
    run(psam, [SELECT_DF, ("8070000024" + init_data("3des"), "6108"),
               ("00C0000008", "00000102" + mac1.hex().upper() + "9000")])


# --- the terminal sequence ------------------------------------------------------------------------------

def test_sequence_starts_at_1_increments_and_survives_a_restart(tmp_path):
    path = tmp_path / "psam.json"
    state = issue_psam([vector_keyset("3des")], h(TERMINAL))
    assert state.next_terminal_seq == 1
    save_psam(path, state)
    seen_on_disk = []

    def save_then_look(st: PsamState) -> None:
        save_psam(path, st)
        seen_on_disk.append(load_psam(path).next_terminal_seq)

    psam = PsamOS(load_psam(path), on_change=save_then_look)
    psam.power_on()
    run(psam, [SELECT_DF])
    sequences = []
    for _ in range(3):
        assert psam.process(h("8070000024" + init_data("3des"))) == h("6108")
        answer = psam.process(h("00C0000008"))
        sequences.append(int.from_bytes(answer[:4], "big"))
    assert sequences == [1, 2, 3]
    assert seen_on_disk == [2, 3, 4]                  # each save happened before its answer
    again = PsamOS(load_psam(path))                    # "restart": a new OS from the image
    again.power_on()
    run(again, [SELECT_DF, ("8070000024" + init_data("3des"), "6108")])
    assert again.process(h("00C0000004")) == h("00000004 6104")


def test_a_failed_save_hands_out_no_sequence():
    def broken(_state: PsamState) -> None:
        raise OSError(28, "No space left on device")

    psam = make_psam([vector_keyset("3des")], seq=0x102, on_change=broken)
    before = doc(psam)
    run(psam, [SELECT_DF, ("8070000024" + init_data("3des"), "6581")])
    assert doc(psam) == before and not psam.has_pending_purchase
    psam.on_change = None
    run(psam, [("8070000024" + init_data("3des"), "6108"), ("00C0000004", "00000102 6104")])


def test_sequence_exhausted():
    psam = make_psam([vector_keyset("3des")], seq=0xFFFFFFFF)
    run(psam, [SELECT_DF, ("8070000024" + init_data("3des"), "6108"), ("00C0000004", "FFFFFFFF 6104"),
               ("8070000024" + init_data("3des"), "9402")])
    assert psam.state.next_terminal_seq == SEQ_EXHAUSTED


# --- 801A / 80FA: TAC recomputation and the APPLICATION BLOCK MAC -----------------------------------------

@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_tac_recomputation_801A_44_80FA_05(alg):
    v, p = vector(alg), vector(alg)["purchase"]
    algorithm = Algorithm.parse(alg)
    bs = algorithm.block_size
    message = pad80(purchase_tac_input(200, 6, h(TERMINAL), 0x102, h(p["datetime"])), bs)
    body = bytes(bs) + message
    psam = make_psam([vector_keyset(alg)])
    run(psam, [
        SELECT_DF,
        ("801A440010" + v["serial8"] + v["issuer_id"], "9000"),
        (f"80FA0500{len(body):02X}" + body.hex(), "6104"),
        ("00C0000004", p["tac"] + "9000"),
    ])
    assert h(p["tac"]) == purchase_tac(algorithm, h(p["dtk"]), 200, 6, h(TERMINAL), 0x102, h(p["datetime"]))


@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_tac_of_a_real_keyset_equals_keysets_purchase_tac(alg):
    """With the GD test keys (TAC master ≠ purchase master), P2 = the key index, and P2 00 = default."""
    ks = gd(alg)
    algorithm, bs = ks.algorithm, ks.algorithm.block_size
    serial, issuer, when = h("5810000000001234"), h("58105810FFFFFFFF"), h("20261123081530")
    dtk = diversify(algorithm, ks.entry("tac").key.value, ks.factors(issuer, serial))
    expected = purchase_tac(algorithm, dtk, 350, 9, h(TERMINAL), 77, when)
    body = bytes(bs) + pad80(purchase_tac_input(350, 9, h(TERMINAL), 77, when), bs)
    index = ks.entry("tac").index
    psam = make_psam([gd("3des"), gd("sm4")])
    for p2 in ([index] if alg == "sm4" else [index, 0]):
        run(psam, [
            SELECT_DF,
            (f"801A44{p2:02X}10" + serial.hex() + issuer.hex(), "9000"),
            (f"80FA0500{len(body):02X}" + body.hex(), "6104"),
            ("00C0000004", expected.hex() + "9000"),
        ])


@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_application_block_mac_with_the_app_maintenance_type(alg):
    """Reference 5.1 step 4: 801A 45 .. then 80FA 05 00 Lc challenge‖0..‖841E000004‖80 00.."""
    v = vector(alg)
    sm = v["secure_messaging_mac"]
    bs = Algorithm.parse(alg).block_size
    body = h(sm["iv"]) + pad80(h(sm["apdu_without_mac"]), bs)
    card_key = h(v["card_key_div_by_serial"])
    assert secure_messaging_mac(Algorithm.parse(alg), card_key, h(sm["challenge"]), h("841E000004")) == h(sm["mac"])
    psam = make_psam([vector_keyset(alg)])
    run(psam, [
        SELECT_DF,
        ("801A450010" + v["serial8"] + v["issuer_id"], "9000"),
        (f"80FA0500{len(body):02X}" + body.hex(), "6104"),
        ("00C0000004", sm["mac"] + "9000"),
    ])


@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_app_block_type_uses_app_block_or_falls_back_to_app_maintenance(alg):
    ks = gd(alg)
    serial, issuer, challenge = h("5810000000001234"), h("58105810FFFFFFFF"), h("5A6B7C8D")
    factors = ks.factors(issuer, serial)
    bs = ks.algorithm.block_size
    body = challenge + bytes(bs - 4) + pad80(h("841E000004"), bs)
    usage = f"{0x40 | KEY_TYPE_APP_BLOCK:02X}"
    for psam_ks, role in ((ks, "app_block"),
                          (KeySet(ks.name, True, ks.algorithm, ks.diversification,
                                  {r: e for r, e in ks.keys.items() if r != "app_block"}), "app_maintenance")):
        card_key = diversify(ks.algorithm, ks.entry(role).key.value, factors)
        expected = secure_messaging_mac(ks.algorithm, card_key, challenge, h("841E000004"))
        psam = make_psam([psam_ks])
        run(psam, [
            SELECT_DF,
            (f"801A{usage}00 10" + serial.hex() + issuer.hex(), "9000"),
            (f"80FA0500{len(body):02X}" + body.hex(), "6104"),
            ("00C0000004", expected.hex() + "9000"),
        ])


def test_80FA_encrypt_and_unaligned_mac_padding():
    ks = vector_keyset("3des")
    v = vector("3des")
    card_key = h(v["card_key_div_by_serial"])
    psam = make_psam([ks])
    plain = h("0011223344556677 8899AABBCCDDEEFF")
    run(psam, [
        SELECT_DF,
        ("801A420010" + v["serial8"] + v["issuer_id"], "9000"),      # purchase key: DPK
        ("80FA000010" + plain.hex(), "6110"),
        ("00C0000010", tdes(card_key).encrypt(plain).hex() + "9000"),
        ("80FA000003 010203", "6108"),                               # padded 010203 80 00..
        ("00C0000008", tdes(card_key).encrypt(h("0102038000000000")).hex() + "9000"),
    ])
    # unaligned MAC input: the PSAM pads it; aligned input: it does not
    iv, msg = h("1122334400000000"), h("841E000004")
    expected = secure_messaging_mac(Algorithm.TDES, card_key, h("11223344"), msg)
    assert raw_mac(Algorithm.TDES, card_key, iv, msg) == expected
    assert raw_mac(Algorithm.TDES, card_key, iv, pad80(msg, 8)) == expected
    run(psam, [("80FA05000D" + (iv + msg).hex(), "6104"), ("00C0000004", expected.hex() + "9000")])


# --- files, challenge, ATR ------------------------------------------------------------------------------

def test_startup_sequence_files_and_challenge():
    state = issue_psam([gd("3des"), gd("sm4")], h(TERMINAL), h("31044530000012345678"),
                       issuer_id=h("58105810FFFFFFFF"), receiver_id=h("5810000000000000"))
    psam = PsamOS(state, random=RandomSource(3))
    assert psam.power_on() == ATR == h("3B08 594B545053414D 01")
    twin = RandomSource(3)
    run(psam, [
        ("00B0960006", TERMINAL + "9000"),
        ("00B095000E", "31044530000012345678 01 00 00 00 9000"),
        ("00B0950000", "31044530000012345678 01 00 00 00 9000"),     # Le 00: to the end
        ("00B0950A04", "01000000 9000"),
        ("00B0000A01", "01 9000"),                                   # current EF = EF15
        ("00B0960008", "6C06"),                                      # too long: T=0 says how much
        ("00B0970001", "6A82"),                                      # EF17 is in DF 8011
        ("00A4000002 3F00", "9000"),
        SELECT_DF,
        ("00B0970001", "01 9000"),                                   # key index (D16: 01 = 3DES)
        ("00B0970019", "01 58105810FFFFFFFF 5810000000000000 00000000 00000000 9000"),
        ("00B0960006", "6A82"),
        ("0084000004", twin(4).hex() + "9000"),
        ("0084000008", twin(8).hex() + "9000"),
        ("00A4000C02 3F00", "9000"),
    ])
    assert PsamEF17.decode(state.ef17)["key_index"] == "01"
    assert PsamEF15.decode(state.ef15)["serial"] == "31044530000012345678"


# --- malformed and refused commands: exact status words, no state change -----------------------------------

MALFORMED = [
    ("807000", "6700"),                                   # header too short
    ("80700000", "6700"),                                 # no data at all
    ("8070000024 00112233", "6700"),                      # Lc says 36, 4 follow
    ("80700000000024" + "00" * 36, "6700"),               # extended length: not in T=0
    ("8070010024" + init_data("3des"), "6A86"),
    ("8070000023" + init_data("3des")[:-2], "6700"),
    ("8070000024" + init_data("3des", tx_type="02"), "6A80"),
    ("8070000024" + init_data("3des", key_version="07"), "9403"),
    ("8070000024" + init_data("3des", algorithm_id="04"), "9403"),
    ("807000001C" + init_data("3des", with_issuer=False), "6700"),
    ("8072000003 112233", "6700"),
    ("8072010004 11223344", "6A86"),
    ("8072000004 11223344", "6901"),
    ("801A040000", "6A86"),                               # 0 levels (no data, Lc 0 is the Le form)
    ("801A640018" + "00" * 24, "6A86"),                   # 3 levels
    ("801A440008 0011223344556677", "6700"),              # 2 levels need 16 bytes
    ("801A460010" + "00" * 16, "6A88"),                   # type 6 (MAC key): not held
    ("801A4400100011", "6700"),                           # Lc says 16, 2 follow
    ("801A440710" + "00" * 16, "6A88"),                   # no TAC key with index 07
    ("801A240008 0011223344556677", "6A86"),              # 1 level for a 2-level key set
    ("80FA050010" + "00" * 16, "6901"),                   # no current key
    ("80FA010008" + "00" * 8, "6A86"),
    ("80FA050108" + "00" * 8, "6A86"),
    ("00B0990001", "6A82"),
    ("00B0972001", "6B00"),                               # offset 32 of a 25-byte file
    ("00B0970020", "6C19"),                               # Le past the end: T=0 tells what is left
    ("00B0D70001", "6A86"),                               # P1 100x xxxx only
    ("00B09700", "6700"),                                 # no Le
    ("00A4040002 8011", "6A86"),
    ("00A4000002 1234", "6A82"),
    ("00A4000003 801100", "6700"),
    ("0084000005", "6700"),
    ("0084010004", "6A86"),
    ("00840000", "6700"),
    ("00C0000008", "6985"),                               # nothing to get
    ("00C0010008", "6A86"),
    ("8470000004 00000000", "6E00"),
    ("80A4000002 8011", "6D00"),
    ("0070000024" + "00" * 36, "6D00"),
    ("80CA000000", "6D00"),
]


@pytest.mark.parametrize("capdu,sw", MALFORMED)
def test_malformed_or_refused_commands_answer_exact_status_words(capdu, sw):
    psam = make_psam([vector_keyset("3des")])
    run(psam, [SELECT_DF])
    before = doc(psam)
    run(psam, [(capdu, sw)])
    assert doc(psam) == before
    assert not psam.has_pending_purchase and not psam.has_current_key


def test_purse_commands_need_df_8011():
    psam = make_psam([vector_keyset("3des")])
    v = vector("3des")
    run(psam, [
        ("8070000024" + init_data("3des"), "6985"),
        ("801A440010" + v["serial8"] + v["issuer_id"], "6985"),
        ("80FA050010" + "00" * 16, "6985"),
        ("8072000004 11223344", "6985"),
    ])
    assert psam.state.next_terminal_seq == 1


def test_80FA_lengths_after_801A():
    v = vector("sm4")
    psam = make_psam([vector_keyset("sm4")])
    run(psam, [
        SELECT_DF,
        ("801A440010" + v["serial8"] + v["issuer_id"], "9000"),
        ("80FA050010" + "00" * 16, "6700"),                # IV only: nothing to MAC (SM4 IV is 16 bytes)
        ("80FA050008" + "00" * 8, "6700"),
        ("80FA0000", "6700"),                              # nothing to encrypt
    ])
    assert psam.has_current_key


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cla=st.sampled_from([0x00, 0x80, 0x84, 0x04]),
       ins=st.sampled_from([0x70, 0x72, 0x1A, 0xFA, 0xA4, 0xB0, 0x84, 0xC0, 0x00]),
       rest=st.binary(max_size=60))
def test_no_command_gets_6F00_and_only_8070_and_a_wrong_mac2_change_state(cla, ins, rest):
    psam = make_psam([vector_keyset("3des")])
    run(psam, [SELECT_DF, ("8070000024" + init_data("3des"), "6108")])
    before = doc(psam)
    rapdu = psam.process(bytes((cla, ins)) + rest)
    sw = rapdu[-2:].hex().upper()
    assert sw != "6F00"
    changed = doc(psam) != before
    assert changed == ((cla, ins) == (0x80, 0x70) and sw == "6108"
                       or (cla, ins) == (0x80, 0x72) and sw == "9302")


# --- images ---------------------------------------------------------------------------------------------

def test_image_round_trip_gives_the_same_psam(tmp_path):
    path = tmp_path / "psam.json"
    state = issue_psam([gd("3des"), gd("sm4")], h(TERMINAL))
    state.next_terminal_seq = 41
    save_psam(path, state)
    loaded = load_psam(path)
    assert psam_to_doc(loaded) == psam_to_doc(state)
    text = path.read_text()
    assert json.loads(text)["kind"] == "psam" and json.loads(text)["format"] == 1
    assert (path.stat().st_mode & 0o777) == 0o600
    answers = []
    for st_ in (state, loaded):
        psam = PsamOS(st_)
        psam.power_on()
        run(psam, [SELECT_DF])
        psam.process(h("8070000024" + init_data("3des")))
        answers.append(psam.process(h("00C0000008")))
    assert answers[0] == answers[1] and answers[0][:4] == (41).to_bytes(4, "big")


def _corrupt(tmp_path, mutate) -> str:
    path = tmp_path / "psam.json"
    save_psam(path, issue_psam([gd("3des")], h(TERMINAL)))
    d = json.loads(path.read_text())
    mutate(d)
    path.write_text(json.dumps(d))
    with pytest.raises(ImageError) as err:
        load_psam(path)
    return str(err.value)


def test_truncated_and_foreign_images_are_refused(tmp_path):
    path = tmp_path / "psam.json"
    save_psam(path, issue_psam([gd("3des")], h(TERMINAL)))
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_psam(path)
    with pytest.raises(ImageError, match="no such PSAM image file"):
        load_psam(tmp_path / "missing.json")
    assert "kind" in _corrupt(tmp_path, lambda d: d.update(kind="card"))
    assert "format" in _corrupt(tmp_path, lambda d: d.update(format=2))


@pytest.mark.parametrize("mutate,field", [
    (lambda d: d["files"].update(EF16="11223344"), "files.EF16: must be 6 bytes"),
    (lambda d: d["files"].pop("EF15"), "files.EF15: missing"),
    (lambda d: d["files"].update(EF15="ZZ"), "files.EF15: not hexadecimal"),
    (lambda d: d.update(next_terminal_seq=0), "next_terminal_seq"),
    (lambda d: d.update(next_terminal_seq="1"), "next_terminal_seq: must be an integer"),
    (lambda d: d["mac2_failures"].update(last_serial="0011"), "mac2_failures.last_serial"),
    (lambda d: d["mac2_failures"].pop("count"), "mac2_failures.count: missing"),
    (lambda d: d.update(keysets=[]), "keysets"),
    (lambda d: d["keysets"][0].update(test_only=False), "keysets[0].test_only"),
    (lambda d: d["keysets"][0]["keys"]["purchase"].update(kcv="000000"), "keysets[0].keys.purchase.kcv: KCV mismatch"),
    (lambda d: d["keysets"][0]["keys"]["tac"].update(value="00" * 15), "keys.tac.value: must be 16 bytes"),
    (lambda d: d["files"].update(EF17="07" + d["files"]["EF17"][2:]), "files.EF17: key index 07"),
    (lambda d: d["keysets"][0]["keys"].pop("tac"), "keysets[0].keys.tac: required role missing"),
    (lambda d: d["keysets"][0].update(diversification=[]), "diversification must not be []"),
    (lambda d: d["mac2_failures"].update(count=4294967296), "mac2_failures.count: 4294967296 out of range"),
    (lambda d: d["mac2_failures"].update(count=-1), "mac2_failures.count: -1 out of range"),
    (lambda d: d["mac2_failures"].update(last_terminal_seq=2**32), "mac2_failures.last_terminal_seq"),
    (lambda d: d["files"].update(EF18="00"), "files.EF18: unknown field"),
    (lambda d: d["keysets"][0].update(colour="red"), "keysets[0].colour: unknown field"),
    (lambda d: d.update(kind="psam", format=True), "format: must be 1, got True"),
    (lambda d: d.update(extra=1), "extra: unknown field"),
])
def test_corrupt_image_fields_are_named(tmp_path, mutate, field):
    message = _corrupt(tmp_path, mutate)
    assert field in message
    for role in ("purchase", "tac", "app_maintenance"):
        assert gd("3des").entry(role).key.value.hex().upper() not in message


def test_issue_refuses_bad_input_and_non_test_keysets():
    with pytest.raises(PsamStateError, match="not marked test_only"):
        issue_psam([vector_keyset("3des", test_only=False, name="vector 3des")], h(TERMINAL))
    with pytest.raises(PsamStateError, match="terminal_id: must be 6 bytes"):
        issue_psam([gd("3des")], h("1122"))
    with pytest.raises(PsamStateError, match="serial: must be 10 bytes"):
        issue_psam([gd("3des")], h(TERMINAL), h("00"))
    with pytest.raises(PsamStateError, match="diversification must not be"):
        issue_psam([vector_keyset("3des", diversification=())], h(TERMINAL))
    with pytest.raises(PsamStateError, match="8070 could not tell them apart"):
        issue_psam([gd("3des"), vector_keyset("3des", name="other 3des TEST")], h(TERMINAL))
    with pytest.raises(PsamStateError, match="at least one key set"):
        issue_psam([], h(TERMINAL))


def test_no_key_value_in_reprs_summaries_or_errors():
    ks = [gd("3des"), gd("sm4")]
    state = issue_psam(ks, h(TERMINAL))
    psam = PsamOS(state)
    psam.power_on()
    v = vector("3des")
    run(psam, [SELECT_DF, ("801A440010" + v["serial8"] + v["issuer_id"], "9000"),
               ("8070000024" + init_data("3des"), "6108")])
    shown = " ".join([repr(state), repr(psam), repr(psam._key), repr(psam._pending),
                      json.dumps(state_summary(state))])
    for k in ks:
        for entry in k.keys.values():
            assert entry.key.value.hex().upper() not in shown.upper()
    assert state_summary(state)["keysets"][0]["keys"]["purchase"]["kcv"] == "2250D1"


def test_psam_from_doc_rejects_a_card_image_document():
    with pytest.raises(ImageError, match="kind"):
        psam_from_doc({"format": 1, "kind": "card"})
