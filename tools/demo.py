"""`ykt demo`: the whole story on virtual parts — issue, load, bus, metro, a torn purchase, clearing.

Everything runs in-process on image files in one folder, with the shipped TEST key sets, a seeded
random source and a simulated clock, so the same options print the same story byte for byte.
"""
from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource
from ykt_card.clock import SimulatedClock
from apdu.trace import TracingReader
from keysets import TEST_KEYSET_DIR, KeySet
from specs.catalog import card_profile_path, terminal_profile_path
from clearing import tac_verifies
from terminal_sim.export import clearing_entries, export
from terminal_sim.flows import load as load_flow
from terminal_sim.journal import Journal
from terminal_sim.load_host import LoadHost
from terminal_sim.outcome import Outcome
from terminal_sim.profile import load_terminal_profile
from terminal_sim.links import TearingReader
from terminal_sim.validator import Validator
from ykt_card.host.annotate import describe_command, describe_response
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import save_card, saver
from ykt_card.card.image import load_card
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.layouts import EF15
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam, psam_saver, save_psam

from .common import make_clock, writable_folder


TERMINAL_ID = bytes.fromhex("440300000001")
LOAD_TERMINAL_ID = bytes.fromhex("440300009001")


class Story:
    """The virtual parts of the demo and the helpers that narrate each step."""

    def __init__(self, out: Path, seed: int, clock: SimulatedClock, c: Console) -> None:
        self.out, self.c = out, c
        self.rng = RandomSource.seeded(seed)
        self.clock = clock
        self.keysets = [KeySet.load(TEST_KEYSET_DIR / "gd-test-3des.toml"),
                        KeySet.load(TEST_KEYSET_DIR / "gd-test-sm4.toml")]
        self.card_path, self.psam_path = out / "card.json", out / "psam.json"
        self.journal_path = out / "journal.db"
        self.tick = 0.0

    def step(self, title: str) -> None:
        self.c.print()
        self.c.rule(f"[bold]{title}")

    def _trace_clock(self) -> float:
        self.tick += 0.001
        return self.tick

    @contextmanager
    def parts(self) -> Iterator[tuple[TracingReader, TracingReader]]:
        """Card and PSAM from their images, traced; images saved after every change."""
        card = TUnionCardOS(load_card(self.card_path), rng=self.rng.fork(f"card{self.tick}"),
                            on_commit=saver(self.card_path))
        from ykt_card.psam.issue import load_psam
        psam = PsamOS(load_psam(self.psam_path), random=self.rng.fork(f"psam{self.tick}"),
                      on_change=psam_saver(self.psam_path))
        card_reader = TracingReader(InProcessReader(card, name="card"), clock=self._trace_clock)
        psam_reader = TracingReader(InProcessReader(psam, name="PSAM"), clock=self._trace_clock)
        yield card_reader, psam_reader

    def show_exchanges(self, *readers: TracingReader) -> None:
        rows = sorted((x.t, r.name, x) for r in readers for x in r.exchanges)
        table = Table(show_header=True, header_style="dim", box=None, pad_edge=False)
        table.add_column("to", no_wrap=True)
        table.add_column("APDU", no_wrap=True)
        table.add_column("meaning")
        for _, name, x in rows:
            if x.direction == "C":
                text, arrow, note = x.data.hex().upper(), f"→ {name}", describe_command(x.data)
            else:
                text, arrow, note = x.data.hex().upper(), f"← {name}", describe_response(x.data)
            table.add_row(arrow, text if len(text) <= 44 else text[:41] + "…", note)
        self.c.print(table)

    def show_outcome(self, o: Outcome) -> None:
        d = o.to_dict()
        bits = [f"[bold]{d['status'].upper()}[/bold] type {d['type']}"]
        if "amount" in d:
            bits.append(f"{d['amount'] / 100:.2f} yuan")
        if "balance_before" in d and "balance_after" in d:
            bits.append(f"balance {d['balance_before'] / 100:.2f} → {d['balance_after'] / 100:.2f}")
        if d.get("tac"):
            bits.append(f"TAC {d['tac']}")
        if "mac2_verified" in d:
            bits.append(f"MAC2 {'verified' if d['mac2_verified'] else 'not verified'}")
        if d.get("reason"):
            bits.append(f"— {d['reason']}")
        self.c.print("outcome: " + ", ".join(bits))


def run_story(s: Story) -> None:
    c = s.c
    s.step("1. TEST key sets (KCVs only: key values never leave the files)")
    for ks in s.keysets:
        c.print(f"{ks.name}: purchase KCV {ks.entry('purchase').kcv}, load KCV {ks.entry('load').kcv}, "
                f"TAC KCV {ks.entry('tac').kcv}, key index {ks.entry('purchase').index:02X}, "
                f"diversified by {' then '.join(ks.diversification)} (D2)")

    s.step("2. Issue a Guangzhou (羊城通) card and a PSAM")
    profile = load_card_profile(card_profile_path("gd-guangzhou"))
    issued = issue_card(profile, s.keysets, profile.card_number(1), s.clock.peek().date())
    save_card(s.card_path, issued.state)
    save_psam(s.psam_path, issue_psam(s.keysets, TERMINAL_ID))
    printed = EF15.decode(issued.state.ef15)["card_no_printed"]
    c.print(f"card {printed} issuer {issued.registry['issuer_id']} city {profile.city}, "
            f"key sets {', '.join(issued.registry['algorithms'])}, balance 0.00 → {s.card_path.name}")
    c.print(f"PSAM for terminal {TERMINAL_ID.hex().upper()} → {s.psam_path.name}")

    with Journal(s.journal_path) as journal:
        s.step("3. Load 50.00 yuan at a ticket office (online, the host holds the load master key)")
        with s.parts() as (card, _psam):
            host = LoadHost(s.keysets, clock=s.clock)
            s.show_outcome(load_flow(card, host, 5000, LOAD_TERMINAL_ID, journal=journal, clock=s.clock))
            s.show_exchanges(card)

        def tap(title: str, terminal: str, *, station: str | None = None, advance: float = 60) -> None:
            s.step(title)
            s.clock.advance(advance)
            with s.parts() as (card, psam):
                v = Validator(load_terminal_profile(terminal_profile_path(terminal)), psam, card,
                              journal=journal, clock=s.clock, rng=s.rng, station=station)
                s.show_outcome(v.tap())
                s.show_exchanges(card, psam)

        tap("4. Bus, flat fare 2.00 yuan (purchase, type 06)", "bus-flat")
        tap("5. Metro entry at Line 3 station 0301 (0.00 yuan, composite purchase 09 with a TAC)", "metro-entry",
            station="0301", advance=600)
        tap("6. Metro exit at station 0306 (fare by station pair)", "metro-exit", station="0306", advance=1500)

        s.step("7. Bus with an EF1E record: the card leaves the field just after DEBIT (its answer is lost)")
        s.clock.advance(900)
        with s.parts() as (card, psam):
            # What the terminal sees: the tracer sits outside the tear, so DEBIT shows no answer.
            card = TracingReader(TearingReader(card.inner, at_ins=0x54, when="after"), clock=s._trace_clock)
            v = Validator(load_terminal_profile(terminal_profile_path("bus-flat-capp")), psam, card,
                          journal=journal, clock=s.clock, rng=s.rng)
            s.show_outcome(v.tap())
            s.show_exchanges(card, psam)
            for r in (card, psam):
                r.exchanges.clear()
            s.step("8. The card returns 20 s later: GET TRANSACTION PROVE, then 8072 — recovered exactly once")
            s.clock.advance(20)
            s.show_outcome(v.tap())
            s.show_exchanges(card, psam)

        s.step("9. Clearing upload file, every TAC recomputed by the issuer")
        out = s.out / "clearing.jsonl"
        count = export(journal, "jsonl", out)
        for entry in clearing_entries(journal):
            d = entry.outcome.to_dict()
            ok = tac_verifies(entry.outcome, s.keysets) if d.get("tac") else None
            c.print(f"{d['status']:9} type {d['type']} {d.get('amount', 0) / 100:6.2f} yuan  seq "
                    f"{str(d.get('terminal_seq', '-')):>3}  TAC {d.get('tac', '--------')}  "
                    f"{'issuer check OK' if ok else 'grey: no TAC' if ok is None else 'ISSUER CHECK FAILED'}")
        c.print(f"{count} records → {out.name}")
    final = load_card(s.card_path)
    c.print(f"card balance now {final.purse.balance / 100:.2f} yuan, online counter {final.purse.online_counter}, "
            f"offline counter {final.purse.offline_counter}")


@click.command("demo")
@click.option("--seed", type=int, default=2020, show_default=True, help="Randomness seed: the run repeats exactly.")
@click.option("--clock", default="20261124081500", show_default=True, metavar="YYYYMMDDhhmmss",
              help="Start time of the simulated clock (China time).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder for the card, PSAM, journal and clearing file (default: a new temporary folder).")
def demo(seed: int, clock: str, out: Path | None) -> None:
    """The whole story on virtual parts: issue, load, bus, metro, a torn purchase recovered, clearing.

    Every option is checked before anything is printed or written.
    """
    start = make_clock(clock)
    if out is not None:
        stale = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
        if stale:
            raise click.BadParameter(f"{out} is not empty ({', '.join(stale[:3])}…); give an empty folder",
                                     param_hint="--out")
        writable_folder(out, "--out")
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create folder {out}: {exc.strerror or exc}", param_hint="--out") \
                from None
    else:
        out = Path(tempfile.mkdtemp(prefix="ykt-demo-"))
    c = Console(highlight=False, width=132)
    c.print(f"ykt demo: virtual card, PSAM and validator with TEST keys; files in {out}")
    run_story(Story(out, seed, start, c))
