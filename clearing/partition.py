"""The verifier's unit of work: every record of one partition of the cards, read, checked and judged.

Cards are partitioned by a stable hash of the card number (``ph = crc32(card_no)``): worker ``ph % W``,
then bucket ``(ph // W) % B`` inside the worker. Everything a card's verdicts depend on — its TACs, its
counters, its balance chain, its duplicates — lies in one partition, so partitions need nothing from each
other (the one check across cards, terminal sequence duplicates, is a set operation the store does after).

Two passes, with memory bounded by one bucket, not by the input:

1. **read** the chunks of the new files this process claims (`Claims`: its fixed share, `OwnShare`, or the
   next chunk nobody has taken when the processes of a run share their claims), each line once, routed
   to its owner and bucket by the card number found in the raw line: the lines of this process's own
   kept bucket are decoded and checked at once (`records`), all others are spilled to disk as they were
   read (`_Spill`), so every line is parsed once; malformed lines are written out with their reason; a
   QR ride (no card: routed by its line) has its code checked here (`qr.QrChecker`) and is written out
   with its verdict for the store, which finds replays;
2. **judge** bucket by bucket (the one kept in memory first, then each bucket claimed, whoever owns it,
   parsed as it is read back): load it with the history of its cards from the store (earlier runs), sort
   by card, kind, counter and arrival, recompute the bucket's TACs (3DES and SM4 cards all together in
   numpy lanes, `tac.TacVerifier.des_tacs_verify` / `sm4_tacs_verify`), screen its cards column-wise
   (`judge.cards_to_judge`) and judge the ones that need it card by card (`judge.judge_card`), and write
   the new records with their reason bits to the `BucketSink` (the store's open load, or a typed Parquet
   file for the parent's), plus the changed verdicts of earlier records.

`run_partition` is a plain function of a `PartitionJob`: the same call runs in this process, in a worker
process, or (see docs/clearing.md) as the per-key function of a distributed engine. Its progress counts the
input's bytes twice: once read, once judged.
"""
from __future__ import annotations

import contextlib
import csv
import gc
import operator
import os
import struct
import zlib
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from keysets import Algorithm, KeySet

from .tac import TacColumns
from .judge import BIT, TAC, cards_to_judge, judge_card
from .qr import QrChecker, QrRide
from .records import (AFTER, ALGORITHM, AMOUNT, BEFORE, CARD, CITY, COUNTER, DATETIME, ISSUER, KEY_VERSION, KIND,
                      MEDIUM, OPERATOR, OVERDRAFT, SEQ, STATUS, TERMINAL, TORN, TYPE, CsvReader, JsonReader, Malformed,
                      QrRideLine, card_of_json_line)
from .records import TAC as TAC_FIELD
from .jobs import (ACQUIRER, FIXED, LINE_BITS, N, OLD, RECORD_COLUMNS, RECORD_SELECT, RECORD_TYPES, SPILL_COLUMNS, FileJob,
                   PartitionJob, PartitionResult)
from .sequences import SeqBits
from .terminals import TerminalRegistry

__all__ = ["FileJob", "PartitionJob", "PartitionResult", "run_partition", "partition_hash", "RECORD_COLUMNS",
           "SPILL_COLUMNS", "LINE_BITS", "BucketSink", "ParquetFiles", "Claims", "OwnShare"]

UNKNOWN_TERMINAL = BIT["unknown-terminal"]
TAC_BATCH = 1 << 14           # records whose TACs are computed together (numpy lanes)


def partition_hash(card_no: bytes) -> int:
    """The stable hash that partitions cards (the same in every process and every run)."""
    return zlib.crc32(card_no)


_LENGTH = struct.Struct("<I")


class _Spill:
    """The exchange of pass 1: raw lines for the buckets judged later, by owner (the worker whose cards
    they are) and bucket, each a file of lines plus a file of the lines' arrival numbers and partition
    hashes (``array``), in the owner's folder (``w{owner}/from{reader}-bucket-{b}``). Only the lines of
    the reader's own kept bucket are parsed in pass 1; every other line is parsed once, by its owner, in
    the pass that judges it. Spilling the line as read costs a buffered write; spilling parsed tuples
    (marshal) cost several microseconds a record both ways."""

    FLUSH = 1 << 12          # lines held per slot before they are written out
    CHUNK = 4 << 20          # bytes of a bucket's lines read back at a time

    def __init__(self, root: Path, me: int, workers: int, buckets: int) -> None:
        self.root, self.me, self.workers, self.buckets = root, me, workers, buckets
        self.keep = buckets - 1                       # the bucket parsed at once and judged first
        self.kept_slot = me * buckets + self.keep
        self.paths: list[Path | None] = []
        for owner in range(workers):
            (root / f"w{owner}").mkdir(parents=True, exist_ok=True)
            self.paths += [root / f"w{owner}" / f"from{me}-bucket-{b}" for b in range(buckets)]
        self.paths[self.kept_slot] = None
        self.lines = [open(f"{p}.lines", "wb") if p else None for p in self.paths]
        self.numbers = [open(f"{p}.n", "wb") if p else None for p in self.paths]
        # Per slot (owner * buckets + bucket), the lines waiting and their arrival numbers and hashes
        # interleaved: pass 1 appends to these itself (a method call per line cost more than the rest).
        self.pending_lines: list[list[bytes]] = [[] for _ in self.paths]
        self.pending_numbers = [array("q") for _ in self.paths]

    def slot(self, ph: int) -> int:
        return (ph % self.workers) * self.buckets + (ph // self.workers) % self.buckets

    def add(self, slot: int, n: int, ph: int, line: bytes) -> None:
        """One line (what pass 1 does inline)."""
        self.pending_lines[slot].append(line)
        self.pending_numbers[slot].extend((n, ph))
        if len(self.pending_lines[slot]) >= self.FLUSH:
            self.flush(slot)

    def flush(self, slot: int) -> None:
        lines, numbers = self.pending_lines[slot], self.pending_numbers[slot]
        data = b"".join(lines)
        if data.count(b"\n") != len(lines):          # a file's last line without its line feed
            data = b"".join(line if line.endswith(b"\n") else line + b"\n" for line in lines)
        self.lines[slot].write(data)
        self.numbers[slot].write(_LENGTH.pack(len(lines)) + numbers.tobytes())
        self.pending_lines[slot], self.pending_numbers[slot] = [], array("q")

    def close(self) -> None:
        for slot, lines in enumerate(self.pending_lines):
            if lines:
                self.flush(slot)
        for fh in (*self.lines, *self.numbers):
            if fh is not None:
                fh.close()

    def incoming(self, owner: int, bucket: int) -> Iterator[tuple[int, int, bytes]]:
        """Pass 2: every reader's lines of `owner`'s `bucket`; the files go once read."""
        for reader in range(self.workers):
            path = self.root / f"w{owner}" / f"from{reader}-bucket-{bucket}"
            if os.path.exists(f"{path}.n"):
                yield from self._read(path)

    @staticmethod
    def _read(path: Path) -> Iterator[tuple[int, int, bytes]]:
        """A slot's lines in chunks of `CHUNK` bytes (a line list of the whole bucket would add its size
        again to the peak), each with its arrival number and hash; the files go once read."""
        with open(f"{path}.n", "rb") as fh:
            data = fh.read()
        os.remove(f"{path}.n")
        numbers = array("q")
        at, size = 0, _LENGTH.size
        while at < len(data):
            (count,) = _LENGTH.unpack_from(data, at)
            numbers.frombytes(data[at + size:at + size + 16 * count])
            at += size + 16 * count
        del data
        ns, phs = numbers[0::2], numbers[1::2]
        k = 0
        with open(f"{path}.lines", "rb") as fh:
            rest = b""
            while chunk := fh.read(_Spill.CHUNK):
                lines = (rest + chunk).split(b"\n")
                rest = lines.pop()
                for line in lines:
                    yield ns[k], phs[k], line
                    k += 1
        os.remove(f"{path}.lines")
        if rest or k != len(ns):
            raise RuntimeError(f"clearing spill {path}: {k} lines for {len(ns)} numbers")


class _Intake:
    """Parses a line of this worker's cards and books it: the record tuple into its bucket's rows, the
    terminal sequence into the duplicate bitmaps, a malformed line or a QR ride into their files."""

    def __init__(self, job: PartitionJob, registry: TerminalRegistry | None, result: PartitionResult,
                 write_bad, write_qr, spill: _Spill) -> None:
        self.known = registry.acquirers if registry is not None else None
        self.result, self.write_bad, self.write_qr, self.spill = result, write_bad, write_qr, spill
        self.readers = _Readers({f.idx: f for f in job.files})   # file index -> its record reader

    def take(self, n: int, line: bytes, ph: int, parse, rows: list[tuple]) -> None:
        """Parse the line at `n` into `rows`; ph < 0 (pass 1 only): its card is not known yet."""
        result = self.result
        try:
            p = parse(line)
        except Malformed as exc:
            self.write_bad((n, str(exc)))
            result.malformed += 1
            return
        except QrRideLine as line_of:      # a QR ride: no card, routed by its line like a line without one
            self.write_qr(n, line_of.ride)
            result.qr_rides += 1
            return
        if ph < 0:     # a card number the router did not see (e.g. odd JSON spacing): route by the parsed one
            ph = partition_hash(p[CARD].encode())
            slot = self.spill.slot(ph)
            if slot != self.spill.kept_slot:        # another worker's or a later bucket: parsed again there
                self.spill.add(slot, n, ph, line)
                return
        fixed = 0
        acquirer = None
        if self.known is not None:
            acquirer = self.known.get(p[TERMINAL])
            if acquirer is None:
                fixed = UNKNOWN_TERMINAL
        if acquirer is None and p[OPERATOR] is not None and p[CITY] is not None:
            acquirer = p[OPERATOR] + p[CITY]
        rows.append(p + (n, acquirer, fixed, ph, None))
        if p[MEDIUM] is not None:
            result.virtual_cards.add(p[CARD])
        result.records += 1
        seq = p[SEQ]
        if seq is not None and p[STATUS] != TORN:           # grey records take no part in duplicates
            bits = result.sequences.get(p[TERMINAL])
            if bits is None:
                bits = result.sequences[p[TERMINAL]] = SeqBits()
            if bits.add(seq):
                result.collisions.add((p[TERMINAL], seq))

    def bucket_rows(self, lines: Iterator[tuple[int, int, bytes]], rows: list[tuple]) -> list[tuple]:
        """Pass 2: parse a bucket's spilled lines into its rows."""
        take, readers = self.take, self.readers
        for n, ph, line in lines:
            take(n, line, ph, readers[n >> LINE_BITS].parse, rows)
        return rows


class _Readers(dict):
    """File index -> the file's record reader, made when first asked for: pass 2 parses lines of files
    this process may have read no chunk of."""

    def __init__(self, files: dict[int, FileJob]) -> None:
        super().__init__()
        self.files = files

    def __missing__(self, idx: int):
        with open(self.files[idx].path, "rb") as fh:
            reader = self[idx] = _reader(self.files[idx], fh)[0]
        return reader


class Claims(Protocol):
    """Which chunks of the input (pass 1) and which buckets (pass 2, beyond the process's own kept one) a
    process takes next, None when none is left. Chunks are numbered over the files in order, each file's
    `cuts` in order; a bucket ``g`` is bucket ``g // W`` of owner ``g % W`` (its kept bucket excepted)."""

    def chunk(self) -> int | None: ...

    def bucket(self) -> int | None: ...


class OwnShare:
    """A fixed share: chunks ``c`` with ``c % W == w`` and the worker's own buckets. What a partition takes
    when it runs alone, or as a distributed engine's task; processes of one run share their claims
    instead (verify), so a core that runs slower takes less."""

    def __init__(self, job: PartitionJob) -> None:
        chunks = sum(len(f.cuts) for f in job.files)
        self._chunks = iter(range(job.worker, chunks, job.workers))
        self._buckets = iter(range(job.worker, job.workers * (job.buckets - 1), job.workers))

    def chunk(self) -> int | None:
        return next(self._chunks, None)

    def bucket(self) -> int | None:
        return next(self._buckets, None)


def _read_pass(job: PartitionJob, intake: _Intake, spill: _Spill, kept: list[tuple],
               progress: Callable[[int], None], claims: Claims) -> None:
    """Pass 1: the chunks of the input this process claims, each read once: the lines of its own kept
    bucket parsed into `kept`, all others spilled to their owner and bucket as read; counts each file's
    record lines read here in the result's `lines`."""
    chunks = [(f, k) for f in job.files for k in range(len(f.cuts))]
    lines = intake.result.lines
    while (c := claims.chunk()) is not None:
        f, k = chunks[c]
        with open(f.path, "rb") as fh:
            reader, card_of, header_error, first = _reader(f, fh)
            start, end, number = _chunk(fh, f, k, first)
            lines[f.idx] = lines.get(f.idx, 0) + _read_file(f, fh, start, end, number, reader, card_of,
                                                            header_error, intake, spill, kept, progress)


def _chunk(fh, f: FileJob, k: int, first: int) -> tuple[int, int, int]:
    """Chunk `k` of a file's record lines (`fh` just past any header): (start, end) in bytes and the number
    of its first line. A line belongs to the chunk its first byte is in, so the chunks split the file's
    lines exactly; a chunk's first line number is one more than the line feeds before its first line."""
    body = fh.tell()
    nominal, before = f.cuts[k]
    end = f.cuts[k + 1][0] if k + 1 < len(f.cuts) else os.fstat(fh.fileno()).st_size
    if nominal <= body:
        return body, max(body, end), first
    fh.seek(nominal - 1)
    if fh.read(1) == b"\n":
        return nominal, end, 1 + before
    fh.readline()                                  # the rest of a line the chunk before owns
    return fh.tell(), end, 2 + before


def _qr_writer(job: PartitionJob, registry: TerminalRegistry | None, writerow) -> Callable[[int, QrRide], None]:
    """Checks a QR ride's code (clearing.qr) and writes its row; the city is the ride's own, else the one of
    its terminal in the registry."""
    checker: QrChecker | None = None
    cities = {tid: t.city for tid, t in registry.terminals.items()} if registry is not None else {}

    def write(n: int, ride: QrRide) -> None:
        nonlocal checker
        if checker is None:                  # the root store is loaded by the first ride, not by every worker
            checker = QrChecker(job.qr_roots)
        digest, failed, detail = checker.check(ride)
        writerow((n, digest, ride.terminal, ride.datetime, ride.amount, ride.issuer, ride.platform,
                  ride.city or cities.get(ride.terminal), failed, detail, None))     # replay_of: the store
    return write


def _reader(f: FileJob, fh) -> tuple[object, Callable[[bytes], bytes | None], str | None, int]:
    """The record reader of a file: JSON Lines, or CSV after its header (read here); the first record line."""
    if f.fmt != "csv":
        return JsonReader(), _card_of_json, None, 1
    try:
        reader = CsvReader(fh.readline())
    except Malformed as exc:
        return None, lambda line: None, str(exc), 2
    return reader, reader.card_of, None, 2


def _card_of_json(line: bytes) -> bytes | None:
    """`card_of_json_line`, with a shortcut for the compact form every exporter writes: the pattern's first
    match can only start at the first ``"card_no"``, so when that one is compact the answer is its digits."""
    at = line.find(b'"card_no"')
    if at >= 0 and line[at + 9:at + 11] == b':"' and line[at + 31:at + 32] == b'"':
        card = line[at + 11:at + 31]
        if card.isdigit():
            return card
    return card_of_json_line(line)


def _read_file(f: FileJob, fh, start: int, end: int, first: int, reader, card_of, header_error: str | None,
               intake: _Intake, spill: _Spill, kept: list[tuple], progress) -> int:
    """The lines of one file's share in pass 1; returns their number of record lines. The card number of
    a JSON line in the compact form every exporter writes is found inline (`_card_of_json`'s shortcut:
    this loop runs for every line of the input); anything else goes through `card_of`."""
    base = f.idx << LINE_BITS
    parse = reader.parse if reader is not None else None
    take, crc32, kept_slot = intake.take, zlib.crc32, spill.kept_slot
    W, B = spill.workers, spill.buckets
    pending_lines, pending_numbers, flush, most = spill.pending_lines, spill.pending_numbers, spill.flush, spill.FLUSH
    json = f.fmt != "csv"
    blank = lines = 0
    at = reported = start
    for number, line in enumerate(fh, first):
        if at >= end:
            break
        at += len(line)
        lines += 1
        if not number & 0x3FFF:
            progress(at - reported)
            reported = at
        where = line.find(b'"card_no"') if json else -1
        if where >= 0 and line[where + 9:where + 11] == b':"' and line[where + 31:where + 32] == b'"' \
                and (card := line[where + 11:where + 31]).isdigit():
            pass
        else:
            card = card_of(line)
        n = base | number
        if card is None:
            if not line.strip():
                blank += 1
                continue
            ph, slot = -1, kept_slot                # parsed here; `take` routes it by the parsed card
        else:
            ph = crc32(card)
            slot = (ph % W) * B + (ph // W) % B
        if header_error:
            intake.write_bad((n, header_error))
            intake.result.malformed += 1
        elif slot == kept_slot:
            take(n, line, ph, parse, kept)
        else:                                    # spilled as read (`_Spill.add`, inline)
            waiting = pending_lines[slot]
            waiting.append(line)
            numbers = pending_numbers[slot]
            numbers.append(n)
            numbers.append(ph)
            if len(waiting) >= most:
                flush(slot)
    progress(min(at, end) - reported)
    return lines - blank


def _judge_bucket(rows: list[tuple], tacs: "_Tacs", write_update) -> dict[str, np.ndarray]:
    """Pass 2 on one bucket: the TACs of the whole bucket at once, the cards screened column-wise
    (`judge.cards_to_judge`), only the others judged card by card, in kind, counter and arrival order.
    Returns the new records' store columns (`jobs.RECORD_COLUMNS`); earlier records whose verdict changed
    go to `write_update`."""
    rows = _sorted(rows)
    cols = list(zip(*rows)) if rows else [()] * len(SPILL_COLUMNS)
    fixed = tacs.fixed_bits(rows, cols)
    olds = cols[OLD]
    history = olds.count(None) != len(olds)
    reasons = list(fixed)
    for start, end in cards_to_judge(cols[CARD], cols[KIND], cols[COUNTER], cols[STATUS], cols[AMOUNT],
                                     cols[BEFORE], cols[AFTER], [o is None for o in olds] if history else None):
        for i, jm in enumerate(judge_card(rows[start:end], fixed[start:end]), start):
            old = olds[i]
            if old is None:
                reasons[i] = fixed[i] | jm
            elif (fixed[i] | jm) != old or fixed[i] != rows[i][FIXED]:
                write_update((rows[i][N], fixed[i], fixed[i] | jm))
    keep = np.flatnonzero(np.equal(np.array(olds, dtype=object), None)) if history else None
    return _store_columns(cols, fixed, reasons, keep)


_GET_CARD, _GET_KIND, _GET_COUNTER, _GET_N = (operator.itemgetter(i) for i in (CARD, KIND, COUNTER, N))


def _sorted(rows: list[tuple]) -> list[tuple] | tuple[tuple, ...]:
    """The rows by card, kind, counter and arrival: numpy's lexsort over integer keys (a card's key is
    the order it was first seen in), half the time of sorting the rows by a key tuple."""
    total = len(rows)
    if total < 2:
        return rows
    cards = list(map(_GET_CARD, rows))
    first_seen = dict.fromkeys(cards)
    for code, card in enumerate(first_seen):
        first_seen[card] = code
    order = np.lexsort((np.fromiter(map(_GET_N, rows), dtype=np.int64, count=total),
                        np.fromiter(map(_GET_COUNTER, rows), dtype=np.int64, count=total),
                        np.fromiter(map(_GET_KIND, rows), dtype=np.int64, count=total),
                        np.fromiter(map(first_seen.__getitem__, cards), dtype=np.int64, count=total)))
    return operator.itemgetter(*order.tolist())(rows)


def _store_columns(cols: list[tuple], fixed: list[int], reasons: list[int],
                   keep: np.ndarray | None) -> dict[str, np.ndarray]:
    """The store's columns of a bucket (`keep`: the rows that are new, None for all): text as object
    arrays, integers as int64 where no value is missing (else object, None read as NULL)."""
    sources = [cols[i] for i in range(CITY)] + [cols[N], cols[ACQUIRER], fixed, reasons]
    out: dict[str, np.ndarray] = {}
    for name, values in zip(RECORD_COLUMNS, sources):
        if RECORD_TYPES[name] == "VARCHAR":
            column = np.array(values, dtype=object)
        else:
            try:
                column = np.array(values, dtype=np.int64)
            except TypeError:
                column = np.array(values, dtype=object)
        out[name] = column if keep is None else column[keep]
    return out


class BucketSink(Protocol):
    """Where a partition's judged buckets go, and where it finds its cards' earlier records."""

    def history(self, cards: set[str]) -> list[tuple]:
        """Earlier runs' records of these cards, as spill tuples (`jobs.SPILL_COLUMNS`)."""

    def write(self, columns: dict[str, np.ndarray], result: PartitionResult) -> None:
        """One bucket's new records (`jobs.RECORD_COLUMNS`)."""

    def close(self) -> None:
        """The partition is done with it."""


class ParquetFiles:
    """The sink of a worker among several: each bucket's new records as a Parquet file (listed in the
    result's `record_files`) for the parent's bulk load, written by an in-memory DuckDB from the bucket's
    columns, typed here so the parent only copies columns in (measured on one core: 1.2 us a record, where
    parsing CSV cost 2 and writing it from Python 3.5); earlier records read from the store read-only.
    Uncompressed: the files live for one run, and snappy cost 0.4 us a record to write and 0.2 to read
    (73 bytes a record on disk instead of 27)."""

    def __init__(self, folder: Path, store: str | None, written: Callable[[str], None] = lambda path: None) -> None:
        """`written(path)` is told of each file as soon as it is complete (the parent may load it then)."""
        import duckdb

        self.folder, self.store, self.written = folder, store, written
        self.con = duckdb.connect(config={"threads": 1, "memory_limit": "32MB", "preserve_insertion_order": False})

    def history(self, cards: set[str]) -> list[tuple]:
        if self.store is None or not cards:
            return []
        from .store import Store

        return Store.history_rows(self.store, sorted(cards))

    def write(self, columns: dict[str, np.ndarray], result: PartitionResult) -> None:
        path = self.folder / f"records-{len(result.record_files)}.parquet"
        bucket = columns  # noqa: F841  (DuckDB reads the local variable by its name)
        self.con.execute(f"COPY (SELECT {RECORD_SELECT} FROM bucket) TO '{_sql_path(path)}' "
                         "(FORMAT parquet, COMPRESSION uncompressed, ROW_GROUP_SIZE 32768)")
        result.record_files.append(str(path))
        self.written(str(path))

    def close(self) -> None:
        self.con.close()


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


class _Tacs:
    """The TAC checks of a bucket: its records grouped by key set, each group MACed in numpy lanes."""

    def __init__(self, keysets: list[KeySet]) -> None:
        from .tac import TacVerifier

        self.verifier = TacVerifier(keysets)
        self._keysets: dict[tuple[str, int | None], KeySet | None] = {}
        self.no_keyset: dict[str, int] = {}

    def fixed_bits(self, rows: list[tuple], cols: list[tuple]) -> list[int]:
        """The fixed reason bits of every row of a bucket sorted by card (`cols`: its columns), the TAC bit
        decided for the new ones: the records of each key set in batches of numpy lanes
        (`TacVerifier.des_tacs_verify` or `sm4_tacs_verify`), those without a key set by `check` (which
        counts them as unverifiable). Earlier records keep their stored bits; grey records have no TAC."""
        fixed = list(cols[FIXED])
        total = len(fixed)
        keys = set(zip(cols[ALGORITHM], cols[KEY_VERSION]))
        whole = len(keys) == 1 and cols[OLD].count(None) == total and TORN not in cols[STATUS]
        if whole:                                       # the common bucket: one key set, nothing to leave out
            groups = [(next(iter(keys)), None)]
        else:
            algorithms = np.array(cols[ALGORITHM], dtype=object)
            versions = np.array(cols[KEY_VERSION], dtype=object)
            wanted = (np.equal(np.array(cols[OLD], dtype=object), None)
                      & (np.array(cols[STATUS], dtype=np.int64) != TORN))
            groups = [(key, np.flatnonzero(wanted & (algorithms == key[0]) & np.equal(versions, key[1])))
                      for key in sorted(keys, key=repr)]
        for key, idx in groups:
            ks = self._keyset(key)
            if ks is None:
                for i in (range(total) if idx is None else idx.tolist()):
                    fixed[i] = self.unverifiable(rows[i])
                continue
            for at in range(0, total if idx is None else len(idx), TAC_BATCH):   # a few MB of arrays at a time
                part = np.arange(at, min(total, at + TAC_BATCH)) if idx is None else idx[at:at + TAC_BATCH]
                ok = self._tac_batch(ks, cols, part, whole)
                for i in part[~ok].tolist():
                    fixed[i] |= TAC
        return fixed

    def _keyset(self, key: tuple[str, int | None]) -> KeySet | None:
        ks = self._keysets.get(key, False)
        if ks is False:
            ks = self._keysets[key] = self.verifier.keyset(*key)
        return ks

    def _tac_batch(self, ks: KeySet, cols: list[tuple], part: np.ndarray, contiguous: bool) -> np.ndarray:
        """Whether each record at `part` verifies its TAC, for records of one key set (sorted by card), in
        numpy lanes; `contiguous`: `part` is a range, its columns are slices."""
        if contiguous:
            lo, hi = int(part[0]), int(part[-1]) + 1
            pick = lambda col: col[lo:hi]                                  # noqa: E731
        elif len(part) == 1:
            pick = lambda col: (col[int(part[0])],)                         # noqa: E731
        else:
            pick = operator.itemgetter(*part.tolist())
        issuers, numbers = pick(cols[ISSUER]), pick(cols[CARD])
        change = np.empty(len(part), dtype=bool)          # a new (issuer, card) pair starts here
        change[0] = True
        a, b = np.array(numbers, dtype=object), np.array(issuers, dtype=object)
        change[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        card_of = np.cumsum(change) - 1                   # a pair seen again later just derives its key twice
        cards = [(issuers[i], numbers[i]) for i in np.flatnonzero(change).tolist()]
        columns = TacColumns(pick(cols[TYPE]), pick(cols[AMOUNT]), pick(cols[AFTER]), pick(cols[OVERDRAFT]),
                             pick(cols[COUNTER]), pick(cols[TERMINAL]), pick(cols[SEQ]), pick(cols[DATETIME]),
                             pick(cols[TAC_FIELD]), balance_before=pick(cols[BEFORE]))
        verify = self.verifier.sm4_tacs_verify if ks.algorithm is Algorithm.SM4 else self.verifier.des_tacs_verify
        return verify(ks, cards, card_of, columns)

    def unverifiable(self, r: tuple) -> int:
        """A record no key set covers: it cannot be verified, so its TAC fails; counted per algorithm and
        version for the run's summary."""
        label = f"{r[ALGORITHM]} key version {r[KEY_VERSION]}"
        self.no_keyset[label] = self.no_keyset.get(label, 0) + 1
        return r[FIXED] | TAC


@contextlib.contextmanager
def _without_cycle_collection() -> Iterator[None]:
    """A partition makes millions of tuples, strings and integers and no reference cycle: the cyclic
    collector would only walk every live row again each time the bucket grows by a quarter (measured:
    about 2 us a record). Reference counting still frees everything as before."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def run_partition(job: PartitionJob, progress: Callable[[int], None] = lambda n: None,
                  exchanged: Callable[[], None] = lambda: None, sink: BucketSink | None = None,
                  claims: Claims | None = None) -> PartitionResult:
    """Read this worker's share of the input and judge its partition of the cards. `exchanged` returns once
    every worker has finished pass 1 (the exchange: pass 2 reads what the others spilled for this one).
    The judged buckets go to `sink`: by default Parquet files for the parent's bulk load; the partition
    the parent judges itself, or a single one, writes straight into the store's open load (`store.RunLoad`)."""
    with _without_cycle_collection():
        return _run_partition(job, progress, exchanged, sink, claims if claims is not None else OwnShare(job))


def _run_partition(job: PartitionJob, progress: Callable[[int], None], exchanged: Callable[[], None],
                   sink: BucketSink | None, claims: Claims) -> PartitionResult:
    folder = Path(job.spill)
    folder.mkdir(parents=True, exist_ok=True)
    keysets = [KeySet.load(p) for p in job.keysets]
    registry = TerminalRegistry.load(job.terminals) if job.terminals else None
    result = PartitionResult([], str(folder / "updates.csv"), str(folder / "malformed.csv"),
                             str(folder / "qr.csv"))
    spill = _Spill(folder.parent, job.worker, job.workers, job.buckets)
    kept: list[tuple] = []
    with open(result.malformed_csv, "w", newline="", encoding="utf-8") as bad_out, \
            open(result.qr_csv, "w", newline="", encoding="utf-8") as qr_out, \
            open(result.updates_csv, "w", newline="", encoding="utf-8") as upd_out:
        intake = _Intake(job, registry, result, csv.writer(bad_out, lineterminator="\n").writerow,
                         _qr_writer(job, registry, csv.writer(qr_out, lineterminator="\n").writerow), spill)
        try:
            _read_pass(job, intake, spill, kept, progress, claims)
        finally:
            spill.close()
        exchanged()
        tacs = _Tacs(keysets)
        out = sink if sink is not None else ParquetFiles(folder, job.history)
        write_update = csv.writer(upd_out, lineterminator="\n").writerow
        share = sum(os.path.getsize(f.path) for f in job.files) // job.workers   # a worker's share, on average

        def judge(rows: list[tuple]) -> None:
            if job.history is not None:
                rows.extend(out.history({r[CARD] for r in rows}))
            columns = _judge_bucket(rows, tacs, write_update)
            rows.clear()                     # one bucket's tuples at a time
            if len(columns["n"]):
                out.write(columns, result)
            progress(share // job.buckets)  # the judge pass: as much again

        try:
            judge(intake.bucket_rows(spill.incoming(job.worker, spill.keep), kept))
            while (g := claims.bucket()) is not None:
                judge(intake.bucket_rows(spill.incoming(g % job.workers, g // job.workers), []))
        finally:
            out.close()
    result.no_keyset = tacs.no_keyset
    return result
