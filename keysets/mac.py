"""PBOC MACs: ISO 9797-1 algorithm 1 and 3 over DES, CBC-MAC over SM4; padding method 2; 4-byte result.

Reference section 3.1 and 3.5: always pad with 80 then 00 to a whole block (a full extra block when the
data is already aligned), CBC from the IV, keep the first 4 bytes of the last block. An 8-byte key means
single DES (session keys, the 3DES TAC key); a 16-byte 3DES-family key means the retail MAC (single DES
CBC under K_L, then DES⁻¹ K_R and DES K_L on the last block), which equals 3DES-EDE of the last chaining
value. SM4 uses 16-byte blocks and a 16-byte IV.
"""
from __future__ import annotations

import hmac

from .algorithm import Algorithm
from .ciphers import BlockCipher, des, sm4, tdes

MAC_LENGTH = 4


def pad80(data: bytes, block_size: int) -> bytes:
    """ISO 9797-1 padding method 2: append 80, then 00 up to a multiple of the block size (always)."""
    return data + b"\x80" + bytes(-(len(data) + 1) % block_size)


def _cbc_last(cipher: BlockCipher, blocks: bytes, iv: int, bs: int) -> int:
    """CBC-encrypt whole blocks from an integer IV, returning the last chaining value as an integer."""
    x = iv
    enc = getattr(cipher, "encrypt_aligned", cipher.encrypt)
    for i in range(0, len(blocks), bs):
        x ^= int.from_bytes(blocks[i : i + bs], "big")
        x = int.from_bytes(enc(x.to_bytes(bs, "big")), "big")
    return x


def full_mac(algorithm: Algorithm, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """The whole last block of the MAC computation (callers keep 4 bytes; tests inspect all of it)."""
    if algorithm is Algorithm.SM4:
        bs = 16
        iv_int = _iv(iv, bs)
        return _cbc_last(sm4(key), pad80(data, bs), iv_int, bs).to_bytes(bs, "big")
    bs = 8
    iv_int = _iv(iv, bs)
    padded = pad80(data, bs)
    if len(key) == 8:
        return _cbc_last(des(key), padded, iv_int, bs).to_bytes(bs, "big")
    if len(key) != 16:
        raise ValueError(f"3DES MAC key must be 8 or 16 bytes, got {len(key)}")
    # Retail MAC: single DES under K_L for all blocks but the last, then 3DES-EDE on the last chaining input.
    head, last = padded[:-bs], padded[-bs:]
    x = _cbc_last(des(key[:8]), head, iv_int, bs) ^ int.from_bytes(last, "big")
    return tdes(key).encrypt(x.to_bytes(bs, "big"))


def mac(algorithm: Algorithm, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    """The 4-byte PBOC MAC of `data` under `key` (see module docstring for the variants)."""
    if iv is None and len(key) == 8 and algorithm is Algorithm.TDES:  # the hot path: transaction MACs
        return _cbc_last(des(key), pad80(data, 8), 0, 8).to_bytes(8, "big")[:MAC_LENGTH]
    if iv is None and algorithm is Algorithm.SM4:
        return _cbc_last(sm4(key), pad80(data, 16), 0, 16).to_bytes(16, "big")[:MAC_LENGTH]
    return full_mac(algorithm, key, data, iv)[:MAC_LENGTH]


def verify_mac(algorithm: Algorithm, key: bytes, data: bytes, received: bytes, iv: bytes | None = None) -> bool:
    """Constant-time comparison of a received MAC with the one computed here."""
    return hmac.compare_digest(mac(algorithm, key, data, iv), received)


def _iv(iv: bytes | None, bs: int) -> int:
    if iv is None:
        return 0
    if len(iv) != bs:
        raise ValueError(f"MAC IV must be {bs} bytes, got {len(iv)}")
    return int.from_bytes(iv, "big")
