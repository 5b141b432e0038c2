"""The clearing store: every record the platform has verified, with its reasons, in one DuckDB file.

Why DuckDB (docs/clearing.md): the store is written in bulk (a day's files at a time) and read in bulk
(settlement and the monthly return aggregate millions of records; the duplicate check across terminals is
a window over all records). DuckDB loads the partitions' output (Parquet, typed by the workers) in one parallel scan, runs those
aggregations column-wise, spills to disk beyond its memory limit, and keeps one ACID transaction per run,
so a run lands whole or not at all. SQLite, row by row from Python, measured 4x slower on the bulk load
and has no parallel scan.

Layout: ``DIR/clearing.duckdb`` with tables ``files`` (one row per distinct file content: a rerun of the
same file adds nothing), ``records`` (one row per card record, reason bits, 0 = accepted), ``malformed``,
``qr_rides`` (one row per QR ride: its code's digest, where, when, the fare, the check it failed and
``replay_of``, the ride whose code it repeats: clearing.qr), ``virtual_cards`` (cards whose records say
``medium: virtual``, M4) and ``sequences`` (per terminal, a bitmap of the PSAM sequences seen:
`sequences`). A store written before the QR tables existed gains them when it is next opened for writing.
"""
from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from .judge import BIT
from .jobs import LINE_BITS, RECORD_SELECT, RECORD_TYPES, SPILL_COLUMNS, PartitionResult
from .qr import QR_REPLAY
from .records import TORN
from .sequences import SeqBits, collisions, merge

__all__ = ["Store", "StoredFile", "RunLoad", "STORE_FILE"]

STORE_FILE = "clearing.duckdb"
MEMORY_LIMIT = "96MB"          # DuckDB spills past it; measured: 64 MB made the parallel bulk load a third slower
SMALL_MEMORY_LIMIT = "48MB"    # a store written by the partition itself, beside its rows (one thread)
_SCHEMA_VERSION = "1"


_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS files (idx INTEGER PRIMARY KEY, sha256 VARCHAR UNIQUE, name VARCHAR, "
    "format VARCHAR, size BIGINT, records BIGINT)",
    f"CREATE TABLE IF NOT EXISTS records ({', '.join(f'{c} {t}' for c, t in RECORD_TYPES.items())})",
    "CREATE TABLE IF NOT EXISTS malformed (n BIGINT, detail VARCHAR)",
    "CREATE TABLE IF NOT EXISTS qr_rides (n BIGINT, digest VARCHAR, terminal VARCHAR, datetime VARCHAR, amount BIGINT, "
    "issuer VARCHAR, platform VARCHAR, city VARCHAR, failed VARCHAR, detail VARCHAR, replay_of BIGINT)",
    "CREATE TABLE IF NOT EXISTS virtual_cards (card VARCHAR PRIMARY KEY)",
    "CREATE TABLE IF NOT EXISTS sequences (terminal VARCHAR PRIMARY KEY, base BIGINT, bits BLOB, extra BIGINT[])",
]
# Earlier records as spill tuples (partition.SPILL_COLUMNS): what the store does not keep is NULL.
_HISTORY_COLUMNS = ", ".join(c if c in RECORD_TYPES else "NULL" for c in SPILL_COLUMNS)
DUPLICATE, TAC = BIT["duplicate"], BIT["tac"]


@dataclass(frozen=True)
class StoredFile:
    idx: int
    sha256: str
    name: str
    format: str
    size: int
    records: int


def _connect(path: Path, read_only: bool = False, memory_limit: str = MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else max(1, os.cpu_count() or 1)
    config = {"memory_limit": memory_limit, "preserve_insertion_order": False, "threads": cores}
    if not read_only:
        config["temp_directory"] = str(path.parent / "duckdb.tmp")
    return duckdb.connect(str(path), read_only=read_only, config=config)


class Store:
    """One open store (read-write: one process at a time; workers read earlier records read-only)."""

    def __init__(self, folder: str | Path, *, create: bool = True, read_only: bool = False,
                 memory_limit: str = MEMORY_LIMIT) -> None:
        self.folder = Path(folder)
        self.path = self.folder / STORE_FILE
        if not self.path.exists():
            if not create:
                raise ValueError(f"--out: no clearing store in {self.folder} (run `ykt clearing verify --out` first)")
            if self.folder.exists() and not self.folder.is_dir():
                raise ValueError(f"--out: {self.folder} is not a directory")
            self.folder.mkdir(parents=True, exist_ok=True)
        self.con = _connect(self.path, read_only=read_only, memory_limit=memory_limit)
        if not read_only:
            for statement in _SCHEMA:
                self.con.execute(statement)
            self.con.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", [_SCHEMA_VERSION])

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- files ------------------------------------------------------------------------------------
    def files_by_sha(self, hashes: Iterable[str]) -> dict[str, StoredFile]:
        wanted = list(set(hashes))
        if not wanted:
            return {}
        rows = self.con.execute("SELECT idx, sha256, name, format, size, records FROM files "
                                "WHERE sha256 IN (SELECT unnest(?))", [wanted]).fetchall()
        return {r[1]: StoredFile(*r) for r in rows}

    def next_file_idx(self) -> int:
        return self.con.execute("SELECT coalesce(max(idx), 0) + 1 FROM files").fetchone()[0]

    def has_records(self) -> bool:
        return self.con.execute("SELECT count(*) > 0 FROM (SELECT 1 FROM records LIMIT 1)").fetchone()[0]

    # -- loading a run ------------------------------------------------------------------------------
    def discard_unfinished(self) -> None:
        """Undo a run that stopped while loading: records of files the store does not list yet."""
        for table in ("records", "malformed", "qr_rides"):
            self.con.execute(f"DELETE FROM {table} WHERE (n >> {LINE_BITS}) NOT IN (SELECT idx FROM files)")

    def begin_load(self) -> "RunLoad":
        """Open the transaction of a run's load: partitions are added as they finish (`RunLoad.add`)."""
        return RunLoad(self)

    def _sequences(self, terminals: set[str]) -> dict[str, SeqBits]:
        """The sequences earlier runs saw, for these terminals."""
        if not terminals:
            return {}
        rows = self.con.execute("SELECT terminal, base, bits, extra FROM sequences "
                                "WHERE terminal IN (SELECT unnest(?))", [sorted(terminals)]).fetchall()
        return {t: SeqBits(base, bits, extra or ()) for t, base, bits, extra in rows}

    def _terminal_duplicates(self, candidates: set[tuple[str, int]]) -> None:
        """Same terminal and terminal sequence: the first record (in arrival order) whose TAC verifies is the
        original, every later one a duplicate, whatever its card. Grey records take no part. Only the pairs
        the sequence bitmaps saw twice (`sequences`) can hold a duplicate, so only those are looked at."""
        if not candidates:
            return
        self.con.execute("CREATE OR REPLACE TEMP TABLE candidates (terminal VARCHAR, seq BIGINT)")
        pairs = sorted(candidates)          # one statement: executemany costs a statement per pair
        self.con.execute("INSERT INTO candidates SELECT unnest(?), unnest(?)",
                         [[t for t, _ in pairs], [s for _, s in pairs]])
        self.con.execute(f"""
            UPDATE records SET fixed = fixed | {DUPLICATE}, reasons = reasons | {DUPLICATE}
            WHERE n IN (
                SELECT n FROM (
                    SELECT n, row_number() OVER (PARTITION BY terminal, seq ORDER BY (fixed & {TAC}) <> 0, n) AS rk
                    FROM records
                    WHERE status <> {TORN} AND (terminal, seq) IN (SELECT terminal, seq FROM candidates)
                ) WHERE rk > 1)""")

    def _qr_replays(self) -> None:
        """The same code in two rides, wherever they were: the first in arrival order whose code passed its
        checks is the ride, every later one (and every failed one) a replay of it. Earlier verdicts stand:
        only rides without a `replay_of` are looked at, so a rerun changes nothing."""
        self.con.execute("""
            UPDATE qr_rides SET replay_of = o.first FROM (
                SELECT n, first_value(n) OVER (PARTITION BY digest ORDER BY failed IS NOT NULL, n) AS first
                FROM qr_rides) AS o
            WHERE qr_rides.n = o.n AND o.first <> qr_rides.n AND qr_rides.replay_of IS NULL""")

    # -- reading ------------------------------------------------------------------------------------
    @staticmethod
    def history_rows(path: str, cards: Sequence[str]) -> list[tuple]:
        """Earlier records of these cards, as partition spill tuples (stored reasons last)."""
        con = _connect(Path(path), read_only=True)
        try:
            return con.execute(f"SELECT {_HISTORY_COLUMNS} FROM records WHERE card IN (SELECT unnest(?))",
                               [list(cards)]).fetchall()
        finally:
            con.close()

    def rejections(self, file_idxs: Sequence[int]) -> tuple[dict[int, int], dict[int, str]]:
        """(n -> reasons) of rejected records and (n -> detail) of malformed lines of these files."""
        idxs = sorted(set(file_idxs))
        rejected = dict(self.con.execute(
            f"SELECT n, reasons FROM records WHERE reasons <> 0 AND (n >> {LINE_BITS}) IN (SELECT unnest(?))",
            [idxs]).fetchall())
        malformed = dict(self.con.execute(
            f"SELECT n, detail FROM malformed WHERE (n >> {LINE_BITS}) IN (SELECT unnest(?))", [idxs]).fetchall())
        return rejected, malformed

    def qr_verdicts(self, file_idxs: Sequence[int]) -> dict[int, tuple[tuple[str, ...], str | None]]:
        """(n -> (reasons, detail)) of the QR rides of these files: the failed check's token and ``qr-replay``
        (with the terminal and time of the ride it repeats), none for an accepted ride."""
        rows = self.con.execute(
            "SELECT q.n, q.failed, q.detail, o.terminal, o.datetime, o.n FROM qr_rides q "
            "LEFT JOIN qr_rides o ON o.n = q.replay_of "
            f"WHERE (q.n >> {LINE_BITS}) IN (SELECT unnest(?))", [sorted(set(file_idxs))]).fetchall()
        out: dict[int, tuple[tuple[str, ...], str | None]] = {}
        for n, failed, detail, terminal, when, first in rows:
            reasons, details = [], []
            if failed is not None:
                reasons.append(failed)
                details.append(detail)
            if first is not None:
                reasons.append(QR_REPLAY)
                details.append(f"{QR_REPLAY}: the same code rode at terminal {terminal} at {when}")
            out[n] = (tuple(reasons), "; ".join(details) if details else None)
        return out

    def money_records(self, day: str) -> list[tuple]:
        """Accepted records that moved money on `day` (YYYYMMDD): issuer, acquirer, terminal, mode, type,
        amount, card."""
        return self.con.execute(
            "SELECT issuer, acquirer, terminal, mode, type, amount, card FROM records "
            f"WHERE reasons = 0 AND status <> {TORN} AND starts_with(datetime, ?) ORDER BY n", [day]).fetchall()

    def month_qr_usage(self, month: str) -> list[tuple]:
        """Per city: accepted QR rides of `month` (YYYYMM): city, count, amount (fen)."""
        return self.con.execute(
            "SELECT coalesce(city, ''), count(*), sum(amount) FROM qr_rides "
            "WHERE failed IS NULL AND replay_of IS NULL AND starts_with(datetime, ?) GROUP BY 1 ORDER BY 1",
            [month]).fetchall()

    def virtual_cards(self) -> set[str]:
        """The cards whose records said ``medium: virtual`` (M4)."""
        return {row[0] for row in self.con.execute("SELECT card FROM virtual_cards").fetchall()}

    def month_usage(self, month: str) -> list[tuple]:
        """Per card: accepted purchases of `month` (YYYYMM): card, issuer, count, amount (fen)."""
        return self.con.execute(
            "SELECT card, issuer, count(*), sum(amount) FROM records "
            f"WHERE reasons = 0 AND status <> {TORN} AND kind = 1 AND starts_with(datetime, ?) "
            "GROUP BY card, issuer ORDER BY card", [month]).fetchall()


class RunLoad:
    """A run's load into the store, one transaction, so a file is either in the store with all its verdicts
    or not at all: each partition's records (its Parquet files: one parallel scan; DuckDB writes a large
    transaction's rows to disk as it goes, so memory stays within its limit), malformed lines, QR rides,
    virtual cards and changed verdicts as the partition finishes (`add`, while other partitions still
    run), then what needs them all: the duplicate check across terminals, QR replays, the terminal
    sequences and the files (`finish`, which commits)."""

    def __init__(self, store: Store) -> None:
        self.store, self.con = store, store.con
        self.loaded: set[str] = set()
        self.con.execute("BEGIN TRANSACTION")

    def add_records(self, paths: Sequence[str]) -> None:
        """Parquet files of judged buckets (each once: a bucket loaded as it was written is not loaded again
        with its partition's output)."""
        todo = [p for p in paths if p not in self.loaded]
        if todo:
            self.con.execute("INSERT INTO records BY NAME SELECT * FROM read_parquet(?)", [todo])
            self.loaded.update(todo)

    # -- a single partition writes its buckets here directly (partition.BucketSink) ----------------------
    def history(self, cards: set[str]) -> list[tuple]:
        """Earlier records of these cards, read in this load's transaction (this run's records so far are of
        other cards: a bucket's cards are its own)."""
        if not cards:
            return []
        return self.con.execute(f"SELECT {_HISTORY_COLUMNS} FROM records WHERE card IN (SELECT unnest(?))",
                                [sorted(cards)]).fetchall()

    def write(self, columns: dict, result: PartitionResult) -> None:
        """A bucket's new records straight from its columns (no Parquet round trip: measured 2.5 against
        3.9 us a record on one core)."""
        bucket = columns  # noqa: F841  (DuckDB reads the local variable by its name)
        self.con.execute(f"INSERT INTO records SELECT {RECORD_SELECT} FROM bucket")

    def close(self) -> None:
        """Nothing to release: the store closes the connection."""

    def add(self, r: PartitionResult) -> None:
        """A partition's output: its Parquet files (none when it wrote here directly), malformed lines, QR
        rides, virtual cards and changed verdicts."""
        con = self.con
        self.add_records(r.record_files)
        if os.path.getsize(r.malformed_csv):
            con.execute(f"COPY malformed FROM '{_sql_path(r.malformed_csv)}' (FORMAT csv, HEADER false)")
        if os.path.getsize(r.qr_csv):
            con.execute(f"COPY qr_rides FROM '{_sql_path(r.qr_csv)}' (FORMAT csv, HEADER false, NULLSTR '')")
        _insert(con, "INSERT OR IGNORE INTO virtual_cards", ("VARCHAR",), [(c,) for c in sorted(r.virtual_cards)])
        if os.path.getsize(r.updates_csv):
            con.execute(f"CREATE OR REPLACE TEMP TABLE upd AS SELECT * FROM read_csv("
                        f"'{_sql_path(r.updates_csv)}', header=false, "
                        f"columns={{'n': 'BIGINT', 'fixed': 'INTEGER', 'reasons': 'INTEGER'}})")
            con.execute("UPDATE records SET fixed = upd.fixed, reasons = upd.reasons FROM upd "
                        "WHERE records.n = upd.n")

    def finish(self, files: Sequence[StoredFile], results: Sequence[PartitionResult]) -> None:
        store, con = self.store, self.con
        seen = store._sequences({t for r in results for t in r.sequences})
        candidates = set().union(*(r.collisions for r in results)) | collisions([seen, *(r.sequences for r in results)])
        for r in results:
            merge(seen, r.sequences)
        store._terminal_duplicates(candidates)
        store._qr_replays()
        _insert(con, "INSERT OR REPLACE INTO sequences", ("VARCHAR", "BIGINT", "BLOB", "BIGINT[]"),
                [(t, *bits.state()) for t, bits in sorted(seen.items())])
        _insert(con, "INSERT INTO files", ("INTEGER", "VARCHAR", "VARCHAR", "VARCHAR", "BIGINT", "BIGINT"),
                [(f.idx, f.sha256, f.name, f.format, f.size, f.records) for f in files])
        con.execute("COMMIT")

    def abort(self) -> None:
        self.con.execute("ROLLBACK")


def _insert(con: duckdb.DuckDBPyConnection, into: str, types: Sequence[str], rows: list[tuple]) -> None:
    """`rows` inserted in one statement, a list parameter per column (executemany costs a statement a
    row: 90 ms for a day's terminal sequences)."""
    if rows:
        columns = ", ".join(f"unnest(?::{t}[])" for t in types)
        con.execute(f"{into} SELECT {columns}", [list(c) for c in zip(*rows)])


def _sql_path(path: str) -> str:
    return str(path).replace("'", "''")
