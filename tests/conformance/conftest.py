"""Cards for the conformance tests: ykt's card (or a mutant of it) issued from the reference profile."""
from __future__ import annotations

import datetime as _dt

from keysets import TEST_KEYSET_DIR, KeySet
from keysets.randomness import RandomSource
from specs.catalog import card_profile_path
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile

PROFILE = load_card_profile(card_profile_path("reference"))
KEYSETS = {alg: KeySet.load(TEST_KEYSET_DIR / f"gd-test-{alg}.toml") for alg in ("3des", "sm4")}
K3 = str(TEST_KEYSET_DIR / "gd-test-3des.toml")
K4 = str(TEST_KEYSET_DIR / "gd-test-sm4.toml")


def issued_state(algorithms=("3des", "sm4"), balance: int = 0):
    keysets = [KEYSETS[a] for a in algorithms]
    return issue_card(PROFILE, keysets, PROFILE.card_number(7), _dt.date(2026, 1, 1), balance=balance).state


def card_os(cls, algorithms=("3des", "sm4"), seed: int = 1):
    return cls(issued_state(algorithms), rng=RandomSource(seed))
