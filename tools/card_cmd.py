"""`ykt card …`: issue virtual cards from a profile, serve them to pcscd, read what a terminal can read."""
from __future__ import annotations

import datetime as _dt
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from apdu.iso14443 import pseudo_atr
from apdu.transport.pcsc.vpcd import slot_port
from keysets import KeySet
from specs.catalog import DEFAULT_CARD_PROFILE, card_profile_path
from ykt_card.card.cos import TUnionCardOS
from ykt_card.host.dump import read_card, to_json
from ykt_card.host.readers import card_uid
from ykt_card.host.card import TUnionCard
from ykt_card.card.image import load_card, save_card, saver
from ykt_card.issuance.personalise import (append_registry, batch_numbers, blank_card, issue_card, select_key_sets,
                                   transport_key_for)
from ykt_card.issuance.profile import load_card_profile
from ykt_card.host.script import Script, ScriptRefused, build_script, load_script, run_script, save_script, script_keys

from .common import (KEYSET, clock_option, logging_saver, make_clock, make_rng, reader, seed_option,
                     serve_nfc_until_signal,
                     serve_until_signal, trace_option, writable_folder, write_failure)
from .output import emit_json
from .render import output_width, render_card


@click.group("card")
def card() -> None:
    """Virtual T-Union cards: issue, serve to pcscd, read."""


def _targets(out: Path, numbers: list[str], many: bool, suffix: str, option: str) -> list[Path]:
    """One file per card: `out` itself for a single card, else `out/<card_no><suffix>`; never overwritten."""
    if not many and not out.is_dir():
        if out.exists():
            raise click.BadParameter(f"{out} already exists; refusing to overwrite it", param_hint=option)
        return [out]
    if out.exists() and not out.is_dir():
        raise click.BadParameter(f"{out} exists and is not a folder", param_hint=option)
    targets = [out / f"{n}{suffix}" for n in numbers]
    clash = next((t for t in targets if t.exists()), None)
    if clash is not None:
        raise click.BadParameter(f"{clash} already exists; refusing to overwrite it", param_hint=option)
    return targets


def _write(option: str, target: Path, write) -> None:
    """Run one write; a failure names the option, the file and its folder (not a temporary file)."""
    try:
        write()
    except OSError as exc:
        raise write_failure(option, target, exc) from None


@card.command("issue")
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET,
              help="TEST key set (TOML); give one per algorithm the card carries.")
@click.option("--profile", default=DEFAULT_CARD_PROFILE, show_default=True,
              help="Issuance profile name (specs/profiles/cards) or path.")
@click.option("--card-no", default=None, metavar="DIGITS", help="20-digit card number (default: the profile's first).")
@click.option("--count", type=click.IntRange(1, 100000), default=1, show_default=True,
              help="Issue a batch with consecutive card numbers into the --out folder.")
@click.option("--balance", type=click.IntRange(0, None), default=0, show_default=True, metavar="FEN")
@click.option("--algorithm", type=click.Choice(["3des", "sm4"]), default=None,
              help="Carry only this algorithm's key set (default: every key set given).")
@click.option("--registry", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Append one JSON line per issued card to this issuance registry.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Image file, or folder with --count.")
@click.option("--script", "script_out", type=click.Path(path_type=Path), default=None, metavar="FILE|DIR",
              help="Also write the personalisation APDU script (JSON Lines) that turns a blank card "
                   "(`ykt card blank`) into this one; a folder with --count.")
@clock_option
@click.option("--json", "as_json", is_flag=True, help="Print the registry lines as JSON.")
def issue(keysets, profile, card_no, count, balance, algorithm, registry, out, script_out, clock, as_json) -> None:
    """Personalise virtual cards (TEST keys only) and write their images."""
    if card_no is not None and not card_no.strip():
        raise click.BadParameter("empty: give the 20-digit card number, or leave the option out for the "
                                 "profile's first", param_hint="--card-no")
    prof = load_card_profile(card_profile_path(profile))
    sets = [KeySet.load(k) for k in keysets]
    issued_on: _dt.date = make_clock(clock).now().date()
    first = card_no if card_no is not None else prof.card_number(1)
    if script_out is not None and balance:
        raise click.BadParameter(f"{balance}: a scripted card starts at 0 fen (no reference command sets the "
                                 "purse; load it after personalisation)", param_hint="--balance")
    numbers = batch_numbers(prof, first, count)
    slots = select_key_sets(prof, sets, algorithm)          # refused now, before anything is written
    targets = _targets(out, numbers, count > 1, ".json", "--out")
    script_paths = _targets(script_out, numbers, count > 1, ".jsonl", "--script") if script_out else None
    transport = transport_key_for(slots) if script_paths else None
    writable_folder(targets[0], "--out")
    if script_paths:
        writable_folder(script_paths[0], "--script")
    if registry is not None:
        writable_folder(registry, "--registry")
    folders = {t.parent: "--script" for t in script_paths or []}
    folders.update({t.parent: "--out" for t in targets})
    for folder, option in folders.items():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create folder {folder}: {exc.strerror or exc}",
                                     param_hint=option) from None
    progress = Progress(TextColumn("issuing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), transient=True, disable=count == 1 or not sys.stderr.isatty(),
                        redirect_stdout=False, redirect_stderr=False)
    with progress:
        task = progress.add_task("issue", total=count)
        for i, number in enumerate(numbers):
            c = issue_card(prof, sets, number, issued_on, balance=balance, algorithm=algorithm)
            _write("--out", targets[i], lambda: save_card(targets[i], c.state))
            if script_paths:
                _write("--script", script_paths[i],
                       lambda: save_script(script_paths[i], build_script(c.state, transport, prof.name)))
            if registry is not None:      # one line per card as it exists: an interrupted batch loses nothing
                _write("--registry", registry, lambda: append_registry(registry, [c.registry]))
            if as_json:
                emit_json({**c.registry, "image": str(targets[i])})
            else:
                click.echo(f"issued {c.card_no} ({prof.name}, {', '.join(c.registry['algorithms'])}, "
                           f"balance {balance} fen) -> {targets[i]}")
            progress.advance(task)


@card.command("blank")
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET,
              help="TEST key set(s) the card will carry: the card_master of the lowest key index is the transport key.")
@click.option("--profile", default=DEFAULT_CARD_PROFILE, show_default=True,
              help="Issuance profile name (specs/profiles/cards) or path: the file structure to create.")
@click.option("--algorithm", type=click.Choice(["3des", "sm4"]), default=None,
              help="The card will carry only this algorithm's key set (as for `ykt card issue`).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Blank card image.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (KCV only, never a key).")
def blank(keysets, profile, algorithm, out, as_json) -> None:
    """A blank virtual card as the chip maker delivers it: the profile's files, the transport key, no keys."""
    prof = load_card_profile(card_profile_path(profile))
    sets = [KeySet.load(k) for k in keysets]
    transport = transport_key_for(select_key_sets(prof, sets, algorithm))
    save_card(out, blank_card(prof, transport))
    if as_json:
        emit_json({"image": str(out), "profile": prof.name, "transport_key": {
            "algorithm": transport.algorithm.value, "kcv": transport.kcv}})
    else:
        click.echo(f"blank card ({prof.name}, transport key {transport.algorithm.value} KCV {transport.kcv}) -> {out}")


@card.command("personalise")
@click.option("--script", "script_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Personalisation script written by `ykt card issue --script`.")
@click.option("--reader", "reader_spec", default="pcsc", show_default=True, metavar="R",
              help="pcsc, pcsc:NAME, nfc:DEVICE or image:PATH: where the blank card sits.")
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET,
              help="TEST key set(s) holding the script's transport and maintenance keys (by KCV).")
@seed_option
@trace_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def personalise(script_path, reader_spec, keysets, seed, trace_path, as_json) -> None:
    """Run a personalisation script against a blank card, computing each MAC from the card's challenge."""
    script = load_script(script_path)
    keys = script_keys(script, [KeySet.load(k) for k in keysets])
    with reader(reader_spec, rng=make_rng(seed), expect="card", option="--reader", trace=trace_path) as opened:
        opened.reader.connect()
        try:
            steps = run_script(script, opened.reader, keys)
        except ScriptRefused as exc:
            raise click.ClickException(f"{script_path}: {exc}") from None
    if as_json:
        emit_json({"card_no": script.card_no, "profile": script.profile, "steps": steps, "reader": reader_spec})
    else:
        click.echo(f"personalised {script.card_no} ({script.profile}): {steps} steps on {reader_spec}")


@card.command("serve")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--vpcd", "endpoint", default=None, metavar="HOST:PORT",
              help=f"vpcd slot to connect to (the default, localhost:{slot_port(0)}; second slot: localhost:35964).")
@click.option("--nfc", "nfc_path", default=None, metavar="udp:HOST:PORT",
              help="Instead of vpcd: be an ISO 14443-4 card on nfcpy's udp driver (read it with --reader "
                   "nfc:udp:HOST:PORT). One card per port.")
@seed_option
def serve(image: Path, endpoint: str | None, nfc_path: str | None, seed: int | None) -> None:
    """Serve a card image to pcscd through vsmartcard's vpcd, or over NFC, until SIGTERM, saving every change."""
    if endpoint is not None and nfc_path is not None:
        raise click.BadParameter("give --vpcd or --nfc, not both", param_hint="--vpcd/--nfc")
    state = load_card(image)
    card_os = TUnionCardOS(state, rng=make_rng(seed).fork("card"),
                           on_commit=logging_saver(saver(image), f"card {state.card_no}"))
    if nfc_path is not None:
        serve_nfc_until_signal(card_os, nfc_path, f"card {state.card_no}", uid=state.uid)
    else:
        serve_until_signal(card_os, endpoint or f"localhost:{slot_port(0)}", pseudo_atr(state.ats_historical),
                           f"card {state.card_no}", uid=state.uid)


@card.command("read")
@click.option("--reader", "reader_spec", default="pcsc", show_default=True, metavar="R",
              help="pcsc, pcsc:NAME, nfc:DEVICE or image:PATH.")
@click.option("--layout", type=click.Choice(["A", "B"], case_sensitive=False), default="A", show_default=True,
              help="EF1E layout to decode with (D8).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@trace_option
def read(reader_spec: str, layout: str, as_json: bool, trace_path: Path | None) -> None:
    """Decode all a terminal can read without keys: FCI, EF15/16/17, balance, EF18, EF1A, EF1E."""
    with reader(reader_spec, rng=make_rng(None), expect="card", option="--reader", trace=trace_path) as opened:
        opened.reader.connect()
        uid = card_uid(opened)
        dump = read_card(TUnionCard(opened.reader), layout_1e=layout.upper())
    dump = {"format": dump["format"], "uid": None if uid is None else uid.hex().upper(), **dump}
    click.echo(to_json(dump) if as_json else render_card(dump, output_width()))
