"""`clearing.batch_sm4`: equal to the SM4 standard's example, to the project's SM4 vectors and to gmalglib's
SM4, lane by lane, each lane under its own key, whatever the number of lanes."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from gmalglib.sm4 import SM4
from hypothesis import given, settings, strategies as st

from clearing.batch_sm4 import key_schedule, sm4_cbc_mac, sm4_encrypt
from keysets import pad80

VECTORS = json.loads((Path(__file__).parents[1] / "data" / "reference" / "vectors.json").read_text())


def _bytes(words: np.ndarray) -> bytes:
    return words.astype(">u4").tobytes()


def _u8(data: bytes, width: int = 16) -> np.ndarray:
    return np.frombuffer(data, dtype=np.uint8).reshape(-1, width)


def _words(data: bytes, blocks: int) -> np.ndarray:
    """(n, blocks, 4) uint32 big-endian words of n messages of `blocks` 16-byte blocks."""
    return np.frombuffer(data, dtype=">u4").astype(np.uint32).reshape(-1, blocks, 4)


def test_the_standard_example():
    """GB/T 32907 appendix A, example 1: the key encrypting itself, as bytes and as words."""
    v = VECTORS["sm4_block"]
    key, plain, want = (bytes.fromhex(v[k]) for k in ("key", "plaintext", "ciphertext"))
    assert _bytes(sm4_encrypt(key_schedule(_u8(key)), _u8(plain))) == want
    as_words = np.frombuffer(key, dtype=">u4").astype(np.uint32).reshape(1, 4)
    assert _bytes(sm4_encrypt(key_schedule(as_words), as_words)) == want


def test_the_standard_example_in_many_lanes_among_other_keys():
    """The example's lane keeps its answer wherever it sits among lanes of other keys."""
    v = VECTORS["sm4_block"]
    key, want = bytes.fromhex(v["key"]), bytes.fromhex(v["ciphertext"])
    keys = bytearray(bytes(range(256)) * 4)[:16 * 64]
    keys[16 * 37:16 * 38] = key
    blocks = bytearray(bytes(16 * 64))
    blocks[16 * 37:16 * 38] = key
    out = sm4_encrypt(key_schedule(_u8(bytes(keys))), _u8(bytes(blocks)))
    assert _bytes(out[37]) == want
    assert _bytes(out[36]) == SM4(bytes(keys[16 * 36:16 * 37])).encrypt(bytes(16))


def test_the_computed_sm4_vectors():
    """The project's SM4 vectors (reference 3.5): the issuer-level and card keys are SM4 of D ‖ ~D, the
    purchase and load TACs CBC-MACs under the card key."""
    v = VECTORS["computed"]["sm4"]
    div = [(v["master_key"], v["issuer_id"], v["level1_key_div_by_issuer"]),
           (v["level1_key_div_by_issuer"], v["serial8"], v["card_key_div_by_serial"])]
    keys = b"".join(bytes.fromhex(k) for k, _, _ in div)
    factors = b"".join(bytes.fromhex(d) + (int(d, 16) ^ (1 << 64) - 1).to_bytes(8, "big") for _, d, _ in div)
    out = sm4_encrypt(key_schedule(_u8(keys)), _u8(factors))
    assert [_bytes(o).hex().upper() for o in out] == [want for _, _, want in div]
    p, ld = v["purchase"], v["load"]
    purchase = bytes.fromhex(p["amount"] + p["type"] + p["terminal_id"] + p["terminal_seq"] + p["datetime"])
    after = int(ld["balance_before"], 16) + int(ld["amount"], 16)
    load = bytes.fromhex(f"{after:08X}{ld['online_counter']}{ld['amount']}02{ld['terminal_id']}{ld['datetime']}")
    card_key = bytes.fromhex(v["card_key_div_by_serial"])
    messages = b"".join(pad80(m, 16) for m in (purchase, load))
    macs = sm4_cbc_mac(key_schedule(_u8(card_key * 2)), _words(messages, 2))
    assert [f"{m:08X}" for m in macs.tolist()] == [p["tac"], ld["tac"]]


def _gm_cbc(key: bytes, message: bytes) -> bytes:
    cipher, x = SM4(key), bytes(16)
    for at in range(0, len(message), 16):
        x = cipher.encrypt(bytes(a ^ b for a, b in zip(x, message[at:at + 16])))
    return x


lanes = st.integers(1, 300)


@settings(max_examples=30, deadline=None)
@given(lanes.flatmap(lambda n: st.tuples(st.binary(min_size=16 * n, max_size=16 * n),
                                         st.binary(min_size=16 * n, max_size=16 * n))))
def test_each_lane_is_sm4_under_its_own_key(data):
    keys, blocks = data
    out = sm4_encrypt(key_schedule(_u8(keys)), _u8(blocks))
    assert out.shape == (len(keys) // 16, 4)
    for i, got in enumerate(out):
        assert _bytes(got) == SM4(keys[16 * i:16 * i + 16]).encrypt(blocks[16 * i:16 * i + 16]), i


@settings(max_examples=30, deadline=None)
@given(st.tuples(lanes, st.integers(1, 4)).flatmap(lambda nm: st.tuples(
    st.binary(min_size=16 * nm[0], max_size=16 * nm[0]), st.binary(min_size=16 * nm[0] * nm[1],
                                                                    max_size=16 * nm[0] * nm[1]),
    st.just(nm[1]))))
def test_cbc_mac_is_the_first_word_of_the_last_cbc_block(data):
    keys, messages, m = data
    macs = sm4_cbc_mac(key_schedule(_u8(keys)), _words(messages, m))
    for i, mac in enumerate(macs.tolist()):
        message = messages[16 * m * i:16 * m * (i + 1)]
        assert mac.to_bytes(4, "big") == _gm_cbc(keys[16 * i:16 * i + 16], message)[:4], i


def test_the_inputs_are_left_as_they_were():
    """The rounds work in place on their own copies: neither the caller's keys nor its blocks change (one
    lane too, where a column of the input is already contiguous)."""
    for n in (1, 3):
        keys = _u8(bytes(range(16)) * n)
        words = _words(bytes(range(32 * n)), 2)
        keys_before, words_before = keys.copy(), words.copy()
        round_keys = key_schedule(keys)
        round_keys_before = round_keys.copy()
        sm4_cbc_mac(round_keys, words)
        sm4_encrypt(round_keys, words[:, 0])
        sm4_encrypt(round_keys, words[:, 0].copy())
        assert (keys == keys_before).all() and (words == words_before).all()
        assert (round_keys == round_keys_before).all()
