"""Complete validator transactions per second in-process (card, PSAM and flow), and what each flow sends.

For each shipped flow: transactions per second through `Validator.tap()` (or `flows.load`) with an
in-process virtual card and PSAM and an in-memory journal; the ratio to the card-only CAPP purchase of
benchmarks/card.py measured in the same run; and the APDUs and bytes exchanged with the card and with the
PSAM per transaction (PSAM start-up, once per validator, excluded). Target (issue 4): ≥ 1,000 bus-flat taps
per second on one core.

Any duration: between calls the flow's `World` replaces what the next call could not do without. A
fresh card (the next Guangzhou card number, issued on the clock's date) comes in before the card's
offline counter (purchases) or online counter (loads) would pass FFFF, before its balance drops under
`RESERVE` (purchases) or leaves no room for the next load, and before the simulated clock (a minute per
reading) gets within `EXPIRY_MARGIN` of the card's expiry; a fresh PSAM (and validators that start it
up) before its terminal sequence runs out. That upkeep is left out of the rates (benchmarks/_harness.py).
`--near-limits` personalises each new card at the last state `World.used_up` lets through before one of
its flow's refreshes (each limit in turn; for expiry the clock moves to the last second) and each PSAM
at the last sequence `World.psam_used_up` lets through, so a short run crosses every refresh and a
check that is too lax makes the card or PSAM refuse.
Run: `.venv/bin/python benchmarks/validator.py [--seconds S] [--near-limits]`.
"""
from __future__ import annotations

import datetime as _dt
import itertools
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from apdu.transport.inprocess import InProcessReader
from keysets import TEST_KEYSET_DIR, KeySet
from keysets.randomness import RandomSource
from specs.catalog import card_profile_path, terminal_profile_path
from terminal_sim.flows import load as load_flow
from terminal_sim.lists import load_blacklist
from terminal_sim.load_host import LoadHost
from terminal_sim.profile import load_terminal_profile
from terminal_sim.links import CountingReader
from terminal_sim.validator import Validator
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.state import CardState, Purse
from ykt_card.clock import CHINA_TZ, SimulatedClock
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import FIRST_TERMINAL_SEQ, SEQ_EXHAUSTED, PsamOS
from ykt_card.psam.issue import issue_psam

sys.path.insert(0, str(Path(__file__).parent))
import card as card_bench  # noqa: E402  (benchmarks/card.py: the card-only purchase baseline)
from _harness import (COUNTER_LIMIT, Loops, Upkeep, last_passing, rate, report_upkeep,  # noqa: E402
                      standard_arguments)

KEYSETS = [KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml"), KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")]
TERMINAL = bytes.fromhex("440300000001")
PROFILE = load_card_profile(card_profile_path("gd-guangzhou"))
START = "20261124080000"
STEP = 60
"""Simulated seconds per clock reading: a minute per transaction (the year 9999 is 4 billion readings away)."""
RESERVE = 10_000
"""Fen a purchase card keeps; more than one call of any shipped flow charges (taxi 27.50, metro 14 yuan)."""
LOAD_AMOUNT = 5000
EXPIRY_MARGIN = _dt.timedelta(minutes=10)
"""A card is replaced when its validity ends sooner than this by the clock (one call reads it twice at most)."""
CARD_NUMBERS = 1_000_000
"""Card numbers cycle through this many serials: a card is long gone when its number comes back."""
PURCHASE_LIMITS = ("offline counter", "balance", "expiry")
LOAD_LIMITS = ("online counter", "headroom", "expiry")
PSAM_LIMIT = "terminal sequence"


def fail(message: str) -> SystemExit:
    """A benchmark that cannot go on stops with one line and exit status 1."""
    return SystemExit(f"{Path(__file__).name}: {message}")


@dataclass(frozen=True)
class Flow:
    """One shipped flow as a call of the benchmark: its terminals in order (profile name and Validator
    options), or none for a load (flows.load with the load host)."""

    name: str
    per_call: int
    terminals: tuple[tuple[str, dict[str, Any]], ...] = field(default=())

    @property
    def card_limits(self) -> tuple[str, ...]:
        return PURCHASE_LIMITS if self.terminals else LOAD_LIMITS

    @property
    def limits(self) -> tuple[str, ...]:
        """Every refresh a long run of this flow needs."""
        return self.card_limits + ((PSAM_LIMIT,) if self.terminals else ())


FLOWS = (
    Flow("bus-flat", 1, (("bus-flat", {}),)),
    Flow("bus-flat-capp", 1, (("bus-flat-capp", {}),)),
    Flow("bus-segment (board + alight)", 2, (("bus-segment", {"station": "01"}), ("bus-segment", {"station": "04"}))),
    Flow("metro (entry + exit)", 2, (("metro-entry", {"station": "0301"}), ("metro-exit", {"station": "0306"}))),
    Flow("ferry", 1, (("ferry", {}),)),
    Flow("taxi", 1, (("taxi", {"amount": 2750}),)),
    Flow("load", 1),
)


class World:
    """One flow's terminals, a card slot and a PSAM slot (both counted), a simulated clock, the load host;
    `keep()` replaces card or PSAM before the next call would find one used up."""

    def __init__(self, flow: Flow, near_limits: bool = False) -> None:
        self.flow = flow
        self.upkeep = Upkeep()
        self.clock = SimulatedClock.parse(START, step=STEP)
        self.card_slot, self.psam_slot = InProcessReader(name="card"), InProcessReader(name="psam")
        self.card, self.psam = CountingReader(self.card_slot), CountingReader(self.psam_slot)
        self.host = LoadHost(KEYSETS, clock=self.clock)
        self._profiles = [(load_terminal_profile(terminal_profile_path(name)), options)
                          for name, options in flow.terminals]
        terminals = [profile for profile, _ in self._profiles] or [load_terminal_profile(terminal_profile_path("load"))]
        self._blacklisted = frozenset().union(*(load_blacklist(t.blacklist).cards for t in terminals))
        self._near_card = itertools.cycle(flow.card_limits) if near_limits else None
        self._near_psam = near_limits
        self.cards_issued = 0
        self.validators: list[Validator] = []
        self.psam_os: PsamOS | None = None
        self._present_card()
        if flow.terminals:
            self._install_psam()

    # -- the measured call -----------------------------------------------------------------------
    def transact(self) -> None:
        """One call: a tap on each terminal in order, or one load."""
        for v in self.validators:
            out = v.tap()
            if out.status != "approved":
                raise fail(f"{self.flow.name}: {v.profile.name}: {out.status}: {out.reason}")
        if not self.validators:
            out = load_flow(self.card, self.host, LOAD_AMOUNT, TERMINAL, clock=self.clock)
            if out.status != "approved":
                raise fail(f"{self.flow.name}: {out.status}: {out.reason}")

    def step(self) -> None:
        """What the timed loop calls: one call, then the upkeep it may need."""
        self.transact()
        self.keep()

    # -- upkeep ----------------------------------------------------------------------------------
    def keep(self) -> None:
        """Refresh the card or the PSAM when the next call could not run on it (the reasons: limits)."""
        why = self.used_up(self.card_os.state.purse, self.clock.peek())
        if why is not None:
            with self.upkeep.refresh(why):
                self._present_card()
        if self.psam_os is not None and self.psam_used_up(self.psam_os.state.next_terminal_seq):
            with self.upkeep.refresh(PSAM_LIMIT):
                self._install_psam()

    def used_up(self, purse: Purse, now: _dt.datetime) -> str | None:
        """Why the next call could not run on the card in the field, with this purse at this time (the
        refresh reason), or None when it can."""
        n = self.flow.per_call
        if now >= self.card_valid_until - EXPIRY_MARGIN:
            return "expiry"
        if self.flow.terminals:
            if purse.offline_counter + n > COUNTER_LIMIT:
                return "offline counter"
            if purse.balance < RESERVE:
                return "balance"
        else:
            if purse.online_counter + n > COUNTER_LIMIT:
                return "online counter"
            if purse.balance + n * LOAD_AMOUNT > purse.max_balance:
                return "headroom"
        return None

    def psam_used_up(self, next_terminal_seq: int) -> bool:
        """True when the PSAM could not number every purchase of the next call."""
        return next_terminal_seq + self.flow.per_call > SEQ_EXHAUSTED

    def _present_card(self) -> None:
        """Take the card out of the field and present a fresh one (near a limit with --near-limits)."""
        near = next(self._near_card) if self._near_card is not None else None
        card_no = self._next_card_no()
        today = self.clock.peek().date()
        # Near expiry: a card issued `valid_years` before the day after tomorrow, which expires tomorrow.
        issued_on = _years_before(today + _dt.timedelta(days=2), PROFILE.valid_years) if near == "expiry" else today
        issued = issue_card(PROFILE, KEYSETS, card_no, issued_on,
                            balance=PROFILE.max_balance if self.flow.terminals else 0)
        expiry = PROFILE.expiry(issued_on)
        self.card_valid_until = _dt.datetime.combine(expiry + _dt.timedelta(days=1), _dt.time(), CHINA_TZ)
        if near is not None:
            self._near_limit(issued.state, near)
        self.card_os = TUnionCardOS(issued.state, rng=RandomSource(self.cards_issued))
        self.card_slot.remove()
        self.card_slot.insert(self.card_os)

    def _next_card_no(self) -> str:
        """The next card number of the profile that no terminal of this flow has on its black list."""
        while True:
            serial = self.cards_issued % CARD_NUMBERS + 1
            self.cards_issued += 1
            card_no = PROFILE.card_number(serial)
            if card_no not in self._blacklisted:
                return card_no

    def _near_limit(self, state: CardState, limit: str) -> None:
        """Personalise a fresh card at the last state `used_up` lets through before refreshing for `limit`
        (for expiry: move the clock to the last second it lets through)."""
        purse, now = state.purse, self.clock.peek()

        def passes(**purse_fields: int) -> bool:
            return self.used_up(replace(purse, **purse_fields), now) != limit

        if limit in ("offline counter", "online counter"):
            name = limit.replace(" ", "_")
            setattr(purse, name, last_passing(lambda c: passes(**{name: c}), 0, COUNTER_LIMIT))
        elif limit == "balance":
            top = purse.max_balance
            purse.balance = top - last_passing(lambda d: passes(balance=top - d), 0, top)
        elif limit == "headroom":
            purse.balance = last_passing(lambda b: passes(balance=b), 0, purse.max_balance)
        elif limit == "expiry":
            span = int((self.card_valid_until - now).total_seconds())
            later = last_passing(lambda s: self.used_up(purse, now + _dt.timedelta(seconds=s)) != limit, 0, span)
            self.clock.advance(later)
        else:
            raise ValueError(f"limit: unknown {limit!r}")
        state.validate()

    def _install_psam(self) -> None:
        """A fresh PSAM in its slot and validators that start it up (a terminal restarts on a new PSAM).
        With --near-limits its sequence starts at the last value `psam_used_up` lets through."""
        seq = FIRST_TERMINAL_SEQ
        if self._near_psam:
            seq = last_passing(lambda s: not self.psam_used_up(s), FIRST_TERMINAL_SEQ, SEQ_EXHAUSTED)
        self.psam_os = PsamOS(issue_psam(KEYSETS, TERMINAL, next_terminal_seq=seq), random=RandomSource(2))
        self.psam_slot.remove()
        self.psam_slot.insert(self.psam_os)
        self.validators = [Validator(profile, self.psam, self.card, clock=self.clock, **options)
                           for profile, options in self._profiles]
        for v in self.validators:
            v.start()


def _years_before(day: _dt.date, years: int) -> _dt.date:
    """The same day `years` earlier (28 February for a 29th that year lacks)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def main() -> int:
    args = standard_arguments(__doc__.splitlines()[0], seconds=1.0).parse_args()
    card_upkeep = Upkeep()
    card_only = rate(card_bench.CappPurchases("3des", args.near_limits, card_upkeep), args.seconds,
                     upkeep=card_upkeep)
    loops: Loops = {"card-only CAPP purchase": (card_upkeep, card_bench.CARD_LIMITS + ("terminal sequence",))}
    print(f"card-only CAPP purchase (benchmarks/card.py, 3DES): {card_only:,.0f}/s")
    print(f"{'flow':30} {'tx/s':>7} {'time/card-only':>15} {'card APDUs':>10} {'card bytes out/in':>18} "
          f"{'PSAM APDUs':>10} {'PSAM bytes out/in':>18}")
    bus_flat = 0.0
    for flow in FLOWS:
        world = World(flow, args.near_limits)     # a fresh card and PSAM per flow
        world.transact()                          # first reads, not counted
        world.keep()
        world.card.reset()
        world.psam.reset()
        world.transact()
        c, p = world.card.reset(), world.psam.reset()
        world.keep()
        n = flow.per_call
        tx = rate(world.step, args.seconds, batch=20, per_call=n, upkeep=world.upkeep)
        loops[flow.name] = (world.upkeep, flow.limits)
        if flow.name == "bus-flat":
            bus_flat = tx
        print(f"{flow.name:30} {tx:7,.0f} {card_only / tx:14.1f}x {c.commands / n:10.1f} "
              f"{c.bytes_out / n:8.0f} / {c.bytes_in / n:<7.0f} {p.commands / n:10.1f} "
              f"{p.bytes_out / n:8.0f} / {p.bytes_in / n:<7.0f}")
    print(f"bus-flat {bus_flat:,.0f} taps/s (target ≥ 1,000): {'met' if bus_flat >= 1000 else 'NOT met'}")
    return report_upkeep(loops, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
