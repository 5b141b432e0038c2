"""Salvage: every readable record of a damaged journal, copied into a new, sound journal.

A journal that fails its opening check is never used to charge (terminal_sim.journal); what it holds
may still be money that clearing must see. `salvage` reads it without trusting it, in two passes:

1. **Through SQLite** (read-only, so a ``-wal`` is honoured): the records in id order, in batches; where a
   batch meets a damaged page, the ids beyond are asked for one by one, so a damaged leaf page costs only
   the records on it. Card flags are copied from this pass only (a flag that was taken must not return),
   and so are the remembered QR codes (schema 2), each only with its accepted ride: a salvaged journal
   put back in a validator still refuses a replay of a code that rode.
2. **Page by page**: the main file's table leaf pages are decoded directly (SQLite file format 2.3-2.5:
   cells, overflow chains, record format), which finds the records that a damaged interior page or a
   damaged first page hides from SQLite. A record found here and not in pass 1 may be an older copy on a
   freed page: its grey-record link may be missing, which leaves the grey record pending (the safe side:
   clearing chases it).

A row counts only when its ``record`` parses as an `Outcome` and its context as a JSON object; the
derived columns (dedup key, status, card number, terminal fields) are recomputed from the outcome, not
copied. Grey-record links are kept only when the settling record was salvaged too (else the grey record
is pending again and reported as reopened). The new journal is written under a temporary name in the
target folder and moved into place only when complete; an existing file is never replaced.
"""
from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .journal import (SQLITE_MAGIC, TABLES, Journal, JournalError, SeenCode, _connect_readonly, _one_line,
                      dedup_key)
from .outcome import Outcome

__all__ = ["salvage", "SalvageReport"]

_COLUMNS = ", ".join(TABLES["outcomes"])
_BATCH = 256
_PROBE_STEP = 64          # ids asked for one by one after a batch met a damaged page
_GIVE_UP_AFTER = 4096     # ids past everything known without a readable row: the end of the table

Row = tuple[int, Outcome, Mapping[str, Any] | None, int | None]
"""A salvaged record: id, outcome, recovery context, the id of the record that settled it."""


@dataclass(frozen=True)
class SalvageReport:
    """What `salvage` copied.

    `missing`: id ranges (first, last) up to the highest id the journal gave (its AUTOINCREMENT sequence,
    when readable, else the highest id seen) that neither pass could read;
    `from_pages`: records only the page-by-page pass found; `reopened`: grey records whose settling
    record was lost, pending again in the new journal; `flags_lost`: the card flags were unreadable;
    `codes`: remembered QR codes copied (with their rides), `codes_lost`: that table was unreadable.
    """

    source: Path
    out: Path
    copied: int
    from_pages: int
    missing: tuple[tuple[int, int], ...]
    reopened: tuple[int, ...]
    flags: int
    flags_lost: bool
    codes: int = 0
    codes_lost: bool = False

    @property
    def missing_count(self) -> int:
        return sum(last - first + 1 for first, last in self.missing)

    def to_dict(self) -> dict[str, Any]:
        return {"source": str(self.source), "out": str(self.out), "copied": self.copied,
                "from_pages": self.from_pages, "missing": [list(r) for r in self.missing],
                "missing_count": self.missing_count, "reopened": list(self.reopened), "flags": self.flags,
                "flags_lost": self.flags_lost, "qr_codes_seen": self.codes, "qr_codes_lost": self.codes_lost}


# ---------------------------------------------------------------------------------------------------
# One row, trusted only when its record parses

def _row(values: tuple[Any, ...]) -> Row | None:
    """(id, dedup_key, status, card_no, terminal_id, terminal_seq, record, context, resolved_by) → a Row."""
    ident, record, context, resolved_by = values[0], values[6], values[7], values[8]
    if not isinstance(ident, int) or ident < 1 or not isinstance(record, str):
        return None
    if not (context is None or isinstance(context, str)) or not (resolved_by is None or isinstance(resolved_by, int)):
        return None
    try:
        outcome = Outcome.from_json(record)
        ctx = json.loads(context) if context is not None else None
    except (ValueError, TypeError):
        return None
    if ctx is not None and not isinstance(ctx, dict):
        return None
    if outcome.status == "torn" and ctx is None:
        return None
    return ident, outcome, ctx, resolved_by


# ---------------------------------------------------------------------------------------------------
# Pass 1: through SQLite

def _highest_known(db: sqlite3.Connection) -> int:
    highest = 0
    for query in ("SELECT seq FROM sqlite_sequence WHERE name = 'outcomes'", "SELECT max(id) FROM outcomes"):
        try:
            found = db.execute(query).fetchone()
        except sqlite3.DatabaseError:
            continue
        if found is not None and isinstance(found[0], int):
            highest = max(highest, found[0])
    return highest


def _through_sqlite(db: sqlite3.Connection, highest: int) -> dict[int, Row]:
    rows: dict[int, Row] = {}
    pos = 0
    while True:
        try:
            batch = db.execute(f"SELECT {_COLUMNS} FROM outcomes WHERE id > ? ORDER BY id LIMIT {_BATCH}",
                               (pos,)).fetchall()
        except sqlite3.DatabaseError:
            for ident in range(pos + 1, pos + _PROBE_STEP + 1):
                try:
                    found = db.execute(f"SELECT {_COLUMNS} FROM outcomes WHERE id = ?", (ident,)).fetchone()
                except sqlite3.DatabaseError:
                    continue
                row = _row(tuple(found)) if found is not None else None
                if row is not None:
                    rows[ident] = row
            pos += _PROBE_STEP
            if pos > max(highest, max(rows, default=0)) + _GIVE_UP_AFTER:
                return rows
            continue
        if not batch:
            return rows
        for found in batch:
            row = _row(tuple(found))
            if row is not None:
                rows[row[0]] = row
        pos = batch[-1][0]


def _flags(db: sqlite3.Connection) -> dict[str, str] | None:
    try:
        found = db.execute("SELECT card_no, reason FROM card_flags").fetchall()
    except sqlite3.DatabaseError:
        return None
    return {card: reason for card, reason in found
            if isinstance(card, str) and len(card) == 20 and card.isascii() and card.isdigit()
            and isinstance(reason, str) and reason.strip()}


def _codes(db: sqlite3.Connection) -> list[tuple[SeenCode, int]] | None:
    """The remembered QR codes that read as such, with their ride's id; [] for a version-1 journal (no
    table), None when the table cannot be read."""
    try:
        found = db.execute("SELECT digest, account, at, keep_until, record_id FROM qr_seen ORDER BY at").fetchall()
    except sqlite3.OperationalError as exc:
        return [] if "no such table" in str(exc) else None
    except sqlite3.DatabaseError:
        return None
    out = []
    for digest, account, at, keep_until, ride_id in found:
        if not (isinstance(digest, str) and len(digest) == 64 and isinstance(account, str)
                and isinstance(at, int) and isinstance(keep_until, int) and isinstance(ride_id, int)):
            continue
        try:
            out.append((SeenCode(bytes.fromhex(digest), account, at, keep_until), ride_id))
        except ValueError:
            continue
    return out


# ---------------------------------------------------------------------------------------------------
# Pass 2: page by page (SQLite database file format, sections 1.3 header, 1.6 b-tree pages, 2.1 records)

def _varint(buf: bytes, at: int) -> tuple[int, int]:
    value = 0
    for i in range(8):
        byte = buf[at + i]
        value = (value << 7) | (byte & 0x7F)
        if byte < 0x80:
            return value, at + i + 1
    return (value << 8) | buf[at + 8], at + 9


def _record(payload: bytes) -> tuple[Any, ...]:
    """The values of one record (header of serial types, then the values)."""
    header_size, at = _varint(payload, 0)
    types = []
    while at < header_size:
        serial, at = _varint(payload, at)
        types.append(serial)
    values: list[Any] = []
    body = header_size
    sizes = {1: 1, 2: 2, 3: 3, 4: 4, 5: 6, 6: 8}
    for serial in types:
        if serial == 0:
            values.append(None)
        elif serial in sizes:
            n = sizes[serial]
            if body + n > len(payload):
                raise ValueError("record runs past its payload")
            values.append(int.from_bytes(payload[body:body + n], "big", signed=True))
            body += n
        elif serial == 7:
            body += 8
            values.append(float("nan"))
        elif serial in (8, 9):
            values.append(serial - 8)
        elif serial >= 12:
            n = (serial - 12) // 2
            if body + n > len(payload):
                raise ValueError("record runs past its payload")
            raw = payload[body:body + n]
            values.append(raw.decode("utf-8") if serial % 2 else raw)
            body += n
        else:
            raise ValueError(f"reserved serial type {serial}")
    return tuple(values)


class _Pages:
    """The main file as pages of the size its header states (4096 when the header is unreadable)."""

    def __init__(self, data: bytes) -> None:
        size = int.from_bytes(data[16:18], "big") if len(data) >= 100 else 0
        size = 65536 if size == 1 else size
        if size < 512 or size > 65536 or size & (size - 1):
            size = 4096
        self.data, self.size = data, size
        self.usable = size - (data[20] if len(data) >= 100 else 0)
        self.count = len(data) // size

    def page(self, number: int) -> bytes:
        if not 1 <= number <= self.count:
            raise ValueError(f"page {number} is past the end of the file")
        return self.data[(number - 1) * self.size:number * self.size]

    def payload(self, page: bytes, at: int) -> tuple[int, bytes]:
        """The rowid and whole payload of the table-leaf cell at `at` (following its overflow chain)."""
        length, at = _varint(page, at)
        rowid, at = _varint(page, at)
        usable = self.usable
        most = usable - 35
        if length <= most:
            return rowid, page[at:at + length]
        least = (usable - 12) * 32 // 255 - 23
        local = least + (length - least) % (usable - 4)
        local = local if local <= most else least
        parts = [page[at:at + local]]
        got, nxt, seen = local, int.from_bytes(page[at + local:at + local + 4], "big"), set()
        while got < length:
            if nxt in seen:
                raise ValueError("overflow chain loops")
            seen.add(nxt)
            over = self.page(nxt)
            take = min(length - got, usable - 4)
            parts.append(over[4:4 + take])
            got += take
            nxt = int.from_bytes(over[0:4], "big")
        return rowid, b"".join(parts)

    def leaf_cells(self) -> Iterator[tuple[int, bytes]]:
        """(rowid, payload) of every cell on every table leaf page that decodes."""
        for number in range(1, self.count + 1):
            page = self.page(number)
            head = 100 if number == 1 else 0
            if page[head] != 0x0D:
                continue
            cells = int.from_bytes(page[head + 3:head + 5], "big")
            for i in range(min(cells, (self.size - head - 8) // 2)):
                pointer = int.from_bytes(page[head + 8 + 2 * i:head + 10 + 2 * i], "big")
                try:
                    yield self.payload(page, pointer)
                except (IndexError, ValueError):
                    continue


def _from_pages(path: Path) -> dict[int, list[tuple[Any, ...]]]:
    """The candidate outcomes rows of every table leaf page, by rowid (a rowid may have several copies);
    parsed later, and only for the ids pass 1 could not read."""
    try:
        data = path.read_bytes()
    except OSError:
        return {}
    found: dict[int, list[tuple[Any, ...]]] = {}
    for rowid, payload in _Pages(data).leaf_cells():
        try:
            values = _record(payload)
        except (IndexError, ValueError, UnicodeDecodeError):
            continue
        if len(values) != len(TABLES["outcomes"]) or values[0] is not None:
            continue          # not an outcomes row (its id is the rowid, stored as NULL)
        found.setdefault(rowid, []).append((rowid, *values[1:]))
    return found


def _best(copies: list[tuple[Any, ...]]) -> Row | None:
    """The copy to keep: one that parses, a settled one first (resolved_by is only ever set, never cleared)."""
    rows = [row for row in map(_row, copies) if row is not None]
    rows.sort(key=lambda row: row[3] is None)
    return rows[0] if rows else None


# ---------------------------------------------------------------------------------------------------
# The new journal

def _ranges(ids: list[int]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for ident in ids:
        if out and out[-1][1] == ident - 1:
            out[-1] = (out[-1][0], ident)
        else:
            out.append((ident, ident))
    return tuple(out)


def _links(rows: Mapping[int, Row]) -> tuple[dict[int, int], tuple[int, ...]]:
    """Grey-record links whose settling record was salvaged; the grey records left pending again."""
    links: dict[int, int] = {}
    used: set[int] = set()
    reopened: list[int] = []
    for ident, outcome, _, by in sorted(rows.values(), key=lambda r: r[0]):
        if by is None or outcome.status != "torn":
            continue
        target = rows.get(by)
        if target is None or target[1].status == "torn" or by in used or target[1].card_no != outcome.card_no:
            reopened.append(ident)
            continue
        links[ident] = by
        used.add(by)
    return links, tuple(reopened)


def _open_source(path: Path) -> sqlite3.Connection | None:
    try:
        db = _connect_readonly(path, timeout=1.0)
        db.execute("PRAGMA query_only=ON")
        return db
    except (sqlite3.DatabaseError, JournalError):
        return None


def salvage(source: str | Path, out: str | Path) -> SalvageReport:
    """Copy every readable record (and the card flags) of journal `source` into a new journal `out`.

    Refused (`JournalError`, one line): a source that does not exist or is not an SQLite file, an `out`
    that exists or whose folder does not, a source with no readable record.
    """
    source, out = Path(source), Path(out)
    if not source.is_file():
        raise JournalError(f"{source}: no such journal")
    with open(source, "rb") as src:
        if src.read(len(SQLITE_MAGIC)) != SQLITE_MAGIC:
            raise JournalError(f"{source}: not an SQLite database; nothing to salvage")
    if out.exists():
        raise JournalError(f"{out}: already exists; salvage writes a new journal")
    if not out.parent.is_dir():
        raise JournalError(f"{out}: folder {out.parent} does not exist")
    db = _open_source(source)
    paged = _from_pages(source)
    rows: dict[int, Row] = {}
    flags: dict[str, str] | None = None
    codes: list[tuple[SeenCode, int]] | None = None
    highest = max(paged, default=0)
    if db is not None:
        try:
            highest = max(_highest_known(db), highest)
            rows = _through_sqlite(db, highest)
            flags = _flags(db)
            codes = _codes(db)
        finally:
            db.close()
    from_pages = 0
    for ident, copies in paged.items():
        if ident not in rows:
            row = _best(copies)
            if row is not None:
                rows[ident] = row
                from_pages += 1
    seen_keys: set[str] = set()
    for ident in sorted(rows):                      # one key twice (a stale copy): keep the first record
        key = dedup_key(rows[ident][1])
        if key in seen_keys:
            del rows[ident]
        seen_keys.add(key)
    if not rows:
        raise JournalError(f"{source}: no readable record; nothing to salvage")
    links, reopened = _links(rows)
    highest = max(highest, max(rows))
    kept = [(seen, ride_id) for seen, ride_id in codes or []          # only beside its ride, as salvaged
            if ride_id in rows and rows[ride_id][1].medium == "qr" and rows[ride_id][1].status == "approved"]
    _write(out, [rows[i][:3] for i in sorted(rows)], links, flags or {}, highest, kept)
    missing = _ranges([i for i in range(1, highest + 1) if i not in rows])
    return SalvageReport(source, out, len(rows), from_pages, missing, reopened, len(flags or {}), flags is None,
                         len(kept), codes is None)


def _write(out: Path, rows: list[tuple[int, Outcome, Mapping[str, Any] | None]], links: Mapping[int, int],
           flags: Mapping[str, str], highest: int, codes: list[tuple[SeenCode, int]]) -> None:
    """Build the journal under a temporary name, then link it into place (never over an existing file)."""
    tmp = out.with_name(f".{out.name}.salvage-{os.getpid()}")
    for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        leftover.unlink(missing_ok=True)
    try:
        with Journal(tmp) as journal:
            journal._restore(rows, links, flags, highest, codes)
            with journal._storage("checkpoint") as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with open(tmp, "rb") as written:
            os.fsync(written.fileno())
        try:
            os.link(tmp, out)
        except FileExistsError:
            raise JournalError(f"{out}: already exists; salvage writes a new journal") from None
        except OSError as exc:
            raise JournalError(f"{out}: cannot be written: {exc.strerror or _one_line(exc)}") from None
        dir_fd = os.open(out.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
            leftover.unlink(missing_ok=True)
