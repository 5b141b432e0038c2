"""The verifier's unit of work: every record of one partition of the cards, read, checked and judged.

Cards are partitioned by a stable hash of the card number (``ph = crc32(card_no)``): worker ``ph % W``,
then bucket ``(ph // W) % B`` inside the worker. Everything a card's verdicts depend on — its TACs, its
counters, its balance chain, its duplicates — lies in one partition, so partitions need nothing from each
other (the one check across cards, terminal sequence duplicates, is a set operation the store does after).

Two passes, with memory bounded by one bucket, not by the input:

1. **read** every new file once, keep the lines of this worker's cards: decode and check each
   (`records`), route it to its bucket, spill buckets to disk (``marshal``, fast and private);
   malformed lines are written out with their reason; a QR ride (no card: routed by its line) has its code
   checked here (`qr.QrChecker`) and is written out with its verdict for the store, which finds replays;
2. **judge** bucket by bucket (the last one never left memory): load it with the history of its cards from
   the store (earlier runs), sort by card, kind, counter and arrival, recompute the bucket's TACs (3DES
   cards all together in numpy lanes, `tac.TacVerifier.des_tacs_verify`; SM4 cards one context per
   card), judge each card (`judge.judge_card`), and write the records with their reason bits as CSV for
   the store's bulk load, plus the changed verdicts of earlier records.

`run_partition` is a plain function of a `PartitionJob`: the same call runs in this process, in a worker
process, or (see docs/clearing.md) as the per-key function of a distributed engine. Its progress counts the
input's bytes twice: once read, once judged.
"""
from __future__ import annotations

import csv
import marshal
import operator
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from keysets import Algorithm, KeySet

from .tac import TacColumns, tac_input_padded
from .judge import BIT, TAC, judge_card
from .qr import QrChecker, QrRide
from .records import (AFTER, ALGORITHM, AMOUNT, BEFORE, CARD, COUNTER, DATETIME, FIELDS_OF_TUPLE, ISSUER,
                      KEY_VERSION, KIND, OVERDRAFT, SEQ, STATUS, TERMINAL, TORN, TYPE, CsvReader, JsonReader, Malformed,
                      MEDIUM, QrRideLine, card_of_json_line)
from .records import CITY, OPERATOR
from .jobs import (ACQUIRER, FIXED, LINE_BITS, N, OLD, PH, RECORD_COLUMNS, SPILL_COLUMNS, FileJob,
                   PartitionJob, PartitionResult)
from .sequences import SeqBits
from .records import TAC as TAC_FIELD
from .terminals import TerminalRegistry

__all__ = ["FileJob", "PartitionJob", "PartitionResult", "run_partition", "partition_hash", "RECORD_COLUMNS",
           "SPILL_COLUMNS",
           "LINE_BITS"]

UNKNOWN_TERMINAL = BIT["unknown-terminal"]
SPILL_ROWS = 1 << 16          # rows waiting in memory across all buckets of a worker, whatever their number
TAC_BATCH = 1 << 14           # records whose TACs are computed together (numpy lanes)
_SORT_KEY = operator.itemgetter(CARD, KIND, COUNTER, N)


def partition_hash(card_no: bytes) -> int:
    """The stable hash that partitions cards (the same in every process and every run)."""
    return zlib.crc32(card_no)


_LENGTH = struct.Struct("<I")


class _Spill:
    """Bucket files of marshalled batches of tuples, each batch behind its length (marshal.load on a file
    object reads in small steps; reading the batch whole and using marshal.loads is many times faster).

    The last bucket stays in memory and is judged first: judging holds one bucket at a time anyway, so
    the peak grows by little (the bucket's rows while the others are read) and one bucket's marshal round
    trip is spared (with one bucket, all of it)."""

    def __init__(self, folder: Path, buckets: int) -> None:
        self.batch = max(256, SPILL_ROWS // buckets)
        self.keep = buckets - 1
        self.kept: list[tuple] = []
        self.paths = [folder / f"bucket-{b}.bin" for b in range(buckets - 1)]
        self.files = [open(p, "wb") for p in self.paths]
        self.buffers: list[list[tuple]] = [[] for _ in range(buckets)]

    def add(self, bucket: int, row: tuple) -> None:
        buf = self.buffers[bucket]
        buf.append(row)
        if len(buf) >= self.batch:
            self.dump(bucket)

    def dump(self, bucket: int) -> None:
        if bucket == self.keep:
            self.kept.extend(self.buffers[bucket])
        else:
            data = marshal.dumps(self.buffers[bucket])
            self.files[bucket].write(_LENGTH.pack(len(data)) + data)
        self.buffers[bucket].clear()

    def close(self) -> None:
        for b, buf in enumerate(self.buffers):
            if buf:
                self.dump(b)
        for fh in self.files:
            fh.close()

    def buckets(self) -> Iterator[list[tuple]]:
        """Each bucket's rows, the one in memory first; a bucket file is gone once read."""
        yield self._take_kept()               # (no local name holds a bucket while the next one is read)
        for path in self.paths:
            yield self._take(path)

    def _take_kept(self) -> list[tuple]:
        kept, self.kept = self.kept, []
        return kept

    def _take(self, path: Path) -> list[tuple]:
        rows = self.read(path)
        os.remove(path)
        return rows

    @staticmethod
    def read(path: Path) -> list[tuple]:
        rows: list[tuple] = []
        with open(path, "rb") as fh:
            data = fh.read()
        at, end, size = 0, len(data), _LENGTH.size
        while at < end:
            (length,) = _LENGTH.unpack_from(data, at)
            rows.extend(marshal.loads(data[at + size:at + size + length]))
            at += size + length
        return rows


def _read_pass(job: PartitionJob, registry: TerminalRegistry | None, spill: _Spill, malformed_out, qr_out,
               progress: Callable[[int], None], result: PartitionResult) -> tuple[int, int, int]:
    """Pass 1: this worker's lines of every file, checked and spilled; returns (records, malformed, QR rides)
    and fills `lines` with each file's number of record lines (all workers', not only this one's)."""
    records = bad = rides = 0
    write_bad = csv.writer(malformed_out, lineterminator="\n").writerow
    write_qr = _qr_writer(job, registry, csv.writer(qr_out, lineterminator="\n").writerow)
    known = registry.acquirers if registry is not None else None
    for f in job.files:
        with open(f.path, "rb") as fh:
            reader, card_of, header_error, first = _reader(f, fh)
            r, b, k, n = _read_file(job, f, fh, first, reader, card_of, header_error, known, spill,
                                    (write_bad, write_qr), progress, result)
            records += r
            bad += b
            rides += k
            result.lines[f.idx] = n
    return records, bad, rides


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


def _read_file(job: PartitionJob, f: FileJob, fh, first: int, reader, card_of, header_error: str | None,
               known: dict[str, str] | None, spill: "_Spill", writers, progress,
               result: PartitionResult) -> tuple[int, int, int, int]:
    W, me, B = job.workers, job.worker, job.buckets
    base = f.idx << LINE_BITS
    parse = reader.parse if reader is not None else None
    write_bad, write_qr = writers
    records = bad = rides = done = blank = 0
    number = first - 1
    sequences, collisions = result.sequences, result.collisions
    buffers, batch, dump = spill.buffers, spill.batch, spill.dump
    for number, line in enumerate(fh, first):
        done += len(line)
        if done >= 1 << 22:
            progress(done)
            done = 0
        card = card_of(line)
        if card is None:
            if not line.strip():
                blank += 1
                continue
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
            p = parse(line)
        except Malformed as exc:
            write_bad((n, str(exc)))
            bad += 1
            continue
        except QrRideLine as line_of:      # a QR ride: no card, routed by its line like a line without one
            write_qr(n, line_of.ride)
            rides += 1
            continue
        if ph < 0:     # a card number the router did not see (e.g. odd JSON spacing): route by the parsed one
            if partition_hash(p[CARD].encode()) % W != me:
                # The owner of that card never takes this line; refuse it rather than split a card.
                write_bad((n, "card_no: not where a clearing record has it (write it as \"card_no\":\"DIGITS\")"))
                bad += 1
                continue
            ph = partition_hash(p[CARD].encode())
        fixed = 0
        acquirer = None
        if known is not None:
            acquirer = known.get(p[TERMINAL])
            if acquirer is None:
                fixed = UNKNOWN_TERMINAL
        if acquirer is None and p[OPERATOR] is not None and p[CITY] is not None:
            acquirer = p[OPERATOR] + p[CITY]
        bucket = buffers[(ph // W) % B]
        bucket.append(p + (n, acquirer, fixed, ph, None))
        if len(bucket) >= batch:
            dump((ph // W) % B)
        if p[MEDIUM] is not None:
            result.virtual_cards.add(p[CARD])
        records += 1
        seq = p[SEQ]
        if seq is not None and p[STATUS] != TORN:           # grey records take no part in duplicates
            bits = sequences.get(p[TERMINAL])
            if bits is None:
                bits = sequences[p[TERMINAL]] = SeqBits()
            if bits.add(seq):
                collisions.add((p[TERMINAL], seq))
    progress(done)
    return records, bad, rides, number - first + 1 - blank


def _history(job: PartitionJob, cards: set[str]) -> list[tuple]:
    """Earlier runs' records of these cards, from the store (read-only)."""
    if job.history is None or not cards:
        return []
    from .store import Store   # duckdb is imported only where earlier records exist

    return Store.history_rows(job.history, sorted(cards))


def _judge_bucket(rows: list[tuple], tacs: "_Tacs", new_rows: list[tuple], write_update) -> None:
    """Pass 2 on one bucket: the TACs of the whole bucket at once, then card by card, in kind, counter and
    arrival order."""
    rows.sort(key=_SORT_KEY)
    fixed_all = tacs.fixed_bits(rows)
    i, total = 0, len(rows)
    append = new_rows.append
    while i < total:
        card = rows[i][CARD]
        j = i + 1
        while j < total and rows[j][CARD] == card:
            j += 1
        group = rows[i:j]
        fixed = fixed_all[i:j]
        judged = judge_card(group, fixed)
        for r, fx, jm in zip(group, fixed, judged):
            if r[OLD] is None:
                append(r[:CITY] + (r[N], r[ACQUIRER], fx, fx | jm))
            elif (fx | jm) != r[OLD] or fx != r[FIXED]:
                write_update((r[N], fx, fx | jm))
        i = j


class _Tacs:
    """TAC checks of one card at a time: one `CardTac` per key set the card's records use."""

    def __init__(self, keysets: list[KeySet]) -> None:
        from .tac import TacVerifier

        self.verifier = TacVerifier(keysets)
        self._keysets: dict[tuple[str, int | None], KeySet | None] = {}
        self._cards: dict[tuple[str, int | None], object] = {}   # this card's contexts by algorithm, version
        self.no_keyset: dict[str, int] = {}

    def forget_card(self) -> None:
        self._cards.clear()

    def _keyset(self, r: tuple) -> KeySet | None:
        key = (r[ALGORITHM], r[KEY_VERSION])
        ks = self._keysets.get(key, False)
        if ks is False:
            ks = self._keysets[key] = self.verifier.keyset(*key)
        return ks

    def fixed_bits(self, rows: list[tuple]) -> list[int]:
        """The fixed reason bits of every row of a bucket sorted by card, the TAC bit decided for the new
        ones: the records of each key set in one batch (`TacVerifier.des_tacs_verify` or
        `sm4_tacs_verify`), those without a key set by `check` (which counts them). Earlier records keep
        their stored bits."""
        fixed = [r[FIXED] for r in rows]
        batches: dict[int, tuple[KeySet, list[int]]] = {}
        routes: dict[tuple, list[int] | None] = {}        # (algorithm, version) -> its batch, or None: one by one
        card = None
        for i, r in enumerate(rows):
            if r[OLD] is not None or r[STATUS] == TORN:
                continue
            key = (r[ALGORITHM], r[KEY_VERSION])
            batch = routes.get(key, False)
            if batch is False:
                ks = self._keyset(r)
                batch = routes[key] = None if ks is None else batches.setdefault(id(ks), (ks, []))[1]
            if batch is not None:
                batch.append(i)
                continue
            if r[CARD] != card:
                self.forget_card()
                card = r[CARD]
            fixed[i] = self.check(r)
        self.forget_card()
        for ks, idxs in batches.values():
            for at in range(0, len(idxs), TAC_BATCH):        # a few MB of arrays at a time, whatever the bucket
                part = idxs[at:at + TAC_BATCH]
                ok = self._tac_batch(ks, [rows[i] for i in part])
                for i, good in zip(part, ok.tolist()):
                    if not good:
                        fixed[i] |= TAC
        return fixed

    def _tac_batch(self, ks: KeySet, batch: list[tuple]):
        """Whether each record's TAC verifies, for records of one key set (sorted by card), in numpy lanes."""
        cols = list(zip(*batch))
        issuers, numbers = cols[ISSUER], cols[CARD]
        change = np.empty(len(batch), dtype=bool)         # a new (issuer, card) pair starts here
        change[0] = True
        a, b = np.array(numbers), np.array(issuers)
        change[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        card_of = np.cumsum(change) - 1                   # a pair seen again later just derives its key twice
        cards = [(issuers[i], numbers[i]) for i in np.flatnonzero(change).tolist()]
        columns = TacColumns(cols[TYPE], cols[AMOUNT], cols[AFTER], cols[OVERDRAFT], cols[COUNTER], cols[TERMINAL],
                             cols[SEQ], cols[DATETIME], cols[TAC_FIELD], balance_before=cols[BEFORE])
        verify = self.verifier.sm4_tacs_verify if ks.algorithm is Algorithm.SM4 else self.verifier.des_tacs_verify
        return verify(ks, cards, card_of, columns)

    def check(self, r: tuple) -> int:
        """The record's fixed reason bits with the TAC bit decided (grey records have no TAC to check)."""
        fixed = r[FIXED]
        if r[STATUS] == TORN:
            return fixed
        key = (r[ALGORITHM], r[KEY_VERSION])
        card_tac = self._cards.get(key)
        if card_tac is None:
            ks = self._keysets.get(key, False)
            if ks is False:
                ks = self._keysets[key] = self.verifier.keyset(*key)
            if ks is None:
                label = f"{r[ALGORITHM]} key version {r[KEY_VERSION]}"
                self.no_keyset[label] = self.no_keyset.get(label, 0) + 1
                return fixed | TAC
            card_tac = self._cards[key] = self.verifier.card(ks, r[ISSUER], r[CARD])
        after = r[AFTER] if r[AFTER] is not None else r[BEFORE] + r[AMOUNT]
        padded = tac_input_padded(card_tac.block_size, r[TYPE], r[AMOUNT], after, r[OVERDRAFT], r[COUNTER],
                                  r[TERMINAL], r[SEQ], r[DATETIME])
        if padded is not None and card_tac.verifies(padded, r[TAC_FIELD]):
            return fixed
        return fixed | TAC


_COMMAS = len(RECORD_COLUMNS) - 1


def _write_rows(out, rows: list[tuple]) -> None:
    """The store's rows as CSV for its bulk load, None written as ``None`` (the load reads it as NULL, as it
    does an empty field). The text columns hold checked hex, digits or fixed names, never a comma, a quote, a
    line break or the word None, so a plain join is CSV and costs half of `csv.writer`; a chunk where that
    does not hold (counted, not assumed) goes through `csv.writer`."""
    for at in range(0, len(rows), 4096):
        chunk = rows[at:at + 4096]
        text = "\n".join([",".join(map(str, r)) for r in chunk]) + "\n"
        if (text.count(",") != _COMMAS * len(chunk) or text.count("\n") != len(chunk) or '"' in text
                or "\r" in text):
            csv.writer(out, lineterminator="\n").writerows(chunk)
        else:
            out.write(text)


def run_partition(job: PartitionJob, progress: Callable[[int], None] = lambda n: None) -> PartitionResult:
    """Read and judge one worker's partition of the cards; the results are files for the store's bulk load."""
    folder = Path(job.spill)
    folder.mkdir(parents=True, exist_ok=True)
    keysets = [KeySet.load(p) for p in job.keysets]
    registry = TerminalRegistry.load(job.terminals) if job.terminals else None
    result = PartitionResult([], str(folder / "updates.csv"), str(folder / "malformed.csv"),
                             str(folder / "qr.csv"))
    spill = _Spill(folder, job.buckets)
    with open(result.malformed_csv, "w", newline="", encoding="utf-8") as bad_out, \
            open(result.qr_csv, "w", newline="", encoding="utf-8") as qr_out:
        try:
            result.records, result.malformed, result.qr_rides = _read_pass(job, registry, spill, bad_out,
                                                                           qr_out, progress, result)
        finally:
            spill.close()
    tacs = _Tacs(keysets)
    with open(result.updates_csv, "w", newline="", encoding="utf-8") as upd_out:
        write_update = csv.writer(upd_out, lineterminator="\n").writerow
        total_bytes = sum(os.path.getsize(f.path) for f in job.files)
        for rows in spill.buckets():
            judged = len(rows)
            if job.history is not None:
                rows.extend(_history(job, {r[CARD] for r in rows}))
            new_rows: list[tuple] = []
            _judge_bucket(rows, tacs, new_rows, write_update)
            del rows
            if new_rows:                     # one file per bucket: the store loads (and commits) them one by one
                result.records_csv.append(str(folder / f"records-{len(result.records_csv)}.csv"))
                with open(result.records_csv[-1], "w", newline="", encoding="utf-8") as rec_out:
                    _write_rows(rec_out, new_rows)
            del new_rows
            progress(total_bytes * judged // max(1, result.records))    # the judge pass: as much again
    result.no_keyset = tacs.no_keyset
    return result
