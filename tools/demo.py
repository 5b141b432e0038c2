"""`ykt demo`: the story of a T-Union transaction on virtual parts, no hardware needed."""
from __future__ import annotations

import click

from apdu.sources import SimulatedClock, bcd_datetime, RandomSource
from keysets import TEST_KEYSET_DIR, KeySet, PurchaseSession, purchase_tac

from .output import console


@click.command("demo")
@click.option("--seed", type=int, default=2020, show_default=True, help="Randomness seed: the run repeats exactly.")
@click.option("--clock", default="20261124081500", show_default=True, metavar="YYYYMMDDhhmmss",
              help="Start time of the simulated clock.")
def demo(seed: int, clock: str) -> None:
    """Run the whole story on virtual parts (test keys only)."""
    c = console()
    rng = RandomSource.seeded(seed)
    clk = SimulatedClock.parse(clock)
    for name in ("gd-test-3des.toml", "gd-test-sm4.toml"):
        ks = KeySet.load(TEST_KEYSET_DIR / name)
        issuer, serial = bytes.fromhex("02205810FFFFFFFF"), bytes.fromhex("8703000000001234")
        card = ks.card_keys(issuer, serial)
        c.rule(f"{ks.name}")
        c.print(f"master purchase key KCV {ks.entry('purchase').kcv}; diversified by {' then '.join(ks.diversification)}")
        c.print(f"card {serial.hex().upper()} of issuer {issuer.hex().upper()}: DPK KCV {card.entry('purchase').kcv}, "
                f"DTK KCV {card.entry('tac').kcv}")
        random4, counter, seq, amount = rng(4), 7, 0x102, 200
        terminal, when = bytes.fromhex("440300000001"), bcd_datetime(clk.now())
        session = PurchaseSession.derive(ks.algorithm, card.entry("purchase").key.value, random4, counter, seq)
        mac1 = session.mac1(amount, 0x06, terminal, when)
        tac = purchase_tac(ks.algorithm, card.entry("tac").key.value, amount, 0x06, terminal, seq, when)
        c.print(f"purchase of {amount} fen at {when.hex()}: random {random4.hex().upper()} MAC1 {mac1.hex().upper()} "
                f"MAC2 {session.mac2(amount).hex().upper()} TAC {tac.hex().upper()}")
