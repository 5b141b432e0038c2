"""`ykt host serve|orders`: the issuer's over-the-air top-up host (mobile.md §2.4, M5) and its orders."""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from keysets import KeySet
from ota import DEFAULT_MAX_BALANCE, HostJournal, HostServer, TopUpHost, load_credentials
from ota.server import DEFAULT_BIND

from .common import KEYSET, Shipped, clock_option, make_clock
from .output import emit_json

CREDENTIALS = Shipped("wallet-credentials")
DEFAULT_PORT = 8470
DEFAULT_JOURNAL = "ota-host.db"


def credentials_option(fn):
    return click.option("--credentials", "credentials_path", type=CREDENTIALS, default="wallets-test",
                        show_default=True, metavar="FILE",
                        help="TEST credential file of the wallet accounts (or a shipped name).")(fn)


def _journal_option(fn):
    return click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
                        default=DEFAULT_JOURNAL, show_default=True, metavar="DB",
                        help="The host's SQLite journal of orders (WAL; survives kill -9).")(fn)


@click.group("host")
def host() -> None:
    """The issuer's over-the-air top-up host: MAC2 for wallets, one journal of orders."""


@host.command("serve")
@click.option("--keyset", "keysets", multiple=True, required=True, type=KEYSET,
              help="TEST key set holding the load and TAC master keys (repeat for 3DES and SM4).")
@credentials_option
@_journal_option
@click.option("--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
              help="TCP port (0: any free port, printed at start).")
@click.option("--bind", default=DEFAULT_BIND, show_default=True, metavar="ADDR",
              help="Address to listen on (loopback by default).")
@click.option("--max-balance", type=click.IntRange(1, 0x7FFFFFFF), default=DEFAULT_MAX_BALANCE, show_default=True,
              metavar="FEN", help="The card's maximum balance: a load above it is refused.")
@clock_option
def serve(keysets, credentials_path, journal_path, port, bind, max_balance, clock) -> None:
    """Serve the top-up host over HTTP (JSON) until SIGTERM; one log line per request on stderr."""
    sets = [KeySet.load(k) for k in keysets]
    credentials = load_credentials(credentials_path)
    with HostJournal(journal_path) as journal:
        topup = TopUpHost(sets, credentials, journal, make_clock(clock), max_balance)
        try:
            server = HostServer(topup, bind, port, log=lambda line: click.echo(f"ykt host: {line}", err=True))
        except OSError as exc:
            raise click.BadParameter(f"cannot listen on {bind}:{port}: {exc.strerror or exc}",
                                     param_hint="--port") from None
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        thread = server.serve_in_thread()
        click.echo(f"serving the OTA top-up host on {server.url} ({len(credentials)} accounts, journal "
                   f"{journal_path}; SIGTERM to stop)", err=True)
        while not stop.wait(0.2) and thread.is_alive():
            pass
        server.shutdown()
        server.server_close()
    click.echo("stopped the OTA top-up host", err=True)


@host.command("orders")
@_journal_option
@click.option("--card", "card_no", default=None, metavar="DIGITS20", help="Only this card's orders.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per order.")
def orders(journal_path, card_no, as_json) -> None:
    """The host's orders, oldest first: state, card, counter, amount, MAC2, TAC."""
    if not journal_path.is_file():
        raise click.BadParameter(f"no such host journal {str(journal_path)!r}", param_hint="--journal")
    with HostJournal(journal_path) as journal:
        found = [o for o in journal.all() if card_no is None or o.card_no == card_no]
    if as_json:
        for o in found:
            emit_json(o.to_dict())
        return
    if not found:
        click.echo("no order")
    for o in found:
        line = (f"{o.order} {o.state.upper()} card {o.card_no} counter {o.counter} amount {o.amount} account "
                f"{o.account} datetime {o.datetime} attempts {o.attempts}")
        click.echo(line + (f" TAC {o.tac}" if o.tac else "") + (f" ({o.reason})" if o.reason else ""))
