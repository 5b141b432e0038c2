"""Single DES CBC-MACs of many records at once, each under its own key, in numpy.

The clearing platform recomputes one TAC per record under the record's card key (the 3DES TAC key
folded to single DES, reference 3.2/3.3), so the keys differ from card to card and a cipher library can
only go one card at a time: creating a cipher context costs more than the three or four blocks a card's
records need. Here the 64-bit blocks of thousands of records are lanes of numpy arrays and DES runs on
all of them together, each lane with its own key schedule: the same DES (FIPS 46-3), table-driven as
libdes does it (initial and final permutations and PC-1/PC-2 by byte tables, each round's S-boxes and P
combined into eight 64-entry tables), in about 45 array operations a round.

CBC-MAC with IV 0 chains in the permuted domain: IP is a bit permutation, so IP(E(x) ^ b) =
IP(E(x)) ^ IP(b), and IP(E(x)) is the round output before the final permutation; the inputs get IP once,
the output FP once. ``tests/clearing/test_batch_des.py`` proves it equals pycryptodome's DES and the
keysets TAC functions.
"""
from __future__ import annotations

import numpy as np

__all__ = ["des_encrypt", "des_cbc_mac", "key_schedule"]

_IP = (58, 50, 42, 34, 26, 18, 10, 2, 60, 52, 44, 36, 28, 20, 12, 4, 62, 54, 46, 38, 30, 22, 14, 6,
       64, 56, 48, 40, 32, 24, 16, 8, 57, 49, 41, 33, 25, 17, 9, 1, 59, 51, 43, 35, 27, 19, 11, 3,
       61, 53, 45, 37, 29, 21, 13, 5, 63, 55, 47, 39, 31, 23, 15, 7)
_FP = tuple(_IP.index(i) + 1 for i in range(1, 65))
_P = (16, 7, 20, 21, 29, 12, 28, 17, 1, 15, 23, 26, 5, 18, 31, 10,
      2, 8, 24, 14, 32, 27, 3, 9, 19, 13, 30, 6, 22, 11, 4, 25)
_PC1 = (57, 49, 41, 33, 25, 17, 9, 1, 58, 50, 42, 34, 26, 18, 10, 2, 59, 51, 43, 35, 27, 19, 11, 3,
        60, 52, 44, 36, 63, 55, 47, 39, 31, 23, 15, 7, 62, 54, 46, 38, 30, 22, 14, 6, 61, 53, 45, 37,
        29, 21, 13, 5, 28, 20, 12, 4)
_PC2 = (14, 17, 11, 24, 1, 5, 3, 28, 15, 6, 21, 10, 23, 19, 12, 4, 26, 8, 16, 7, 27, 20, 13, 2,
        41, 52, 31, 37, 47, 55, 30, 40, 51, 45, 33, 48, 44, 49, 39, 56, 34, 53, 46, 42, 50, 36, 29, 32)
_SHIFTS = (1, 1, 2, 2, 2, 2, 2, 2, 1, 2, 2, 2, 2, 2, 2, 1)
_S = (
    (14, 4, 13, 1, 2, 15, 11, 8, 3, 10, 6, 12, 5, 9, 0, 7, 0, 15, 7, 4, 14, 2, 13, 1, 10, 6, 12, 11, 9, 5, 3, 8,
     4, 1, 14, 8, 13, 6, 2, 11, 15, 12, 9, 7, 3, 10, 5, 0, 15, 12, 8, 2, 4, 9, 1, 7, 5, 11, 3, 14, 10, 0, 6, 13),
    (15, 1, 8, 14, 6, 11, 3, 4, 9, 7, 2, 13, 12, 0, 5, 10, 3, 13, 4, 7, 15, 2, 8, 14, 12, 0, 1, 10, 6, 9, 11, 5,
     0, 14, 7, 11, 10, 4, 13, 1, 5, 8, 12, 6, 9, 3, 2, 15, 13, 8, 10, 1, 3, 15, 4, 2, 11, 6, 7, 12, 0, 5, 14, 9),
    (10, 0, 9, 14, 6, 3, 15, 5, 1, 13, 12, 7, 11, 4, 2, 8, 13, 7, 0, 9, 3, 4, 6, 10, 2, 8, 5, 14, 12, 11, 15, 1,
     13, 6, 4, 9, 8, 15, 3, 0, 11, 1, 2, 12, 5, 10, 14, 7, 1, 10, 13, 0, 6, 9, 8, 7, 4, 15, 14, 3, 11, 5, 2, 12),
    (7, 13, 14, 3, 0, 6, 9, 10, 1, 2, 8, 5, 11, 12, 4, 15, 13, 8, 11, 5, 6, 15, 0, 3, 4, 7, 2, 12, 1, 10, 14, 9,
     10, 6, 9, 0, 12, 11, 7, 13, 15, 1, 3, 14, 5, 2, 8, 4, 3, 15, 0, 6, 10, 1, 13, 8, 9, 4, 5, 11, 12, 7, 2, 14),
    (2, 12, 4, 1, 7, 10, 11, 6, 8, 5, 3, 15, 13, 0, 14, 9, 14, 11, 2, 12, 4, 7, 13, 1, 5, 0, 15, 10, 3, 9, 8, 6,
     4, 2, 1, 11, 10, 13, 7, 8, 15, 9, 12, 5, 6, 3, 0, 14, 11, 8, 12, 7, 1, 14, 2, 13, 6, 15, 0, 9, 10, 4, 5, 3),
    (12, 1, 10, 15, 9, 2, 6, 8, 0, 13, 3, 4, 14, 7, 5, 11, 10, 15, 4, 2, 7, 12, 9, 5, 6, 1, 13, 14, 0, 11, 3, 8,
     9, 14, 15, 5, 2, 8, 12, 3, 7, 0, 4, 10, 1, 13, 11, 6, 4, 3, 2, 12, 9, 5, 15, 10, 11, 14, 1, 7, 6, 0, 8, 13),
    (4, 11, 2, 14, 15, 0, 8, 13, 3, 12, 9, 7, 5, 10, 6, 1, 13, 0, 11, 7, 4, 9, 1, 10, 14, 3, 5, 12, 2, 15, 8, 6,
     1, 4, 11, 13, 12, 3, 7, 14, 10, 15, 6, 8, 0, 5, 9, 2, 6, 11, 13, 8, 1, 4, 10, 7, 9, 5, 0, 15, 14, 2, 3, 12),
    (13, 2, 8, 4, 6, 15, 11, 1, 10, 9, 3, 14, 5, 0, 12, 7, 1, 15, 13, 8, 10, 3, 7, 4, 12, 5, 6, 11, 0, 14, 9, 2,
     7, 11, 4, 1, 9, 12, 14, 2, 0, 6, 10, 13, 15, 3, 5, 8, 2, 1, 14, 7, 4, 10, 8, 13, 15, 12, 9, 0, 3, 5, 6, 11),
)


def _byte_tables(perm: tuple[int, ...], in_bits: int) -> list[tuple[int, np.ndarray]]:
    """A bit permutation (output bit i takes input bit perm[i], 1 = most significant) as one table per
    input byte: (shift, 256 outputs); the permuted value is the OR of each byte's table entry."""
    out_bits = len(perm)
    tables = []
    for first in range(0, in_bits, 8):
        table = np.zeros(256, dtype=np.uint64)
        for value in range(256):
            out = 0
            for i, src in enumerate(perm):
                pos = src - 1 - first            # the source bit's place in this byte (0 = its top bit)
                if 0 <= pos < 8 and value >> (7 - pos) & 1:
                    out |= 1 << (out_bits - 1 - i)
            table[value] = out
        tables.append((in_bits - 8 - first, table))
    return tables


def _permute(x: np.ndarray, tables: list[tuple[int, np.ndarray]]) -> np.ndarray:
    out = None
    for shift, table in tables:
        part = table[(x >> np.uint64(shift)) & np.uint64(0xFF)]
        out = part if out is None else out | part
    return out


_IP_TABLES = _byte_tables(_IP, 64)
_FP_TABLES = _byte_tables(_FP, 64)
_PC1_TABLES = _byte_tables(_PC1, 64)
_PC2_TABLES = _byte_tables(_PC2, 56)


def _sp_tables() -> np.ndarray:
    """(8, 64): S-box i of a 6-bit chunk (row from its outer bits), placed at its nibble and then P."""
    sp = np.zeros((8, 64), dtype=np.uint32)
    for i, box in enumerate(_S):
        for chunk in range(64):
            row, col = (chunk >> 4 & 2) | (chunk & 1), chunk >> 1 & 0xF
            nibble = box[16 * row + col] << (28 - 4 * i)
            out = 0
            for j, src in enumerate(_P):
                if nibble >> (32 - src) & 1:
                    out |= 1 << (31 - j)
            sp[i, chunk] = out
    return sp


_SP = _sp_tables()
_M28 = np.uint64((1 << 28) - 1)


def key_schedule(keys: np.ndarray) -> np.ndarray:
    """(16, 8, N) uint32: the 6-bit chunks of each round's 48-bit subkey, for N 64-bit keys (parity ignored)."""
    cd = _permute(keys.astype(np.uint64, copy=False), _PC1_TABLES)
    c, d = cd >> np.uint64(28), cd & _M28
    out = np.empty((16, 8, len(keys)), dtype=np.uint32)
    for r, s in enumerate(_SHIFTS):
        s64, back = np.uint64(s), np.uint64(28 - s)
        c = ((c << s64) | (c >> back)) & _M28
        d = ((d << s64) | (d >> back)) & _M28
        sub = _permute((c << np.uint64(28)) | d, _PC2_TABLES)
        for i in range(8):
            out[r, i] = (sub >> np.uint64(42 - 6 * i)) & np.uint64(0x3F)
    return out


def _rounds(block: np.ndarray, subkeys: np.ndarray) -> np.ndarray:
    """The 16 rounds on IP-permuted blocks; returns the output before the final permutation (R16 ‖ L16).
    Every operation writes into a preallocated array: numpy's temporaries cost as much as the work."""
    left = (block >> np.uint64(32)).astype(np.uint32)
    right = (block & np.uint64(0xFFFFFFFF)).astype(np.uint32)
    sp, n = _SP, len(right)
    rr, tmp, idx, part = (np.empty(n, dtype=np.uint32) for _ in range(4))
    m, u1, u2, u4, u30, u31 = (np.uint32(v) for v in (0x3F, 1, 2, 0xF, 30, 31))
    shifts = [np.uint32(26 - 4 * i) for i in range(7)]
    for r in range(16):
        k = subkeys[r]
        np.right_shift(right, u1, out=rr)               # E's chunk i is bits 4i-1..4i+4: R rotated right by one
        np.left_shift(right, u31, out=tmp)
        rr |= tmp
        f = np.empty(n, dtype=np.uint32)
        for i in range(7):
            np.right_shift(rr, shifts[i], out=idx)
            idx &= m
            idx ^= k[i]
            if i == 0:
                np.take(sp[0], idx, out=f)
            else:
                np.take(sp[i], idx, out=part)
                f ^= part
        np.bitwise_and(rr, u4, out=idx)                 # chunk 7 wraps around: bits 28..32 and 1
        idx <<= u2
        np.right_shift(rr, u30, out=tmp)
        idx |= tmp
        idx ^= k[7]
        np.take(sp[7], idx, out=part)
        f ^= part
        f ^= left
        left, right = right, f
    return (right.astype(np.uint64) << np.uint64(32)) | left.astype(np.uint64)


def des_encrypt(keys: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """DES of N 64-bit blocks, lane i under key i (both uint64 arrays, big-endian values)."""
    return _permute(_rounds(_permute(blocks.astype(np.uint64, copy=False), _IP_TABLES), key_schedule(keys)),
                    _FP_TABLES)


def des_cbc_mac(subkeys: np.ndarray, blocks: np.ndarray) -> np.ndarray:
    """The first 4 bytes (uint32) of the last CBC block, IV 0, of N already padded messages.

    `subkeys` is `key_schedule` of each lane's key (gathered per lane), `blocks` (N, m) uint64 values.
    """
    state = None
    for j in range(blocks.shape[1]):
        b = _permute(blocks[:, j], _IP_TABLES)
        state = _rounds(b if state is None else state ^ b, subkeys)
    return (_permute(state, _FP_TABLES) >> np.uint64(32)).astype(np.uint32)
