"""The journal under storage faults (issue 12, parts 2 and 3).

* Opening refuses, in one line naming the file, whatever is not a sound ykt journal — before a terminal
  sends any card command — and reading (``readonly=True``) never writes, even to a file it refuses.
* A damaged journal (pages overwritten, truncated) is refused and salvaged: every record on a readable
  page is copied exactly into a new journal that exports as the original did.
* A journal that fails during a tap never raises and never loses money: locked by a real second
  connection, a real full tmpfs, a real ext4 forced read-only by the kernel. Before the grey record:
  `failed`, nothing charged, DEBIT never sent. After DEBIT: `torn`, the grey record stands, and the
  card's next tap recovers it.
* A card answering DEBIT or CREDIT with 6581 (its memory failed; it undid the change) is recorded as
  `failed`, nothing charged, by the stage table.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apdu.cardos import CardOS
from apdu.transport.inprocess import InProcessReader
from terminal_sim.export import clearing_entries, export, render
from terminal_sim.flows import load
from terminal_sim.journal import (APPLICATION_ID, READABLE_VERSIONS, SCHEMA_VERSION, TABLES, Journal, JournalError,
                                  JournalStorageError, check_journal)
from terminal_sim.links import TamperingReader, TearingReader
from terminal_sim.salvage import salvage
from terminal_sim.transaction import LOAD_STAGES, PURCHASE_STAGES
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import card_to_doc

from tests.storage import copy_journal, ext4, tmpfs
from tests.terminal_sim.test_flows import SELECT, World, headers, make_world
from tests.terminal_sim.test_load import host
from tests.terminal_sim.test_outcome import make
from tests.terminal_sim.test_recovery import books_balance

ROOT = Path(__file__).resolve().parents[2]
DEBIT_INS, INIT_INS = 0x54, 0x50


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ridden(path: Path, rides: int = 40) -> World:
    """A real journal written by the validator: bus rides, every fifth torn after DEBIT and recovered on
    the next tap, one card flag. Closed cleanly (its WAL checkpointed into the file)."""
    w = make_world(balance=100_000)
    with Journal(path) as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat", card_reader=tear, journal=journal)
        for i in range(rides):
            if i % 5 == 4:
                tear.arm(at_ins=DEBIT_INS, when="after")
            w.clock.advance(60)
            v.tap()
        journal.flag_card("03105810000000009999", "MAC2 failure on the previous tap")
    return w


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pristine") / "journal.db"
    ridden(path)
    return path


def foreign(tmp_path: Path, kind: str) -> Path:
    """A file that is not a ykt journal (or not a usable one)."""
    path = tmp_path / f"{kind}.db"
    if kind == "directory":
        path.mkdir()
        return path
    if kind == "empty file":
        path.write_bytes(b"")
        return path
    if kind == "not sqlite":
        path.write_bytes(b"journal of a bus driver\n" * 50)
        return path
    db = sqlite3.connect(path)
    if kind == "blank sqlite":
        db.execute("PRAGMA user_version=0")
    elif kind == "other app":
        db.execute("CREATE TABLE songs (title TEXT, artist TEXT)")
        db.execute("INSERT INTO songs VALUES ('x', 'y')")
    elif kind == "other app id":
        db.execute(f"PRAGMA application_id={0x47504B47}")          # a GeoPackage ("GPKG")
        db.execute("CREATE TABLE outcomes (id INTEGER PRIMARY KEY)")
    elif kind == "other columns":
        db.execute("CREATE TABLE outcomes (id INTEGER PRIMARY KEY, record TEXT)")
        db.execute("CREATE TABLE card_flags (card_no TEXT, reason TEXT)")
        db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    return path


REFUSALS = {
    "directory": r"is a directory, not a journal",
    "empty file": r"an empty file, not a ykt journal",
    "not sqlite": r"not a ykt journal \(not an SQLite database\)",
    "blank sqlite": r"an empty SQLite database, not a ykt journal",
    "other app": r"not a ykt journal \(an SQLite database with tables songs\)",
    "other app id": r"another application's database \(application_id 0x47504B47\), not a ykt journal",
    "other columns": r"not a ykt journal \(table outcomes has columns id, record\)",
}


# ---------------------------------------------------------------------------------------------------
# Opening: refused in one line, and reading never writes

@pytest.mark.parametrize("kind", list(REFUSALS))
def test_reading_refuses_what_is_not_a_journal_and_writes_nothing(tmp_path, kind):
    path = foreign(tmp_path, kind)
    before = None if path.is_dir() else digest(path)
    listing = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(JournalError) as refused:
        Journal(path, readonly=True)
    message = str(refused.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert re.search(REFUSALS[kind], message), message
    with pytest.raises(JournalError, match=REFUSALS[kind]):
        export(path, "jsonl", tmp_path / "clearing.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == listing          # no -wal, no clearing file
    if before is not None:
        assert digest(path) == before                                      # not a byte changed


@pytest.mark.parametrize("kind", ["directory", "not sqlite", "other app", "other app id", "other columns"])
def test_a_writer_refuses_the_same_files_and_changes_nothing(tmp_path, kind):
    path = foreign(tmp_path, kind)
    before = None if path.is_dir() else digest(path)
    with pytest.raises(JournalError, match=REFUSALS[kind]):
        Journal(path)
    if before is not None:
        assert digest(path) == before
        assert not path.with_name(path.name + "-wal").exists()


@pytest.mark.parametrize("kind", ["missing", "empty file", "blank sqlite"])
def test_a_writer_makes_a_new_journal_of_a_missing_empty_or_blank_file(tmp_path, kind):
    path = tmp_path / "new.db" if kind == "missing" else foreign(tmp_path, kind)
    with Journal(path) as journal:
        journal.append(make())
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    db.close()
    assert check_journal(path).records == 1


def test_a_journal_written_before_the_application_id_opens_read_only_unchanged_and_a_writer_stamps_it(
        tmp_path, pristine):
    legacy = copy_journal(pristine, tmp_path)
    db = sqlite3.connect(legacy)
    db.execute("PRAGMA application_id=0")                  # as every journal written before this change
    db.commit()
    db.close()
    before = digest(legacy)
    out_legacy, out_pristine = tmp_path / "legacy.jsonl", tmp_path / "pristine.jsonl"
    assert export(legacy, "jsonl", out_legacy) == export(pristine, "jsonl", out_pristine) > 0
    assert out_legacy.read_bytes() == out_pristine.read_bytes()           # the export format is unchanged
    assert digest(legacy) == before and check_journal(legacy).to_dict()["application_id"] == "0x00000000"
    with Journal(legacy):
        pass
    assert check_journal(legacy).to_dict()["application_id"] == f"0x{APPLICATION_ID:08X}"


def version_1(pristine: Path, folder: Path, *, app_id: int = 0) -> Path:
    """A copy of `pristine` as the code before the QR table wrote it: schema 1 (no ``qr_seen``), and
    unstamped (application_id 0) unless `app_id` says otherwise. Closed cleanly (no -wal)."""
    path = copy_journal(pristine, folder)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("DROP INDEX qr_seen_account")
    db.execute("DROP TABLE qr_seen")
    db.execute("PRAGMA user_version=1")
    db.execute(f"PRAGMA application_id={app_id}")
    db.execute("VACUUM")
    db.close()
    assert not path.with_name(path.name + "-wal").exists()
    return path


def tables_of(path: Path) -> dict[str, tuple[str, ...]]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE "
                                          "'sqlite_%' ORDER BY name")]
        return {n: tuple(r[1] for r in db.execute(f"PRAGMA table_info({n})")) for n in names}
    finally:
        db.close()


@pytest.mark.parametrize("app_id", [0, APPLICATION_ID])
def test_a_version_1_journal_is_read_as_it_is_and_a_writer_adds_the_qr_table(tmp_path, pristine, app_id):
    """Schema 1 (before the QR table), stamped or not: a reader takes it without writing a byte (its export
    is the same file as before, it remembers no code); a writer brings it to 2 by adding the table and
    stamps it, in one transaction; its records stay exactly as they were."""
    legacy = version_1(pristine, tmp_path, app_id=app_id)
    assert set(tables_of(legacy)) == {"outcomes", "card_flags"}
    before = digest(legacy)
    out_legacy, out_pristine = tmp_path / "legacy.jsonl", tmp_path / "pristine.jsonl"
    assert export(legacy, "jsonl", out_legacy) == export(pristine, "jsonl", out_pristine) > 0
    assert out_legacy.read_bytes() == out_pristine.read_bytes()
    report = check_journal(legacy).to_dict()
    assert (report["schema"], report["qr_codes_seen"]) == (1, 0)
    assert report["application_id"] == ("0x00000000" if app_id == 0 else f"0x{APPLICATION_ID:08X}")
    with Journal(legacy, readonly=True) as reader:
        assert reader.schema == 1 and reader.codes_seen() == []
        assert not reader.code_seen(b"\x01" * 32, 0) and reader.last_accepted("ANY", 0) is None
        entries = [(e.id, e.outcome, e.context, e.resolved_by) for e in reader.all()]
    salvaged = salvage(legacy, tmp_path / "salvaged.db")                # a version-1 source: no code, none lost
    assert (salvaged.copied, salvaged.codes, salvaged.codes_lost) == (len(entries), 0, False)
    assert digest(legacy) == before                                     # not a byte written by reading
    with Journal(legacy) as writer:
        assert writer.schema == SCHEMA_VERSION == 2 and writer.codes_seen() == []
        assert [(e.id, e.outcome, e.context, e.resolved_by) for e in writer.all()] == entries
    assert tables_of(legacy) == tables_of(pristine) == dict(TABLES)
    report = check_journal(legacy).to_dict()
    assert (report["schema"], report["application_id"]) == (2, f"0x{APPLICATION_ID:08X}")
    export(legacy, "jsonl", out_legacy)
    assert out_legacy.read_bytes() == out_pristine.read_bytes()


def test_a_version_1_journal_on_a_read_only_mount_is_exported(tmp_path, pristine):
    legacy = version_1(pristine, tmp_path)
    with tmpfs(tmp_path / "ro") as fs:
        path = fs.point / "journal.db"
        shutil.copyfile(legacy, path)
        fs.read_only()
        out = tmp_path / "clearing.jsonl"
        assert export(path, "jsonl", out) == export(pristine, "jsonl", tmp_path / "ref.jsonl") > 0
        assert out.read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
        assert check_journal(path).schema == 1
        with pytest.raises(JournalError, match=rf"^{path}: cannot write the journal: it is on a read-only file system$"):
            Journal(path)
        assert sorted(p.name for p in fs.point.iterdir()) == ["journal.db"]


def test_a_version_1_file_with_a_foreign_qr_seen_table_is_refused_and_left_alone(tmp_path, pristine):
    legacy = version_1(pristine, tmp_path)
    db = sqlite3.connect(legacy)
    db.execute("CREATE TABLE qr_seen (code TEXT, seen_at TEXT)")
    db.commit()
    db.close()
    before = digest(legacy)
    for readonly in (True, False):
        with pytest.raises(JournalError, match=rf"^{legacy}: not a ykt journal \(table qr_seen has columns code, "
                                               r"seen_at\)$"):
            Journal(legacy, readonly=readonly)
    assert digest(legacy) == before and not legacy.with_name(legacy.name + "-wal").exists()


def test_a_journal_of_a_later_schema_is_refused_naming_the_versions_this_code_reads(tmp_path, pristine):
    later = copy_journal(pristine, tmp_path)
    db = sqlite3.connect(later)
    db.execute("ALTER TABLE outcomes ADD COLUMN medium TEXT")          # what a later version might change
    db.execute("PRAGMA user_version=3")
    db.commit()
    db.close()
    before = digest(later)
    for readonly in (True, False):
        with pytest.raises(JournalError, match=rf"^{later}: journal schema 3, this code reads 1, 2$"):
            Journal(later, readonly=readonly)
    assert digest(later) == before and READABLE_VERSIONS == (1, 2)


def test_check_finds_a_remembered_code_whose_ride_is_missing(tmp_path, pristine):
    path = copy_journal(pristine, tmp_path)
    db = sqlite3.connect(path)
    db.execute("INSERT INTO qr_seen VALUES (?, 'ACC', 1, 2, 1)", ("AB" * 32,))     # record 1: a grey card record
    db.commit()
    with pytest.raises(JournalError, match=rf"^{path}: remembered QR code ABABABABABABABAB… belongs to record 1, "
                                           r"which is a torn card record, not an accepted QR ride; copy its readable"):
        check_journal(path)
    db.execute("UPDATE qr_seen SET record_id = 99999")
    db.commit()
    db.close()
    with pytest.raises(JournalError, match=r"belongs to record 99999, which is missing; copy its readable records"):
        check_journal(path)


def test_reading_a_journal_leaves_its_file_byte_for_byte(tmp_path, pristine):
    """What `mode=ro` proves in a writable folder: the journal file is not written (SQLite may add its
    empty -wal/-shm sidecars, as any reader of a WAL database does)."""
    path = copy_journal(pristine, tmp_path)
    before = digest(path)
    with Journal(path, readonly=True) as journal:
        entries = journal.all()
        with pytest.raises(JournalStorageError, match=r"attempt to write a readonly database"):
            journal.append(make(terminal_seq=99_999))
    assert entries and digest(path) == before
    assert check_journal(path).records == len(entries) and digest(path) == before


# ---------------------------------------------------------------------------------------------------
# Read-only mounts (root ignores chmod: a read-only tmpfs is the honest read-only file here)

def test_a_journal_on_a_read_only_mount_is_read_and_never_opened_for_writing(tmp_path, pristine):
    with tmpfs(tmp_path / "ro") as fs:
        path = fs.point / "journal.db"
        shutil.copyfile(pristine, path)                 # the file alone, as a closed journal leaves it
        fs.read_only()
        out = tmp_path / "clearing.jsonl"
        assert export(path, "jsonl", out) == export(pristine, "jsonl", tmp_path / "ref.jsonl")
        assert out.read_bytes() == (tmp_path / "ref.jsonl").read_bytes()
        assert check_journal(path).records == len(Journal(pristine, readonly=True).all())
        with pytest.raises(JournalError, match=rf"^{path}: cannot write the journal: it is on a read-only file system$"):
            Journal(path)                           # a terminal refuses it before any card command
        assert sorted(p.name for p in fs.point.iterdir()) == ["journal.db"]


KILLED_WRITER = textwrap.dedent("""
    import os, sys
    from terminal_sim.journal import Journal
    from tests.terminal_sim.test_outcome import make
    journal = Journal(sys.argv[1])
    for seq in range(50_000, 50_005):
        journal.append(make(terminal_seq=seq))
    os._exit(0)                          # killed: its last transactions live only in the -wal
""")


def test_a_read_only_mount_with_a_write_ahead_log(tmp_path, pristine):
    """The -wal of a killed writer holds records: with its -shm they are read; without it (a copy that
    left the -shm behind) the journal is refused rather than read without its last transactions."""
    work = tmp_path / "work"
    work.mkdir()
    path = copy_journal(pristine, work)
    subprocess.run([sys.executable, "-c", KILLED_WRITER, str(path)], cwd=ROOT, check=True, timeout=60)
    assert path.with_name("journal.db-wal").stat().st_size > 0
    expected = check_journal(path).records
    with tmpfs(tmp_path / "ro") as fs:
        mounted = copy_journal(path, fs.point)
        fs.read_only()
        with Journal(mounted, readonly=True) as journal:
            assert len(journal.all()) == expected
            assert journal.all()[-1].outcome.terminal_seq == 50_004
        fs.read_only(False)
        mounted.with_name("journal.db-shm").unlink()
        fs.read_only()
        with pytest.raises(JournalError, match=rf"^{mounted}: its write-ahead log journal.db-wal holds "
                                               r"transactions .* without journal.db-shm"):
            Journal(mounted, readonly=True)


# ---------------------------------------------------------------------------------------------------
# Damaged journals: refused, checked, salvaged

def leaves(path: Path) -> list[tuple[int, list[int]]]:
    """(page number, record ids) of the outcomes table's leaf pages, in b-tree order (SQLite's dbstat)."""
    db = sqlite3.connect(path)
    pages = db.execute("SELECT pageno, ncell FROM dbstat WHERE name = 'outcomes' AND pagetype = 'leaf' "
                       "ORDER BY path").fetchall()
    ids = [row[0] for row in db.execute("SELECT id FROM outcomes ORDER BY id")]
    assert db.execute("PRAGMA freelist_count").fetchone()[0] == 0    # no stale copies: exact expectations
    page_size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    assert page_size == 4096 and sum(n for _, n in pages) == len(ids)
    out, at = [], 0
    for pageno, count in pages:
        out.append((pageno, ids[at:at + count]))
        at += count
    return out


def damage(path: Path, kind: str) -> set[int]:
    """Damage the journal file; returns the ids of the records that live on pages the damage destroyed."""
    pages = leaves(path)
    data = bytearray(path.read_bytes())
    rng = random.Random(kind)
    if kind == "leaf overwritten":
        pageno, ids = pages[len(pages) // 2]
        start = (pageno - 1) * 4096
        data[start + 8:start + 4096] = b"\xff" * (4096 - 8)
        lost = set(ids)
    elif kind == "table root garbage":
        root = sqlite3.connect(path).execute("SELECT rootpage FROM sqlite_master WHERE name = 'outcomes'").fetchone()[0]
        data[(root - 1) * 4096:root * 4096] = rng.randbytes(4096)
        lost = set()
    elif kind == "first page zeroed":
        data[100:4096] = bytes(4096 - 100)
        lost = set()
    elif kind == "truncated":
        cut = len(data) * 3 // 5 // 4096
        del data[cut * 4096:]
        lost = {i for pageno, ids in pages if pageno > cut for i in ids}
    elif kind == "three leaves random":
        lost = set()
        for pageno, ids in rng.sample(pages, 3):
            data[(pageno - 1) * 4096:pageno * 4096] = rng.randbytes(4096)
            lost |= set(ids)
    else:
        raise AssertionError(kind)
    path.write_bytes(bytes(data))
    return lost


DAMAGES = ["leaf overwritten", "table root garbage", "first page zeroed", "truncated", "three leaves random"]


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_damaged_journal_is_refused_and_its_readable_records_salvaged(tmp_path, pristine, kind):
    with Journal(pristine, readonly=True) as journal:
        original = {e.id: e for e in journal.all()}
        original_clearing = render((e.outcome for e in clearing_entries(journal)), "jsonl").splitlines()
    path = copy_journal(pristine, tmp_path)
    lost = damage(path, kind)
    for readonly in (False, True):
        with pytest.raises(JournalError) as refused:
            Journal(path, readonly=readonly)
        assert str(refused.value).startswith(f"{path}: ") and "ykt journal salvage" in str(refused.value)
    with pytest.raises(JournalError, match=rf"^{path}: "):
        check_journal(path)
    with pytest.raises(JournalError, match=rf"^{path}: "):
        export(path, "jsonl", tmp_path / "never.jsonl")
    assert not (tmp_path / "never.jsonl").exists()

    report = salvage(path, tmp_path / "salvaged.db")
    assert check_journal(report.out).records == report.copied
    with Journal(report.out, readonly=True) as journal:
        salvaged = {e.id: e for e in journal.all()}
        flags = journal.flags()
    assert set(salvaged) == set(original) - lost                 # every record on a readable page
    reported = {i for first, last in report.missing for i in range(first, last + 1)}
    assert {i for i in lost if i < max(salvaged)} <= reported <= lost
    for ident, entry in salvaged.items():                        # each exactly as it was
        assert (entry.outcome, entry.context) == (original[ident].outcome, original[ident].context)
        if entry.resolved_by != original[ident].resolved_by:
            assert entry.resolved_by is None and original[ident].resolved_by in lost and ident in report.reopened
    assert set(report.reopened) == {i for i, e in salvaged.items() if original[i].resolved_by in lost}
    if not lost:                                                 # nothing lost: the same clearing file
        assert report.missing == () and report.reopened == ()
        export(report.out, "jsonl", tmp_path / "again.jsonl")
        assert (tmp_path / "again.jsonl").read_text().splitlines() == original_clearing
    if not report.flags_lost:
        assert flags == {"03105810000000009999": "MAC2 failure on the previous tap"}
    with Journal(report.out) as journal:                         # a sound journal a terminal can use
        assert journal.append(make(terminal_seq=77_777)) > max(set(salvaged) | reported)


def test_salvage_refuses_what_it_cannot_do(tmp_path, pristine):
    with pytest.raises(JournalError, match=r"no such journal"):
        salvage(tmp_path / "missing.db", tmp_path / "out.db")
    with pytest.raises(JournalError, match=r"not an SQLite database; nothing to salvage"):
        salvage(foreign(tmp_path, "not sqlite"), tmp_path / "out.db")
    (tmp_path / "taken.db").write_text("mine")
    with pytest.raises(JournalError, match=r"taken.db: already exists"):
        salvage(pristine, tmp_path / "taken.db")
    assert (tmp_path / "taken.db").read_text() == "mine"
    with pytest.raises(JournalError, match=r"no readable record"):
        salvage(foreign(tmp_path, "other app"), tmp_path / "out.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not sqlite.db", "other app.db", "taken.db"]


# ---------------------------------------------------------------------------------------------------
# A journal that fails during a tap

class Hook(TamperingReader):
    """Runs `action` once, right after the card answered the command with instruction `ins`."""

    def __init__(self, inner, ins: int, action) -> None:
        def run(rapdu: bytes) -> bytes:
            action()
            return rapdu
        super().__init__(inner, ins, run)


class Locker:
    """A real second connection to the journal that takes (and releases) SQLite's write lock."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None, timeout=0)

    def lock(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        self.db.execute("ROLLBACK")
        self.db.close()


def test_a_journal_locked_at_opening_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "j.db"
    Journal(path).close()
    other = Locker(path)
    other.lock()
    try:
        with pytest.raises(JournalError, match=rf"^{path}: not a usable journal: database is locked$"):
            Journal(path, timeout=0.1)
        with Journal(path, readonly=True) as reader:             # readers are never blocked by a writer
            assert reader.all() == []
    finally:
        other.release()


def fault_before_the_grey_record(w: World, journal: Journal, action) -> str:
    """Run a bus tap whose journal fails (action) right after INITIALIZE: nothing may be charged."""
    v = w.validator("bus-flat", card_reader=Hook(w.card_reader, INIT_INS, action), journal=journal)
    out = v.tap()
    assert out.status == "failed" and "nothing charged" in out.reason, out
    assert out.reason.startswith(f"journal failed: {journal.path}: append: ")
    assert ("card", "80540100") not in headers(w.log)             # DEBIT never left
    assert (w.balance, w.counter) == (5000, 0)
    return out.reason


def fault_after_debit(w: World, journal: Journal, action) -> str:
    """Run a bus tap whose journal fails (action) right after the card answered DEBIT."""
    v = w.validator("bus-flat", card_reader=Hook(w.card_reader, DEBIT_INS, action), journal=journal)
    out = v.tap()
    assert out.status == "torn" and out.tac is None, out
    assert f"journal failed: {journal.path}: resolve record 1: " in out.reason
    assert "the grey record stands and is recovered on the card's next tap" in out.reason
    assert (w.balance, w.counter) == (4800, 1)                     # the card was debited
    return out.reason


def recovered_on_the_next_tap(w: World, path: Path) -> None:
    with Journal(path) as journal:
        assert [e.outcome.status for e in journal.pending()] == ["torn"]
        v = w.validator("bus-flat", journal=journal)
        w.clock.advance(20)
        out = v.tap()
        assert headers(w.log)[:len(SELECT) + 1] == [*SELECT, ("card", "805A0006")]
        assert out.status == "recovered" and out.amount == 200 and out.balance_after == 4800
        books_balance(journal, w, 1)
        assert len(export_lines(journal)) == 1


def export_lines(journal: Journal) -> list[str]:
    return render((e.outcome for e in clearing_entries(journal)), "jsonl").splitlines()


def test_locked_by_another_writer_before_the_grey_record_nothing_is_charged(tmp_path):
    w = make_world()
    path = tmp_path / "j.db"
    with Journal(path, timeout=0.2) as journal:
        other = Locker(path)
        assert fault_before_the_grey_record(w, journal, other.lock).endswith(
            "append: database is locked; nothing charged")
        other.release()
        assert len(journal) == 0                                   # this tap left no record
        assert journal.pending() == []
        out = w.validator("bus-flat", journal=journal).tap()       # the journal works again
        assert out.status == "approved" and w.balance == 4800


def test_locked_by_another_writer_after_debit_the_grey_record_stands_and_is_recovered(tmp_path):
    w = make_world()
    path = tmp_path / "j.db"
    with Journal(path, timeout=0.2) as journal:
        other = Locker(path)
        assert "resolve record 1: database is locked after the money command" in \
            fault_after_debit(w, journal, other.lock)
        other.release()
    recovered_on_the_next_tap(w, path)


def test_a_full_disk_before_the_grey_record_and_after_debit(tmp_path):
    with tmpfs(tmp_path / "small", size="1m") as fs:
        path = fs.point / "j.db"
        w = make_world()
        filler: list[Path] = []
        with Journal(path) as journal:
            assert "database or disk is full" in fault_before_the_grey_record(
                w, journal, lambda: filler.append(fs.fill()))
            filler.pop().unlink()
        w2 = make_world()
        with Journal(path) as journal:
            assert "database or disk is full" in fault_after_debit(w2, journal, lambda: filler.append(fs.fill()))
        filler.pop().unlink()
        recovered_on_the_next_tap(w2, path)


def test_a_file_system_forced_read_only_under_the_terminal(tmp_path):
    """The kernel remounts the journal's ext4 read-only (errors=remount-ro) while the terminal holds it
    open: before the grey record nothing is charged; after DEBIT the committed grey record is on disk,
    and the card's next tap (the journal moved to a writable disk) recovers it."""
    w = make_world()
    with ext4(tmp_path / "ro1") as fs:
        with Journal(fs.point / "j.db") as journal:
            assert "disk I/O error" in fault_before_the_grey_record(w, journal, fs.fail_read_only)
    w = make_world()
    rescued = tmp_path / "rescued"
    rescued.mkdir()
    with ext4(tmp_path / "ro2") as fs:
        path = fs.point / "j.db"
        with Journal(path) as journal:
            assert "disk I/O error" in fault_after_debit(w, journal, fs.fail_read_only)
        copy_journal(path, rescued)
    recovered_on_the_next_tap(w, rescued / "j.db")


# ---------------------------------------------------------------------------------------------------
# 6581: the card could not save its change and undid it

class MemoryFailingCard(CardOS):
    """A real TUnionCardOS whose answer to DEBIT (or CREDIT FOR LOAD) becomes 6581 memory failure.

    The wrapper sends the card the command with its MAC spoiled, so the real card refuses it (9302)
    without changing anything; only after checking that the card's state is exactly what it was does it
    answer 6581 — the guarantee a card answering 6581 gives (another branch makes the card do this when
    its image cannot be saved).
    """

    def __init__(self, inner: TUnionCardOS, ins: int) -> None:
        self.inner, self.ins, self.fired = inner, ins, 0

    def power_on(self) -> bytes:
        return self.inner.power_on()

    def power_off(self) -> None:
        self.inner.power_off()

    def process(self, capdu: bytes) -> bytes:
        if len(capdu) < 6 or capdu[1] != self.ins:
            return self.inner.process(capdu)
        before = card_to_doc(self.inner.state)
        last = 5 + capdu[4] - 1                                   # the last byte of the data: the MAC's
        spoiled = capdu[:last] + bytes((capdu[last] ^ 0xFF,)) + capdu[last + 1:]
        answer = self.inner.process(spoiled)
        assert answer[-2:] == b"\x93\x02" and card_to_doc(self.inner.state) == before
        self.fired += 1
        return b"\x65\x81"


def test_the_stage_table_says_what_6581_means_at_debit_and_credit():
    assert PURCHASE_STAGES["debit"].memory_status == "failed" and LOAD_STAGES["credit"].memory_status == "failed"
    assert PURCHASE_STAGES["debit"].memory_reason.format(sw="6581 memory failure") == \
        "the card could not save DEBIT (6581 memory failure) and undid it; nothing charged"
    assert LOAD_STAGES["credit"].memory_reason.format(sw="6581 memory failure") == \
        "the card could not save CREDIT FOR LOAD (6581 memory failure) and undid it; nothing loaded"


def test_a_card_answering_debit_with_6581_is_failed_nothing_charged(tmp_path):
    w = make_world()
    card = MemoryFailingCard(w.card_os, DEBIT_INS)
    w.card_slot.remove()
    w.card_slot.insert(card)
    before = card_to_doc(w.state)
    with Journal(tmp_path / "j.db") as journal:
        v = w.validator("bus-flat", journal=journal)
        out = v.tap()
        assert card.fired == 1
        assert (out.status, out.tac, out.balance_after) == ("failed", None, None)
        assert out.reason == "the card could not save DEBIT (6581 memory failure) and undid it; nothing charged"
        assert card_to_doc(w.state) == before and (w.balance, w.counter) == (5000, 0)
        records = journal.all()
        assert [(e.outcome.status, e.resolved_by) for e in records] == [("torn", 2), ("failed", None)]
        assert records[1].outcome == out and journal.pending() == []
        assert export_lines(journal) == []                        # nothing for clearing: nothing moved
        w.card_slot.remove()
        w.card_slot.insert(w.card_os)
        w.clock.advance(30)
        again = v.tap()                                           # the card itself is fine: a new ride
        assert again.status == "approved" and w.balance == 4800 and again.terminal_seq == out.terminal_seq + 1


def test_a_card_answering_credit_with_6581_is_failed_nothing_loaded(tmp_path):
    w = make_world()
    card = MemoryFailingCard(w.card_os, 0x52)
    before = card_to_doc(w.state)
    with Journal(tmp_path / "j.db") as journal:
        out = load(InProcessReader(card, "card"), host(), 1000, bytes.fromhex("000000012345"), journal=journal,
                   clock=w.clock)
        assert card.fired == 1 and out.status == "failed" and out.tac is None
        assert out.reason == ("the card could not save CREDIT FOR LOAD (6581 memory failure) and undid it; "
                              "nothing loaded")
        assert card_to_doc(w.state) == before
        assert journal.pending() == [] and [e.outcome.status for e in journal.all()] == ["torn", "failed"]
        assert json.loads(out.to_json())["status"] == "failed"


def test_a_6581_the_journal_cannot_settle_is_failed_and_voided_on_the_next_tap(tmp_path):
    """The card undid the debit (6581) but the journal is locked when the terminal settles the grey
    record: the outcome is `failed`, nothing charged; the grey record stays pending and the next tap's
    INITIALIZE (counter unchanged) voids it before the new ride."""
    w = make_world()
    card = MemoryFailingCard(w.card_os, DEBIT_INS)
    w.card_slot.remove()
    w.card_slot.insert(card)
    path = tmp_path / "j.db"
    with Journal(path, timeout=0.2) as journal:
        other = Locker(path)
        v = w.validator("bus-flat", card_reader=Hook(w.card_reader, DEBIT_INS, other.lock), journal=journal)
        out = v.tap()
        other.release()
        assert (out.status, out.tac) == ("failed", None) and (w.balance, w.counter) == (5000, 0)
        assert out.reason.startswith("the card could not save DEBIT (6581 memory failure) and undid it; nothing "
                                     f"charged; journal failed: {path}: resolve record 1: database is locked")
        assert [e.id for e in journal.pending()] == [1]
        w.card_slot.remove()
        w.card_slot.insert(w.card_os)
        w.clock.advance(20)
        again = w.validator("bus-flat", journal=journal).tap()
        assert again.status == "approved" and (w.balance, w.counter) == (4800, 1)
        assert journal.pending() == [] and journal.get(journal.get(1).resolved_by).outcome.status == "failed"


def test_a_load_whose_journal_fails_after_credit_is_torn_and_recovered_on_the_next_load(tmp_path):
    w = make_world()
    path = tmp_path / "j.db"
    with Journal(path, timeout=0.2) as journal:
        other = Locker(path)
        reader = Hook(w.card_reader, 0x52, other.lock)
        out = load(reader, host(), 1000, bytes.fromhex("000000012345"), journal=journal, clock=w.clock)
        other.release()
        assert out.status == "torn" and "database is locked" in out.reason and w.balance == 6000
        assert [e.outcome.status for e in journal.pending()] == ["torn"]
        w.clock.advance(20)
        back = load(w.card_reader, host(), 1000, bytes.fromhex("000000012345"), journal=journal, clock=w.clock)
        assert back.status == "recovered" and w.balance == 6000 and journal.pending() == []
