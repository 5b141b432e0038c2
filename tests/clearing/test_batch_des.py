"""`clearing.batch_des` and the batched TAC path: equal to pycryptodome's DES, to the reference vectors and to
the one-record TAC (`keysets.purchase_tac`/`load_tac`), lane by lane, whatever the mix of cards in a batch."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
from Crypto.Cipher import DES
from hypothesis import given, settings, strategies as st

from clearing.batch_des import des_cbc_mac, des_encrypt, key_schedule
from clearing.tac import TacColumns, TacVerifier
from keysets import Algorithm, KeyEntry, KeySet, SecretKey

from .tac_cases import NUMBERS, tacs_and_verdicts

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "reference" / "vectors.json").read_text())


def _u64(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=">u8").astype(np.uint64)


@settings(max_examples=40)
@given(st.lists(st.tuples(st.binary(min_size=8, max_size=8), st.binary(min_size=8, max_size=8)), min_size=1,
                max_size=20))
def test_each_lane_is_des_under_its_own_key(pairs):
    keys, blocks = _u64(b"".join(k for k, _ in pairs)), _u64(b"".join(b for _, b in pairs))
    got = des_encrypt(keys, blocks)
    for (key, block), lane in zip(pairs, got.tolist()):
        assert lane.to_bytes(8, "big") == DES.new(key, DES.MODE_ECB).encrypt(block)


@settings(max_examples=40)
@given(st.integers(1, 4).flatmap(lambda m: st.lists(
    st.tuples(st.binary(min_size=8, max_size=8), st.binary(min_size=8 * m, max_size=8 * m)), min_size=1, max_size=12)))
def test_cbc_mac_is_the_first_half_of_the_last_cbc_block(pairs):
    m = len(pairs[0][1]) // 8
    blocks = _u64(b"".join(msg for _, msg in pairs)).reshape(len(pairs), m)
    macs = des_cbc_mac(key_schedule(_u64(b"".join(k for k, _ in pairs))), blocks)
    for (key, msg), mac in zip(pairs, macs.tolist()):
        assert mac.to_bytes(4, "big") == DES.new(key, DES.MODE_CBC, iv=bytes(8)).encrypt(msg)[-8:-4]


def test_the_real_card_load_tac():
    """pboc_load_3des: the TAC a real card returned to CREDIT FOR LOAD, from its TAC key and input."""
    v = VECTORS["pboc_load_3des"]
    padded = bytes.fromhex(v["tac_input"].replace(" ", "")) + bytes.fromhex("8000000000000000")
    mac = des_cbc_mac(key_schedule(_u64(bytes.fromhex(v["tac_key"]))), _u64(padded).reshape(1, -1))
    assert f"{int(mac[0]):08X}" == v["credit_for_load"]["rapdu_tac"]


def _vector_keyset() -> KeySet:
    v = VECTORS["computed"]["3des"]
    key = KeyEntry("tac", 1, 1, SecretKey(Algorithm.TDES, bytes.fromhex(v["master_key"])))
    return KeySet("VECTORS", True, Algorithm.TDES, ("issuer", "serial"), {"tac": key})


def test_the_computed_vectors_through_the_batch():
    """The purchase and the load of the computed 3DES vectors (issuer, then serial: D2) in one batch."""
    v = VECTORS["computed"]["3des"]
    p, ld = v["purchase"], v["load"]
    after = int(ld["balance_before"], 16) + int(ld["amount"], 16)
    columns = TacColumns([6, 2], [int(p["amount"], 16), int(ld["amount"], 16)], [0, after], [0, 0],
                         [0, int(ld["online_counter"], 16)], [p["terminal_id"], ld["terminal_id"]],
                         [int(p["terminal_seq"], 16), None], [p["datetime"], ld["datetime"]], [p["tac"], ld["tac"]])
    ks = _vector_keyset()
    cards = [(v["issuer_id"], v["card_no"])]
    assert TacVerifier([ks]).des_tacs_verify(ks, cards, np.zeros(2, dtype=np.intp), columns).tolist() == [True, True]


transaction = st.fixed_dictionaries({
    "card": st.integers(0, 5), "load": st.booleans(), "amount": st.integers(0, 2**32 - 1),
    "after": st.integers(-2**31, 2**31 - 1), "overdraft": st.integers(0, 0xFFFFFF), "counter": st.integers(0, 0xFFFF),
    "terminal": st.binary(min_size=6, max_size=6).map(lambda b: b.hex().upper()), "seq": st.integers(0, 2**32 - 1),
    "type": st.sampled_from([6, 9]), "forged": st.booleans(),
    "when": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda d: d.strftime("%Y%m%d%H%M%S"))})


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["02205810FFFFFFFF", "0277588000000000"]), st.lists(transaction, min_size=1, max_size=30))
def test_the_batch_gives_each_record_the_verdict_of_its_own_tac(keysets, issuer, txs):
    ks = next(k for k in keysets if k.algorithm is Algorithm.TDES)
    tacs, want = tacs_and_verdicts(ks, issuer, txs, [8 if t["forged"] else None for t in txs])
    columns = TacColumns([2 if t["load"] else t["type"] for t in txs], [t["amount"] for t in txs],
                         [t["after"] for t in txs], [t["overdraft"] for t in txs], [t["counter"] for t in txs],
                         [t["terminal"] for t in txs], [None if t["load"] else t["seq"] for t in txs],
                         [t["when"] for t in txs], tacs)
    cards = [(issuer, n) for n in NUMBERS]
    card_of = np.array([t["card"] for t in txs], dtype=np.intp)
    assert TacVerifier(keysets).des_tacs_verify(ks, cards, card_of, columns).tolist() == want


def test_batched_card_keys_are_the_key_set_card_keys(keysets):
    base = next(k for k in keysets if k.algorithm is Algorithm.TDES)
    cards = [("02205810FFFFFFFF", f"0310487030000000{i:04d}") for i in range(5)] + [("0277588000000000", "03104870300000000001")]
    for order in (("issuer", "serial"), ("serial", "issuer"), ("serial",), ()):
        ks = KeySet(base.name, True, base.algorithm, order, base.keys, "order test")
        got = TacVerifier([ks]).des_card_keys(ks, cards).tolist()
        for (issuer, card_no), key in zip(cards, got):
            dtk = ks.card_keys(bytes.fromhex(issuer), bytes.fromhex(card_no[4:])).entry("tac").key.value
            assert key == int.from_bytes(dtk[:8], "big") ^ int.from_bytes(dtk[8:], "big"), order
