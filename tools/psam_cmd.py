"""`ykt psam …`: issue simulated PSAMs from a TEST key set and serve them to pcscd."""
from __future__ import annotations

from pathlib import Path

import click

from apdu.transport.pcsc.vpcd import slot_port
from keysets import KeySet
from ykt_card.psam.cos import ATR, PsamOS, state_summary
from ykt_card.psam.issue import issue_psam, load_psam, psam_saver, save_psam

from .common import KEYSET, hex_bytes, logging_saver, make_rng, seed_option, serve_until_signal
from .output import emit_json


@click.group("psam")
def psam() -> None:
    """Simulated PSAMs (purchase secure access modules)."""


@psam.command("issue")
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET,
              help="TEST key set holding the purchase and TAC master keys; give one per algorithm.")
@click.option("--terminal-id", required=True, metavar="HEX12", help="Terminal number (PSAM EF16).")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="PSAM image to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the PSAM summary as JSON (KCVs, never keys).")
def issue(keysets, terminal_id, out, as_json) -> None:
    """Issue a simulated PSAM image."""
    if out.exists():
        raise click.BadParameter(f"{out} already exists; refusing to overwrite a PSAM (its sequence matters)",
                                 param_hint="--out")
    state = issue_psam([KeySet.load(k) for k in keysets], hex_bytes("--terminal-id", terminal_id, 6))
    save_psam(out, state)
    if as_json:
        emit_json(state_summary(state))
    else:
        click.echo(f"issued PSAM for terminal {terminal_id.upper()} -> {out}")


@psam.command("serve")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--vpcd", "endpoint", default=f"localhost:{slot_port(1)}", show_default=True, metavar="HOST:PORT",
              help="vpcd slot to connect to (the second slot by default, so a card can sit in the first).")
@seed_option
def serve(image: Path, endpoint: str, seed: int | None) -> None:
    """Serve a PSAM image to pcscd through vpcd until SIGTERM, saving every change (terminal sequence)."""
    psam_os = PsamOS(load_psam(image), random=make_rng(seed).fork("psam"),
                     on_change=logging_saver(psam_saver(image), f"PSAM {image}"))
    serve_until_signal(psam_os, endpoint, ATR, f"PSAM {image}")
