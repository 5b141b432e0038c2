"""`ykt decode`: decode a raw file, record or FCI from a dump or a sniffed trace."""
from __future__ import annotations

import click

from ykt_card.layouts.decode import CHOICES, decode_ef

from .output import emit_json
from .render import output_width, render_decoded


@click.command("decode")
@click.argument("ef", metavar="EF")
@click.argument("hex_parts", nargs=-1, required=True, metavar="HEX")
@click.option("--layout", type=click.Choice(["A", "B"], case_sensitive=False), default="A", show_default=True,
              help="EF1E layout (D8: the terminal's city decides which one it writes).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def decode(ef: str, hex_parts: tuple[str, ...], layout: str, as_json: bool) -> None:
    """Decode HEX as file EF: ppse, fci, 15, 16, 17, 18, 1A, 1E, psam15, psam16, psam17.

    HEX may be grouped with spaces, colons or '|', and may end with the status word of the response.
    """
    decoded = decode_ef(ef, " ".join(hex_parts), layout.upper())
    if as_json:
        emit_json(decoded)
    else:
        click.echo(render_decoded(decoded, output_width()))


decode.help = (decode.help or "") + f"\n\nChoices for EF: {', '.join(CHOICES)}."
