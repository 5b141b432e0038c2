"""`ykt journal check|export|salvage` and `ykt terminal tap --journal` on journals that are foreign,
damaged or on a read-only mount: one line naming the file, exit 2, nothing written, never a charge."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
from pathlib import Path

import pytest

from keysets import TEST_KEYSET_DIR
from terminal_sim.journal import Journal

from tests.storage import tmpfs
from tests.terminal_sim.test_journal_faults import REFUSALS, damage, foreign, ridden

from .cli import one_line_error, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def journal_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("journal") / "journal.db"
    ridden(path, rides=30)
    return path


@pytest.fixture
def parts(tmp_path):
    card, psam = tmp_path / "card.json", tmp_path / "psam.json"
    assert ykt("card", "issue", "--keyset", K3, "--balance", "5000", "--out", card,
               "--clock", "20261124080000").returncode == 0
    assert ykt("psam", "issue", "--keyset", K3, "--terminal-id", "440300000001", "--out", psam).returncode == 0
    return card, psam


def tap(card: Path, psam: Path, journal: Path, trace: Path):
    return ykt("terminal", "tap", "--profile", "bus-flat", "--card", f"image:{card}", "--psam", f"image:{psam}",
               "--journal", journal, "--trace", trace, "--clock", "20261124081000", "--json")


def test_check_reports_a_sound_journal(journal_db):
    p = ykt("journal", "check", journal_db)
    assert p.returncode == 0 and p.stderr == ""
    assert p.stdout.startswith(f"{journal_db}: sound ykt journal, schema 2: ") and "1 pending grey record(s)" in p.stdout
    report = json.loads(ykt("journal", "check", journal_db, "--json").stdout)
    with Journal(journal_db, readonly=True) as journal:
        entries = journal.all()
    assert report["records"] == len(entries) and report["flags"] == 1 and report["sound"] is True
    assert report["by_status"] == {s: sum(e.outcome.status == s for e in entries) for s in ("approved", "recovered",
                                                                                           "torn")}
    assert report["application_id"] == "0x594B544A" and report["pending"] == [entries[-1].id]


@pytest.mark.parametrize("kind", list(REFUSALS))
def test_check_and_export_refuse_what_is_not_a_journal_and_write_nothing(tmp_path, kind):
    path = foreign(tmp_path, kind)
    before = None if path.is_dir() else digest(path)
    for args in (["check", path], ["export", path, "--out", tmp_path / "clearing.jsonl"]):
        p = ykt("journal", *args)
        line = one_line_error(p)
        assert p.returncode == 2 and line.startswith(f"ykt: error: {path}: "), line
        assert "Error" not in line.split(":")[2]                  # a reason, not an exception class name
    assert not (tmp_path / "clearing.jsonl").exists()
    if before is not None:
        assert digest(path) == before
        assert not path.with_name(path.name + "-wal").exists()


def test_a_blank_sqlite_file_in_a_read_only_folder_stays_what_it_was(tmp_path):
    """What chmod proves here: nothing. Root ignores permission bits, so this file *could* be written; it
    stays byte for byte (no tables, no user_version, no WAL) because export opens it mode=ro and refuses it."""
    folder = tmp_path / "locked"
    folder.mkdir()
    path = foreign(folder, "blank sqlite")
    before = digest(path)
    os.chmod(path, 0o444)
    os.chmod(folder, 0o555)
    try:
        line = one_line_error(ykt("journal", "export", path, "--out", tmp_path / "x.jsonl"))
        assert line == f"ykt: error: {path}: an empty SQLite database, not a ykt journal"
        assert digest(path) == before and sorted(os.listdir(folder)) == [path.name]
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        assert [db.execute(f"PRAGMA {p}").fetchone()[0] for p in ("user_version", "journal_mode")] == [0, "delete"]
        db.close()
    finally:
        os.chmod(folder, 0o755)


def test_a_journal_on_a_read_only_mount_exports_and_a_terminal_refuses_it_before_any_card_command(
        tmp_path, journal_db, parts):
    card, psam = parts
    reference = tmp_path / "reference.csv"
    assert ykt("journal", "export", journal_db, "--format", "csv", "--out", reference).returncode == 0
    with tmpfs(tmp_path / "ro") as fs:
        path = fs.point / "journal.db"
        shutil.copyfile(journal_db, path)
        before = digest(path)
        fs.read_only()
        out = tmp_path / "clearing.csv"
        p = ykt("journal", "export", path, "--format", "csv", "--out", out)
        assert p.returncode == 0, p.stderr
        assert out.read_bytes() == reference.read_bytes()
        assert ykt("journal", "check", path).returncode == 0
        card_before, trace = digest(card), tmp_path / "trace.jsonl"
        refused = tap(card, psam, path, trace)
        assert one_line_error(refused) == (f"ykt: error: {path}: cannot write the journal: it is on a read-only "
                                           "file system") and refused.returncode == 2
        assert digest(card) == card_before and not trace.exists()    # not one APDU was sent
        assert digest(path) == before and sorted(os.listdir(fs.point)) == ["journal.db"]


def test_a_damaged_journal_is_never_charged_into_and_salvage_recovers_it(tmp_path, journal_db, parts):
    card, psam = parts
    path = tmp_path / "journal.db"
    shutil.copyfile(journal_db, path)
    lost = damage(path, "leaf overwritten")
    assert lost
    card_before, trace = digest(card), tmp_path / "trace.jsonl"
    refused = tap(card, psam, path, trace)
    line = one_line_error(refused)
    assert refused.returncode == 2 and line.startswith(f"ykt: error: {path}: ") and "ykt journal salvage" in line
    assert digest(card) == card_before and not trace.exists()
    for args in (["check", path], ["export", path, "--out", tmp_path / "x.jsonl"]):
        assert "ykt journal salvage" in one_line_error(ykt("journal", *args))

    new = tmp_path / "salvaged.db"
    p = ykt("journal", "salvage", path, "--out", new, "--json")
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    with Journal(journal_db, readonly=True) as journal:
        total = len(journal)
    assert report["missing_count"] == len(lost) and report["copied"] == total - len(lost)
    text = ykt("journal", "salvage", path, "--out", tmp_path / "again.db")
    assert text.returncode == 0 and text.stdout.startswith(f"salvaged {report['copied']} records from {path}")
    assert "unreadable ids: " in text.stdout
    assert ykt("journal", "check", new).returncode == 0
    out = tmp_path / "clearing.jsonl"
    assert ykt("journal", "export", new, "--out", out).returncode == 0 and out.read_text()
    approved = tap(card, psam, new, trace)                     # a terminal can charge into it
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved"
    assert "already exists" in one_line_error(ykt("journal", "salvage", path, "--out", new))
