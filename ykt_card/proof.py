"""The proof of a completed transaction (D5): what the card keeps and GET TRANSACTION PROVE returns.

One type for both sides: the card stores the proof of its latest load and latest purchase, the host
reads it back after a torn transaction (the answer is MAC2 ‖ TAC; the host knows the type and the
counter it asked for).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Proof", "PROOF_KINDS", "PROOF_TYPES"]

PROOF_KINDS = ("load", "purchase")
"""The card keeps the proof of its latest load and of its latest purchase (D5)."""
PROOF_TYPES: dict[str, tuple[int, ...]] = {"load": (0x02,), "purchase": (0x06, 0x09)}
"""The transaction types a proof of each kind may carry: EP load; purchase or CAPP purchase."""


@dataclass(frozen=True, slots=True)
class Proof:
    """MAC2 and TAC of one completed transaction, with its type and the counter it left (D4, D5).

    `mac2` is the card's MAC2 for a purchase and the host's MAC2 for a load.
    """

    tx_type: int
    counter: int
    mac2: bytes
    tac: bytes
