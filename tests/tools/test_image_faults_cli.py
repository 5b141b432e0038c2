"""A card whose image cannot be saved changes nothing, from the command line (issue 12, part 1).

Real file systems fail here: a small tmpfs filled to the last byte (ENOSPC) or remounted read-only
(EROFS) under the card image (tests/storage.py; the suite runs as root, where only a read-only mount is
honestly read-only). Two paths:

* in process: `ykt terminal tap|load --card image:…` and `ykt card personalise --reader image:…` (the card
  OS runs inside the command): the outcome line says failed, nothing charged; stderr has one line naming
  the image and the cause; the exit code is the documented one (docs/exit-codes.md);
* through `ykt card serve` and a real pcscd (vpcd): the served card answers 6581 and logs one line naming
  its image and the cause; once the disk works again the next ride is saved, and the image shows that
  one ride only (before, the refused debit reached the disk with the next good save).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import subprocess
from pathlib import Path

import pytest

from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import TEST_KEYSET_DIR
from terminal_sim.export import clearing_entries
from terminal_sim.journal import Journal
from ykt_card.card.image import load_card

from tests.storage import tmpfs
from .cli import ROOT, YKT_ARGS, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
CLOCK = "20261124081000"
FAULTS = ("ENOSPC", "EROFS")
CAUSE = {"ENOSPC": "No space left on device", "EROFS": "Read-only file system"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def failing(fs, fault: str):
    """The file system under the image fails as `fault` says, until the block ends."""
    if fault == "EROFS":
        fs.read_only()
        try:
            yield
        finally:
            fs.read_only(False)
    else:
        filler = fs.fill()
        try:
            yield
        finally:
            filler.unlink()


def issue(card: Path, balance: int = 5000) -> None:
    assert ykt("card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--balance", balance, "--out", card,
               "--clock", "20261124080000").returncode == 0


@pytest.fixture
def psam(tmp_path) -> Path:
    path = tmp_path / "psam.json"
    assert ykt("psam", "issue", "--keyset", K3, "--terminal-id", "440300000001", "--out", path).returncode == 0
    return path


def tap(card_spec: str, psam: Path, db: Path, profile: str, clock: str) -> subprocess.CompletedProcess:
    return ykt("terminal", "tap", "--profile", profile, "--card", card_spec, "--psam", f"image:{psam}",
               "--journal", db, "--json", "--seed", "1", "--clock", clock)


def top_up(card_spec: str, db: Path, clock: str) -> subprocess.CompletedProcess:
    return ykt("terminal", "load", "--card", card_spec, "--keyset", K3, "--amount", "1000", "--terminal-id",
               "440300009001", "--journal", db, "--json", "--clock", clock)


def ride(kind: str, card_spec: str, psam: Path, db: Path, clock: str) -> subprocess.CompletedProcess:
    return top_up(card_spec, db, clock) if kind == "load" else tap(card_spec, psam, db, kind, clock)


AMOUNT = {"bus-flat": -200, "bus-flat-capp": -200, "load": 1000}


def failed_nothing_moved(p: subprocess.CompletedProcess, db: Path) -> None:
    assert p.returncode == 4, p.stderr                      # the transaction did not complete
    out = json.loads(p.stdout)
    assert out["status"] == "failed" and out.get("tac") is None, out
    assert "(6581 memory failure) and undid it; nothing" in out["reason"]
    with Journal(db, readonly=True) as journal:
        assert [e.outcome.status for e in journal.all()] == ["torn", "failed"] and journal.pending() == []
        assert clearing_entries(journal) == []


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", sorted(AMOUNT))
def test_an_image_card_that_cannot_save_changes_nothing(tmp_path, psam, kind, fault):
    db = tmp_path / "j.db"
    with tmpfs(tmp_path / "disk", size="1m") as fs:
        card = fs.point / "card.json"
        issue(card)
        before = digest(card)
        with failing(fs, fault):
            p = ride(kind, f"image:{card}", psam, db, CLOCK)
            assert digest(card) == before
        failed_nothing_moved(p, db)
        assert p.stderr.splitlines() == [f"ykt: error: {card}: cannot save the card image: {CAUSE[fault]}; it "
                                         "answered 6581 and kept its previous state"]
        again = ride(kind, f"image:{card}", psam, db, "20261124081100")
        assert again.returncode == 0 and again.stderr == "", again.stderr
        assert load_card(card).purse.balance == 5000 + AMOUNT[kind]


@pytest.mark.parametrize("fault,code", [("ENOSPC", 1), ("EROFS", 2)])
def test_a_personalisation_that_cannot_save_stops_with_one_line(tmp_path, fault, code):
    script = tmp_path / "script.jsonl"
    issued = tmp_path / "issued.json"
    assert ykt("card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--out", issued, "--script", script,
               "--clock", "20261124080000").returncode == 0
    with tmpfs(tmp_path / "disk", size="1m") as fs:
        blank = fs.point / "blank.json"
        assert ykt("card", "blank", "--keyset", K3, "--profile", "gd-guangzhou", "--out", blank).returncode == 0
        before = digest(blank)
        with failing(fs, fault):
            p = ykt("card", "personalise", "--script", script, "--reader", f"image:{blank}", "--keyset", K3)
            assert digest(blank) == before
        assert p.returncode == code and p.stdout == ""
        assert p.stderr.splitlines() == [f"ykt: error: {blank}: cannot save the card image: {CAUSE[fault]}; it "
                                         "answered 6581 and kept its previous state"]
        assert ykt("card", "personalise", "--script", script, "--reader", f"image:{blank}", "--keyset",
                   K3).returncode == 0


@pytest.mark.parametrize("fault,code,says", [
    ("ENOSPC", 1, "--out: cannot write card.json in folder {folder}: No space left on device"),
    ("EROFS", 2, "card issue: Invalid value for --out: cannot write into folder {folder}: it is on a read-only "
                 "file system")])
def test_card_issue_on_a_failing_disk_names_the_option_and_the_folder(tmp_path, fault, code, says):
    with tmpfs(tmp_path / "disk", size="1m") as fs:
        with failing(fs, fault):
            p = ykt("card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--out", fs.point / "card.json")
        assert p.returncode == code and p.stdout == ""
        assert p.stderr.splitlines() == [f"ykt: error: {says.format(folder=fs.point)}"]
        assert sorted(x.name for x in fs.point.iterdir()) == []


# --- through `ykt card serve` and pcscd -------------------------------------------------------------------

@contextlib.contextmanager
def served(image: Path, pcscd):
    proc = subprocess.Popen([*YKT_ARGS, "card", "serve", str(image), "--vpcd", "localhost:35963", "--seed", "7"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pcscd.wait_card(vpcd_reader_name(0), present=True, timeout=15)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        pcscd.wait_card(vpcd_reader_name(0), present=False, timeout=15)


@pytest.mark.pcsc
@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("kind", sorted(AMOUNT))
def test_a_served_card_that_cannot_save_answers_6581_and_never_saves_the_refused_change(tmp_path, pcscd, psam,
                                                                                         kind, fault):
    db = tmp_path / "j.db"
    reader = f"pcsc:{vpcd_reader_name(0)}"
    with tmpfs(tmp_path / "disk", size="1m") as fs:
        image = fs.point / "card.json"
        issue(image)
        before = digest(image)
        with served(image, pcscd) as proc:
            with failing(fs, fault):
                p = ride(kind, reader, psam, db, CLOCK)
                assert digest(image) == before
            failed_nothing_moved(p, db)
            assert p.stderr == ""                    # the terminal only knows the card answered 6581
            again = ride(kind, reader, psam, db, "20261124081100")
            assert again.returncode == 0, again.stderr
            assert json.loads(again.stdout)["status"] == "approved"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=10) == 0
            log = proc.stderr.read().splitlines()
        state = load_card(image)
        assert state.purse.balance == 5000 + AMOUNT[kind]           # one ride: the refused one never saved
        counter = state.purse.online_counter if kind == "load" else state.purse.offline_counter
        assert counter == 1
        failures = [line for line in log if "6581" in line]
        assert failures == [f"ykt: card {state.card_no}: {image}: cannot save the card image: {CAUSE[fault]}; "
                            "answered 6581 and kept its previous state"]
