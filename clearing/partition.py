"""The verifier's unit of work: every record of one partition of the cards, read, checked and judged.

Cards are partitioned by a stable hash of the card number (``ph = crc32(card_no)``): worker ``ph % W``,
then bucket ``(ph // W) % B`` inside the worker. Everything a card's verdicts depend on — its TACs, its
counters, its balance chain, its duplicates — lies in one partition, so partitions need nothing from each
other (the one check across cards, terminal sequence duplicates, is a set operation the store does after).

Two passes, with memory bounded by one bucket, not by the input:

1. **read** every new file once, keep the lines of this worker's cards: decode and check each
   (`records`), route it to its bucket, spill buckets to disk (``marshal``, fast and private);
   malformed lines are written out with their reason;
2. **judge** bucket by bucket: load it with the history of its cards from the store (earlier runs), sort by
   card, kind, counter and arrival, recompute the TACs card by card (one cipher context per card,
   `tac.TacVerifier`), judge each card (`judge.judge_card`), and write the records with their reason bits
   as CSV for the store's bulk load, plus the changed verdicts of earlier records.

`run_partition` is a plain function of a `PartitionJob`: the same call runs in this process, in a worker
process, or (see docs/clearing.md) as the per-key function of a distributed engine.
"""
from __future__ import annotations

import csv
import marshal
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from keysets import KeySet

from .judge import BIT, TAC, Row, judge_card
from .records import TORN, CsvReader, JsonReader, Malformed, card_of_json_line
from .terminals import TerminalRegistry

__all__ = ["FileJob", "PartitionJob", "PartitionResult", "run_partition", "partition_hash", "RECORD_COLUMNS",
           "LINE_BITS"]

LINE_BITS = 32                 # n = file index << 32 | line number: arrival order, unique per record
UNKNOWN_TERMINAL = BIT["unknown-terminal"]
SPILL_BATCH = 4096

# Columns of a record in the store, in the order the spill tuples and the CSV rows carry them.
RECORD_COLUMNS = ("card", "kind", "counter", "n", "status", "type", "issuer", "amount", "balance_before",
                  "balance_after", "overdraft", "terminal", "seq", "datetime", "key_version", "algorithm", "tac",
                  "mode", "city", "operator", "transit_line", "acquirer", "fixed", "ph", "reasons")
_OLD = len(RECORD_COLUMNS) - 1   # in a spill tuple: the stored reasons of an earlier record, None for a new one


def partition_hash(card_no: bytes) -> int:
    """The stable hash that partitions cards (the same in every process and every run)."""
    return zlib.crc32(card_no)


@dataclass(frozen=True)
class FileJob:
    idx: int                 # the store's file index (arrival order across runs)
    path: str
    fmt: str                 # 'jsonl' or 'csv'


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


@dataclass
class PartitionResult:
    records_csv: str
    updates_csv: str
    malformed_csv: str
    records: int = 0
    malformed: int = 0
    no_keyset: dict[str, int] = field(default_factory=dict)


def _lines(path: str) -> Iterator[tuple[int, bytes]]:
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, 1):
            yield number, line


class _Spill:
    """Bucket files of marshalled tuples, written in batches."""

    def __init__(self, folder: Path, buckets: int) -> None:
        self.paths = [folder / f"bucket-{b}.bin" for b in range(buckets)]
        self.files = [open(p, "wb") for p in self.paths]
        self.buffers: list[list[tuple]] = [[] for _ in range(buckets)]

    def add(self, bucket: int, row: tuple) -> None:
        buf = self.buffers[bucket]
        buf.append(row)
        if len(buf) >= SPILL_BATCH:
            marshal.dump(buf, self.files[bucket])
            buf.clear()

    def close(self) -> None:
        for buf, fh in zip(self.buffers, self.files):
            if buf:
                marshal.dump(buf, fh)
            fh.close()

    @staticmethod
    def read(path: Path) -> list[tuple]:
        rows: list[tuple] = []
        with open(path, "rb") as fh:
            while True:
                try:
                    rows.extend(marshal.load(fh))
                except EOFError:
                    return rows


def _read_pass(job: PartitionJob, registry: TerminalRegistry | None, spill: _Spill, malformed_out,
               progress: Callable[[int], None]) -> tuple[int, int]:
    """Pass 1: this worker's lines of every file, checked and spilled; returns (records, malformed)."""
    W, me, B = job.workers, job.worker, job.buckets
    records = bad = 0
    write_bad = csv.writer(malformed_out, lineterminator="\n").writerow
    add = spill.add
    known = registry.acquirers if registry is not None else None
    for f in job.files:
        base = f.idx << LINE_BITS
        header_error: str | None = None
        reader: CsvReader | JsonReader
        if f.fmt == "csv":
            reader = JsonReader()   # replaced below once the header is read
        else:
            reader = JsonReader()
        card_of = card_of_json_line
        done = 0
        for number, line in _lines(f.path):
            done += len(line)
            if number % 8192 == 0:
                progress(done)
                done = 0
            if f.fmt == "csv" and number == 1:
                try:
                    reader = CsvReader(line)
                    card_of = reader.card_of
                except Malformed as exc:
                    header_error = str(exc)
                continue
            if not line.strip():
                continue
            card = None if header_error else card_of(line)
            if card is None:
                if (f.idx + number) % W != me:
                    continue
                ph = -1
            else:
                ph = partition_hash(card)
                if ph % W != me:
                    continue
            n = base | number
            if header_error:
                write_bad((n, header_error))
                bad += 1
                continue
            try:
                p = reader.parse(line)
            except Malformed as exc:
                write_bad((n, str(exc)))
                bad += 1
                continue
            if ph < 0:     # a card number the router did not see (e.g. odd JSON spacing): route by the parsed one
                ph = partition_hash(p.card.encode())
                if ph % W != me:
                    # The owner of this card never reads this line as its own; keep it here as malformed
                    # rather than split a card across workers.
                    write_bad((n, "card_no: not found where the record's router looks for it"))
                    bad += 1
                    continue
            fixed = 0
            acquirer = None
            if known is not None:
                acquirer = known.get(p.terminal)
                if acquirer is None:
                    fixed = UNKNOWN_TERMINAL
            if acquirer is None and p.operator is not None and p.city is not None:
                acquirer = p.operator + p.city
            add((ph // W) % B, (*p[:3], n, *p[3:], acquirer, fixed, ph, None))
            records += 1
        progress(done)
    return records, bad


def _history(job: PartitionJob, bucket: int, cards: set[str]) -> list[tuple]:
    """Earlier runs' records of these cards, from the store (read-only)."""
    if job.history is None or not cards:
        return []
    from .store import Store   # duckdb is imported only where earlier records exist

    return Store.history_rows(job.history, sorted(cards))


def _judge_bucket(rows: list[tuple], tacs: "_Tacs", write_new, write_update) -> int:
    """Pass 2 on one bucket: rows sorted by card, kind, counter, n; returns the number of new records."""
    rows.sort(key=lambda r: r[:4])
    new = 0
    i, total = 0, len(rows)
    while i < total:
        card = rows[i][0]
        j = i + 1
        while j < total and rows[j][0] == card:
            j += 1
        group = rows[i:j]
        fixed = [tacs.check(r) if r[_OLD] is None else r[22] for r in group]
        judged = judge_card([Row(r[3], r[1], r[2], r[4], r[5], r[7], r[8], r[9], r[13], fx)
                             for r, fx in zip(group, fixed)])
        tacs.forget_card()
        for r, fx, jm in zip(group, fixed, judged):
            reasons = fx | jm
            if r[_OLD] is None:
                write_new((*r[:22], fx, r[23], reasons))
                new += 1
            elif reasons != r[_OLD] or fx != r[22]:
                write_update((r[3], fx, reasons))
        i = j
    return new


class _Tacs:
    """TAC checks of one card at a time: one `CardTac` per key set the card's records use."""

    def __init__(self, keysets: list[KeySet]) -> None:
        from .tac import TacVerifier

        self.verifier = TacVerifier(keysets)
        self._keysets: dict[tuple[str, int | None], KeySet | None] = {}
        self._cards: dict[int, object] = {}
        self.no_keyset: dict[str, int] = {}

    def forget_card(self) -> None:
        self._cards.clear()

    def check(self, r: tuple) -> int:
        """The record's fixed reason bits with the TAC bit decided (grey records have no TAC to check)."""
        fixed = r[22]
        if r[4] == TORN:
            return fixed
        alg, kv = r[15], r[14]
        ks = self._keysets.get((alg, kv), False)
        if ks is False:
            ks = self._keysets[(alg, kv)] = self.verifier.keyset(alg, kv)
        if ks is None:
            label = f"{alg} key version {kv}"
            self.no_keyset[label] = self.no_keyset.get(label, 0) + 1
            return fixed | TAC
        card_tac = self._cards.get(id(ks))
        if card_tac is None:
            card_tac = self._cards[id(ks)] = self.verifier.card(ks, r[6], r[0])
        balance_after = r[9] if r[9] is not None else r[8] + r[7]
        message = self.verifier.message(r[5], r[7], balance_after, r[10], r[2], r[11], r[12], r[13])
        return fixed if self.verifier.matches(card_tac, message, r[16]) else fixed | TAC


def run_partition(job: PartitionJob, progress: Callable[[int], None] = lambda n: None) -> PartitionResult:
    """Read and judge one worker's partition of the cards; the results are files for the store's bulk load."""
    folder = Path(job.spill)
    folder.mkdir(parents=True, exist_ok=True)
    keysets = [KeySet.load(p) for p in job.keysets]
    registry = TerminalRegistry.load(job.terminals) if job.terminals else None
    result = PartitionResult(str(folder / "records.csv"), str(folder / "updates.csv"), str(folder / "malformed.csv"))
    spill = _Spill(folder, job.buckets)
    with open(result.malformed_csv, "w", newline="", encoding="utf-8") as bad_out:
        try:
            result.records, result.malformed = _read_pass(job, registry, spill, bad_out, progress)
        finally:
            spill.close()
    tacs = _Tacs(keysets)
    with open(result.records_csv, "w", newline="", encoding="utf-8") as rec_out, \
            open(result.updates_csv, "w", newline="", encoding="utf-8") as upd_out:
        write_new = csv.writer(rec_out, lineterminator="\n").writerow
        write_update = csv.writer(upd_out, lineterminator="\n").writerow
        for b, path in enumerate(spill.paths):
            rows = _Spill.read(path)
            os.remove(path)
            if job.history is not None:
                rows.extend(_history(job, b, {r[0] for r in rows}))
            _judge_bucket(rows, tacs, write_new, write_update)
            del rows
    result.no_keyset = tacs.no_keyset
    return result
