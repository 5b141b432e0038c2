"""Complete CAPP purchases per second through the virtual card, in-process, against the crypto-only floor.

Each purchase: INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE for EF1A and EF1E, DEBIT — parsed,
dispatched, MAC1 verified, committed by the card (image persistence off), with the host deriving SESPK and
computing MAC1 as a PSAM would, and checking MAC2. The floor runs the same session-key, MAC1, MAC2 and TAC
computations through `keysets` with no APDU and no card state. Targets (issue 3): ≥ 5,000 purchases per
second on one core and ≤ 3x the floor. Run: `.venv/bin/python benchmarks/card.py [--seconds S]`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from keysets.randomness import RandomSource
from keysets import TEST_KEYSET_DIR, KeySet, PurchaseSession, purchase_tac
from specs.catalog import card_profile_path
from ykt_card.card.cos import TUnionCardOS
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile

sys.path.insert(0, str(Path(__file__).parent))
from timing import rate  # noqa: E402

TERMINAL = bytes.fromhex("440300000001")
WHEN = bytes.fromhex("20261124093000")
AMOUNT = 1


def make_card(alg: str) -> tuple[TUnionCardOS, KeySet, int]:
    profile = load_card_profile(card_profile_path("reference"))
    ks = KeySet.load(TEST_KEYSET_DIR / f"gd-test-{alg}.toml")
    issued = issue_card(profile, [ks], profile.card_number(1), _dt.date(2026, 11, 24), balance=100000)
    card = TUnionCardOS(issued.state, rng=RandomSource(1))
    card.power_on()
    assert card.process(bytes.fromhex("00A4040008A00000063201010500"))[-2:] == b"\x90\x00"
    card_keys = ks.card_keys(issued.state.issuer_id, issued.state.serial8)
    index = next(s.index for s in profile.keys if s.algorithm == alg)
    return card, card_keys, index


def capp_purchase_loop(alg: str):
    card, keys, index = make_card(alg)
    dpk = keys.entry("purchase").key.value
    init = bytes.fromhex(f"805003020B{index:02X}{AMOUNT:08X}") + TERMINAL + b"\x0f"
    rec1a = bytes.fromhex("80DC01D080") + bytes.fromhex("27017D010100") + bytes(122)
    rec1e = bytes.fromhex("80DC00F030") + bytes(48)
    process = card.process
    seq = [0]

    def one() -> None:
        r = process(init)
        assert r[-2:] == b"\x90\x00"
        ctr, rnd = int.from_bytes(r[4:6], "big"), r[11:15]
        process(rec1a)
        process(rec1e)
        seq[0] += 1
        s = PurchaseSession.derive(keys.algorithm, dpk, rnd, ctr, seq[0])
        mac1 = s.mac1(AMOUNT, 0x09, TERMINAL, WHEN)
        r = process(b"\x80\x54\x01\x00\x0f" + seq[0].to_bytes(4, "big") + WHEN + mac1 + b"\x08")
        assert r[-2:] == b"\x90\x00" and s.verify_mac2(r[4:8], AMOUNT)
        if card.state.purse.balance < 10:  # refill without a load so the loop never runs dry
            card.state.purse.balance = 100000

    return one


def crypto_floor(alg: str):
    _, keys, _ = make_card(alg)
    dpk, dtk = keys.entry("purchase").key.value, keys.entry("tac").key.value
    rnd = bytes.fromhex("1A2B3C4D")
    seq = [0]

    def one() -> None:
        seq[0] += 1
        host = PurchaseSession.derive(keys.algorithm, dpk, rnd, 7, seq[0])           # PSAM side
        mac1 = host.mac1(AMOUNT, 0x09, TERMINAL, WHEN)
        card = PurchaseSession.derive(keys.algorithm, dpk, rnd, 7, seq[0])           # card side
        assert card.verify_mac1(mac1, AMOUNT, 0x09, TERMINAL, WHEN)
        mac2 = card.mac2(AMOUNT)
        purchase_tac(keys.algorithm, dtk, AMOUNT, 0x09, TERMINAL, seq[0], WHEN)
        assert host.verify_mac2(mac2, AMOUNT)

    return one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    print(f"{'algorithm':10} {'CAPP purchases/s':>17} {'crypto floor/s':>15} {'ratio':>6}")
    ok = True
    for alg in ("3des", "sm4"):
        ours, floor = rate(capp_purchase_loop(alg), args.seconds), rate(crypto_floor(alg), args.seconds)
        ratio = floor / ours
        ok &= ours >= 5000 and ratio <= 3
        print(f"{alg:10} {ours:17,.0f} {floor:15,.0f} {ratio:5.2f}x")
    print(f"targets (≥ 5,000/s, ≤ 3x the floor): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
