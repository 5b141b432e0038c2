"""`ykt journal export|check|salvage`: the clearing upload file, the soundness check, and the recovery
of a damaged journal. Export and check open the journal read-only: reading never writes."""
from __future__ import annotations

from pathlib import Path

import click

from terminal_sim.export import export as export_journal
from terminal_sim.journal import check_journal
from terminal_sim.salvage import salvage as salvage_journal

from .output import emit_json

_DB = click.argument("db", type=click.Path(path_type=Path))


@click.group("journal")
def journal() -> None:
    """Validator journals (SQLite): export the clearing file, check a journal, salvage a damaged one."""


@journal.command("export")
@_DB
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="File to write.")
def export(db: Path, fmt: str, out: Path) -> None:
    """Write the clearing file: approved, recovered and failed-with-TAC records, and unsettled grey records.

    The journal is opened read-only (it may sit on a read-only mount); a file that is not a sound ykt
    journal is refused before anything is written.
    """
    if not db.exists():
        raise click.BadParameter(f"no such journal {db}", param_hint="DB")
    count = export_journal(db, fmt, out)
    click.echo(f"wrote {count} clearing records to {out}", err=True)


@journal.command("check")
@_DB
@click.option("--json", "as_json", is_flag=True, help="The findings as one JSON object.")
def check(db: Path, as_json: bool) -> None:
    """Check a journal read-only: SQLite's integrity check, the journal's identity and schema, every record.

    Exits 0 when the journal is sound, 2 with one line naming the first fault otherwise.
    """
    report = check_journal(db)
    if as_json:
        emit_json(report.to_dict())
        return
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(report.by_status.items())) or "no records"
    click.echo(f"{report.path}: sound ykt journal, schema {report.schema}: {report.records} records ({statuses}), "
               f"{len(report.pending)} pending grey record(s), {report.flags} card flag(s)"
               + (f", {report.codes} QR code(s) seen" if report.codes else ""))


@journal.command("salvage")
@_DB
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The new journal to write (must not exist).")
@click.option("--json", "as_json", is_flag=True, help="What was copied, as one JSON object.")
def salvage(db: Path, out: Path, as_json: bool) -> None:
    """Copy every readable record of a damaged journal into a new journal OUT (the documented recovery).

    DB is only read. Records are read through SQLite and, where its pages are damaged, page by page;
    a grey record whose settling record was lost is pending again in OUT (clearing chases it). Export
    OUT as usual afterwards.
    """
    report = salvage_journal(db, out)
    if as_json:
        emit_json(report.to_dict())
        return
    missing = ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in report.missing[:8])
    more = "…" if len(report.missing) > 8 else ""
    click.echo(f"salvaged {report.copied} records from {db} into {out}"
               + (f" ({report.from_pages} read page by page)" if report.from_pages else "")
               + (f"; unreadable ids: {missing}{more}" if report.missing else "; no gap in the ids")
               + (f"; {len(report.reopened)} grey record(s) pending again" if report.reopened else "")
               + ("; card flags unreadable" if report.flags_lost else f"; {report.flags} card flag(s)")
               + ("; QR codes seen unreadable" if report.codes_lost
                  else f"; {report.codes} QR code(s) seen" if report.codes else ""))
