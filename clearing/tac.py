"""The issuer's check of a clearing record: recompute its TAC from the TAC master key (reference 3.2, 3.3).

A TAC binds amount, type, terminal ID, terminal sequence (purchases) or balance and counter (loads), and
the date-time, under the card's TAC key (the master key diversified per decision D2, then folded for 3DES),
so the issuer can prove a record was made by that card.

Two ways in:
* `tac_verifies(outcome, keysets)`: one `Outcome` at a time, through ``keysets`` as the card computes it
  (``ykt demo`` and small checks);
* `TacVerifier`: the clearing platform's path for millions of records. Creating a cipher context costs
  several times more than a block, so it derives each card's TAC key once and keeps one CBC context per
  card for all of that card's records (the verifier visits records card by card). CBC-MAC with IV 0 of
  the next message equals the running CBC context fed the message with its first block XORed with the
  previous chaining value, so one context serves every record of the card.
  ``tests/clearing/test_tac.py`` proves it equals ``keysets.purchase_tac``/``load_tac``.
Comparisons are constant-time; keys never leave this module's objects (no repr shows them).
"""
from __future__ import annotations

import hmac
import warnings
from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from keysets import TYPE_LOAD, Algorithm, KeySet, diversify_once, load_tac, load_tac_input, pad80, purchase_tac
from keysets import purchase_tac_input, tac_key
from terminal_sim.outcome import Outcome

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

__all__ = ["ClearingError", "expected_tac", "tac_verifies", "TacVerifier", "CardTac"]


class ClearingError(ValueError):
    """A record that cannot be checked (no TAC, no key set for its algorithm)."""


def _keyset_for(keysets: Sequence[KeySet], algorithm: Algorithm, key_version: int | None) -> KeySet | None:
    """The key set of this algorithm whose TAC key has the record's version (the only one, if just one)."""
    same = [k for k in keysets if k.algorithm is algorithm]
    if len(same) <= 1 or key_version is None:
        return same[0] if same else None
    return next((k for k in same if k.entry("tac").version == key_version), None)


def expected_tac(outcome: Outcome, master_keysets: Sequence[KeySet]) -> bytes:
    """The TAC the card must have produced for this record, from the issuer's master TAC key."""
    d = outcome.to_dict()
    alg = Algorithm.parse(d["algorithm"])
    ks = _keyset_for(master_keysets, alg, d.get("key_version"))
    if ks is None:
        raise ClearingError(f"record {d.get('terminal_id')}/{d.get('terminal_seq')}: no {alg.value} key set")
    issuer = bytes.fromhex(d["issuer_id"])
    serial8 = bytes.fromhex(d["card_no"][4:])  # EF15 bytes 12..19 = card number digits 4..19
    dtk = ks.card_keys(issuer, serial8).entry("tac").key.value
    tid, when = bytes.fromhex(d["terminal_id"]), bytes.fromhex(d["datetime"])
    tx_type = int(d["type"], 16)
    if tx_type == TYPE_LOAD:
        # The card MACs the balance as INITIALIZE reports it: the real balance plus the overdraft limit.
        reported_after = d["balance_after"] + (d.get("overdraft_limit") or 0)
        return load_tac(alg, dtk, reported_after, d["card_counter"], d["amount"], tid, when)
    return purchase_tac(alg, dtk, d["amount"], tx_type, tid, d["terminal_seq"], when)


def tac_verifies(outcome: Outcome, master_keysets: Sequence[KeySet]) -> bool:
    """True when the record's TAC is the one its card must have computed (constant-time compare)."""
    d = outcome.to_dict()
    if not d.get("tac"):
        raise ClearingError(f"record {d.get('terminal_id')}/{d.get('terminal_seq')} ({d['status']}) has no TAC")
    return hmac.compare_digest(expected_tac(outcome, master_keysets), bytes.fromhex(d["tac"]))


class CardTac:
    """One card's TAC computation under one key: a long-lived CBC context (see the module docstring)."""

    __slots__ = ("_update", "_bs", "_chain")

    def __init__(self, algorithm: Algorithm, key: bytes) -> None:
        if algorithm is Algorithm.SM4:
            cipher = Cipher(algorithms.SM4(key), modes.CBC(bytes(16)))
            self._bs = 16
        else:
            cipher = Cipher(TripleDES(key * 3), modes.CBC(bytes(8)))   # single DES as 3DES K1=K2=K3
            self._bs = 8
        self._update = cipher.encryptor().update
        self._chain = 0

    def mac(self, data: bytes) -> bytes:
        """The 4-byte PBOC MAC of `data` (padding method 2, IV 0) under this card's TAC key."""
        bs = self._bs
        padded = pad80(data, bs)
        first = (int.from_bytes(padded[:bs], "big") ^ self._chain).to_bytes(bs, "big")
        out = self._update(first + padded[bs:])
        last = out[-bs:]
        self._chain = int.from_bytes(last, "big")
        return last[:4]

    def __repr__(self) -> str:
        return "<CardTac key=<hidden>>"


class TacVerifier:
    """Recomputes TACs for many records: master keys per algorithm (and version), issuer-level keys cached."""

    def __init__(self, keysets: Sequence[KeySet]) -> None:
        self._keysets = list(keysets)
        self._level1: dict[tuple[int, bytes], bytes] = {}

    def keyset(self, algorithm: str, key_version: int | None) -> KeySet | None:
        return _keyset_for(self._keysets, Algorithm(algorithm), key_version)

    def card(self, keyset: KeySet, issuer_id: str, card_no: str) -> CardTac:
        """The TAC context of one card: the master TAC key diversified per the key set (D2), then folded."""
        alg = keyset.algorithm
        issuer, serial8 = bytes.fromhex(issuer_id), bytes.fromhex(card_no[4:])
        factors = keyset.factors(issuer, serial8)
        key = keyset.entry("tac").key.value
        if factors and keyset.diversification[0] == "issuer":
            # Every card of an issuer shares the first level: derive it once.
            cache_key = (id(keyset), issuer)
            level1 = self._level1.get(cache_key)
            if level1 is None:
                level1 = self._level1[cache_key] = diversify_once(alg, key, issuer)
            key, factors = level1, factors[1:]
        for factor in factors:
            key = diversify_once(alg, key, factor)
        return CardTac(alg, tac_key(alg, key))

    @staticmethod
    def message(tx_type: int, amount: int, balance_after: int, overdraft: int, counter: int, terminal_id: str,
                terminal_seq: int | None, when: str) -> bytes:
        """The TAC input of a record (reference 3.2 for loads, 3.3 for purchases)."""
        tid, dt = bytes.fromhex(terminal_id), bytes.fromhex(when)
        if tx_type == TYPE_LOAD:
            return load_tac_input(balance_after + overdraft, counter, amount, tid, dt)
        return purchase_tac_input(amount, tx_type, tid, terminal_seq, dt)

    @staticmethod
    def matches(card: CardTac, message: bytes, tac_hex: str) -> bool:
        return hmac.compare_digest(card.mac(message), bytes.fromhex(tac_hex))

    def __repr__(self) -> str:
        return f"TacVerifier({', '.join(k.name for k in self._keysets)})"
