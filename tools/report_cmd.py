"""`ykt report stats`: the provincial monthly return (附表3) of one city, as CSV, Markdown and HTML."""
from __future__ import annotations

import re
from pathlib import Path

import click

from clearing.report import build_return, read_issuance_registry
from clearing.store import Store
from clearing.terminals import TerminalRegistry
from specs.programme import DEFAULT_PROGRAMME, load_programme

from .output import emit_json


@click.group("report")
def report() -> None:
    """Reports for the province: the monthly statistics return."""


@report.command("stats")
@click.option("--month", required=True, metavar="YYYY-MM", help="The month of the return.")
@click.option("--city", required=True, metavar="CITY", help="Area code (5810) or name (guangzhou, 广州).")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="The clearing store (`ykt clearing verify --out DIR`); without it, no transactions.")
@click.option("--registry", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Issuance registry (`ykt card issue --registry`).")
@click.option("--terminals", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help="Terminal registry (CSV, see `ykt clearing verify`).")
@click.option("--programme", default=DEFAULT_PROGRAMME, show_default=True, metavar="NAME",
              help="Programme with the cities and their 附表1 targets (name or YAML file).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              metavar="DIR", help="Folder for the CSV, Markdown and HTML files.")
@click.option("--json", "as_json", is_flag=True, help="Print the two tables as JSON.")
def stats(month: str, city: str, store: Path | None, registry: Path | None, terminals: Path | None,
          programme: str, out: Path, as_json: bool) -> None:
    """The two tables of 附表3 (issuance by medium, coverage by mode) with charts against the targets."""
    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise click.BadParameter(f"{month!r} is not a month YYYY-MM", param_hint="--month")
    prog = load_programme(programme)
    c = prog.city(city)
    usage, virtual, qr_usage = [], set(), []
    if store is not None:
        with Store(store, create=False) as s:
            usage = s.month_usage(month.replace("-", ""))
            virtual = s.virtual_cards()
            qr_usage = s.month_qr_usage(month.replace("-", ""))
    issuance = read_issuance_registry(registry) if registry is not None else []
    terms = list(TerminalRegistry.load(terminals).terminals.values()) if terminals is not None else []
    result = build_return(month, c.code, c.name, c.name_en, usage=usage, issuance=issuance, terminals=terms,
                          target_cards=c.target_cards, target_year=prog.target_year, virtual_cards=virtual,
                          qr_usage=qr_usage)
    paths = result.write(out)
    if as_json:
        emit_json({**result.to_dict(), "files": [str(p) for p in paths]})
    else:
        click.echo(result.markdown(), nl=False)
        click.echo("wrote " + ", ".join(str(p) for p in paths), err=True)
