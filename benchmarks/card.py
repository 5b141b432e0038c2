"""Complete CAPP purchases per second through the virtual card, in-process, against the crypto-only floor.

Each purchase: INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE for EF1A and EF1E, DEBIT — parsed,
dispatched, MAC1 verified, committed by the card (image persistence off), with the host deriving SESPK and
computing MAC1 as a PSAM would, and checking MAC2. The floor runs the same session-key, MAC1, MAC2 and TAC
computations through `keysets` with no APDU and no card state. Targets (issue 3): ≥ 5,000 purchases per
second on one core and ≤ 3x the floor.

Any duration: a card allows 65,535 purchases (its offline counter stops at FFFF) and a balance of
1,000 yuan. When the INITIALIZE answer shows that the card would refuse the next purchase, the loop
presents a fresh card (the next card number of the reference profile); the host's terminal sequence
(4 bytes) wraps from FFFFFFFF to 1. That upkeep is left out of the rates (benchmarks/_harness.py).
`--near-limits` personalises every card at the last purse `used_up` lets through (alternately the
counter and the balance: one purchase left) and starts the sequence at FFFFFFFE, so a short run crosses
every refresh.
Run: `.venv/bin/python benchmarks/card.py [--seconds S] [--near-limits]`.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import sys
from pathlib import Path

from keysets import TEST_KEYSET_DIR, KeySet, PurchaseSession, purchase_tac
from keysets.randomness import RandomSource
from specs.catalog import card_profile_path
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.state import CardState
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile

sys.path.insert(0, str(Path(__file__).parent))
from _harness import (COUNTER_LIMIT, Loops, Upkeep, last_passing, rate, report_upkeep,  # noqa: E402
                      standard_arguments)

TERMINAL = bytes.fromhex("440300000001")
WHEN = bytes.fromhex("20261124093000")
AMOUNT = 1
ISSUED_ON = _dt.date(2026, 11, 24)
SELECT_EP = bytes.fromhex("00A4040008A00000063201010500")
REC_1A = bytes.fromhex("80DC01D080") + bytes.fromhex("27017D010100") + bytes(122)
REC_1E = bytes.fromhex("80DC00F030") + bytes(48)
SEQ_LAST = 0xFFFFFFFF
"""The last terminal sequence number 4 bytes hold; the host's sequence wraps to 1 after it."""
CARD_NUMBERS = 1_000_000
"""Card numbers cycle through this many serials: a card is long gone when its number comes back."""
CARD_LIMITS = ("offline counter", "balance")
"""What purchases use up on a card, as the refresh reasons name it."""
PROFILE = load_card_profile(card_profile_path("reference"))


def fail(message: str) -> SystemExit:
    """A benchmark that cannot go on stops with one line and exit status 1."""
    return SystemExit(f"{Path(__file__).name}: {message}")


def used_up(counter: int, balance: int) -> str | None:
    """Why a card whose purse shows `counter` and `balance` could not take the next purchase (the refresh
    reason), or None when it can: its offline counter would pass FFFF, or the amount would overdraw it."""
    if counter >= COUNTER_LIMIT:
        return "offline counter"
    if balance < AMOUNT:
        return "balance"
    return None


def near_limit(state: CardState, limit: str) -> None:
    """Personalise a card at the last purse `used_up` lets through before refreshing for `limit`."""
    purse = state.purse
    if limit == "offline counter":
        purse.offline_counter = last_passing(lambda c: used_up(c, purse.balance) != limit, 0, COUNTER_LIMIT)
    elif limit == "balance":
        top = purse.max_balance + purse.overdraft_limit       # INITIALIZE shows balance + overdraft limit
        shown = top - last_passing(lambda d: used_up(purse.offline_counter, top - d) != limit, 0, top)
        purse.balance = shown - purse.overdraft_limit
    else:
        raise ValueError(f"limit: unknown {limit!r} (known: {', '.join(CARD_LIMITS)})")
    state.validate()


class Cards:
    """Fresh cards of the reference profile for one algorithm, issued with the maximum balance, powered
    and selected, with their card keys (what a PSAM would derive for them)."""

    def __init__(self, alg: str, near_limits: bool = False) -> None:
        self.keyset = KeySet.load(TEST_KEYSET_DIR / f"gd-test-{alg}.toml")
        self.index = next(s.index for s in PROFILE.keys if s.algorithm == alg)
        self._near = itertools.cycle(CARD_LIMITS) if near_limits else None
        self.issued = 0

    def issue(self) -> tuple[TUnionCardOS, KeySet]:
        serial = self.issued % CARD_NUMBERS + 1
        self.issued += 1
        issued = issue_card(PROFILE, [self.keyset], PROFILE.card_number(serial), ISSUED_ON,
                            balance=PROFILE.max_balance)
        if self._near is not None:
            near_limit(issued.state, next(self._near))
        card = TUnionCardOS(issued.state, rng=RandomSource(serial))
        card.power_on()
        sw = card.process(SELECT_EP)[-2:]
        if sw != b"\x90\x00":
            raise fail(f"card {issued.card_no}: SELECT answered {sw.hex().upper()}")
        return card, self.keyset.card_keys(issued.state.issuer_id, issued.state.serial8)


class CappPurchases:
    """One complete CAPP purchase per call on the card in the field; a fresh card when it is used up."""

    def __init__(self, alg: str, near_limits: bool = False, upkeep: Upkeep | None = None) -> None:
        self.cards = Cards(alg, near_limits)
        self.upkeep = upkeep if upkeep is not None else Upkeep()
        self.init = bytes.fromhex(f"805003020B{self.cards.index:02X}{AMOUNT:08X}") + TERMINAL + b"\x0f"
        self.seq = SEQ_LAST - 2 if near_limits else 0
        self._present()

    def _present(self) -> None:
        card, keys = self.cards.issue()
        self.process = card.process
        self.algorithm = keys.algorithm
        self.dpk = keys.entry("purchase").key.value

    def __call__(self) -> None:
        process = self.process
        r = process(self.init)
        if r[-2:] != b"\x90\x00":
            raise fail(f"INITIALIZE FOR CAPP PURCHASE answered {r[-2:].hex().upper()}")
        balance, ctr, rnd = int.from_bytes(r[0:4], "big"), int.from_bytes(r[4:6], "big"), r[11:15]
        process(REC_1A)
        process(REC_1E)
        seq = self.seq + 1
        if seq > SEQ_LAST:
            with self.upkeep.refresh("terminal sequence"):
                seq = 1
        self.seq = seq
        s = PurchaseSession.derive(self.algorithm, self.dpk, rnd, ctr, seq)
        mac1 = s.mac1(AMOUNT, 0x09, TERMINAL, WHEN)
        r = process(b"\x80\x54\x01\x00\x0f" + seq.to_bytes(4, "big") + WHEN + mac1 + b"\x08")
        if r[-2:] != b"\x90\x00" or not s.verify_mac2(r[4:8], AMOUNT):
            raise fail(f"DEBIT answered {r.hex().upper()} (MAC2 checked against the host's)")
        why = used_up(ctr + 1, balance - AMOUNT)     # the purse INITIALIZE showed, after this purchase
        if why is not None:
            with self.upkeep.refresh(why):
                self._present()


class CryptoFloor:
    """The cryptography of one purchase, both sides, with no APDU and no card state."""

    def __init__(self, alg: str, near_limits: bool = False, upkeep: Upkeep | None = None) -> None:
        _, keys = Cards(alg).issue()
        self.algorithm = keys.algorithm
        self.dpk, self.dtk = keys.entry("purchase").key.value, keys.entry("tac").key.value
        self.upkeep = upkeep if upkeep is not None else Upkeep()
        self.seq = SEQ_LAST - 2 if near_limits else 0

    def __call__(self) -> None:
        alg, dpk, rnd = self.algorithm, self.dpk, b"\x1a\x2b\x3c\x4d"
        seq = self.seq + 1
        if seq > SEQ_LAST:
            with self.upkeep.refresh("terminal sequence"):
                seq = 1
        self.seq = seq
        host = PurchaseSession.derive(alg, dpk, rnd, 7, seq)            # PSAM side
        mac1 = host.mac1(AMOUNT, 0x09, TERMINAL, WHEN)
        card = PurchaseSession.derive(alg, dpk, rnd, 7, seq)            # card side
        if not card.verify_mac1(mac1, AMOUNT, 0x09, TERMINAL, WHEN):
            raise fail("floor: MAC1 does not verify")
        mac2 = card.mac2(AMOUNT)
        purchase_tac(alg, self.dtk, AMOUNT, 0x09, TERMINAL, seq, WHEN)
        if not host.verify_mac2(mac2, AMOUNT):
            raise fail("floor: MAC2 does not verify")


def main() -> int:
    args = standard_arguments(__doc__.splitlines()[0], seconds=1.0).parse_args()
    print(f"{'algorithm':10} {'CAPP purchases/s':>17} {'crypto floor/s':>15} {'ratio':>6}")
    ok = True
    loops: Loops = {}
    for alg in ("3des", "sm4"):
        ours_upkeep, floor_upkeep = Upkeep(), Upkeep()
        ours = rate(CappPurchases(alg, args.near_limits, ours_upkeep), args.seconds, upkeep=ours_upkeep)
        floor = rate(CryptoFloor(alg, args.near_limits, floor_upkeep), args.seconds, upkeep=floor_upkeep)
        loops[f"{alg} purchases"] = (ours_upkeep, CARD_LIMITS + ("terminal sequence",))
        loops[f"{alg} floor"] = (floor_upkeep, ("terminal sequence",))
        ratio = floor / ours
        ok &= ours >= 5000 and ratio <= 3
        print(f"{alg:10} {ours:17,.0f} {floor:15,.0f} {ratio:5.2f}x")
    print(f"targets (≥ 5,000/s, ≤ 3x the floor): {'met' if ok else 'NOT met'}")
    return report_upkeep(loops, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
