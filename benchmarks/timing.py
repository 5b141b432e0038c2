"""Modelled tap time of every shipped terminal flow, for both card timing profiles and both algorithms.

Each flow of benchmarks/validator.py runs once in-process with its card and PSAM readers traced (stamps 1 ns
apart, so no host time is counted: an in-process host takes microseconds); `ykt_card.timing.tap.model_tap` then lays
each tap on the air at 106 kbit/s with the card's ATS, the `typical` PSAM on T=0 at 9600 bit/s, and the `fast` or
`typical` card timing profile (specs/timing). Flows with two taps (bus segment, metro) report each tap: each has
its own activation and its own budget. The cell is the modelled total in ms; `budget x` is the worst of the four
against the budget of the terminal's mode (terminal_sim.budget). Target: every tap within its budget with the
typical card, both algorithms. The rate line times the model itself (taps modelled per second) for `--seconds`.
Run: `.venv/bin/python benchmarks/timing.py [--seconds S]`.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import replace
from pathlib import Path

from apdu.trace import Exchange, TracingReader
from specs.catalog import find
from terminal_sim.budget import budget_ms
from terminal_sim.flows import load as load_flow
from ykt_card.timing.profile import load_card_timing, load_psam_timing
from ykt_card.timing.tap import TapSettings, model_tap

sys.path.insert(0, str(Path(__file__).parent))
import validator as validator_bench  # noqa: E402  (the flows and their in-process world)
from _harness import Loops, rate, report_upkeep, standard_arguments  # noqa: E402

ALGORITHMS = {"3DES": 1, "SM4": 2}
"""Key index of each algorithm on the reference cards and PSAMs (D16)."""
CARDS = ("fast", "typical")
STAMP_S = 1e-9
"""Seconds between two trace stamps: they order the exchanges and leave the host's time out (1 ns a gap)."""


class TracedWorld(validator_bench.World):
    """A flow's world whose card and PSAM readers record every exchange, its terminals on one key index."""

    def __init__(self, flow: validator_bench.Flow, key_index: int) -> None:
        super().__init__(flow)
        self.key_index = key_index
        stamps = itertools.count()
        clock = lambda: next(stamps) * STAMP_S  # noqa: E731  (one clock: the two readers' stamps interleave)
        self.card = TracingReader(self.card, clock=clock)
        self.psam = TracingReader(self.psam, clock=clock)
        self._profiles = [(replace(p, key_index=key_index, key_index_fallbacks=()), options)
                          for p, options in self._profiles]
        if flow.terminals:
            self._install_psam()  # validators on the traced readers and the chosen key index

    def transact(self) -> None:
        if self.validators:
            super().transact()
            return
        out = load_flow(self.card, self.host, validator_bench.LOAD_AMOUNT, validator_bench.TERMINAL,
                        clock=self.clock, key_index=self.key_index)
        if out.status != "approved":
            raise validator_bench.fail(f"{self.flow.name}: {out.status}: {out.reason}")

    def taps(self) -> list[tuple[str, str, list[Exchange]]]:
        """One call's taps: (shipped terminal profile, mode, exchanges of the card and the PSAM, in order)."""
        card, psam = self.card, self.psam
        card.exchanges.clear()
        psam.exchanges.clear()
        taps = []
        names = [name for name, _ in self.flow.terminals] or ["load"]
        for number, validator in enumerate(self.validators or [None]):
            start_c, start_p = len(card.exchanges), len(psam.exchanges)
            if validator is None:
                self.transact()
                name, mode = "load", "load"
            else:
                out = validator.tap()
                if out.status != "approved":
                    raise validator_bench.fail(f"{self.flow.name}: {out.status}: {out.reason}")
                name, mode = names[number], validator.profile.mode
                if names.count(name) > 1:
                    name = f"{name} ({('board', 'alight')[number]})"
            # in call order: the PSAM's and the card's exchanges interleave as the validator made them
            taps.append((name, mode, _interleave(psam.exchanges[start_p:], card.exchanges[start_c:])))
        return taps


def _interleave(psam: list[Exchange], card: list[Exchange]) -> list[Exchange]:
    """Both readers' exchanges in the order they happened (the shared clock's stamps)."""
    return sorted(psam + card, key=lambda x: x.t)


def main() -> int:
    args = standard_arguments(__doc__.splitlines()[0], seconds=0.5).parse_args()
    psam = load_psam_timing(find("psam-timing", "typical"))
    cards = {name: load_card_timing(find("card-timing", name)) for name in CARDS}
    header = [f"{alg} {card}" for alg in ALGORITHMS for card in CARDS]
    print("| tap | budget ms | " + " | ".join(f"{h} ms" for h in header) + " | worst / budget |")
    print("|---|---:|" + "---:|" * len(header) + "---:|")
    all_fit = True
    sample: list[Exchange] = []
    results: dict[str, dict[str, float]] = {}
    budgets: dict[str, float] = {}
    for flow in validator_bench.FLOWS:
        for alg, key_index in ALGORITHMS.items():
            world = TracedWorld(flow, key_index)
            for label, mode, exchanges in world.taps():
                budgets[label] = budget_ms(mode)
                for card_name, card in cards.items():
                    report = model_tap(exchanges, TapSettings(card, psam))
                    results.setdefault(label, {})[f"{alg} {card_name}"] = report.total_us / 1000
                if not sample:
                    sample = exchanges
    for label, cells in results.items():
        worst = max(cells.values()) / budgets[label]
        typical_fit = all(cells[f"{alg} typical"] <= budgets[label] for alg in ALGORITHMS)
        all_fit = all_fit and typical_fit
        print(f"| {label} | {budgets[label]:g} | " + " | ".join(f"{cells[h]:.1f}" for h in header)
              + f" | {worst:.2f}x |")
    settings = TapSettings(cards["typical"], psam)
    modelled = rate(lambda: model_tap(sample, settings), args.seconds, batch=5)
    print(f"model speed: {modelled:,.0f} bus-flat taps modelled per second")
    print(f"every tap within its budget with the typical card, 3DES and SM4 (target): "
          f"{'met' if all_fit else 'NOT met'}")
    loops: Loops = {}
    return report_upkeep(loops, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
