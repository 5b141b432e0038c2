"""The validator's journal: every outcome, in order, in SQLite, surviving a kill at any moment.

Durability: WAL mode with ``synchronous=FULL``, and every change is one ``BEGIN IMMEDIATE … COMMIT``
transaction, so after a kill (or power loss) the journal holds each record completely or not at all.

Grey records: a ``torn`` outcome (the card left during DEBIT) is stored with its recovery context (a
JSON object: card serial, counter, amount, PSAM sequence, MAC1, date-time, type, the EF1A/EF1E data
that was sent — whatever a re-run or a recovery needs; the journal does not interpret it). It stays
pending until :meth:`Journal.resolve` appends the outcome that settles it (``recovered``, or the
re-run's outcome) and marks it resolved, both in one transaction: never a lost record, never two.

Idempotency: the UNIQUE column ``dedup_key`` is ``terminal_id:terminal_seq:card_no:status`` for an
outcome with a terminal sequence (the PSAM numbers every purchase it initialises, so this names one
transaction attempt and its result). An outcome without one (declined before the PSAM was asked, a
load) is keyed by the SHA-256 of its JSON: only a byte-identical record is the same record. Appending
the same outcome again returns the id it already has; a different outcome under the same key is a
conflict and is refused.

Card flags: after a MAC2 failure a terminal refuses the card on its next tap (tunion.md 5.5, SH's
``temp_uid``): :meth:`flag_card` remembers the card, :meth:`take_flag` consumes the flag.

QR codes seen (mobile.md Q10, schema 2): every accepted QR code's SHA-256 with its account, when it was
accepted and until when it is kept (the code's validity + 20 s), linked to its ride record.
:meth:`Journal.append_ride` writes the ride and this entry in one transaction, so a kill between the
verification and the journal can never let a code ride twice, nor forget one that rode; the replay and
anti-pass-back checks read it back (:meth:`code_seen`, :meth:`last_accepted`). Entries are pruned once
both their keep time and a day (the longest anti-pass-back interval a profile may set) have passed.

Soundness (a journal that is not sound is never used to charge): opening checks the file before any
card command — SQLite's ``quick_check``, the ``application_id`` (``YKTJ``; 0 on journals written before
it was stamped), the tables of its schema version with their exact columns, and the version itself — and
refuses anything else in one line naming the file. Readers (export, check) open ``readonly=True`` and
never write: no tables created, no ``user_version``, no switch to WAL. After opening, any failure of
SQLite (another writer's lock, a full or read-only disk, an I/O error, a corrupt page) is
`JournalStorageError`: the operation did not happen, and the transaction code decides what that means for
the money (terminal_sim.transaction). `check_journal` is the full check (``integrity_check``, every record
parsed, every remembered code linked to its ride); terminal_sim.salvage copies the readable records of a
damaged journal into a new one.

Schema versions (`READABLE_VERSIONS`): 1 (outcomes, card flags), 2 (+ the QR table ``qr_seen``). A
writer brings a version-1 file to 2 on open by adding the table (and stamps its application id), in one
transaction; nothing else changes. A reader takes a version-1 file as it is, without a byte written: it
has no code remembered.

`OutcomeJournal` is what the transactions need of a journal (`RideJournal`: and a QR ride);
`MemoryJournal` gives a validator run without a journal file the same semantics in memory (grey records,
card flags and the QR codes seen only; other outcomes are not kept), so the transactions have one code
path.
"""
from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ykt_qr.policy import MAX_ANTI_PASSBACK_S

from .outcome import Outcome

__all__ = ["Journal", "JournalEntry", "JournalError", "JournalStorageError", "JournalReport", "CodeAlreadySeen",
           "OutcomeJournal", "RideJournal", "MemoryJournal", "SeenCode", "SCHEMA_VERSION", "READABLE_VERSIONS",
           "APPLICATION_ID", "dedup_key", "check_journal", "SQLITE_MAGIC"]

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""The schema versions this code opens: 1, before the QR table (a writer adds it); 2, this code's."""
APPLICATION_ID = 0x594B544A
"""``PRAGMA application_id`` of a ykt journal (``YKTJ``). Journals written before it was stamped carry 0 and
are recognised by their schema; a writer stamps them when it opens them."""
SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS outcomes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key     TEXT    NOT NULL UNIQUE,
    status        TEXT    NOT NULL,
    card_no       TEXT,
    terminal_id   TEXT    NOT NULL,
    terminal_seq  INTEGER,
    record        TEXT    NOT NULL,          -- Outcome.to_json()
    context       TEXT,                      -- recovery context (JSON object), torn records
    resolved_by   INTEGER REFERENCES outcomes(id),
    CHECK (resolved_by IS NULL OR status = 'torn')
);
CREATE INDEX IF NOT EXISTS outcomes_pending ON outcomes(card_no) WHERE status = 'torn' AND resolved_by IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS outcomes_resolved_once ON outcomes(resolved_by) WHERE resolved_by IS NOT NULL;
CREATE TABLE IF NOT EXISTS card_flags (
    card_no  TEXT PRIMARY KEY,
    reason   TEXT NOT NULL
);
"""
_SCHEMA_QR = """
CREATE TABLE IF NOT EXISTS qr_seen (
    digest      TEXT    PRIMARY KEY,       -- SHA-256 of the accepted code, hex
    account     TEXT    NOT NULL,          -- issuer ‖ platform ‖ user account number, hex (Q10)
    at          INTEGER NOT NULL,          -- accepted at, Unix seconds
    keep_until  INTEGER NOT NULL,          -- a repeat until then is a replay
    record_id   INTEGER NOT NULL REFERENCES outcomes(id)
);
CREATE INDEX IF NOT EXISTS qr_seen_account ON qr_seen(account, at);
"""
"""Version 2's addition: the QR codes seen (Q10)."""
_MIGRATIONS: Mapping[int, str] = {1: _SCHEMA_QR}
"""What brings a journal of version v to v + 1 (a writer runs them in its opening transaction)."""
_V1_TABLES: Mapping[str, tuple[str, ...]] = {
    "outcomes": ("id", "dedup_key", "status", "card_no", "terminal_id", "terminal_seq", "record", "context",
                 "resolved_by"),
    "card_flags": ("card_no", "reason"),
}
TABLES_BY_VERSION: Mapping[int, Mapping[str, tuple[str, ...]]] = {
    1: _V1_TABLES,
    2: {**_V1_TABLES, "qr_seen": ("digest", "account", "at", "keep_until", "record_id")},
}
"""The tables of each readable version with their columns, in order: what makes an SQLite file a ykt journal."""
TABLES: Mapping[str, tuple[str, ...]] = TABLES_BY_VERSION[SCHEMA_VERSION]
"""This version's tables and columns (what a writer leaves behind)."""
_SALVAGE_HINT = "copy its readable records with `ykt journal salvage`"


class JournalError(RuntimeError):
    """A journal refused: not a sound ykt journal, or an operation refused (conflicting duplicate, unknown or
    settled grey record). The message is one line and names the file where there is one."""


class JournalStorageError(JournalError):
    """SQLite could not read or write an open journal (locked by another writer, disk full, read-only
    file system, I/O error, a corrupt page): the operation did not happen."""


def _one_line(exc: BaseException) -> str:
    return " ".join((str(exc) or type(exc).__name__).split())


class CodeAlreadySeen(JournalError):
    """A QR ride refused at commit: its code is already remembered (a replay)."""


@dataclass(frozen=True)
class SeenCode:
    """An accepted QR code as the replay checks remember it (Unix seconds; `account` as ykt_qr keys it)."""

    digest: bytes
    account: str
    at: int
    keep_until: int


@dataclass(frozen=True)
class JournalEntry:
    """One journaled outcome with its id, recovery context and, for a settled torn record, the id of
    the record that settled it."""

    id: int
    outcome: Outcome
    context: Mapping[str, Any] | None = None
    resolved_by: int | None = None

    @property
    def pending(self) -> bool:
        """A grey record still waiting for its recovery or re-run."""
        return self.outcome.status == "torn" and self.resolved_by is None


def dedup_key(outcome: Outcome) -> str:
    """The idempotency key of an outcome (see the module docstring)."""
    if outcome.terminal_seq is not None:
        return f"{outcome.terminal_id}:{outcome.terminal_seq}:{outcome.card_no or ''}:{outcome.status}"
    return "sha256:" + hashlib.sha256(outcome.to_json().encode("utf-8")).hexdigest()


def _context_json(outcome: Outcome, context: Mapping[str, Any] | None) -> str | None:
    if outcome.status == "torn" and context is None:
        raise ValueError("context: a torn outcome needs its recovery context")
    if context is None:
        return None
    if not isinstance(context, Mapping):
        raise ValueError(f"context: expected a mapping, got {type(context).__name__}")
    try:
        return json.dumps(dict(context), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"context: not JSON-serialisable: {exc}") from None


# ---------------------------------------------------------------------------------------------------
# Opening: what the file is, before anything is read from or written to it

def _preflight(path: Path, readonly: bool) -> bool:
    """File-level checks before SQLite sees the file; True when a writer will create a new journal."""
    if path.is_dir():
        raise JournalError(f"{path}: is a directory, not a journal")
    if not path.exists():
        if readonly:
            raise JournalError(f"{path}: no such journal")
        if not path.parent.is_dir():
            raise JournalError(f"{path}: folder {path.parent} does not exist")
        return True
    try:
        with open(path, "rb") as src:
            head = src.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise JournalError(f"{path}: cannot read: {exc.strerror or _one_line(exc)}") from None
    if not head:
        if readonly:
            raise JournalError(f"{path}: an empty file, not a ykt journal")
        return True
    if head != SQLITE_MAGIC:
        raise JournalError(f"{path}: not a ykt journal (not an SQLite database)")
    return False


def _writable(path: Path) -> None:
    """A writer needs the file and its folder (for the -wal and -shm) writable: refused now, not at the
    first grey record (SQLite itself would open a read-only file read-only without a word)."""
    for target in (path, path.parent):
        if target.exists() and not os.access(target, os.W_OK):
            try:
                read_only = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
            except OSError:
                read_only = False
            why = "it is on a read-only file system" if read_only else "permission denied"
            what = "the journal" if target == path else f"its folder {target}"
            raise JournalError(f"{path}: cannot write {what}: {why}")


def _uri(path: Path, **params: str) -> str:
    query = "&".join(f"{key}={value}" for key, value in params.items())
    return f"file:{urllib.parse.quote(str(path.absolute()))}?{query}"


def _wal_has_frames(path: Path) -> bool:
    wal = path.with_name(path.name + "-wal")
    try:
        return wal.stat().st_size > 0
    except FileNotFoundError:
        return False


def _connect_readonly(path: Path, timeout: float) -> sqlite3.Connection:
    """A read-only connection (``mode=ro``): SQLite never writes the journal through it.

    On a read-only file system SQLite cannot create the ``-shm`` index of a WAL journal: without a
    ``-wal`` (or with an empty one) the file is opened ``immutable=1`` (nothing can change it there);
    a ``-wal`` holding frames without its ``-shm`` cannot be read faithfully, and is refused rather than
    read without its last transactions.
    """
    db = sqlite3.connect(_uri(path, mode="ro"), uri=True, isolation_level=None, timeout=timeout)
    try:
        db.execute("PRAGMA schema_version").fetchone()
        return db
    except sqlite3.OperationalError as exc:
        db.close()
        if os.access(path.parent, os.W_OK):
            raise JournalError(f"{path}: cannot be opened read-only: {_one_line(exc)}") from None
    if _wal_has_frames(path):
        raise JournalError(f"{path}: its write-ahead log {path.name}-wal holds transactions that SQLite cannot "
                           f"read in a read-only folder without {path.name}-shm; copy the journal with its "
                           "-wal file to a writable folder and read it there")
    return sqlite3.connect(_uri(path, mode="ro", immutable="1"), uri=True, isolation_level=None, timeout=timeout)


def _readable() -> str:
    return ", ".join(map(str, READABLE_VERSIONS))


def _inspect(db: sqlite3.Connection, path: Path) -> int:
    """Refuse an unsound or foreign file; the schema version of a ykt journal, 0 for an SQLite file with no
    schema at all (a writer makes it a journal).

    The tables a version must have are checked with their exact columns (every journal table present, so a
    version-1 file cannot hide a foreign ``qr_seen``); a journal of a later version than this code's is
    refused by its version before its columns, which that version may have changed.
    """
    problems = [str(row[0]) for row in db.execute("PRAGMA quick_check(1)")]
    if problems != ["ok"]:
        raise JournalError(f"{path}: fails SQLite's integrity check ({_one_line(problems[0])}); not used: "
                           f"{_SALVAGE_HINT}")
    app_id = int(db.execute("PRAGMA application_id").fetchone()[0])
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    objects = [(str(kind), str(name)) for kind, name in
               db.execute("SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name")]
    if app_id not in (0, APPLICATION_ID):
        raise JournalError(f"{path}: another application's database (application_id 0x{app_id & 0xFFFFFFFF:08X}), "
                           "not a ykt journal")
    if not objects and version == 0 and app_id == 0:
        return 0
    tables = {name for kind, name in objects if kind == "table"}
    if not set(TABLES_BY_VERSION.get(version, _V1_TABLES)) <= tables:
        what = f"tables {', '.join(sorted(tables))}" if tables else "no tables"
        raise JournalError(f"{path}: not a ykt journal (an SQLite database with {what})")
    if version > SCHEMA_VERSION:
        raise JournalError(f"{path}: journal schema {version}, this code reads {_readable()}")
    for table, columns in TABLES.items():
        if table not in tables:
            continue
        found = tuple(str(row[1]) for row in db.execute(f"PRAGMA table_info({table})"))
        if found != columns:
            raise JournalError(f"{path}: not a ykt journal (table {table} has columns {', '.join(found)})")
    if version not in READABLE_VERSIONS:
        raise JournalError(f"{path}: journal schema {version}, this code reads {_readable()}")
    return version


class Journal:
    """An open journal file. Use as a context manager, or call :meth:`close`.

    Opening checks the file before anything else happens (so a terminal opens its journal before any
    card command): a directory, an empty file (for reading), a file that is not SQLite, a database that
    fails SQLite's ``quick_check``, another application's database (``application_id``), or one without
    a journal's tables, or of another schema version, is refused with `JournalError` naming the file.

    ``readonly=True`` (export, check, reports) opens with ``mode=ro``: nothing is created, stamped or
    switched to WAL, and an empty file or blank database is refused; a version-1 journal is read as it is
    (it remembers no QR code). A writer creates a missing (or empty, or blank SQLite) file as a new
    journal, brings a version-1 journal to version 2 (adding the QR table), stamps ``application_id`` on
    an older journal, and makes sure it can take a write lock: a journal it cannot write is refused at
    opening, not at the first grey record. ``timeout``: seconds to wait for another writer's lock.

    Every later failure of SQLite (locked, disk full, read-only, I/O error, corrupt page) raises
    `JournalStorageError`, naming the file; the operation did not happen.

    `schema`: the file's schema version (a writer's is always `SCHEMA_VERSION`).
    """

    def __init__(self, path: str | Path, *, readonly: bool = False, timeout: float = 10.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        new = _preflight(self.path, readonly)
        if not readonly:
            _writable(self.path)
        self._db: sqlite3.Connection | None = None
        try:
            if readonly:
                self._db = _connect_readonly(self.path, timeout)
                self._db.execute("PRAGMA query_only=ON")
            else:
                self._db = sqlite3.connect(self.path, isolation_level=None, timeout=timeout)
            found = 0 if new else _inspect(self._db, self.path)
            if readonly and found == 0:
                raise JournalError(f"{self.path}: an empty SQLite database, not a ykt journal")
            self.schema = found           # a writer brings it to SCHEMA_VERSION
            if not readonly:
                self._prepare(found)
        except sqlite3.DatabaseError as exc:
            self._abandon()
            damaged = getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB")
            raise JournalError(f"{self.path}: not a usable journal: {_one_line(exc)}"
                               + (f"; {_SALVAGE_HINT}" if damaged else "")) from None
        except BaseException:
            self._abandon()
            raise

    def _abandon(self) -> None:
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()

    def _prepare(self, found: int) -> None:
        """The writer's settings, and a write transaction that proves the journal can be written: it makes
        a blank file a journal, brings an older version (`found`, 0 for a blank file) to this code's, and
        stamps the application id; all or nothing."""
        assert self._db is not None
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"{self.path}: journal_mode is {mode}, WAL required")
        with self._transaction() as db:
            # read again under the write lock: another writer may have made or migrated it meanwhile
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version == 0:
                if found:
                    raise JournalError(f"{self.path}: journal schema 0, this code reads {_readable()}")
                self._run(db, _SCHEMA_V1)
                version = 1
            elif version not in READABLE_VERSIONS:
                raise JournalError(f"{self.path}: journal schema {version}, this code reads {_readable()}")
            while version < SCHEMA_VERSION:
                self._run(db, _MIGRATIONS[version])
                version += 1
            if int(db.execute("PRAGMA user_version").fetchone()[0]) != version:
                db.execute(f"PRAGMA user_version={version}")
            if int(db.execute("PRAGMA application_id").fetchone()[0]) != APPLICATION_ID:
                db.execute(f"PRAGMA application_id={APPLICATION_ID}")
        self.schema = version

    @staticmethod
    def _run(db: sqlite3.Connection, script: str) -> None:
        for statement in filter(None, (part.strip() for part in script.split(";"))):
            db.execute(statement)

    # -- transactions -------------------------------------------------------------------------------
    class _Txn:
        def __init__(self, db: sqlite3.Connection) -> None:
            self.db = db

        def __enter__(self) -> sqlite3.Connection:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db

        def __exit__(self, exc_type, exc, tb) -> None:
            if exc_type is None:
                try:
                    self.db.execute("COMMIT")
                    return
                except sqlite3.Error:
                    self._rollback()
                    raise
            self._rollback()

        def _rollback(self) -> None:
            if self.db.in_transaction:
                with contextlib.suppress(sqlite3.Error):    # the first failure is the one to report
                    self.db.execute("ROLLBACK")

    def _transaction(self) -> "Journal._Txn":
        assert self._db is not None
        return Journal._Txn(self._db)

    @contextlib.contextmanager
    def _storage(self, doing: str) -> Iterator[sqlite3.Connection]:
        """Run one operation; a failure of SQLite becomes JournalStorageError naming the file."""
        if self._db is None:
            raise JournalError(f"{self.path}: the journal is closed")
        try:
            yield self._db
        except sqlite3.DatabaseError as exc:
            raise JournalStorageError(f"{self.path}: {doing}: {_one_line(exc)}") from None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> "Journal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------------------------
    def _insert(self, db: sqlite3.Connection, outcome: Outcome, context: Mapping[str, Any] | None) -> int:
        if not isinstance(outcome, Outcome):
            raise ValueError(f"outcome: expected an Outcome, got {type(outcome).__name__}")
        ctx = _context_json(outcome, context)
        key = dedup_key(outcome)
        record = outcome.to_json()
        row = db.execute("SELECT id, record FROM outcomes WHERE dedup_key = ?", (key,)).fetchone()
        if row is not None:
            if row[1] != record:
                raise JournalError(f"outcome {key} is already journaled as record {row[0]} with "
                                   "different contents")
            return row[0]
        cur = db.execute(
            "INSERT INTO outcomes (dedup_key, status, card_no, terminal_id, terminal_seq, record, context)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (key, outcome.status, outcome.card_no, outcome.terminal_id, outcome.terminal_seq, record, ctx))
        return int(cur.lastrowid)

    def append(self, outcome: Outcome, context: Mapping[str, Any] | None = None) -> int:
        """Journal one outcome (a torn one with its recovery context); returns its id.

        Appending an outcome that is already journaled returns the existing id and writes nothing.
        """
        with self._storage("append"), self._transaction() as db:
            return self._insert(db, outcome, context)

    def resolve(self, torn_id: int, outcome: Outcome, context: Mapping[str, Any] | None = None, *,
                flag: str | None = None) -> int:
        """Settle grey record ``torn_id`` with ``outcome`` (recovered, or the re-run's result).

        One transaction appends ``outcome``, marks the torn record resolved by it and, with ``flag``,
        flags the card to be refused on its next tap (a MAC2 failure): a kill can never keep one without
        the other. Repeating the same
        call returns the same id. Refused: an unknown id, a record that is not torn, one already settled
        by another record, or an outcome for another card.
        """
        if not isinstance(outcome, Outcome):
            raise ValueError(f"outcome: expected an Outcome, got {type(outcome).__name__}")
        with self._storage(f"resolve record {torn_id}"), self._transaction() as db:
            row = db.execute("SELECT status, card_no, resolved_by FROM outcomes WHERE id = ?",
                             (torn_id,)).fetchone()
            if row is None:
                raise JournalError(f"record {torn_id}: no such record")
            status, card_no, resolved_by = row
            if status != "torn":
                raise JournalError(f"record {torn_id}: is {status}, not a torn record")
            if outcome.card_no != card_no:
                raise JournalError(f"record {torn_id}: belongs to card {card_no}, the outcome to "
                                   f"card {outcome.card_no}")
            new_id = self._insert(db, outcome, context)
            if new_id == torn_id:
                raise JournalError(f"record {torn_id}: cannot be resolved by itself")
            if resolved_by is not None:
                if resolved_by == new_id:
                    return new_id
                raise JournalError(f"record {torn_id}: already resolved by record {resolved_by}")
            try:
                db.execute("UPDATE outcomes SET resolved_by = ? WHERE id = ?", (new_id, torn_id))
            except sqlite3.IntegrityError:
                other = db.execute("SELECT id FROM outcomes WHERE resolved_by = ?", (new_id,)).fetchone()
                raise JournalError(f"record {new_id}: already settles record {other[0]}") from None
            if flag is not None:
                self._flag(db, card_no, flag)
            return new_id

    # -- reading ------------------------------------------------------------------------------------
    _COLUMNS = "id, record, context, resolved_by"

    def _entry(self, row: tuple) -> JournalEntry:
        """A row as an entry; a record or context that does not parse refuses the journal (one line)."""
        ident, record, context, resolved_by = row
        try:
            if not isinstance(record, str) or not (context is None or isinstance(context, str)):
                raise ValueError("not text")
            outcome = Outcome.from_json(record, f"{self.path.name} record {ident}")
            ctx = json.loads(context) if context is not None else None
            if ctx is not None and not isinstance(ctx, dict):
                raise ValueError("context is not a JSON object")
        except (ValueError, TypeError) as exc:
            raise JournalError(f"{self.path}: record {ident} is unreadable ({_one_line(exc)}); {_SALVAGE_HINT}") \
                from None
        if resolved_by is not None and not isinstance(resolved_by, int):
            raise JournalError(f"{self.path}: record {ident} is unreadable (resolved_by {resolved_by!r}); "
                               f"{_SALVAGE_HINT}")
        return JournalEntry(ident, outcome, ctx, resolved_by)

    def _select(self, doing: str, where: str, args: tuple = ()) -> list[JournalEntry]:
        with self._storage(doing) as db:
            rows = db.execute(f"SELECT {self._COLUMNS} FROM outcomes {where}", args).fetchall()
        return [self._entry(row) for row in rows]

    def get(self, ident: int) -> JournalEntry:
        found = self._select(f"read record {ident}", "WHERE id = ?", (ident,))
        if not found:
            raise JournalError(f"record {ident}: no such record")
        return found[0]

    def pending_for(self, card_no: str) -> list[JournalEntry]:
        """This card's unresolved torn records, oldest first."""
        return self._select("read grey records", "WHERE card_no = ? AND status = 'torn' AND resolved_by IS NULL"
                            " ORDER BY id", (card_no,))

    def pending(self) -> list[JournalEntry]:
        """Every unresolved torn record, oldest first."""
        return self._select("read grey records", "WHERE status = 'torn' AND resolved_by IS NULL ORDER BY id")

    def since(self, ident: int) -> list[JournalEntry]:
        """Records with an id greater than ``ident``, in order (0: all)."""
        return self._select("read records", "WHERE id > ? ORDER BY id", (ident,))

    def all(self) -> list[JournalEntry]:
        return self.since(0)

    def last_terminal_seq(self, terminal_id: str) -> int | None:
        """The PSAM terminal sequence of this terminal's newest record that carries one (None: none).

        Why: a validator started in a new process knows its PSAM's pending purchase only from here
        (terminal_sim.flows.purchase_check, D12).
        """
        with self._storage("read the last terminal sequence") as db:
            row = db.execute("SELECT terminal_seq FROM outcomes WHERE terminal_id = ? AND terminal_seq IS NOT NULL "
                             "ORDER BY id DESC LIMIT 1", (terminal_id,)).fetchone()
        return None if row is None or not isinstance(row[0], int) else row[0]

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.all())

    def __len__(self) -> int:
        with self._storage("count records") as db:
            return int(db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0])

    def flags(self) -> dict[str, str]:
        """The cards flagged to be refused on their next tap, with the reason."""
        with self._storage("read card flags") as db:
            return {str(card): str(reason) for card, reason in
                    db.execute("SELECT card_no, reason FROM card_flags ORDER BY card_no")}

    def pragmas(self) -> dict[str, object]:
        """The durability settings in force on this connection (journal_mode, synchronous)."""
        with self._storage("read settings") as db:
            mode = db.execute("PRAGMA journal_mode").fetchone()[0]
            sync = db.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": str(mode).lower(),
                "synchronous": {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(sync, sync)}

    def integrity(self) -> str:
        """SQLite's full integrity check ('ok' when the file is sound; else the first problem)."""
        with self._storage("integrity check") as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- card flags ---------------------------------------------------------------------------------
    def flag_card(self, card_no: str, reason: str) -> None:
        """Refuse this card on its next tap (after a MAC2 failure); a second flag replaces the reason."""
        if not (isinstance(card_no, str) and len(card_no) == 20 and card_no.isascii() and card_no.isdigit()):
            raise ValueError(f"card_no: expected 20 decimal digits, got {card_no!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: a flag must say why")
        with self._storage("flag card"), self._transaction() as db:
            self._flag(db, card_no, reason)

    # -- QR codes seen ------------------------------------------------------------------------------
    def append_ride(self, outcome: Outcome, seen: SeenCode) -> int:
        """Journal an accepted QR ride and remember its code, in one transaction; returns the record id.

        Expired entries are pruned in the same transaction. Refused: a code already remembered
        (`CodeAlreadySeen`, a replay the verifier should have caught); a failure of SQLite is
        `JournalStorageError` and leaves neither the ride nor its code.
        """
        if not isinstance(seen, SeenCode):
            raise ValueError(f"seen: expected a SeenCode, got {type(seen).__name__}")
        digest = seen.digest.hex().upper()
        with self._storage("append QR ride"), self._transaction() as db:
            db.execute("DELETE FROM qr_seen WHERE keep_until < ? AND at < ?",
                       (seen.at, seen.at - MAX_ANTI_PASSBACK_S))
            if db.execute("SELECT 1 FROM qr_seen WHERE digest = ?", (digest,)).fetchone():
                raise CodeAlreadySeen(f"QR code {digest[:16]}…: already rode (a replay)")
            ident = self._insert(db, outcome, None)
            db.execute("INSERT INTO qr_seen (digest, account, at, keep_until, record_id) VALUES (?, ?, ?, ?, ?)",
                       (digest, seen.account, seen.at, seen.keep_until, ident))
            return ident

    def code_seen(self, digest: bytes, now: int) -> bool:
        """This exact code was accepted and is still kept at `now` (the replay check)."""
        if self.schema < 2:            # a version-1 journal read as it is: it never took a code
            return False
        with self._storage("read QR codes seen") as db:
            row = db.execute("SELECT keep_until FROM qr_seen WHERE digest = ?", (digest.hex().upper(),)).fetchone()
        return row is not None and now <= row[0]

    def last_accepted(self, account: str, now: int) -> int | None:
        """When this account's latest code was accepted (the anti-pass-back check), or None."""
        if self.schema < 2:
            return None
        with self._storage("read QR codes seen") as db:
            row = db.execute("SELECT MAX(at) FROM qr_seen WHERE account = ?", (account,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def codes_seen(self) -> list[tuple[SeenCode, int]]:
        """Every remembered code with the id of its ride record, oldest first (check, salvage)."""
        if self.schema < 2:
            return []
        with self._storage("read QR codes seen") as db:
            rows = db.execute("SELECT digest, account, at, keep_until, record_id FROM qr_seen ORDER BY at, digest")\
                .fetchall()
        out = []
        for digest, account, at, keep_until, record_id in rows:
            try:
                out.append((SeenCode(bytes.fromhex(digest), str(account), int(at), int(keep_until)), int(record_id)))
            except (TypeError, ValueError):
                raise JournalError(f"{self.path}: remembered QR code {str(digest)[:16]}… is unreadable; "
                                   f"{_SALVAGE_HINT}") from None
        return out

    @staticmethod
    def _flag(db: sqlite3.Connection, card_no: str, reason: str) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: a flag must say why")
        db.execute("INSERT INTO card_flags (card_no, reason) VALUES (?, ?)"
                   " ON CONFLICT(card_no) DO UPDATE SET reason = excluded.reason", (card_no, reason))

    def take_flag(self, card_no: str) -> str | None:
        """The reason this card is flagged, removing the flag; None when it is not flagged."""
        with self._storage("take card flag"), self._transaction() as db:
            rows = db.execute("DELETE FROM card_flags WHERE card_no = ? RETURNING reason", (card_no,)).fetchall()
            return str(rows[0][0]) if rows else None

    # -- salvage (terminal_sim.salvage) -------------------------------------------------------------
    def _restore(self, rows: list[tuple[int, Outcome, Mapping[str, Any] | None]], links: Mapping[int, int],
                 flags: Mapping[str, str], highest: int = 0, codes: Sequence[tuple[SeenCode, int]] = ()) -> None:
        """Write salvaged records under their own ids, then the links of settled grey records, then the
        flags and the remembered QR codes (each with its ride's id), in one transaction, into a journal that
        holds nothing yet; new records get ids above `highest` (the highest id the damaged journal had
        given)."""
        with self._storage("restore records"), self._transaction() as db:
            if db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]:
                raise JournalError(f"{self.path}: restore needs an empty journal")
            for ident, outcome, context in rows:
                db.execute(
                    "INSERT INTO outcomes (id, dedup_key, status, card_no, terminal_id, terminal_seq, record,"
                    " context) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (ident, dedup_key(outcome), outcome.status, outcome.card_no, outcome.terminal_id,
                     outcome.terminal_seq, outcome.to_json(), _context_json(outcome, context)))
            for torn_id, by in links.items():
                db.execute("UPDATE outcomes SET resolved_by = ? WHERE id = ?", (by, torn_id))
            for card_no, reason in flags.items():
                self._flag(db, card_no, reason)
            for seen, ride_id in codes:
                db.execute("INSERT INTO qr_seen (digest, account, at, keep_until, record_id) VALUES (?, ?, ?, ?, ?)",
                           (seen.digest.hex().upper(), seen.account, seen.at, seen.keep_until, ride_id))
            db.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = 'outcomes'", (highest,))


@dataclass(frozen=True)
class JournalReport:
    """What `check_journal` found in a sound journal."""

    path: Path
    records: int
    by_status: Mapping[str, int]
    pending: tuple[int, ...]
    flags: int
    schema: int
    stamped: bool
    journal_mode: str
    codes: int = 0
    """QR codes remembered for the replay checks (schema 2)."""

    def to_dict(self) -> dict[str, Any]:
        return {"journal": str(self.path), "sound": True, "records": self.records, "by_status": dict(self.by_status),
                "pending": list(self.pending), "flags": self.flags, "qr_codes_seen": self.codes,
                "schema": self.schema,
                "application_id": f"0x{APPLICATION_ID:08X}" if self.stamped else "0x00000000",
                "journal_mode": self.journal_mode}


def check_journal(path: str | Path) -> JournalReport:
    """The full check of a journal, read-only: the opening checks, SQLite's full ``integrity_check``,
    every record and context parsed, every settled grey record's link pointing at a record, every
    remembered QR code linked to an accepted QR ride.

    Returns what it found; the first fault raises `JournalError` naming the file.
    """
    with Journal(path, readonly=True) as journal:
        problem = journal.integrity()
        if problem != "ok":
            raise JournalError(f"{journal.path}: fails SQLite's integrity check ({_one_line(problem)}); "
                               f"{_SALVAGE_HINT}")
        entries = journal.all()
        ids = {entry.id: entry for entry in entries}
        for entry in entries:
            if entry.resolved_by is not None and entry.resolved_by not in ids:
                raise JournalError(f"{journal.path}: record {entry.id} is settled by record {entry.resolved_by}, "
                                   f"which is missing; {_SALVAGE_HINT}")
        codes = journal.codes_seen()
        for seen, ride_id in codes:
            ride = ids.get(ride_id)
            if ride is None or ride.outcome.medium != "qr" or ride.outcome.status != "approved":
                what = "missing" if ride is None else (
                    f"a {ride.outcome.status} {'QR ride' if ride.outcome.medium == 'qr' else 'card record'}, not an "
                    "accepted QR ride")
                raise JournalError(f"{journal.path}: remembered QR code {seen.digest.hex().upper()[:16]}… belongs to "
                                   f"record {ride_id}, which is {what}; {_SALVAGE_HINT}")
        by_status: dict[str, int] = {}
        for entry in entries:
            by_status[entry.outcome.status] = by_status.get(entry.outcome.status, 0) + 1
        with journal._storage("read settings") as db:
            stamped = int(db.execute("PRAGMA application_id").fetchone()[0]) == APPLICATION_ID
            mode = str(db.execute("PRAGMA journal_mode").fetchone()[0]).lower()
        return JournalReport(journal.path, len(entries), by_status, tuple(e.id for e in entries if e.pending),
                             len(journal.flags()), journal.schema, stamped, mode, len(codes))


# ---------------------------------------------------------------------------------------------------
# What the transactions need of a journal, and the journal of a run without a file

class OutcomeJournal(Protocol):
    """What a transaction needs of a journal: `Journal`, or `MemoryJournal`."""

    def append(self, outcome: Outcome, context: Mapping[str, Any] | None = None) -> int: ...

    def resolve(self, torn_id: int, outcome: Outcome, context: Mapping[str, Any] | None = None, *,
                flag: str | None = None) -> int: ...

    def pending_for(self, card_no: str) -> list[JournalEntry]: ...

    def flag_card(self, card_no: str, reason: str) -> None: ...

    def take_flag(self, card_no: str) -> str | None: ...

    def last_terminal_seq(self, terminal_id: str) -> int | None: ...


class RideJournal(OutcomeJournal, Protocol):
    """What a QR ride needs of a journal besides outcomes: the codes seen (Q10), written with the ride."""

    def append_ride(self, outcome: Outcome, seen: SeenCode) -> int: ...

    def code_seen(self, digest: bytes, now: int) -> bool: ...

    def last_accepted(self, account: str, now: int) -> int | None: ...


class MemoryJournal:
    """The journal of a validator run without a journal file: pending grey records, card flags and the QR
    codes seen.

    Settled records and plain outcomes are not kept (a long benchmark run stays small); ids still grow.
    """

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._pending: dict[int, JournalEntry] = {}
        self._flags: dict[str, str] = {}
        self._seen: dict[bytes, SeenCode] = {}

    def append(self, outcome: Outcome, context: Mapping[str, Any] | None = None) -> int:
        ident = next(self._ids)
        if outcome.status == "torn":
            if context is None:
                raise ValueError("context: a torn outcome needs its recovery context")
            self._pending[ident] = JournalEntry(ident, outcome, dict(context))
        return ident

    def resolve(self, torn_id: int, outcome: Outcome, context: Mapping[str, Any] | None = None, *,
                flag: str | None = None) -> int:
        self._settle(torn_id, outcome, flag)
        return self.append(outcome, context)

    def _settle(self, torn_id: int, outcome: Outcome, flag: str | None) -> None:
        """Close the pending torn record `torn_id` with `outcome` of the same card (and flag the card)."""
        entry = self._pending.get(torn_id)
        if entry is None:
            raise JournalError(f"record {torn_id}: not a pending torn record")
        if entry.outcome.card_no != outcome.card_no:
            raise JournalError(f"record {torn_id}: belongs to card {entry.outcome.card_no}, the outcome to "
                               f"card {outcome.card_no}")
        del self._pending[torn_id]
        if flag is not None:
            self.flag_card(outcome.card_no, flag)

    def pending_for(self, card_no: str) -> list[JournalEntry]:
        return [e for e in self._pending.values() if e.outcome.card_no == card_no]

    def pending(self) -> list[JournalEntry]:
        return list(self._pending.values())

    def flag_card(self, card_no: str, reason: str) -> None:
        self._flags[card_no] = reason

    def take_flag(self, card_no: str) -> str | None:
        return self._flags.pop(card_no, None)

    def append_ride(self, outcome: Outcome, seen: SeenCode) -> int:
        self._seen = {d: e for d, e in self._seen.items()
                      if e.keep_until >= seen.at or e.at >= seen.at - MAX_ANTI_PASSBACK_S}
        if seen.digest in self._seen:
            raise CodeAlreadySeen(f"QR code {seen.digest.hex().upper()[:16]}…: already rode (a replay)")
        self._seen[seen.digest] = seen
        return self.append(outcome)

    def code_seen(self, digest: bytes, now: int) -> bool:
        entry = self._seen.get(digest)
        return entry is not None and now <= entry.keep_until

    def last_accepted(self, account: str, now: int) -> int | None:
        return max((e.at for e in self._seen.values() if e.account == account), default=None)

    def last_terminal_seq(self, terminal_id: str) -> int | None:
        """None: a run without a journal file keeps no history, and its validator tracks its PSAM itself."""
        return None
