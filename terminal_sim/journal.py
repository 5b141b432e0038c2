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

Schema versions: 1 (outcomes, card flags), 2 (+ the QR table). A version-1 file is brought to 2 on
open by adding the table; nothing else changes.

`OutcomeJournal` is what the transactions need of a journal; `MemoryJournal` gives a validator run
without a journal file the same semantics in memory (grey records and card flags only; other outcomes
are not kept), so the transactions have one code path.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ykt_qr.policy import MAX_ANTI_PASSBACK_S

from .outcome import Outcome

__all__ = ["Journal", "JournalEntry", "JournalError", "CodeAlreadySeen", "OutcomeJournal", "RideJournal",
           "MemoryJournal", "SeenCode", "SCHEMA_VERSION", "dedup_key"]

SCHEMA_VERSION = 2
READABLE_VERSIONS = (0, 1, 2)
"""0: a new file; 1: before the QR table (added on open); 2: this code's."""
_SCHEMA = """
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
CREATE TABLE IF NOT EXISTS qr_seen (
    digest      TEXT    PRIMARY KEY,       -- SHA-256 of the accepted code, hex
    account     TEXT    NOT NULL,          -- issuer ‖ platform ‖ user account number, hex (Q10)
    at          INTEGER NOT NULL,          -- accepted at, Unix seconds
    keep_until  INTEGER NOT NULL,          -- a repeat until then is a replay
    record_id   INTEGER NOT NULL REFERENCES outcomes(id)
);
CREATE INDEX IF NOT EXISTS qr_seen_account ON qr_seen(account, at);
"""


class JournalError(RuntimeError):
    """A journal operation refused (conflicting duplicate, unknown or settled grey record, bad DB)."""


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


class Journal:
    """An open journal file. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                raise JournalError(f"{self.path}: journal_mode is {mode}, WAL required")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{self.path}: not a usable journal: {exc}") from None

    def _migrate(self) -> None:
        with self._transaction() as db:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version not in READABLE_VERSIONS:
                raise JournalError(f"{self.path}: journal schema {version}, this code reads "
                                   f"{', '.join(map(str, READABLE_VERSIONS[1:]))}")
            for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

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
                    if self.db.in_transaction:
                        self.db.execute("ROLLBACK")
                    raise
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")

    def _transaction(self) -> "Journal._Txn":
        return Journal._Txn(self._db)

    def close(self) -> None:
        self._db.close()

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
        with self._transaction() as db:
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
        with self._transaction() as db:
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
        ident, record, context, resolved_by = row
        return JournalEntry(ident, Outcome.from_json(record, f"{self.path.name} record {ident}"),
                            json.loads(context) if context is not None else None, resolved_by)

    def get(self, ident: int) -> JournalEntry:
        row = self._db.execute(f"SELECT {self._COLUMNS} FROM outcomes WHERE id = ?", (ident,)).fetchone()
        if row is None:
            raise JournalError(f"record {ident}: no such record")
        return self._entry(row)

    def pending_for(self, card_no: str) -> list[JournalEntry]:
        """This card's unresolved torn records, oldest first."""
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM outcomes WHERE card_no = ? AND status = 'torn'"
            " AND resolved_by IS NULL ORDER BY id", (card_no,))
        return [self._entry(row) for row in rows]

    def pending(self) -> list[JournalEntry]:
        """Every unresolved torn record, oldest first."""
        rows = self._db.execute(
            f"SELECT {self._COLUMNS} FROM outcomes WHERE status = 'torn' AND resolved_by IS NULL ORDER BY id")
        return [self._entry(row) for row in rows]

    def since(self, ident: int) -> list[JournalEntry]:
        """Records with an id greater than ``ident``, in order (0: all)."""
        rows = self._db.execute(f"SELECT {self._COLUMNS} FROM outcomes WHERE id > ? ORDER BY id", (ident,))
        return [self._entry(row) for row in rows]

    def all(self) -> list[JournalEntry]:
        return self.since(0)

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(self.all())

    def __len__(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0])

    def pragmas(self) -> dict[str, object]:
        """The durability settings in force on this connection (journal_mode, synchronous)."""
        mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
        sync = self._db.execute("PRAGMA synchronous").fetchone()[0]
        return {"journal_mode": str(mode).lower(),
                "synchronous": {0: "off", 1: "normal", 2: "full", 3: "extra"}.get(sync, sync)}

    def integrity(self) -> str:
        """SQLite's integrity check ('ok' when the file is sound)."""
        return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])

    # -- card flags ---------------------------------------------------------------------------------
    def flag_card(self, card_no: str, reason: str) -> None:
        """Refuse this card on its next tap (after a MAC2 failure); a second flag replaces the reason."""
        if not (isinstance(card_no, str) and len(card_no) == 20 and card_no.isascii() and card_no.isdigit()):
            raise ValueError(f"card_no: expected 20 decimal digits, got {card_no!r}")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: a flag must say why")
        with self._transaction() as db:
            self._flag(db, card_no, reason)

    # -- QR codes seen ------------------------------------------------------------------------------
    def append_ride(self, outcome: Outcome, seen: SeenCode) -> int:
        """Journal an accepted QR ride and remember its code, in one transaction; returns the record id.

        Expired entries are pruned in the same transaction. Refused: a code already remembered (a replay
        the verifier should have caught).
        """
        if not isinstance(seen, SeenCode):
            raise ValueError(f"seen: expected a SeenCode, got {type(seen).__name__}")
        with self._transaction() as db:
            db.execute("DELETE FROM qr_seen WHERE keep_until < ? AND at < ?",
                       (seen.at, seen.at - MAX_ANTI_PASSBACK_S))
            if db.execute("SELECT 1 FROM qr_seen WHERE digest = ?", (seen.digest.hex().upper(),)).fetchone():
                raise CodeAlreadySeen(f"QR code {seen.digest.hex().upper()[:16]}…: already rode (a replay)")
            ident = self._insert(db, outcome, None)
            db.execute("INSERT INTO qr_seen (digest, account, at, keep_until, record_id) VALUES (?, ?, ?, ?, ?)",
                       (seen.digest.hex().upper(), seen.account, seen.at, seen.keep_until, ident))
            return ident

    def code_seen(self, digest: bytes, now: int) -> bool:
        """This exact code was accepted and is still kept at `now` (the replay check)."""
        row = self._db.execute("SELECT keep_until FROM qr_seen WHERE digest = ?", (digest.hex().upper(),)).fetchone()
        return row is not None and now <= row[0]

    def last_accepted(self, account: str, now: int) -> int | None:
        """When this account's latest code was accepted (the anti-pass-back check), or None."""
        row = self._db.execute("SELECT MAX(at) FROM qr_seen WHERE account = ?", (account,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    @staticmethod
    def _flag(db: sqlite3.Connection, card_no: str, reason: str) -> None:
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError("reason: a flag must say why")
        db.execute("INSERT INTO card_flags (card_no, reason) VALUES (?, ?)"
                   " ON CONFLICT(card_no) DO UPDATE SET reason = excluded.reason", (card_no, reason))

    def take_flag(self, card_no: str) -> str | None:
        """The reason this card is flagged, removing the flag; None when it is not flagged."""
        with self._transaction() as db:
            rows = db.execute("DELETE FROM card_flags WHERE card_no = ? RETURNING reason", (card_no,)).fetchall()
            return str(rows[0][0]) if rows else None


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


class RideJournal(OutcomeJournal, Protocol):
    """What a QR ride needs of a journal besides outcomes: the codes seen (Q10), written with the ride."""

    def append_ride(self, outcome: Outcome, seen: SeenCode) -> int: ...

    def code_seen(self, digest: bytes, now: int) -> bool: ...

    def last_accepted(self, account: str, now: int) -> int | None: ...


class MemoryJournal:
    """The journal of a validator run without a journal file: pending grey records and card flags.

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
        entry = self._pending.get(torn_id)
        if entry is None:
            raise JournalError(f"record {torn_id}: not a pending torn record")
        if entry.outcome.card_no != outcome.card_no:
            raise JournalError(f"record {torn_id}: belongs to card {entry.outcome.card_no}, the outcome to "
                               f"card {outcome.card_no}")
        del self._pending[torn_id]
        if flag is not None:
            self.flag_card(outcome.card_no, flag)
        return self.append(outcome, context)

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
