"""The clearing centre's check of a clearing record: recompute its TAC from the issuer's master keys.

A TAC binds amount, type, terminal ID, terminal sequence (purchases) or balance and counter (loads), and
the date-time, under the card's TAC key, so the issuer can prove a record was made by that card. This is
the check an uploaded clearing file must pass; the demo and the tests run it on every exported record.
"""
from __future__ import annotations

import hmac
from collections.abc import Sequence

from keysets import TYPE_LOAD, Algorithm, KeySet, load_tac, purchase_tac

from .outcome import Outcome


class ClearingError(ValueError):
    """A record that cannot be checked (no TAC, no key set for its algorithm)."""


def expected_tac(outcome: Outcome, master_keysets: Sequence[KeySet]) -> bytes:
    """The TAC the card must have produced for this record, from the issuer's master TAC key."""
    d = outcome.to_dict()
    alg = Algorithm.parse(d["algorithm"])
    ks = next((k for k in master_keysets if k.algorithm is alg), None)
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
