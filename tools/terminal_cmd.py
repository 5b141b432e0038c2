"""`ykt terminal tap|run|load`: the validator firmware simulator against any card and PSAM reader."""
from __future__ import annotations

import contextlib
from pathlib import Path

import click

from keysets import KeySet
from specs.catalog import terminal_profile_path
from terminal_sim.flows import load as load_flow
from terminal_sim.journal import Journal
from terminal_sim.load_host import LoadHost
from terminal_sim.outcome import Outcome
from terminal_sim.profile import load_terminal_profile
from terminal_sim.links import TappingReader
from terminal_sim.validator import Validator

from .common import KEYSET, clock_option, hex_bytes, make_clock, make_rng, reader, seed_option, trace_clock, trace_option
from .output import emit_json


def _journal_option(required: bool):
    return click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
                        required=required, default=None, metavar="DB",
                        help="SQLite journal (WAL): every outcome, grey records that outlive the process.")


def _show(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        click.echo(outcome.to_json())
        return
    d = outcome.to_dict()
    parts = [d["status"].upper()]
    if d.get("card_no"):
        parts.append(f"card {d['card_no'][1:]}")
    if "amount" in d:
        parts.append(f"{d['amount'] / 100:.2f} yuan")
    if "balance_after" in d:
        parts.append(f"balance {d['balance_after'] / 100:.2f}")
    if d.get("tac"):
        parts.append(f"TAC {d['tac']}")
    if d.get("reason"):
        parts.append(f"({d['reason']})")
    click.echo(" ".join(parts))


@click.group("terminal")
def terminal() -> None:
    """The validator simulator: one tap, the validator loop, an online load."""


def _validator_options(fn):
    for opt in reversed([
        click.option("--profile", required=True, help="Terminal profile name (specs/profiles/terminals) or path."),
        click.option("--card", "card_spec", required=True, metavar="R",
                     help="Card reader: pcsc[:NAME], nfc:DEVICE or image:PATH."),
        click.option("--psam", "psam_spec", required=True, metavar="R", help="PSAM reader: pcsc[:NAME] or image:PATH."),
        click.option("--station", default=None, help="Station code, replacing the profile's (metro, bus segment)."),
        click.option("--amount", type=click.IntRange(0, 0xFFFFFFFF), default=None, metavar="FEN",
                     help="Fare of this trip for flat, ferry and taxi flows (the taxi meter)."),
        click.option("--json", "as_json", is_flag=True, help="One JSON outcome per line."),
    ]):
        fn = opt(fn)
    return fn


@contextlib.contextmanager
def _parts(profile, card_spec, psam_spec, journal_path, seed, clock, trace_path):
    prof = load_terminal_profile(terminal_profile_path(profile))
    rng, clk = make_rng(seed), make_clock(clock)
    stamps = trace_clock(clk)
    with contextlib.ExitStack() as stack:
        psam = stack.enter_context(reader(psam_spec, rng=rng, expect="psam", option="--psam", trace=trace_path,
                                          stamps=stamps))
        card = stack.enter_context(reader(card_spec, rng=rng, expect="card", option="--card", trace=trace_path,
                                          stamps=stamps))
        journal = stack.enter_context(Journal(journal_path)) if journal_path is not None else None
        yield prof, psam, card, journal, rng, clk


@terminal.command("tap")
@_validator_options
@_journal_option(required=False)
@seed_option
@clock_option
@trace_option
def tap(profile, card_spec, psam_spec, station, amount, as_json, journal_path, seed, clock, trace_path) -> None:
    """Run one transaction with the card in the field."""
    with _parts(profile, card_spec, psam_spec, journal_path, seed, clock, trace_path) as (prof, psam, card, journal,
                                                                                         rng, clk):
        validator = Validator(prof, psam.reader, card.reader, journal=journal, clock=clk, rng=rng,
                              station=station, amount=amount)
        _show(validator.tap(), as_json)


@terminal.command("run")
@_validator_options
@_journal_option(required=True)
@click.option("--taps", type=click.IntRange(1, None), default=None, metavar="N", help="Stop after N outcomes.")
@click.option("--timeout", type=click.FloatRange(0, None), default=None, metavar="S",
              help="Stop after S seconds without a card.")
@seed_option
@clock_option
@trace_option
def run(profile, card_spec, psam_spec, station, amount, as_json, journal_path, taps, timeout, seed, clock,
        trace_path) -> None:
    """The validator loop: wait for a card, transact, wait for it to leave; one line per outcome.

    An image:PATH card is tapped once per transaction (it leaves the field after each outcome).
    """
    if taps is None and timeout is None:
        raise click.BadParameter("give --taps N or --timeout S (or both)", param_hint="--taps/--timeout")
    with _parts(profile, card_spec, psam_spec, journal_path, seed, clock, trace_path) as (prof, psam, card, journal,
                                                                                         rng, clk):
        card_reader = TappingReader(card.reader) if card.kind == "image" else card.reader
        validator = Validator(prof, psam.reader, card_reader, journal=journal, clock=clk, rng=rng,
                              station=station, amount=amount)
        count = validator.run(taps=taps, idle_timeout=timeout, on_outcome=lambda o: _show(o, as_json))
    click.echo(f"{count} outcome(s) journaled in {journal_path}", err=True)


@terminal.command("load")
@click.option("--card", "card_spec", required=True, metavar="R",
              help="Card reader: pcsc[:NAME], nfc:DEVICE or image:PATH.")
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET,
              help="TEST key set of the simulated load host (load and TAC master keys).")
@click.option("--amount", required=True, type=click.IntRange(1, 0xFFFFFFFF), metavar="FEN")
@click.option("--terminal-id", required=True, metavar="HEX12", help="Terminal number of the load terminal.")
@click.option("--key-index", type=click.IntRange(1, 255), default=None,
              help="Key index sent in INITIALIZE FOR LOAD (D16: 01 3DES, 02 SM4); default: the load key index "
                   "of the first --keyset.")
@click.option("--pin", default=None, help="VERIFY PIN first (cards whose profile requires it).")
@_journal_option(required=False)
@click.option("--json", "as_json", is_flag=True, help="The outcome as JSON.")
@seed_option
@clock_option
@trace_option
def load(card_spec, keysets, amount, terminal_id, key_index, pin, journal_path, as_json, seed, clock,
         trace_path) -> None:
    """Top up a card online through a simulated issuer host (reference 5.7)."""
    tid = hex_bytes("--terminal-id", terminal_id, 6)
    rng, clk = make_rng(seed), make_clock(clock)
    sets = [KeySet.load(k) for k in keysets]
    host = LoadHost(sets, clock=clk)
    if key_index is None:
        key_index = sets[0].entry("load").index
    with contextlib.ExitStack() as stack:
        card = stack.enter_context(reader(card_spec, rng=rng, expect="card", option="--card", trace=trace_path,
                                          stamps=trace_clock(clk)))
        journal = stack.enter_context(Journal(journal_path)) if journal_path is not None else None
        outcome = load_flow(card.reader, host, amount, tid, journal=journal, clock=clk, key_index=key_index, pin=pin)
    _show(outcome, as_json)
