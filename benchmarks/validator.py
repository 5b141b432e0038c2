"""Complete validator transactions per second in-process (card, PSAM and flow), and what each flow sends.

For each shipped flow: transactions per second through `Validator.tap()` (or `flows.load`) with an
in-process virtual card and PSAM and an in-memory journal; the ratio to the card-only CAPP purchase of
benchmarks/card.py measured in the same run; and the APDUs and bytes exchanged with the card and with the
PSAM per transaction (PSAM start-up, once per validator, excluded). Target (issue 4): ≥ 1,000 bus-flat taps
per second on one core. Run: `.venv/bin/python benchmarks/validator.py [--seconds S]`.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource
from ykt_card.clock import SimulatedClock
from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path, terminal_profile_path
from terminal_sim.flows import load as load_flow
from terminal_sim.load_host import LoadHost
from terminal_sim.profile import load_terminal_profile
from terminal_sim.links import CountingReader
from terminal_sim.validator import Validator
from ykt_card.card.cos import TUnionCardOS
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam

sys.path.insert(0, str(Path(__file__).parent))
import card as card_bench  # noqa: E402  (benchmarks/card.py: the card-only purchase baseline)
from timing import rate  # noqa: E402

KEYSETS = [KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml"), KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")]
TERMINAL = bytes.fromhex("440300000001")


class World:
    """One card, one PSAM, counted readers, a simulated clock that moves a minute per transaction."""

    def __init__(self) -> None:
        profile = load_card_profile(card_profile_path("gd-guangzhou"))
        issued = issue_card(profile, KEYSETS, profile.card_number(1), _dt.date(2026, 11, 24), balance=100000)
        self.card_os = TUnionCardOS(issued.state, rng=RandomSource(1))
        self.card = CountingReader(InProcessReader(self.card_os, name="card"))
        self.psam = CountingReader(InProcessReader(PsamOS(issue_psam(KEYSETS, TERMINAL), random=RandomSource(2)),
                                                   name="psam"))
        self.clock = SimulatedClock.parse("20261124080000", step=60)

    def refill(self) -> None:
        """Keep the purse and counters in range without loads (they would change what is measured)."""
        purse = self.card_os.state.purse
        if purse.balance < 5000:
            purse.balance = 100000

    def validator(self, name: str, **kw) -> Validator:
        return Validator(load_terminal_profile(terminal_profile_path(name)), self.psam, self.card, clock=self.clock,
                         **kw)


def flows(world: World):
    """name → (transactions per call, function doing them)."""
    def taps(*validators: Validator):
        def run() -> None:
            for v in validators:
                out = v.tap()
                assert out.status == "approved", out.reason
            world.refill()
        return run

    segment = load_terminal_profile(terminal_profile_path("bus-segment"))
    host = LoadHost(KEYSETS, clock=world.clock)

    def load() -> None:
        world.card_os.state.purse.balance = 0
        out = load_flow(world.card, host, 5000, TERMINAL, clock=world.clock)
        assert out.status == "approved", out.reason

    return {
        "bus-flat": (1, taps(world.validator("bus-flat"))),
        "bus-flat-capp": (1, taps(world.validator("bus-flat-capp"))),
        "bus-segment (board + alight)": (2, taps(Validator(segment, world.psam, world.card, clock=world.clock,
                                                          station="01"),
                                                Validator(segment, world.psam, world.card, clock=world.clock,
                                                          station="04"))),
        "metro (entry + exit)": (2, taps(world.validator("metro-entry", station="0301"),
                                         world.validator("metro-exit", station="0306"))),
        "ferry": (1, taps(world.validator("ferry"))),
        "taxi": (1, taps(world.validator("taxi", amount=2750))),
        "load": (1, load),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0)
    args = ap.parse_args()
    card_only = rate(card_bench.capp_purchase_loop("3des"), args.seconds)
    print(f"card-only CAPP purchase (benchmarks/card.py, 3DES): {card_only:,.0f}/s")
    print(f"{'flow':30} {'tx/s':>7} {'time/card-only':>15} {'card APDUs':>10} {'card bytes out/in':>18} "
          f"{'PSAM APDUs':>10} {'PSAM bytes out/in':>18}")
    bus_flat = 0.0
    for name in flows(World()):
        world = World()                           # a fresh card and PSAM per flow
        per_call, fn = flows(world)[name]
        fn()                                      # PSAM start-up and first reads, not counted
        world.card.reset()
        world.psam.reset()
        fn()
        c, p = world.card.reset(), world.psam.reset()
        tx = rate(fn, args.seconds, batch=20, per_call=per_call)
        if name == "bus-flat":
            bus_flat = tx
        print(f"{name:30} {tx:7,.0f} {card_only / tx:14.1f}x {c.commands / per_call:10.1f} "
              f"{c.bytes_out / per_call:8.0f} / {c.bytes_in / per_call:<7.0f} {p.commands / per_call:10.1f} "
              f"{p.bytes_out / per_call:8.0f} / {p.bytes_in / per_call:<7.0f}")
    print(f"bus-flat {bus_flat:,.0f} taps/s (target ≥ 1,000): {'met' if bus_flat >= 1000 else 'NOT met'}")


if __name__ == "__main__":
    main()
