"""`ykt card …`: issue virtual cards from a profile, serve them to pcscd, read what a terminal can read."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import click

from apdu.iso14443 import pseudo_atr
from apdu.vpcd import VpcdEndpoint, parse_endpoint, slot_port
from keysets import KeySet
from specs.catalog import DEFAULT_CARD_PROFILE, card_profile_path
from ykt_card.cos import TUnionCardOS
from ykt_card.dump import read_card, render_text, to_json
from ykt_card.host import TUnionCard
from ykt_card.image import load_card, save_card, saver
from ykt_card.personalise import append_registry, issue_batch
from ykt_card.profile import load_card_profile

from .common import clock_option, make_clock, make_rng, reader, seed_option, serve_until_signal, trace_option
from .output import emit_json


@click.group("card")
def card() -> None:
    """Virtual T-Union cards: issue, serve to pcscd, read."""


@card.command("issue")
@click.option("--keyset", "keysets", multiple=True, required=True, type=click.Path(dir_okay=False, path_type=Path),
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
@clock_option
@click.option("--json", "as_json", is_flag=True, help="Print the registry lines as JSON.")
def issue(keysets, profile, card_no, count, balance, algorithm, registry, out, clock, as_json) -> None:
    """Personalise virtual cards (TEST keys only) and write their images."""
    prof = load_card_profile(card_profile_path(profile))
    sets = [KeySet.load(k) for k in keysets]
    issued_on: _dt.date = make_clock(clock).now().date()
    first = card_no or prof.card_number(1)
    cards = issue_batch(prof, sets, first, count, issued_on, balance=balance, algorithm=algorithm)
    if count == 1 and not out.is_dir():
        targets = [out]
    else:
        if out.exists() and not out.is_dir():
            raise click.BadParameter(f"{out} exists and is not a folder", param_hint="--out")
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / f"{c.card_no}.json" for c in cards]
        clash = next((t for t in targets if t.exists()), None)
        if clash is not None:
            raise click.BadParameter(f"{clash} already exists; refusing to overwrite a card", param_hint="--out")
    for c, target in zip(cards, targets):
        save_card(target, c.state)
    if registry is not None:
        append_registry(registry, [c.registry for c in cards])
    if as_json:
        for c, target in zip(cards, targets):
            emit_json({**c.registry, "image": str(target)})
    else:
        for c, target in zip(cards, targets):
            click.echo(f"issued {c.card_no} ({prof.name}, {', '.join(c.registry['algorithms'])}, "
                       f"balance {balance} fen) -> {target}")


@card.command("serve")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--vpcd", "endpoint", default=f"localhost:{slot_port(0)}", show_default=True, metavar="HOST:PORT",
              help="vpcd slot to connect to (second slot: localhost:35964).")
@seed_option
def serve(image: Path, endpoint: str, seed: int | None) -> None:
    """Serve a card image to pcscd through vsmartcard's vpcd until SIGTERM, saving every change."""
    state = load_card(image)
    host, port = parse_endpoint(endpoint)
    card_os = TUnionCardOS(state, rng=make_rng(seed).fork("card"), on_commit=saver(image))
    atr = pseudo_atr(state.ats_historical)
    serve_until_signal(VpcdEndpoint(card_os, host, port, atr=atr), f"card {state.card_no}")


@card.command("read")
@click.option("--reader", "reader_spec", default="pcsc", show_default=True, metavar="R",
              help="pcsc, pcsc:NAME or image:PATH.")
@click.option("--layout", type=click.Choice(["A", "B"], case_sensitive=False), default="A", show_default=True,
              help="EF1E layout to decode with (D8).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@trace_option
def read(reader_spec: str, layout: str, as_json: bool, trace_path: Path | None) -> None:
    """Decode all a terminal can read without keys: FCI, EF15/16/17, balance, EF18, EF1A, EF1E."""
    with reader(reader_spec, rng=make_rng(None), expect="card", option="--reader", trace=trace_path) as opened:
        opened.reader.connect()
        dump = read_card(TUnionCard(opened.reader), layout_1e=layout.upper())
    click.echo(to_json(dump) if as_json else render_text(dump))
