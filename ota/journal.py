"""The top-up host's journal: every order, in SQLite, surviving a kill at any moment (as the validator's).

Durability: WAL mode, ``synchronous=FULL``, and every change one ``BEGIN IMMEDIATE … COMMIT``, so a host
killed mid-request (``kill -9``, power loss) holds each order completely or not at all: the order and the
MAC2 it answered are on disk before the answer leaves.

One row per order. Its idempotency key is the card and the online counter its load was initialised at
(``card_no``, ``counter``): a partial UNIQUE index allows one live (not void) order per key, because a
card credits at most one load per counter value. ``request`` is the SHA-256 of the load_init request
that made the current MAC2: the same request again gets the stored answer.

States: ``pending`` (answered, not yet confirmed), ``confirmed`` (the card's TAC verified: money on the
card), ``void`` (proven never credited: the card initialised another load at the same counter),
``clearing`` (the card's proof for the next counter belongs to another load: the host cannot settle the
order alone; clearing matches the card's TAC records).
"""
from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["HostJournal", "HostJournalError", "Order", "STATES", "SCHEMA_VERSION"]

SCHEMA_VERSION = 1
STATES = ("pending", "confirmed", "void", "clearing")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT    NOT NULL,
    card_no      TEXT    NOT NULL,
    issuer_id    TEXT    NOT NULL,
    aid          TEXT    NOT NULL,
    terminal_id  TEXT    NOT NULL,
    counter      INTEGER NOT NULL,          -- online counter before the load (INITIALIZE FOR LOAD)
    amount       INTEGER NOT NULL,
    balance      INTEGER NOT NULL,          -- balance INITIALIZE reported
    key_index    INTEGER NOT NULL,
    key_version  INTEGER NOT NULL,
    algorithm    TEXT    NOT NULL,
    init         TEXT    NOT NULL,          -- the 16-byte INITIALIZE FOR LOAD answer, hex
    request      TEXT    NOT NULL,          -- SHA-256 of the load_init request of the current MAC2
    datetime     TEXT    NOT NULL,          -- host date-time of the current MAC2, YYYYMMDDhhmmss
    mac2         TEXT    NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 1,
    state        TEXT    NOT NULL CHECK (state IN ('pending', 'confirmed', 'void', 'clearing')),
    tac          TEXT,
    last_sw      TEXT,
    reason       TEXT,
    created      TEXT    NOT NULL,
    closed       TEXT,
    CHECK ((state = 'confirmed') = (tac IS NOT NULL))
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_live ON orders(card_no, counter) WHERE state != 'void';
CREATE INDEX IF NOT EXISTS orders_pending ON orders(card_no) WHERE state = 'pending';
"""
_COLUMNS = ("id", "account", "card_no", "issuer_id", "aid", "terminal_id", "counter", "amount", "balance",
            "key_index", "key_version", "algorithm", "init", "request", "datetime", "mac2", "attempts", "state",
            "tac", "last_sw", "reason", "created", "closed")


class HostJournalError(RuntimeError):
    """The host journal cannot be used (not SQLite, another schema, not WAL)."""


@dataclass(frozen=True)
class Order:
    """One top-up order as journaled. `order` (12 digits) is what the wallet names it by."""

    id: int
    account: str
    card_no: str
    issuer_id: str
    aid: str
    terminal_id: str
    counter: int
    amount: int
    balance: int
    key_index: int
    key_version: int
    algorithm: str
    init: str
    request: str
    datetime: str
    mac2: str
    attempts: int
    state: str
    tac: str | None
    last_sw: str | None
    reason: str | None
    created: str
    closed: str | None

    @property
    def order(self) -> str:
        return f"{self.id:012d}"

    def answer(self) -> dict[str, str]:
        """The load_init answer of §2.4 for this order's current attempt."""
        return {"order": self.order, "datetime": self.datetime, "mac2": self.mac2}

    def to_dict(self) -> dict[str, Any]:
        """For `ykt host orders`: every column but the request hash, the order number first."""
        data = asdict(self)
        data.pop("request")
        return {"order": self.order, **{k: v for k, v in data.items() if k != "id"}}


class HostJournal:
    """An open host journal; one connection shared by the server's threads under a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            mode = self._db.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != "wal":
                raise HostJournalError(f"{self.path}: journal_mode is {mode}, WAL required")
            with self.transaction() as db:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                if version not in (0, SCHEMA_VERSION):
                    raise HostJournalError(f"{self.path}: host journal schema {version}, this code reads "
                                           f"{SCHEMA_VERSION}")
                for statement in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as exc:
            raise HostJournalError(f"{self.path}: not a usable host journal: {exc}") from None

    def __repr__(self) -> str:
        return f"HostJournal({str(self.path)!r})"

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "HostJournal":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One BEGIN IMMEDIATE … COMMIT under the lock: everything inside commits together or not at all."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- reading ------------------------------------------------------------------------------------
    @staticmethod
    def _order(row: tuple | None) -> Order | None:
        return None if row is None else Order(*row)

    def live(self, db: sqlite3.Connection, card_no: str, counter: int) -> Order | None:
        """The order (not void) of this card at this online counter."""
        row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE card_no = ? AND counter = ? "
                         "AND state != 'void'", (card_no, counter)).fetchone()
        return self._order(row)

    def get(self, db: sqlite3.Connection, order: str) -> Order | None:
        if not (len(order) == 12 and order.isdigit()):
            return None
        row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE id = ?", (int(order),)).fetchone()
        return self._order(row)

    def pending(self, card_no: str, account: str) -> list[Order]:
        """This account's pending orders for this card, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE card_no = ? AND account = ? "
                                    "AND state = 'pending' ORDER BY id", (card_no, account)).fetchall()
        return [Order(*row) for row in rows]

    def all(self) -> list[Order]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders ORDER BY id").fetchall()
        return [Order(*row) for row in rows]

    # -- writing (inside `transaction`) ---------------------------------------------------------------
    def insert(self, db: sqlite3.Connection, **fields: Any) -> Order:
        names = [c for c in _COLUMNS if c in fields]
        cur = db.execute(f"INSERT INTO orders ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})",
                         [fields[n] for n in names])
        order = self._order(db.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE id = ?",
                                       (cur.lastrowid,)).fetchone())
        assert order is not None
        return order

    def update(self, db: sqlite3.Connection, order: Order, **fields: Any) -> Order:
        unknown = set(fields) - set(_COLUMNS) - {"attempts"}
        if unknown or "id" in fields:
            raise ValueError(f"order columns: cannot set {', '.join(sorted(unknown | ({'id'} & set(fields))))}")
        db.execute(f"UPDATE orders SET {', '.join(f'{n} = ?' for n in fields)} WHERE id = ?",
                   [*fields.values(), order.id])
        updated = self._order(db.execute(f"SELECT {', '.join(_COLUMNS)} FROM orders WHERE id = ?",
                                         (order.id,)).fetchone())
        assert updated is not None
        return updated

    def integrity(self) -> str:
        with self._lock:
            return str(self._db.execute("PRAGMA integrity_check").fetchone()[0])
