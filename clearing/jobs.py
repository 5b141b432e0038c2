"""What one partition of a verify run is given and gives back, and the row layouts both sides share.

`partition.run_partition` (a worker) and `store.Store` (the parent's bulk load, and the earlier records a
worker reads) agree on these; keeping them here lets the store know the rows without knowing the worker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .records import CITY, FIELDS_OF_TUPLE
from .sequences import SeqBits

__all__ = ["FileJob", "PartitionJob", "PartitionResult", "LINE_BITS", "SPILL_COLUMNS", "RECORD_COLUMNS",
           "RECORD_TYPES", "RECORD_SELECT", "N", "ACQUIRER", "FIXED", "PH", "OLD"]

LINE_BITS = 32                 # n = file index << 32 | line number: arrival order, unique per record

# A spill tuple: the record's fields (records.FIELDS_OF_TUPLE), then the arrival number, the acquiring
# party, the reason bits known before judging, the partition hash, and the stored reasons of an earlier
# record (None for a new one).
SPILL_COLUMNS = FIELDS_OF_TUPLE + ("n", "acquirer", "fixed", "ph", "reasons")
N, ACQUIRER, FIXED, PH, OLD = range(len(FIELDS_OF_TUPLE), len(SPILL_COLUMNS))
# A record in the store: the record's fields up to `mode` (city, operator and line went into the acquirer),
# then n, acquirer, fixed and the reasons. The CSV rows for the bulk load follow this order.
RECORD_COLUMNS = FIELDS_OF_TUPLE[:CITY] + ("n", "acquirer", "fixed", "reasons")
# Their SQL types: the store's table, and the Parquet files a worker writes for the bulk load.
RECORD_TYPES = {
    "card": "VARCHAR", "kind": "TINYINT", "counter": "INTEGER", "status": "TINYINT", "type": "TINYINT",
    "issuer": "VARCHAR", "amount": "BIGINT", "balance_before": "BIGINT", "balance_after": "BIGINT",
    "overdraft": "BIGINT", "terminal": "VARCHAR", "seq": "BIGINT", "datetime": "VARCHAR", "key_version": "SMALLINT",
    "algorithm": "VARCHAR", "tac": "VARCHAR", "mode": "VARCHAR", "n": "BIGINT", "acquirer": "VARCHAR",
    "fixed": "INTEGER", "reasons": "INTEGER",
}
assert tuple(RECORD_TYPES) == RECORD_COLUMNS
# A bucket's columns (numpy, named as RECORD_COLUMNS) typed for the store, as a SELECT list.
RECORD_SELECT = ", ".join(f"{c}::{t} AS {c}" for c, t in RECORD_TYPES.items())


@dataclass(frozen=True)
class FileJob:
    idx: int                 # the store's file index (arrival order across runs)
    path: str
    fmt: str                 # 'jsonl' or 'csv'
    # The file's chunks for pass 1: each one's nominal first byte and the line feeds before it (counted
    # when the file was hashed). A line belongs to the chunk its first byte is in.
    cuts: tuple[tuple[int, int], ...] = ((0, 0),)


@dataclass(frozen=True)
class PartitionJob:
    worker: int
    workers: int
    buckets: int
    files: tuple[FileJob, ...]
    keysets: tuple[str, ...]         # key set files (loaded in the worker: keys never cross a pipe)
    terminals: str | None            # terminal registry file, or None: terminals are not checked
    spill: str                       # this worker's scratch folder
    history: str | None              # the store to read earlier records from (None: no earlier records)
    qr_roots: str | None = None      # the QR root store (None: a QR ride's chain cannot be checked)


@dataclass
class PartitionResult:
    record_files: list[str]          # Parquet, one per bucket (RECORD_COLUMNS)
    updates_csv: str
    malformed_csv: str
    qr_csv: str                      # QR rides: n, digest, terminal, datetime, amount, issuer, platform, city,
    records: int = 0                 # failed check, detail (clearing.qr)
    malformed: int = 0
    qr_rides: int = 0
    virtual_cards: set[str] = field(default_factory=set)             # cards whose records say medium virtual
    no_keyset: dict[str, int] = field(default_factory=dict)
    lines: dict[int, int] = field(default_factory=dict)   # file index -> record lines of this worker's share
    sequences: dict[str, SeqBits] = field(default_factory=dict)      # terminal -> sequences of this partition
    collisions: set[tuple[str, int]] = field(default_factory=set)    # (terminal, sequence) seen twice here
