"""Key sets and the PBOC purse cryptography of T-Union, in 3DES and SM4 (reference sections 3.1-3.6).

Knows nothing of files, APDUs or cards: only bytes in, bytes out, and key set files.
"""
from .algorithm import Algorithm
from .compose import ComponentError, compose
from .derive import diversify, diversify_once, kcv, load_session_key, purchase_session_key, tac_key
from .keyset import ALL_ROLES, REQUIRED_ROLES, KeyEntry, KeySet, KeySetError, Use
from .mac import full_mac, mac, pad80, verify_mac
from .randomness import RandomSource
from .secret import SecretKey
from .transaction import (
    PURCHASE_TYPES,
    TYPE_CAPP_PURCHASE,
    TYPE_LOAD,
    TYPE_PURCHASE,
    LoadSession,
    PurchaseSession,
    load_mac1_input,
    load_mac2_input,
    load_tac,
    load_tac_input,
    purchase_mac1_input,
    purchase_mac2_input,
    purchase_tac,
    purchase_tac_input,
    secure_messaging_iv,
    secure_messaging_mac,
)
from pathlib import Path as _Path

TEST_KEYSET_DIR = _Path(__file__).parent / "test"
"""The shipped TEST key sets (gd-test-3des.toml, gd-test-sm4.toml)."""

__all__ = [name for name in dir() if not name.startswith("_")]
