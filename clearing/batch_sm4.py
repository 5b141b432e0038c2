"""SM4 of many records at once, each under its own key, in numpy: the SM4 twin of `batch_des`.

An SM4 card's TAC key is its diversified DTK itself (reference 3.5), so as for 3DES the keys differ from
card to card, and a cipher library goes one card at a time: a context per card plus the Python around
it costs several times the two blocks a record needs. Here the 128-bit blocks of thousands of records are
lanes of numpy arrays, four uint32 words each, and SM4 (GB/T 32907) runs on all of them together, each
lane under its own round keys.

A round is the classic T-table form: T(x) = L(τ(x)) is linear over the four S-boxed bytes of x, so
T(x) = T0[x₀] ^ T1[x₁] ^ T2[x₂] ^ T3[x₃] with 256-entry uint32 tables (S-box, then L, at each byte);
here T0 ^ T1 and T2 ^ T3 are merged into two 65536-entry tables of the word's half-words, so a round is
two lookups, a shift, a mask and five XORs on uint32 arrays. The key schedule uses the same tables built
with L'. ``tests/clearing/test_batch_sm4.py`` proves every lane equals gmalglib's SM4 and the
standard's example.
"""
from __future__ import annotations

import numpy as np

__all__ = ["key_schedule", "sm4_encrypt", "sm4_cbc_mac"]

_SBOX = bytes.fromhex(
    "d690e9fecce13db716b614c228fb2c052b679a762abe04c3aa441326498606999c4250f491ef987a33540b43edcfac62"
    "e4b31ca9c908e89580df94fa758f3fa64707a7fcf37317ba83593c19e6854fa8686b81b27164da8bf8eb0f4b70569d35"
    "1e240e5e6358d1a225227c3b01217887d40046579fd327524c3602e7a0c4c89eeabf8ad240c738b5a3f7f2cef96115a1"
    "e0ae5da49b341a55ad933230f58cb1e31df6e22e8266ca60c02923ab0d534e6fd5db3745defd8e2f03ff6a726d6c5b51"
    "8d1baf92bbddbc7f11d95c411f105ad80ac13188a5cd7bbd2d74d012b8e5b4b08969974a0c96777e65b9f109c56ec684"
    "18f07dec3adc4d2079ee5f3ed7cb3948")
_FK = (0xA3B1BAC6, 0x56AA3350, 0x677D9197, 0xB27022DC)
_CK = tuple(int.from_bytes(bytes((4 * i + j) * 7 % 256 for j in range(4)), "big") for i in range(32))


def _rotl(x: int, n: int) -> int:
    return (x << n | x >> (32 - n)) & 0xFFFFFFFF


def _t_tables(rotations: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """T through a linear transform B ^ (B <<< r) for each r of `rotations`, as two 65536-entry uint32
    tables: the high half-word of the input (bytes 0 and 1) and the low one (bytes 2 and 3).

    Byte table i maps byte i of the word (0 = most significant) through the S-box, placed at that byte,
    then through the transform (the classic T-tables); T is linear over the bytes, so a pair of byte tables
    XORed into one 16-bit table gives the same words in half the lookups (measured: 1.8x faster rounds
    than four byte tables at 16,384 lanes; the 512 KB stay in the L2 cache)."""
    byte_tables = np.zeros((4, 256), dtype=np.uint32)
    for i in range(4):
        for value in range(256):
            b = _SBOX[value] << (24 - 8 * i)
            out = b
            for r in rotations:
                out ^= _rotl(b, r)
            byte_tables[i, value] = out
    high = (byte_tables[0][:, None] ^ byte_tables[1][None, :]).reshape(-1)
    low = (byte_tables[2][:, None] ^ byte_tables[3][None, :]).reshape(-1)
    return high, low


_T = _t_tables((2, 10, 18, 24))        # L, the rounds
_T_KEY = _t_tables((13, 23))           # L', the key schedule


def _rounds(x0: np.ndarray, x1: np.ndarray, x2: np.ndarray, x3: np.ndarray, round_keys,
            tables: tuple[np.ndarray, np.ndarray], out: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """The 32 rounds X(i+4) = X(i) ^ T(X(i+1) ^ X(i+2) ^ X(i+3) ^ rk(i)) on lanes of uint32 words; writes
    X(i+4) into X(i)'s array (the inputs are consumed) and, when `out` is given, also into out[i] (the key
    schedule: rk(i) = K(i+4)). Returns the arrays in order, holding X32..X35. Every operation writes into
    a preallocated array: numpy's temporaries cost as much as the work."""
    high, low = tables
    n = len(x0)
    t, idx, part = np.empty(n, dtype=np.uint32), np.empty(n, dtype=np.intp), np.empty(n, dtype=np.uint32)
    s16, m16 = np.uint32(16), np.uint32(0xFFFF)
    x = [x0, x1, x2, x3]
    for r in range(32):
        a, b, c, d = x[r & 3], x[(r + 1) & 3], x[(r + 2) & 3], x[(r + 3) & 3]
        np.bitwise_xor(b, c, out=t)
        t ^= d
        t ^= round_keys[r]
        np.right_shift(t, s16, out=idx)
        np.take(high, idx, out=part)
        a ^= part
        np.bitwise_and(t, m16, out=idx)
        np.take(low, idx, out=part)
        a ^= part
        if out is not None:
            out[r][...] = a
    return x            # 32 rounds are 8 turns of the four arrays: x[k] holds X(32 + k)


def _words(data: np.ndarray) -> np.ndarray:
    """(n, 4) uint32 big-endian words of (n, 4) uint32 or (n, 16) uint8 values."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        return data.reshape(-1, 16).view(">u4").astype(np.uint32)
    return data.astype(np.uint32, copy=False).reshape(-1, 4)


def key_schedule(keys: np.ndarray) -> np.ndarray:
    """(32, n) uint32: the round keys of n SM4 keys, (n, 4) uint32 big-endian words or (n, 16) uint8."""
    mk = _words(keys)
    k = [mk[:, j] ^ np.uint32(_FK[j]) for j in range(4)]
    out = np.empty((32, len(mk)), dtype=np.uint32)
    _rounds(*k, np.array(_CK, dtype=np.uint32), _T_KEY, out=list(out))
    return out


def _encrypt_words(round_keys: np.ndarray, x: list[np.ndarray]) -> list[np.ndarray]:
    """The four output words (X35, X34, X33, X32) of the blocks `x` (four contiguous uint32 lanes arrays,
    consumed)."""
    y = _rounds(*x, round_keys, _T)
    return [y[3], y[2], y[1], y[0]]


def sm4_encrypt(round_keys: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """SM4 of n blocks, lane i under round keys round_keys[:, i]: (n, 4) uint32 big-endian words (or (n, 16)
    uint8) in, (n, 4) uint32 words out."""
    words = _words(blocks)
    out = _encrypt_words(round_keys, [words[:, j].copy() for j in range(4)])
    return np.stack(out, axis=1)


def sm4_cbc_mac(round_keys: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """The first 4 bytes (uint32) of the last CBC block, IV 0, of n already padded messages.

    `round_keys` is `key_schedule` of each lane's key (gathered per lane, (32, n)), `blocks` (n, m, 4)
    uint32: m 16-byte blocks per message as big-endian words.
    """
    state = None
    for j in range(blocks.shape[1]):
        x = [blocks[:, j, w].copy() for w in range(4)]     # fresh arrays: the rounds consume them
        if state is not None:
            for w in range(4):
                x[w] ^= state[w]
        state = _encrypt_words(round_keys, x)
    return state[0]
