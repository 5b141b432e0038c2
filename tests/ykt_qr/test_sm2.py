"""SM2/SM3 as the code uses them: the real sample's signatures, Z, user-ID modes, repeatable k, key hygiene."""
from __future__ import annotations

import hashlib
import pickle

import pytest

from keysets import RandomSource
from ykt_qr.sm2 import DEFAULT_UID, PrivateKey, PublicKey, generate, sm3

from . import independent as ind


def test_sm3_comes_from_hashlib_and_gives_the_standard_example():
    # GB/T 32905 appendix A.1: SM3("abc").
    assert hashlib.new("sm3", b"abc").hexdigest() == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert sm3(b"abc") == hashlib.new("sm3", b"abc").digest()


class TestRealSample:
    """mobile.md §1.4/§1.7 [V]: both signatures of the real code verify with the default user ID."""

    def test_issuer_signature_over_3_to_197(self, real_code):
        key = PublicKey.parse(real_code[23:56])
        assert key.verify(real_code[3:198], real_code[199:263])
        assert not key.verify(real_code[3:198] + b"\x00", real_code[199:263])

    def test_user_signature_over_0_to_266(self, real_code):
        key = PublicKey.parse(real_code[158:191])
        assert key.verify(real_code[0:267], real_code[268:332])
        assert not key.verify(real_code[1:267], real_code[268:332])

    def test_the_shanghai_user_ids_fail_on_it(self, real_code):
        """§1.4: issuer ID = 发码机构号 ‖ 发码平台编号, user ID = 用户账户号: they fail, the default passes [V]."""
        assert not PublicKey.parse(real_code[23:56]).verify(real_code[3:198], real_code[199:263], real_code[146:154])
        assert not PublicKey.parse(real_code[158:191]).verify(real_code[0:267], real_code[268:332], real_code[136:146])

    def test_the_independent_implementation_agrees(self, real_code):
        assert ind.verify(ind.decompress(real_code[23:56]), real_code[3:198], real_code[199:263])
        assert ind.verify(ind.decompress(real_code[158:191]), real_code[0:267], real_code[268:332])

    def test_root_record_02_self_signature(self, real_root_02):
        key = PublicKey.parse(real_root_02[16:80])
        assert key.verify(real_root_02[0:80], real_root_02[80:144])
        point = (int.from_bytes(real_root_02[16:48], "big"), int.from_bytes(real_root_02[48:80], "big"))
        assert ind.verify(point, real_root_02[0:80], real_root_02[80:144])


def test_decompression_matches_the_formula_of_the_reference(real_code):
    """y = (x³+ax+b)^((p+1)/4) with the parity of 02/03 (§1.4)."""
    for compressed in (real_code[23:56], real_code[158:191]):
        x, y = ind.decompress(compressed)
        assert PublicKey.parse(compressed).point == b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")
        assert PublicKey.parse(compressed).compressed == compressed


def test_z_is_sm3_of_entl_id_curve_and_key(real_code):
    point = ind.decompress(real_code[23:56])
    key = PublicKey.parse(real_code[23:56])
    assert key.z() == ind.z(point, b"1234567812345678")
    assert key.z(b"\x01\x01\x00\x00\x17") == ind.z(point, b"\x01\x01\x00\x00\x17")
    assert key.z(b"ALICE123@YAHOO.COM") != key.z()


@pytest.mark.parametrize("data, reason", [
    (b"\x02" + bytes(31) + b"\x05", "not a point of the SM2 curve"),
    (b"\x05" + bytes(32), "not an SM2 public key: 33 bytes starting 05"),
    (bytes(10), "not an SM2 public key: 10 bytes starting 00"),
])
def test_keys_that_are_not_points_are_refused(data, reason):
    with pytest.raises(ValueError, match=reason):
        PublicKey.parse(data)


def test_signatures_cross_check_with_the_independent_implementation():
    ours = generate(RandomSource(7))
    point = ind.decompress(ours.public_key.compressed)
    for uid in (DEFAULT_UID, bytes.fromhex("F0000001F0000002")):
        sig = ours.sign(b"message", uid)
        assert ind.verify(point, b"message", sig, uid)
        assert not ind.verify(point, b"message", sig, DEFAULT_UID if uid != DEFAULT_UID else b"other")
    theirs = ind.Key(0xC0FFEE)
    assert PublicKey.parse(theirs.compressed).verify(b"m", theirs.sign(b"m"))
    assert not PublicKey.parse(theirs.compressed).verify(b"m", theirs.sign(b"n"))


def test_a_seed_makes_keys_and_signatures_repeat_and_k_never_repeats_across_messages():
    a, b = RandomSource(42), RandomSource(42)
    ka, kb = generate(a), generate(b)
    assert ka == kb
    sa, sb = ka.sign(b"one", extra=a(32)), kb.sign(b"one", extra=b(32))
    assert sa == sb
    # Same key, same extra, two messages: different r, so different k (RFC 6979-style derivation).
    r1, r2 = ka.sign(b"one", extra=bytes(32))[:32], ka.sign(b"two", extra=bytes(32))[:32]
    assert r1 != r2
    # No seed: fresh extra each time, so two signatures of one message differ and both verify.
    s1, s2 = ka.sign(b"one"), ka.sign(b"one")
    assert s1 != s2 and ka.public_key.verify(b"one", s1) and ka.public_key.verify(b"one", s2)


def test_private_keys_never_show_themselves():
    key = generate(RandomSource(1))
    secret = key.value.hex()
    for text in (repr(key), str(key), f"{key}", f"{key:>10}", repr([key])):
        assert secret not in text.lower() and secret.upper() not in text
        assert key.public_key.fingerprint in text
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(ValueError, match="not an SM2 private key"):
        PrivateKey(bytes(32))
