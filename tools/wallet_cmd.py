"""`ykt wallet topup|sync`: a phone wallet's over-the-air top-up of the card behind any reader (M5).

Exit codes as every transaction's (tools.errors): 0 loaded (or nothing left pending), 3 refused (nothing
loaded: a declined load), 4 pending (the load did not complete: the card may hold the money, and its
order is proven or completed on the next contact); `sync` exits 1 when it could not learn the card's
orders at all (no card, host unreachable or refusing).
"""
from __future__ import annotations

import contextlib

import click

from ota import HttpHostClient, TopUp, Wallet, load_credentials
from ykt_card.host.card import TUNION_AID

from .errors import EXIT_DECLINED, EXIT_FAILED, EXIT_INCOMPLETE, EXIT_OK
from .common import hex_bytes, make_rng, reader, seed_option, trace_clock, trace_option
from .host_cmd import credentials_option
from .output import emit_json


TOPUP_EXIT = {"loaded": EXIT_OK, "refused": EXIT_DECLINED, "pending": EXIT_INCOMPLETE}
"""The exit code of a top-up by its status."""


@click.group("wallet")
def wallet() -> None:
    """A phone wallet: top up the card through the issuer's host, settle lost answers."""


def _wallet_options(fn):
    for opt in reversed([
        click.option("--card", "card_spec", required=True, metavar="R",
                     help="Card reader: pcsc[:NAME], nfc:DEVICE or image:PATH."),
        click.option("--host", "url", required=True, metavar="URL", help="The top-up host, http://HOST:PORT."),
        click.option("--account", required=True, metavar="ID", help="The wallet account (in --credentials)."),
        credentials_option,
        click.option("--terminal-id", default=None, metavar="HEX12",
                     help="Terminal number sent in INITIALIZE FOR LOAD (default: the account's)."),
        click.option("--key-index", type=click.IntRange(1, 255), default=1, show_default=True,
                     help="Key index of INITIALIZE FOR LOAD (D16: 01 3DES, 02 SM4)."),
        click.option("--aid", default=TUNION_AID.hex().upper(), show_default=True, metavar="HEX",
                     help="The application to select (a phone card's extended AID, M1)."),
        click.option("--timeout", type=click.FloatRange(0.1, 600), default=5.0, show_default=True, metavar="S",
                     help="Seconds to wait for each answer of the host."),
        click.option("--retries", type=click.IntRange(0, 100), default=5, show_default=True, metavar="N",
                     help="Times to send a request again when no answer came."),
        click.option("--json", "as_json", is_flag=True, help="The result as JSON."),
    ]):
        fn = opt(fn)
    return fn


@contextlib.contextmanager
def _wallet(card_spec, url, account, credentials_path, terminal_id, key_index, aid, timeout, retries, seed,
            trace_path):
    wallet_account = load_credentials(credentials_path).account(account)
    tid = hex_bytes("--terminal-id", terminal_id or wallet_account.terminal_id, 6)
    try:
        aid_bytes = bytes.fromhex(aid)
    except ValueError:
        raise click.BadParameter(f"not hexadecimal: {aid!r}", param_hint="--aid") from None
    if not 5 <= len(aid_bytes) <= 16:
        raise click.BadParameter(f"an AID is 5 to 16 bytes, got {len(aid_bytes)}", param_hint="--aid")
    try:
        client = HttpHostClient(url, wallet_account, timeout=timeout, retries=retries)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None
    rng = make_rng(seed)
    with reader(card_spec, rng=rng, expect="card", option="--card", trace=trace_path,
                stamps=trace_clock(None)) as card:
        yield Wallet(card.reader, client, tid, key_index, aid_bytes)


def _show_settled(settled) -> None:
    for s in settled:
        line = f"order {s.order} ({s.amount / 100:.2f} yuan): {s.result.upper()}"
        if s.tac:
            line += f" TAC {s.tac}"
        if s.reason:
            line += f" ({s.reason})"
        click.echo(line)


def _show(result: TopUp) -> None:
    _show_settled(result.settled)
    parts = [result.status.upper(), f"{result.amount / 100:.2f} yuan"]
    if result.card_no:
        parts.append(f"card {result.card_no[1:]}")
    if result.balance_after is not None:
        parts.append(f"balance {result.balance_after / 100:.2f}")
    if result.tac:
        parts.append(f"TAC {result.tac}")
    if result.order:
        parts.append(f"order {result.order}")
    if result.reason:
        parts.append(f"({result.reason})")
    click.echo(" ".join(parts))


@wallet.command("topup")
@_wallet_options
@click.option("--amount", required=True, type=click.IntRange(1, 0xFFFFFFFF), metavar="FEN", help="Amount to load.")
@seed_option
@trace_option
def topup(card_spec, url, account, credentials_path, terminal_id, key_index, aid, timeout, retries, as_json, amount,
          seed, trace_path) -> int:
    """Load FEN onto the card through the host, after settling its pending orders.

    Exit status 0 when the amount was loaded, 3 when it was refused (nothing loaded), 4 when it is pending
    (see the reason).
    """
    with _wallet(card_spec, url, account, credentials_path, terminal_id, key_index, aid, timeout, retries, seed,
                 trace_path) as w:
        result = w.topup(amount)
    if as_json:
        emit_json(result.to_dict())
    else:
        _show(result)
    return TOPUP_EXIT[result.status]


@wallet.command("sync")
@_wallet_options
@seed_option
@trace_option
def sync(card_spec, url, account, credentials_path, terminal_id, key_index, aid, timeout, retries, as_json, seed,
         trace_path) -> int:
    """Settle the card's pending orders only: prove the loads that happened, complete those that did not.

    Exit status 0 when no order is left pending, 4 when one is, 1 when the orders could not be learnt.
    """
    with _wallet(card_spec, url, account, credentials_path, terminal_id, key_index, aid, timeout, retries, seed,
                 trace_path) as w:
        seen, settled, why = w.sync()
    if as_json:
        emit_json({"card_no": seen.card_no if seen else None, "settled": [s.to_dict() for s in settled],
                   "reason": why})
    else:
        if why is not None:
            click.echo(f"NOT SYNCED ({why})")
        _show_settled(settled)
        if why is None and seen is not None and not settled:
            click.echo(f"card {seen.card_no[1:]}: no pending order")
    if why is not None:
        return EXIT_FAILED
    return EXIT_INCOMPLETE if any(s.result == "pending" for s in settled) else EXIT_OK
