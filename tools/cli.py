"""The `ykt` command line: thin glue that parses options, calls the layers below and renders output."""
from __future__ import annotations

import sys

import click

from . import __version__
from .errors import EXIT_BAD_INPUT, EXIT_FAILED, YktGroup, one_line
from .keys_cmd import keys
from .demo import demo
from .decode_cmd import decode
from .card_cmd import card
from .psam_cmd import psam
from .trace_cmd import trace
from .doctor_cmd import doctor
from .journal_cmd import journal
from .terminal_cmd import terminal
from .qr_cmd import qr
from .conformance_cmd import conformance
from .clearing_cmd import clearing
from .report_cmd import report
from .host_cmd import host
from .wallet_cmd import wallet


@click.group(cls=YktGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="ykt")
def cli() -> None:
    """ykt: workbench for the China T-Union (交通联合, JT/T 978) transit card.

    Virtual cards and PSAMs, personalisation with managed TEST keys, a validator simulator (cards and MOT QR
    codes) with its journal and clearing file, the over-the-air top-up host and wallet, and the clearing
    platform's end: verification, settlement, the monthly return. Every command exits non-zero with a
    one-line reason on bad input.
    """


cli.add_command(keys)
cli.add_command(demo)
cli.add_command(decode)
cli.add_command(card)
cli.add_command(psam)
cli.add_command(trace)
cli.add_command(doctor)
cli.add_command(journal)
cli.add_command(terminal)
cli.add_command(qr)
cli.add_command(conformance)
cli.add_command(clearing)
cli.add_command(report)
cli.add_command(host)
cli.add_command(wallet)


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage errors too become one line (`ykt: error: …`) and exit 2."""
    try:
        rv = cli.main(args=argv, prog_name="ykt", standalone_mode=False)
    except click.exceptions.NoArgsIsHelpError as exc:  # `ykt` or `ykt card` alone: show the help
        click.echo(exc.ctx.get_help() if exc.ctx is not None else str(exc))
        sys.exit(0)
    except click.UsageError as exc:
        path = exc.ctx.command_path.split(" ", 1) if exc.ctx is not None else []
        where = f"{path[1]}: " if len(path) > 1 else ""   # the subcommand, never the program name again
        click.echo(f"ykt: error: {where}{one_line(exc.format_message())}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except click.ClickException as exc:
        click.echo(f"ykt: error: {one_line(exc.format_message())}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("ykt: aborted", err=True)
        sys.exit(EXIT_FAILED)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
