"""`clearing.tac`: the platform's fast TAC path equals `keysets` (the card's own computation), for both algorithms."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from clearing.tac import CardTac, ClearingError, TacColumns, TacVerifier, expected_tac, tac_input_padded, tac_verifies
from keysets import Algorithm, KeyEntry, KeySet, SecretKey, load_tac, mac, purchase_tac
from terminal_sim.outcome import Outcome

from .tac_cases import NUMBERS, tacs_and_verdicts

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "reference" / "vectors.json").read_text())

ISSUERS = ["02205810FFFFFFFF", "02215840FFFFFFFF", "0277588000000000"]

transaction = st.fixed_dictionaries({
    "load": st.booleans(), "amount": st.integers(0, 2**32 - 1), "after": st.integers(0, 2**31 - 1),
    "counter": st.integers(0, 0xFFFF), "terminal": st.binary(min_size=6, max_size=6).map(lambda b: b.hex().upper()),
    "seq": st.integers(0, 2**32 - 1), "type": st.sampled_from([6, 9]),
    "when": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda d: d.strftime("%Y%m%d%H%M%S"))})


@settings(max_examples=60)
@given(st.sampled_from(["3des", "sm4"]), st.sampled_from(ISSUERS), st.integers(0, 10**11 - 1),
       st.lists(transaction, min_size=1, max_size=5))
def test_one_context_per_card_gives_the_tacs_keysets_gives(keysets, alg, issuer, number, txs):
    ks = next(k for k in keysets if k.algorithm.value == alg)
    card_no = f"031048703{number:011d}"
    dtk = ks.card_keys(bytes.fromhex(issuer), bytes.fromhex(card_no[4:])).entry("tac").key.value
    card = TacVerifier(keysets).card(ks, issuer, card_no)
    for t in txs:                       # several records on one context: the CBC chaining trick must hold
        if t["load"]:
            want = load_tac(ks.algorithm, dtk, t["after"], t["counter"], t["amount"], bytes.fromhex(t["terminal"]),
                            bytes.fromhex(t["when"]))
            padded = tac_input_padded(card.block_size, 2, t["amount"], t["after"], 0, t["counter"], t["terminal"],
                                      None, t["when"])
        else:
            want = purchase_tac(ks.algorithm, dtk, t["amount"], t["type"], bytes.fromhex(t["terminal"]), t["seq"],
                                bytes.fromhex(t["when"]))
            padded = tac_input_padded(card.block_size, t["type"], t["amount"], 0, 0, 0, t["terminal"], t["seq"],
                                      t["when"])
        assert card.verifies(padded, want.hex().upper())
        assert not card.verifies(padded, f"{int.from_bytes(want, 'big') ^ 1:08X}")


@given(st.binary(min_size=0, max_size=40))
def test_card_mac_is_the_pboc_mac(data):
    for alg, key in ((Algorithm.TDES, bytes(range(8))), (Algorithm.SM4, bytes(range(16)))):
        card = CardTac(alg, key)
        assert card.mac(data) == mac(alg, key, data) and card.mac(data) == mac(alg, key, data)


def test_a_load_balance_out_of_four_bytes_cannot_verify():
    assert tac_input_padded(8, 2, 100, -200, 0, 1, "440300000001", None, "20261124081500") is None


def test_other_diversification_orders_are_followed(keysets):
    base = {k.algorithm.value: k for k in keysets}["3des"]
    for order in (("serial", "issuer"), ("serial",), ()):
        ks = KeySet(base.name, True, base.algorithm, order, base.keys, "order test")
        dtk = ks.card_keys(bytes.fromhex(ISSUERS[0]), bytes.fromhex("4870300000000007")).entry("tac").key.value
        want = purchase_tac(ks.algorithm, dtk, 200, 6, bytes.fromhex("440300000001"), 7, bytes.fromhex("20261124081500"))
        card = TacVerifier([ks]).card(ks, ISSUERS[0], "03104870300000000007")
        padded = tac_input_padded(8, 6, 200, 0, 0, 0, "440300000001", 7, "20261124081500")
        assert card.verifies(padded, want.hex().upper()), order


def test_keys_never_show(keysets):
    card = TacVerifier(keysets).card(keysets[0], ISSUERS[0], "03104870300000000001")
    assert repr(card) == "<CardTac key=<hidden>>"
    assert "GD-TEST" in repr(TacVerifier(keysets)) and "value" not in repr(TacVerifier(keysets))


DEMO_RECORD = {"status": "approved", "type": "06", "card_no": "03104870300000000001", "issuer_id": "02205810FFFFFFFF",
               "amount": 200, "balance_before": 5000, "balance_after": 4800, "overdraft_limit": 0, "card_counter": 0,
               "terminal_id": "440300000001", "terminal_seq": 1, "datetime": "20261124081602", "key_version": 1,
               "algorithm": "3des", "tac": "9FB4C698", "mac2_verified": True}


def test_tac_verifies_one_outcome(keysets):
    """The record `ykt demo` uploads for its flat-fare bus ride (seed 2020): its TAC, recomputed."""
    outcome = Outcome.from_dict(DEMO_RECORD)
    assert tac_verifies(outcome, keysets)
    assert expected_tac(outcome, keysets).hex().upper() == "9FB4C698"
    assert not tac_verifies(Outcome.from_dict(dict(DEMO_RECORD, amount=100, balance_after=4900)), keysets)
    with pytest.raises(ClearingError, match="no sm4 key set"):
        expected_tac(Outcome.from_dict(dict(DEMO_RECORD, algorithm="sm4")), keysets[:1])
    torn = {k: v for k, v in DEMO_RECORD.items() if k not in ("tac", "mac2_verified", "balance_after")}
    with pytest.raises(ClearingError, match="has no TAC"):
        tac_verifies(Outcome.from_dict(dict(torn, status="torn", reason="card left")), keysets)


def _sm4_columns(txs: list[dict], tacs: list[str]) -> TacColumns:
    return TacColumns([2 if t["load"] else t["type"] for t in txs], [t["amount"] for t in txs],
                      [t["after"] for t in txs], [t.get("overdraft", 0) for t in txs], [t["counter"] for t in txs],
                      [t["terminal"] for t in txs], [None if t["load"] else t["seq"] for t in txs],
                      [t["when"] for t in txs], tacs)


def test_the_computed_sm4_vectors_through_the_batch():
    """The purchase and the load of the computed SM4 vectors (issuer, then serial: D2) in one batch."""
    v = VECTORS["computed"]["sm4"]
    p, ld = v["purchase"], v["load"]
    ks = KeySet("VECTORS", True, Algorithm.SM4, ("issuer", "serial"),
                {"tac": KeyEntry("tac", 1, 1, SecretKey(Algorithm.SM4, bytes.fromhex(v["master_key"])))})
    txs = [{"load": False, "type": int(p["type"], 16), "amount": int(p["amount"], 16), "after": 0, "counter": 0,
            "terminal": p["terminal_id"], "seq": int(p["terminal_seq"], 16), "when": p["datetime"]},
           {"load": True, "amount": int(ld["amount"], 16),
            "after": int(ld["balance_before"], 16) + int(ld["amount"], 16), "counter": int(ld["online_counter"], 16),
            "terminal": ld["terminal_id"], "when": ld["datetime"]}]
    verifier, cards = TacVerifier([ks]), [(v["issuer_id"], v["card_no"])]
    assert verifier.sm4_card_keys(ks, cards).astype(">u4").tobytes().hex().upper() == v["card_key_div_by_serial"]
    card_of = np.zeros(2, dtype=np.intp)
    assert verifier.sm4_tacs_verify(ks, cards, card_of, _sm4_columns(txs, [p["tac"], ld["tac"]])).tolist() == [True] * 2
    forged = [p["tac"], f"{int(ld['tac'], 16) ^ 0x80000000:08X}"]
    assert verifier.sm4_tacs_verify(ks, cards, card_of, _sm4_columns(txs, forged)).tolist() == [True, False]


sm4_transaction = st.fixed_dictionaries({
    "card": st.integers(0, 5), "load": st.booleans(), "amount": st.integers(0, 2**32 - 1),
    "after": st.integers(-2**31, 2**31 - 1), "overdraft": st.integers(0, 0xFFFFFF), "counter": st.integers(0, 0xFFFF),
    "terminal": st.binary(min_size=6, max_size=6).map(lambda b: b.hex().upper()), "seq": st.integers(0, 2**32 - 1),
    "type": st.sampled_from([6, 9]), "forged": st.integers(-1, 31),
    "when": st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda d: d.strftime("%Y%m%d%H%M%S"))})


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(ISSUERS), st.lists(sm4_transaction, min_size=1, max_size=40))
def test_the_sm4_batch_gives_each_record_the_verdict_of_keysets(keysets, issuer, txs):
    """Each record of an SM4 batch verifies exactly when its TAC is `keysets.purchase_tac`/`load_tac` under
    its own card's DTK: a TAC with any one bit flipped (forged >= 0) is rejected, and so is a load whose
    reported balance no card could have MACed."""
    ks = next(k for k in keysets if k.algorithm is Algorithm.SM4)
    tacs, want = tacs_and_verdicts(ks, issuer, txs, [t["forged"] if t["forged"] >= 0 else None for t in txs])
    cards = [(issuer, n) for n in NUMBERS]
    card_of = np.array([t["card"] for t in txs], dtype=np.intp)
    assert TacVerifier(keysets).sm4_tacs_verify(ks, cards, card_of, _sm4_columns(txs, tacs)).tolist() == want


def test_batched_sm4_card_keys_are_the_key_set_card_keys(keysets):
    base = next(k for k in keysets if k.algorithm is Algorithm.SM4)
    cards = [(ISSUERS[0], f"0310487030000000{i:04d}") for i in range(5)] + [(ISSUERS[2], "03104870300000000001")]
    for order in (("issuer", "serial"), ("serial", "issuer"), ("serial",), ()):
        ks = KeySet(base.name, True, base.algorithm, order, base.keys, "order test")
        got = TacVerifier([ks]).sm4_card_keys(ks, cards)
        assert got.shape == (len(cards), 4) and got.dtype == np.uint32
        for (issuer, card_no), key in zip(cards, got):
            dtk = ks.card_keys(bytes.fromhex(issuer), bytes.fromhex(card_no[4:])).entry("tac").key.value
            assert key.astype(">u4").tobytes() == dtk, order


def test_sm4_padded_blocks_are_the_padded_inputs(keysets):
    """`padded_blocks(16)` gives, lane by lane, the bytes `tac_input_padded(16, ...)` gives one record."""
    txs = [{"load": False, "type": 6, "amount": 200, "after": 0, "counter": 0, "terminal": "440300000001", "seq": 7,
            "when": "20261124081500"},
           {"load": True, "amount": 5000, "after": 7000, "overdraft": 300, "counter": 3, "terminal": "000001000050",
            "when": "20261123090000"},
           {"load": False, "type": 9, "amount": 0xFFFFFFFF, "after": 0, "counter": 0, "terminal": "ABCDEF012345",
            "seq": 0xFFFFFFFF, "when": "20991231235959"}]
    columns = _sm4_columns(txs, ["00000000"] * 3)
    got = {}
    for lanes, blocks in columns.padded_blocks(16):
        assert blocks.shape == (len(lanes), 2, 4) and blocks.dtype == np.uint32
        got.update({i: blocks[k].astype(">u4").tobytes() for k, i in enumerate(lanes.tolist())})
    for i, t in enumerate(txs):
        want = tac_input_padded(16, 2 if t["load"] else t["type"], t["amount"], t["after"], t.get("overdraft", 0),
                                t["counter"], t["terminal"], None if t["load"] else t["seq"], t["when"])
        assert got[i] == want, i

