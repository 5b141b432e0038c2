"""`ykt terminal tap|run|scan|load`: the validator firmware simulator against any card, PSAM and QR code.

The exit code says how the transaction ended (tools.errors): 0 approved or recovered, 3 declined (a
refused QR code too), 4 failed or torn; `run` exits with its worst outcome. The journal (--journal) is
opened and checked before any reader is opened.
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import click

from keysets import KeySet
from specs.catalog import terminal_profile_path
from terminal_sim.flows import load as load_flow
from terminal_sim.journal import Journal, MemoryJournal
from terminal_sim.links import PsamLink, TappingReader
from terminal_sim.load_host import LoadHost
from terminal_sim.outcome import Outcome
from terminal_sim.prechecks import Lists
from terminal_sim.profile import load_terminal_profile
from terminal_sim.qr import QrGate, qr_fare, ride
from terminal_sim.scanner import LineScanner
from terminal_sim.transaction import Device
from terminal_sim.validator import Validator, start_psam
from ykt_qr.scan import ScanError, code_from_text, decode_image

from .errors import outcome_exit
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
    if d.get("medium") == "qr":
        parts.append(f"QR account {d['account_no']}" if d.get("account_no") else "QR code")
    if d.get("card_no"):
        parts.append(f"card {d['card_no'][1:]}")
    if "amount" in d:
        parts.append(f"{d['amount'] / 100:.2f} yuan")
    if "balance_after" in d:
        parts.append(f"balance {d['balance_after'] / 100:.2f}")
    if d.get("tac"):
        parts.append(f"TAC {d['tac']}")
    if d.get("ticket_type"):
        parts.append(f"ticket type {d['ticket_type']}")
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


def _finish(outcomes: list[Outcome]) -> None:
    """Exit with the code of the worst outcome (tools.errors: 0 approved/recovered, 3 declined, 4 failed/torn)."""
    code = outcome_exit(o.status for o in outcomes)
    if code:
        raise click.exceptions.Exit(code)


@contextlib.contextmanager
def _parts(profile, card_spec, psam_spec, journal_path, seed, clock, trace_path):
    """Profile, clock, journal (checked before any reader is opened: never charge into an unsound journal),
    then the PSAM and card readers."""
    prof = load_terminal_profile(terminal_profile_path(profile))
    rng, clk = make_rng(seed), make_clock(clock)
    stamps = trace_clock(clk)
    with contextlib.ExitStack() as stack:
        journal = stack.enter_context(Journal(journal_path)) if journal_path is not None else None
        psam = stack.enter_context(reader(psam_spec, rng=rng, expect="psam", option="--psam", trace=trace_path,
                                          stamps=stamps))
        card = stack.enter_context(reader(card_spec, rng=rng, expect="card", option="--card", trace=trace_path,
                                          stamps=stamps))
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
        outcome = validator.tap()
    _show(outcome, as_json)
    _finish([outcome])


@terminal.command("run")
@_validator_options
@_journal_option(required=True)
@click.option("--taps", type=click.IntRange(1, None), default=None, metavar="N", help="Stop after N outcomes.")
@click.option("--timeout", type=click.FloatRange(0, None), default=None, metavar="S",
              help="Stop after S seconds without a card or a code.")
@click.option("--codes", "codes_path", default=None, metavar="FILE",
              help="QR scanner input: one code (hex or base64) per line from FILE, or '-' for stdin.")
@seed_option
@clock_option
@trace_option
def run(profile, card_spec, psam_spec, station, amount, as_json, journal_path, taps, timeout, codes_path, seed, clock,
        trace_path) -> None:
    """The validator loop: wait for a card or a code, transact, wait for the card to leave; one line per outcome.

    An image:PATH card is tapped once per transaction (it leaves the field after each outcome). With
    --codes, each line read is scanned as a MOT QR code (the profile needs a qr table); codes waiting are
    served before a card.
    """
    if taps is None and timeout is None:
        raise click.BadParameter("give --taps N or --timeout S (or both)", param_hint="--taps/--timeout")
    outcomes: list[Outcome] = []

    def on_outcome(outcome: Outcome) -> None:
        outcomes.append(outcome)
        _show(outcome, as_json)

    with contextlib.ExitStack() as stack:
        scanner = None
        if codes_path is not None:
            stream = sys.stdin if codes_path == "-" else stack.enter_context(_open_codes(codes_path))
            scanner = LineScanner(stream, on_error=lambda m: click.echo(f"ykt: {m}", err=True),
                                  name="stdin" if codes_path == "-" else Path(codes_path).name)
        with _parts(profile, card_spec, psam_spec, journal_path, seed, clock, trace_path) as (prof, psam, card,
                                                                                             journal, rng, clk):
            if scanner is not None:
                QrGate(prof, journal)                 # refuse a profile without QR acceptance before the loop
            card_reader = TappingReader(card.reader) if card.kind == "image" else card.reader
            validator = Validator(prof, psam.reader, card_reader, journal=journal, clock=clk, rng=rng,
                                  station=station, amount=amount)
            count = validator.run(taps=taps, idle_timeout=timeout, on_outcome=on_outcome, scanner=scanner)
    click.echo(f"{count} outcome(s) journaled in {journal_path}", err=True)
    _finish(outcomes)


def _open_codes(path: str):
    try:
        return open(path, encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path!r}: {exc.strerror}", param_hint="--codes") from None


@terminal.command("scan")
@click.option("--profile", required=True, help="Terminal profile with a qr table (name or path).")
@click.option("--code", "code_text", default=None, metavar="HEX", help="The scanned code, hex or base64.")
@click.option("--image", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Read the code from a photo or screenshot instead.")
@click.option("--psam", "psam_spec", default=None, metavar="R",
              help="PSAM reader whose EF16 gives the terminal ID (pcsc[:NAME] or image:PATH).")
@click.option("--terminal-id", default=None, metavar="HEX12", help="The terminal ID, when no --psam is given.")
@click.option("--amount", type=click.IntRange(0, 0xFFFFFFFF), default=None, metavar="FEN",
              help="Fare of this ride (default: the profile's flat fare).")
@_journal_option(required=False)
@click.option("--json", "as_json", is_flag=True, help="The outcome as JSON.")
@seed_option
@clock_option
@trace_option
def scan(profile, code_text, image, psam_spec, terminal_id, amount, journal_path, as_json, seed, clock,
         trace_path) -> None:
    """One MOT QR code at the validator: the checks of mobile.md §1.5 with the profile's policy and the
    journal's replay memory; the ride (or the refusal) is journaled with the Q12 fields.

    Exits 0 when the ride is approved, 3 when it is declined (a refused code, a replay, a repeat within
    2 s that is ignored, a journal that could not take the ride).
    """
    if (code_text is None) == (image is None):
        raise click.UsageError("give either --code HEX or --image FILE")
    if (psam_spec is None) == (terminal_id is None):
        raise click.UsageError("give either --psam R or --terminal-id HEX12: a ride record names its terminal")
    try:
        code = decode_image(image) if image is not None else code_from_text(code_text)
    except ScanError as exc:
        raise click.BadParameter(str(exc), param_hint="--image" if image is not None else "--code") from None
    prof = load_terminal_profile(terminal_profile_path(profile))
    rng, clk = make_rng(seed), make_clock(clock)
    try:
        fare = qr_fare(prof, amount)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--amount") from None
    tid = hex_bytes("--terminal-id", terminal_id, 6) if terminal_id is not None else None
    with contextlib.ExitStack() as stack:
        # the journal first, checked before the PSAM is asked anything (as for a tap)
        journal = stack.enter_context(Journal(journal_path)) if journal_path is not None else MemoryJournal()
        try:
            gate = QrGate(prof, journal)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--profile") from None
        if psam_spec is not None:
            psam = stack.enter_context(reader(psam_spec, rng=rng, expect="psam", option="--psam", trace=trace_path,
                                              stamps=trace_clock(clk)))
            _, tid = start_psam(PsamLink(psam.reader))
        assert tid is not None
        device = Device(prof, tid, journal, list_version=Lists.of(prof).version)
        outcome = ride(device, gate, code, clk.now(), fare)
    _show(outcome, as_json)
    _finish([outcome])


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
        journal = stack.enter_context(Journal(journal_path)) if journal_path is not None else None
        card = stack.enter_context(reader(card_spec, rng=rng, expect="card", option="--card", trace=trace_path,
                                          stamps=trace_clock(clk)))
        outcome = load_flow(card.reader, host, amount, tid, journal=journal, clock=clk, key_index=key_index, pin=pin)
    _show(outcome, as_json)
    _finish([outcome])
