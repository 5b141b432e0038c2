"""Key derivation of the PBOC purse: diversification, session keys, TAC key, KCV (reference 3.1-3.6).

Everything here is a pure function of bytes, so the card, the PSAM, the load host and a clearing centre
derive the same keys from one implementation.
"""
from __future__ import annotations

from collections.abc import Sequence

from .algorithm import Algorithm


def _invert(block: bytes) -> bytes:
    return (int.from_bytes(block, "big") ^ ((1 << (8 * len(block))) - 1)).to_bytes(len(block), "big")


def diversify_once(algorithm: Algorithm, master: bytes, factor: bytes) -> bytes:
    """One level of PBOC diversification with an 8-byte factor D.

    3DES: `Div = 3DES_MK(D) ‖ 3DES_MK(~D)`; SM4: `Div = SM4_MK(D ‖ ~D)`. A longer factor uses its
    right-most 8 bytes, as PBOC says.
    """
    if len(factor) < 8:
        raise ValueError(f"diversification factor must be at least 8 bytes, got {len(factor)}")
    d = factor[-8:]
    if len(master) != 16:
        raise ValueError(f"master key must be 16 bytes, got {len(master)}")
    # 3DES: two independent 8-byte ECB blocks give 3DES(D) ‖ 3DES(~D); SM4: one 16-byte block D ‖ ~D.
    return algorithm.cipher(master).encrypt(d + _invert(d))


def diversify(algorithm: Algorithm, master: bytes, factors: Sequence[bytes]) -> bytes:
    """Apply diversification level by level, in the order given (decision D2: issuer ID, then serial)."""
    key = master
    for factor in factors:
        key = diversify_once(algorithm, key, factor)
    return key


def _session_seed_key(algorithm: Algorithm, card_key: bytes, seed8: bytes) -> bytes:
    cipher = algorithm.cipher(card_key)
    if algorithm is Algorithm.SM4:
        return cipher.encrypt(seed8 + _invert(seed8))
    return cipher.encrypt(seed8)


def purchase_session_key(algorithm: Algorithm, dpk: bytes, random4: bytes, offline_counter: int, terminal_seq: int) -> bytes:
    """SESPK from the card purchase key: seed = random(4) ‖ offline counter(2) ‖ low 2 bytes of the PSAM sequence."""
    _check(random4, 4, "random")
    seed = random4 + offline_counter.to_bytes(2, "big") + (terminal_seq & 0xFFFF).to_bytes(2, "big")
    return _session_seed_key(algorithm, dpk, seed)


def load_session_key(algorithm: Algorithm, dlk: bytes, random4: bytes, online_counter: int) -> bytes:
    """SESLK from the card load key: seed = random(4) ‖ online counter(2) ‖ 80 00."""
    _check(random4, 4, "random")
    seed = random4 + online_counter.to_bytes(2, "big") + b"\x80\x00"
    return _session_seed_key(algorithm, dlk, seed)


def tac_key(algorithm: Algorithm, dtk: bytes) -> bytes:
    """The key TACs are computed under: 3DES folds DTK (left XOR right, single DES); SM4 uses DTK itself."""
    if algorithm is Algorithm.SM4:
        return dtk
    if len(dtk) != 16:
        raise ValueError(f"DTK must be 16 bytes, got {len(dtk)}")
    return bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:]))


def kcv(algorithm: Algorithm, key: bytes) -> bytes:
    """Key check value: the first 3 bytes of the key encrypting a zero block."""
    return algorithm.cipher(key).encrypt(bytes(algorithm.block_size))[:3]


def _check(value: bytes, length: int, name: str) -> None:
    if len(value) != length:
        raise ValueError(f"{name} must be {length} bytes, got {len(value)}")
