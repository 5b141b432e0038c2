"""Property tests of the MAC and derivation layer."""
from hypothesis import given, settings
from hypothesis import strategies as st

from keysets import Algorithm, diversify, mac, pad80, secure_messaging_mac
from keysets.ciphers import des, sm4, tdes
from keysets.mac import full_mac

algorithms = st.sampled_from([Algorithm.TDES, Algorithm.SM4])
key16 = st.binary(min_size=16, max_size=16)


def flip(data: bytes, bit: int) -> bytes:
    i, b = divmod(bit % (len(data) * 8), 8)
    return data[:i] + bytes([data[i] ^ (1 << b)]) + data[i + 1 :]


@given(algorithms, key16, st.binary(min_size=1, max_size=64), st.integers(min_value=0))
def test_mac_changes_when_any_data_bit_changes(algorithm, key, data, bit):
    assert full_mac(algorithm, key, data) != full_mac(algorithm, key, flip(data, bit))


@given(algorithms, key16, st.binary(max_size=64), st.integers(min_value=0))
def test_mac_changes_when_any_key_bit_changes(algorithm, key, data, bit):
    flipped = flip(key, bit)
    if algorithm is Algorithm.TDES and (bit % 128) % 8 == 0:
        # DES ignores the parity bit (bit 0 of each key byte): the same key, the same MAC.
        assert full_mac(algorithm, key, data) == full_mac(algorithm, flipped, data)
    else:
        assert full_mac(algorithm, key, data) != full_mac(algorithm, flipped, data)


@given(algorithms, key16, st.binary(max_size=64), st.integers(min_value=0))
def test_mac_changes_when_any_iv_bit_changes(algorithm, key, data, bit):
    iv = bytes(algorithm.block_size)
    assert full_mac(algorithm, key, data, iv) != full_mac(algorithm, key, data, flip(iv, bit))


@given(algorithms, key16, st.binary(max_size=80))
def test_mac_lengths(algorithm, key, data):
    assert len(mac(algorithm, key, data)) == 4
    assert len(full_mac(algorithm, key, data)) == algorithm.block_size


@given(st.binary(min_size=8, max_size=8), st.binary(max_size=40))
def test_single_des_mac_for_8_byte_keys(key, data):
    assert len(mac(Algorithm.TDES, key, data)) == 4


@given(st.binary(max_size=64), st.sampled_from([8, 16]))
def test_padding_method_2_always_adds(data, bs):
    padded = pad80(data, bs)
    assert len(padded) % bs == 0 and len(padded) > len(data)
    assert padded.rstrip(b"\x00")[-1] == 0x80 and padded[: len(data)] == data
    assert len(padded) - len(data) <= bs


@given(key16, st.binary(min_size=8, max_size=8))
def test_retail_mac_equals_its_definition(key, block):
    """Alg. 3 on a one-block message: DES_KL, then DES⁻¹_KR, DES_KL over the padded second block."""
    padded = block + b"\x80" + bytes(7)
    x = des(key[:8]).encrypt(padded[:8])
    y = bytes(a ^ b for a, b in zip(x, padded[8:]))
    expected = des(key[:8]).encrypt(des(key[8:]).decrypt(des(key[:8]).encrypt(y)))
    assert full_mac(Algorithm.TDES, key, block) == expected
    assert tdes(key).encrypt(y) == expected


@given(key16, st.binary(min_size=16, max_size=16))
def test_sm4_round_trip(key, block):
    assert sm4(key).decrypt(sm4(key).encrypt(block)) == block


@given(algorithms, key16, st.lists(st.binary(min_size=8, max_size=8), min_size=1, max_size=3))
def test_diversification_levels_compose(algorithm, master, factors):
    step = master
    for f in factors:
        step = diversify(algorithm, step, [f])
    assert diversify(algorithm, master, factors) == step
    assert len(step) == 16


@settings(max_examples=50)
@given(algorithms, key16, st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4))
def test_secure_messaging_mac_binds_the_challenge(algorithm, key, c1, c2):
    if c1 != c2:
        assert secure_messaging_mac(algorithm, key, c1, b"\x84\x1e\x00\x00\x04") != secure_messaging_mac(
            algorithm, key, c2, b"\x84\x1e\x00\x00\x04")


def test_3des_accepts_keys_with_equal_halves():
    """Blank test cards ship with an all-FF transport key: 2-key 3DES with K1 = K2 is single DES, not an error."""
    from keysets import kcv

    ff = bytes([0xFF]) * 16
    block = bytes(range(8))
    assert tdes(ff).encrypt(block) == des(ff[:8]).encrypt(block)
    assert len(kcv(Algorithm.TDES, ff)) == 3
    assert len(mac(Algorithm.TDES, ff, b"\x84\x1e\x00\x00\x04", bytes(8))) == 4
