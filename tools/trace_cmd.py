"""`ykt trace show|export`: read a JSON Lines trace, annotate its APDUs, export pcapng for Wireshark."""
from __future__ import annotations

from pathlib import Path

import click

from apdu.trace import TSHARK_DECODE_AS, Exchange, export_pcapng, read_jsonl
from ykt_card.host.annotate import describe_command, describe_response

from .output import emit_json

#: How our captures name their writer (pcapng shb_userappl); kept so exports stay byte for byte the same.
PCAPNG_APPLICATION = "ykt apdu.trace"


@click.group("trace")
def trace() -> None:
    """APDU traces recorded with --trace."""


def _read(file: Path) -> list[Exchange]:
    """The exchanges of a JSON Lines trace; a file that is not one is refused in one line naming it."""
    if file.is_dir():
        raise click.BadParameter(f"{file} is a directory, not a trace", param_hint="FILE")
    try:
        return read_jsonl(file)
    except UnicodeDecodeError:
        raise click.BadParameter(f"{file}: not a JSON Lines trace (binary data, not UTF-8 text)",
                                 param_hint="FILE") from None


@trace.command("show")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per exchange, with its annotation.")
def show(file: Path, as_json: bool) -> None:
    """List every exchange of FILE with the T-Union command names and status words."""
    exchanges = _read(file)
    t0 = exchanges[0].t if exchanges else 0.0
    for x in exchanges:
        note = describe_command(x.data) if x.direction == "C" else describe_response(x.data)
        if as_json:
            emit_json({"t": x.t, "reader": x.reader, "dir": "C>" if x.direction == "C" else "R<",
                       "hex": x.data.hex().upper(), "note": note})
        else:
            arrow = "->" if x.direction == "C" else "<-"
            click.echo(f"{x.t - t0:9.3f} {x.reader:<18.18} {arrow} {x.data.hex().upper():<40} {note}")


@trace.command("export")
@click.argument("file", type=click.Path(path_type=Path))
@click.option("--pcapng", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="pcapng file to write (LINKTYPE_ISO_14443).")
def export(file: Path, out: Path) -> None:
    """Write FILE as pcapng with ISO 14443-4 I-blocks, for Wireshark and tshark."""
    count = export_pcapng(_read(file), out, application=PCAPNG_APPLICATION)
    click.echo(f"wrote {count} packets to {out}; decode the APDUs with: "
               f"tshark -r {out} -V {' '.join(TSHARK_DECODE_AS)}")
