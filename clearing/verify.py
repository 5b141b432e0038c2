"""`ykt clearing verify`: every record of the given files judged, stored once, reported per line.

The run: hash each file (a file whose content the store already holds adds nothing and changes no
verdict), split the new files' cards into partitions (`partition`), judge them (one in this process, which
also writes the store, the others in worker processes), load the results into the store in one transaction
(`store`), then read the verdicts of every line of every given file back in file and line order.

A QR ride (mobile.md Q12) is judged by its code, not by a card (clearing.qr): ``accepted``, or
``rejected`` with the token of the check of §1.5 its code fails at the ride's time against the root store
(`qr_roots`), and ``qr-replay`` when its code already rode anywhere. Its reasons are counted under
``qr_reasons`` in the summary, beside the card records' ``reasons``.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import hashlib
import math
import multiprocessing
import os
import queue
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keysets import KeySet
from ykt_qr import RootStore

from .judge import BIT, REASONS, reason_names
from .qr import QR_REASONS
from .partition import LINE_BITS, FileJob, ParquetFiles, PartitionJob, PartitionResult, run_partition
from .store import SMALL_MEMORY_LIMIT, RunLoad, Store, StoredFile
from .terminals import TerminalRegistry

__all__ = ["verify", "VerifyRun", "Verdict", "file_format"]

BUCKET_BYTES = 48 << 20       # input bytes per bucket at most: bounds a worker's memory whatever the input size
BUCKETS_PER_WORKER = 8        # at least, where each still holds MIN_BUCKET: the processes share them out
MIN_BUCKET = 4 << 20
CHUNKS_PER_WORKER = 16        # pass 1's chunks of the input, at least MIN_CHUNK each
MIN_CHUNK = 1 << 20
SMALL_INPUT = 4 << 20         # below this, one worker in this process (starting processes costs more)
MALFORMED = BIT["malformed"]


@dataclass(frozen=True)
class Verdict:
    """One line's verdict: ``accepted`` or ``rejected`` with its reasons (card reasons, or for a QR ride, `qr`,
    the tokens of clearing.qr) and, where there is one, the detail."""

    file: str
    line: int
    reasons: tuple[str, ...]
    detail: str | None = None
    qr: bool = False

    @property
    def verdict(self) -> str:
        return "rejected" if self.reasons else "accepted"

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"file": self.file, "line": self.line, "verdict": self.verdict,
                                "reasons": list(self.reasons)}
        if self.qr:
            d["medium"] = "qr"
        if self.detail:
            d["detail"] = self.detail
        return d


@dataclass
class _Input:
    path: Path
    fmt: str
    sha256: str
    size: int
    stored: StoredFile | None = None
    cuts: tuple[tuple[int, int], ...] = ((0, 0),)


@dataclass
class VerifyRun:
    """What a run did and how to read its verdicts back."""

    store: Path | None
    inputs: list[_Input]
    new_files: int
    new_records: int
    workers: int
    rejected: dict[int, int] = field(default_factory=dict)
    malformed: dict[int, str] = field(default_factory=dict)
    no_keyset: dict[str, int] = field(default_factory=dict)
    qr: dict[int, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)

    def verdicts(self) -> Iterator[Verdict]:
        """One verdict per record line of every given file, in the order given (blank lines are no records)."""
        for item in self.inputs:
            base = item.stored.idx << LINE_BITS
            with open(item.path, "rb") as fh:
                for number, line in enumerate(fh, 1):
                    if (item.fmt == "csv" and number == 1) or not line.strip():
                        continue
                    n = base | number
                    detail = self.malformed.get(n)
                    if detail is not None:
                        yield Verdict(str(item.path), number, ("malformed",), detail)
                    elif n in self.qr:
                        reasons, why = self.qr[n]
                        yield Verdict(str(item.path), number, reasons, why, qr=True)
                    else:
                        yield Verdict(str(item.path), number, tuple(reason_names(self.rejected.get(n, 0))))

    def summary(self) -> dict[str, object]:
        """Counts per verdict and per reason over the given files (a file given twice counts twice); QR rides
        are counted in the verdicts and, by their own reasons, under ``qr_reasons``."""
        counts = {name: 0 for name in REASONS}
        qr_counts = {name: 0 for name in QR_REASONS}
        total = rejected = rides = 0
        by_file: dict[int, tuple[int, int, int, dict[str, int], dict[str, int]]] = {}
        for item in self.inputs:
            idx = item.stored.idx
            if idx not in by_file:
                lo, hi = idx << LINE_BITS, (idx + 1) << LINE_BITS
                masks = [m for n, m in self.rejected.items() if lo <= n < hi]
                bad = sum(1 for n in self.malformed if lo <= n < hi)
                per = {name: sum(1 for m in masks if m & BIT[name]) for name in REASONS}
                per["malformed"] += bad
                qr = [reasons for n, (reasons, _) in self.qr.items() if lo <= n < hi]
                qr_per = {name: sum(1 for r in qr if name in r) for name in QR_REASONS}
                by_file[idx] = (item.stored.records, len(masks) + bad + sum(1 for r in qr if r), len(qr), per,
                                qr_per)
            records, rej, qr_rides, per, qr_per = by_file[idx]
            total += records
            rejected += rej
            rides += qr_rides
            for name, count in per.items():
                counts[name] += count
            for name, count in qr_per.items():
                qr_counts[name] += count
        return {"records": total, "verdicts": {"accepted": total - rejected, "rejected": rejected},
                "reasons": counts, "qr_rides": rides, "qr_reasons": {k: v for k, v in qr_counts.items() if v},
                "files": len(self.inputs), "new_files": self.new_files,
                "new_records": self.new_records, "store": str(self.store) if self.store else None}


def file_format(path: Path) -> str:
    """'csv' or 'jsonl': by the file's ending, else by its first character ('{' means JSON Lines)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    with open(path, "rb") as fh:
        head = fh.read(64).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def _sha256(path: Path, cuts: Sequence[int] = ()) -> tuple[str, int, tuple[tuple[int, int], ...]]:
    """The file's SHA-256 and size, and for each offset in `cuts` (ascending) the line feeds before it,
    counted in the same read (numpy lets go of the interpreter while it counts, as hashlib does)."""
    digest, size, feeds, counted = hashlib.sha256(), 0, 0, []
    todo = list(cuts)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
            if todo:
                data = np.frombuffer(chunk, dtype=np.uint8)
                while todo and todo[0] <= size + len(chunk):
                    at = todo.pop(0)
                    counted.append((at, feeds + int(np.count_nonzero(data[:at - size] == 10))))
                feeds += int(np.count_nonzero(data == 10))
            size += len(chunk)
    counted += [(at, feeds) for at in todo]            # (the file shrank since it was listed)
    return digest.hexdigest(), size, tuple(counted)


def _cuts(size: int, target: int) -> list[int]:
    """A file's chunks for pass 1: about `target` bytes each."""
    parts = max(1, -(-size // max(1, target)))
    return [size * k // parts for k in range(parts)]


def _inputs(files: Sequence[Path], workers: int | None = None) -> list[_Input]:
    """Every file checked and hashed, in the order given; the hashes in threads, one per core (hashlib lets
    go of the interpreter while it hashes, so a day's files hash on every core at once). Each file is cut
    into chunks for pass 1, at least `CHUNKS_PER_WORKER` a worker over the whole input, so that the
    processes of a run can share pass 1 out as they go."""
    paths = [Path(p) for p in files]
    for path in paths:
        if not path.is_file():
            raise ValueError(f"FILE: no such clearing file {str(path)!r}")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    sizes = [path.stat().st_size for path in paths]
    target = max(MIN_CHUNK, sum(sizes) // (max(1, workers or cores) * CHUNKS_PER_WORKER))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(cores, len(paths)))) as pool:
        hashes = list(pool.map(_sha256, paths, [_cuts(size, target) for size in sizes]))
    return [_Input(path, file_format(path), sha, size, cuts=cuts) for path, (sha, size, cuts) in zip(paths, hashes)]


def verify(files: Sequence[Path], keysets: Sequence[Path], *, out: Path | None = None,
           terminals: Path | None = None, workers: int | None = None, qr_roots: Path | None = None,
           progress: Callable[[int, int], None] | None = None) -> VerifyRun:
    """Verify clearing files into the store under `out` (a temporary one when None).

    `progress(done_bytes, total_bytes)` is called from time to time while the files are read. `qr_roots`:
    the root store QR rides' certificates are checked against (without it, a QR ride is ``root_unknown``).
    """
    if not keysets:
        raise ValueError("--keyset: at least one key set is needed to check TACs")
    for path in keysets:
        KeySet.load(path)                       # refuse a bad key set before any work, naming the file
    if terminals is not None:
        TerminalRegistry.load(terminals)        # likewise a bad registry
    if qr_roots is not None:
        RootStore.load(qr_roots)                # and a bad root store
    items = _inputs(files, workers)
    scratch_root = None
    if out is None:
        scratch_root = Path(tempfile.mkdtemp(prefix="ykt-clearing-"))
        out = scratch_root
    store = Store(out)
    try:
        store.discard_unfinished()
        known = store.files_by_sha(i.sha256 for i in items)
        new: dict[str, _Input] = {}
        idx = store.next_file_idx()
        for item in items:
            item.stored = known.get(item.sha256)
            if item.stored is None and item.sha256 not in new:
                new[item.sha256] = item
                item.stored = StoredFile(idx, item.sha256, item.path.name, item.fmt, item.size, 0)
                idx += 1
        history = str(store.path) if new and store.has_records() else None
    finally:
        store.close()
    jobs = [FileJob(i.stored.idx, str(i.path), i.fmt, i.cuts) for i in new.values()]
    new_bytes = sum(i.size for i in new.values())
    count = max(1, workers or os.cpu_count() or 1)
    if workers is None and new_bytes < SMALL_INPUT:
        count = 1
    results: list[PartitionResult] = []
    if jobs:
        spill = Path(tempfile.mkdtemp(prefix=".verify-", dir=out))
        try:
            buckets = max(1, math.ceil(new_bytes / count / BUCKET_BYTES),
                          min(BUCKETS_PER_WORKER, new_bytes // count // MIN_BUCKET))
            parts = [PartitionJob(w, count, buckets, tuple(jobs), tuple(str(k) for k in keysets),
                                  str(terminals) if terminals else None, str(spill / f"w{w}"), history,
                                  str(qr_roots) if qr_roots is not None else None)
                     for w in range(count)]
            results = _run_and_load(out, parts, history is None, 2 * new_bytes, progress,
                                    in_process=new_bytes < SMALL_INPUT, new=list(new.values()))
        finally:
            shutil.rmtree(spill, ignore_errors=True)
    by_sha = {i.sha256: i.stored for i in new.values()}
    for item in items:                            # a file given twice shares its stored entry
        item.stored = by_sha.get(item.sha256, item.stored)
    with Store(out, read_only=False) as store:
        rejected, malformed = store.rejections([i.stored.idx for i in items])
        qr = store.qr_verdicts([i.stored.idx for i in items])
    no_keyset: dict[str, int] = {}
    for r in results:
        for label, n in r.no_keyset.items():
            no_keyset[label] = no_keyset.get(label, 0) + n
    run = VerifyRun(out, items, len(new), sum(r.records + r.malformed + r.qr_rides for r in results),
                    count if jobs else 0, rejected, malformed, no_keyset, qr)
    if scratch_root is not None:     # no --out: the verdicts are in memory, the store goes
        shutil.rmtree(scratch_root, ignore_errors=True)
        run.store = None
    return run


def _run_and_load(out: Path, parts: list[PartitionJob], early: bool, total: int,
                  progress: Callable[[int, int], None] | None, *, in_process: bool,
                  new: list[_Input]) -> list[PartitionResult]:
    """Run the partitions and load their output into the store in one transaction.

    A single partition loads itself (`_partition_into_store`). Of several, `early` (the store holds no
    earlier records, so no worker reads it): this process judges partition 0 itself, writing its buckets
    straight into the load like a single partition, and between its buckets loads the Parquet files the
    worker processes have finished (their rows must pass through Parquet: DuckDB has one writer). Else
    every partition runs in a worker, which reads its cards' earlier records from the store, and the load
    waits for all of them. The store is opened only after the workers have started: a process forked
    while DuckDB's threads run could inherit a lock."""
    files = [i.stored for i in new]
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if len(parts) == 1:
        if in_process:
            results = [_partition_into_store(parts[0], out, files, advance)]
        else:    # its own process all the same, so that its memory is returned before the store's last work
            with _Workers(parts, advance, into=(out, files)) as workers:
                results = workers.results()
        _count_records(new, results)
        return results
    store: Store | None = None
    load: RunLoad | None = None
    try:
        with _Workers(parts[1:] if early else parts, advance, parent_partition=early) as workers:
            if early:
                store = Store(out)
                load = store.begin_load()
                workers.on_bucket = lambda path: load.add_records([path])
                results = [run_partition(parts[0], workers.own_progress, workers.exchanged, load,
                                         workers.claims)]
                results += workers.results()
            else:
                results = workers.results()
                store = Store(out)
                load = store.begin_load()
        _count_records(new, results)
        for r in results:
            load.add(r)
        load.finish([i.stored for i in new], results)
    except BaseException:
        if load is not None:
            load.abort()
        raise
    finally:
        if store is not None:
            store.close()
    return results


def _count_records(new: list[_Input], results: Sequence[PartitionResult]) -> None:
    """Each new file's record lines: the sum over the workers' shares of it."""
    for item in new:
        lines = sum(r.lines.get(item.stored.idx, 0) for r in results)
        item.stored = dataclasses.replace(item.stored, records=lines)


def _partition_into_store(job: PartitionJob, out: Path, files: list[StoredFile],
                          progress: Callable[[int], None]) -> PartitionResult:
    """A single partition judged and loaded by one process in one transaction, its buckets written straight
    into the store's open load (no Parquet round trip; measured 2.5 against 3.9 us a record on one core)
    and its earlier records read in the same transaction."""
    with Store(out, memory_limit=SMALL_MEMORY_LIMIT) as store:
        load = store.begin_load()
        try:
            result = run_partition(job, progress, sink=load)
            stored = [dataclasses.replace(f, records=result.lines.get(f.idx, 0)) for f in files]
            load.add(result)
            load.finish(stored, [result])
        except BaseException:
            load.abort()
            raise
    return result


class _SharedClaims:
    """The claims (`partition.Claims`) of every process of a run: the next chunk or bucket nobody has taken.
    A process whose core runs slower (the machine is shared) takes fewer, so all finish together."""

    def __init__(self, ctx, chunks: int, buckets: int) -> None:
        self.chunks, self.buckets = chunks, buckets
        self.next_chunk, self.next_bucket = ctx.Value("q", 0), ctx.Value("q", 0)

    @staticmethod
    def _take(counter, total: int) -> int | None:
        with counter.get_lock():
            n = counter.value
            if n >= total:
                return None
            counter.value = n + 1
        return n

    def chunk(self) -> int | None:
        return self._take(self.next_chunk, self.chunks)

    def bucket(self) -> int | None:
        return self._take(self.next_bucket, self.buckets)


class _Workers:
    """Worker processes, one per partition, and this process's end of their messages: progress, each
    Parquet bucket as it is written (`on_bucket`), the end of pass 1 (``passed``: pass 2 reads what every
    worker spilled, so a worker waits for `go`) and the result. With `parent_partition`, this process judges
    one more partition itself and takes part in the exchange (`exchanged`)."""

    def __init__(self, parts: list[PartitionJob], advance: Callable[[int], None], *,
                 parent_partition: bool = False, into: tuple[Path, list[StoredFile]] | None = None) -> None:
        # fork where there is one and this process runs no other thread (a lock another thread holds at the
        # fork would stay held in the child): a worker starts with the parent's modules instead of importing
        # them again (about 0.7 s of CPU a worker). The store is not open yet (`_run_and_load`).
        forkable = "fork" in multiprocessing.get_all_start_methods() and threading.active_count() == 1
        ctx = multiprocessing.get_context("fork" if forkable else "spawn")
        self.advance = advance
        self.on_bucket: Callable[[str], None] | None = None
        self.messages = ctx.Queue()
        self.go = ctx.Event()
        job = parts[0]
        self.claims = _SharedClaims(ctx, sum(len(f.cuts) for f in job.files), job.workers * (job.buckets - 1))
        self.waiting_for_me = parent_partition
        self.passed: set[int] = set()
        self.done: dict[int, PartitionResult] = {}
        self.procs = {p.worker: ctx.Process(target=_worker, args=(p, self.messages, self.go, os.getpid(), into,
                                                                  parent_partition, self.claims), daemon=True)
                      for p in parts}
        for proc in self.procs.values():
            proc.start()

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, *exc: object) -> None:
        for worker, proc in self.procs.items():
            if proc.is_alive() and worker not in self.done:
                proc.terminate()
            proc.join()

    def own_progress(self, n: int) -> None:
        """This process's own partition's progress; the workers' messages are taken in on the way."""
        self.advance(n)
        self.pump()

    def exchanged(self) -> None:
        """This process's pass 1 is done: wait for the workers' (taking in their messages), then let them
        all go on."""
        self.waiting_for_me = False
        self._release()
        self._wait(self.go.is_set)

    def results(self) -> list[PartitionResult]:
        """Every worker's result, in partition order, once all have finished."""
        self._wait(lambda: len(self.done) == len(self.procs))
        return [self.done[w] for w in sorted(self.done)]

    def pump(self) -> None:
        """Every message waiting now, without waiting for more."""
        while True:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                return
            self._take(*message)

    def _wait(self, until: Callable[[], bool]) -> None:
        while not until():
            try:
                message = self.messages.get(timeout=0.5)
            except queue.Empty:
                dead = [p for w, p in self.procs.items() if not p.is_alive() and w not in self.done]
                if dead and self.messages.empty():
                    raise RuntimeError(f"clearing worker stopped (exit code {dead[0].exitcode})") from None
                continue
            self._take(*message)

    def _take(self, kind: str, worker: int, payload: object) -> None:
        if kind == "progress":
            self.advance(payload)
        elif kind == "passed":
            self.passed.add(worker)
        elif kind == "bucket":
            if self.on_bucket is not None:     # loaded while the workers still run
                self.on_bucket(payload)
        elif kind == "error":
            raise RuntimeError(f"clearing worker {worker}: {payload}")
        else:
            self.done[worker] = payload
        self._release()

    def _release(self) -> None:
        """Say go once every process of the exchange has finished pass 1."""
        if not self.waiting_for_me and len(self.passed) == len(self.procs) and not self.go.is_set():
            self.go.set()


def _worker(job: PartitionJob, messages, go, parent: int, into: tuple[Path, list[StoredFile]] | None,
            announce: bool, claims: _SharedClaims) -> None:
    pending = [0]
    lock = threading.Lock()

    def report(n: int) -> None:
        with lock:
            pending[0] += n
            if pending[0] >= 4 << 20:
                messages.put(("progress", job.worker, pending[0]))
                pending[0] = 0

    def exchanged() -> None:
        messages.put(("passed", job.worker, None))
        while not go.wait(timeout=1.0):
            if os.getppid() != parent:          # the run is gone: nobody will say go
                raise RuntimeError("the verifying process stopped")

    try:
        if into is not None:
            result = _partition_into_store(job, into[0], into[1], report)
        else:
            written = (lambda path: messages.put(("bucket", job.worker, path))) if announce else (lambda path: None)
            result = run_partition(job, report, exchanged, ParquetFiles(Path(job.spill), job.history, written),
                                   claims)
        messages.put(("progress", job.worker, pending[0]))
        messages.put(("done", job.worker, result))
    except BaseException as exc:  # one line back to the parent, never a traceback with data in it
        messages.put(("error", job.worker, f"{type(exc).__name__}: {exc}"))
