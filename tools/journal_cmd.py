"""`ykt journal export`: the clearing upload file from a validator's journal."""
from __future__ import annotations

from pathlib import Path

import click

from terminal_sim.export import export as export_journal


@click.group("journal")
def journal() -> None:
    """Validator journals (SQLite): export the clearing upload file."""


@journal.command("export")
@click.argument("db", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
def export(db: Path, fmt: str, out: Path) -> None:
    """Write the clearing file: approved, recovered and failed-with-TAC records, and unsettled grey records."""
    if not db.is_file():
        raise click.BadParameter(f"no such journal {db}", param_hint="DB")
    count = export_journal(db, fmt, out)
    click.echo(f"wrote {count} clearing records to {out}", err=True)
