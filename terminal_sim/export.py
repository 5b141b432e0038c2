"""The clearing upload file: the journal's money movements and open grey records, in JSON Lines or CSV.

What goes in (one line per record, in journal order):
* ``approved`` and ``recovered`` — money moved and a TAC proves it;
* ``failed`` **with** a TAC — the card answered DEBIT, so money moved although the terminal failed
  afterwards (e.g. the PSAM refused MAC2): clearing checks the TAC;
* ``torn`` records still pending — no TAC yet, but clearing must see them to chase the card (the issuer
  can recompute the TAC, tunion.md 4.4).
What stays out: ``declined`` and ``failed`` without a TAC (no money moved; they remain in the journal),
and torn records already settled (the record that settled them is in the file instead).

Formats: JSON Lines = ``Outcome.to_json()`` per line; CSV = a header row and one column per outcome
field in contract order (``terminal_sim.outcome.FIELDS``), absent fields empty, booleans ``true``/
``false``, ``\\n`` line ends. Output is deterministic (same journal, same bytes) and written
atomically: a temporary file in the target directory, fsync, rename, fsync of the directory.

Reading never writes: a journal given by path is opened read-only (``Journal(path, readonly=True)``), so
an export works on a read-only mount and never turns another file into a journal; a file that is not a
sound ykt journal, or a record that does not parse, is refused (`JournalError`, one line naming the
file) before anything is written.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from ykt_files.atomic import write_text_atomic

from .journal import Journal, JournalEntry
from .outcome import FIELDS, Outcome

__all__ = ["export", "clearing_entries", "render", "FORMATS"]

FORMATS = ("jsonl", "csv")


def _goes_to_clearing(entry: JournalEntry) -> bool:
    status = entry.outcome.status
    if status in ("approved", "recovered"):
        return True
    if status == "failed":
        return entry.outcome.tac is not None
    if status == "torn":
        return entry.pending
    return False


def clearing_entries(journal: Journal) -> list[JournalEntry]:
    """The journal records that belong in the clearing file, in journal order."""
    return [entry for entry in journal.all() if _goes_to_clearing(entry)]


def _csv_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(outcomes: Iterable[Outcome], fmt: str) -> str:
    """The file text for these outcomes in ``fmt`` ('jsonl' or 'csv')."""
    if fmt == "jsonl":
        return "".join(outcome.to_json() + "\n" for outcome in outcomes)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(FIELDS)
        for outcome in outcomes:
            writer.writerow([_csv_value(getattr(outcome, name)) for name in FIELDS])
        return buffer.getvalue()
    raise ValueError(f"fmt: expected one of {', '.join(FORMATS)}, got {fmt!r}")


def export(db: Journal | str | Path, fmt: str = "jsonl", out: str | Path = "clearing.jsonl") -> int:
    """Write the clearing file of journal ``db`` (an open Journal or its path); returns the record count."""
    if fmt not in FORMATS:
        raise ValueError(f"fmt: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    out_path = Path(out)
    if not out_path.parent.is_dir():
        raise ValueError(f"out: directory {str(out_path.parent)!r} does not exist")
    if isinstance(db, Journal):
        entries = clearing_entries(db)
    else:
        if not Path(db).exists():
            raise ValueError(f"db: no such journal {str(db)!r}")
        with Journal(db, readonly=True) as journal:
            entries = clearing_entries(journal)
    write_text_atomic(out_path, render((entry.outcome for entry in entries), fmt))
    return len(entries)
