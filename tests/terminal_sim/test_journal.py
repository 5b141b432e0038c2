"""Journal: WAL durability, idempotent appends, grey records and their atomic resolution, card flags,
and a journal that opens cleanly after its writer was killed mid-stream (several times)."""
from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from terminal_sim.journal import (SCHEMA_VERSION, CodeAlreadySeen, Journal, JournalError, MemoryJournal, SeenCode,
                                  dedup_key)
from terminal_sim.outcome import Outcome
from tests.terminal_sim.test_outcome import make, torn

ROOT = Path(__file__).resolve().parents[2]
CONTEXT = {"serial8": "5810000000001234", "counter": 7, "amount": 200, "psam_seq": 0x102, "mac1": "97B476E2",
           "datetime": "20261123081530", "type": "09", "ef1a": "27017D01", "ef1e": "03000011"}


@pytest.fixture
def journal(tmp_path):
    with Journal(tmp_path / "journal.db") as j:
        yield j


def test_durability_settings(journal, tmp_path):
    assert journal.pragmas() == {"journal_mode": "wal", "synchronous": "full"}
    other = sqlite3.connect(tmp_path / "journal.db")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"   # persistent in the file
    other.close()


def test_append_and_read_back_in_order(journal):
    first = journal.append(make(terminal_seq=1))
    second = journal.append(make(terminal_seq=2, amount=100, balance_after=900))
    assert second > first
    assert [e.outcome.terminal_seq for e in journal.all()] == [1, 2]
    assert [e.id for e in journal.since(first)] == [second]
    assert journal.since(second) == []
    assert journal.get(first).outcome == make(terminal_seq=1) and len(journal) == 2
    with pytest.raises(JournalError, match=r"^record 99: no such record$"):
        journal.get(99)


def test_the_same_transaction_appended_twice_is_stored_once(journal):
    outcome = make()
    first = journal.append(outcome)
    assert journal.append(outcome) == first
    assert journal.append(make()) == first                      # an equal outcome built anew
    assert len(journal) == 1


def test_the_same_key_with_other_contents_is_a_conflict(journal):
    journal.append(make())
    with pytest.raises(JournalError, match=r"already journaled as record 1 with different contents"):
        journal.append(make(datetime="20261123081531"))
    assert len(journal) == 1


def test_the_key_is_terminal_seq_card_status(journal):
    assert dedup_key(make()) == "112233445566:258:03105810000000001234:approved"
    # same PSAM sequence, another status: a different record (a torn attempt, then its recovery)
    journal.append(torn(), CONTEXT)
    journal.append(make(status="recovered", mac2_verified=False))
    assert len(journal) == 2
    # the UNIQUE constraint itself, below the code's own check
    with pytest.raises(sqlite3.IntegrityError):
        journal._db.execute("INSERT INTO outcomes (dedup_key, status, terminal_id, record) "
                            "VALUES (?, 'approved', '112233445566', '{}')", (dedup_key(make()) + "x",))
        journal._db.execute("INSERT INTO outcomes (dedup_key, status, terminal_id, record) "
                            "VALUES (?, 'approved', '112233445566', '{}')", (dedup_key(make()) + "x",))


def test_declined_outcomes_without_a_sequence_are_keyed_by_content(journal):
    declined = make(status="declined", reason="black list", tac=None, mac2_verified=None, terminal_seq=None,
                    balance_after=None)
    a = journal.append(declined)
    assert journal.append(declined) == a
    b = journal.append(make(status="declined", reason="black list", tac=None, mac2_verified=None,
                            terminal_seq=None, balance_after=None, datetime="20261123081600"))
    assert b != a and dedup_key(declined).startswith("sha256:")


def test_torn_records_need_their_context_and_stay_pending(journal):
    with pytest.raises(ValueError, match=r"^context: a torn outcome needs its recovery context$"):
        journal.append(torn())
    with pytest.raises(ValueError, match=r"^context: not JSON-serialisable"):
        journal.append(torn(), {"raw": b"\x00"})
    assert len(journal) == 0
    grey = journal.append(torn(), CONTEXT)
    journal.append(torn(seq=0x200, card_no="03105810000000005678"), CONTEXT)
    pending = journal.pending_for("03105810000000001234")
    assert [e.id for e in pending] == [grey]
    assert pending[0].context == CONTEXT and pending[0].pending and pending[0].resolved_by is None
    assert len(journal.pending()) == 2
    assert journal.pending_for("03105810000000009999") == []


def test_resolve_appends_and_settles_in_one_step(journal):
    grey = journal.append(torn(), CONTEXT)
    recovered = make(status="recovered", mac2_verified=False)
    new = journal.resolve(grey, recovered)
    assert journal.pending_for(recovered.card_no) == []
    assert journal.get(grey).resolved_by == new and not journal.get(grey).pending
    assert journal.get(new).outcome == recovered
    assert journal.resolve(grey, recovered) == new              # repeating is harmless
    assert len(journal) == 2


def test_resolve_by_a_rerun(journal):
    grey = journal.append(torn(), CONTEXT)
    rerun = make(terminal_seq=0x103)                             # a new 8070, a new sequence
    new = journal.resolve(grey, rerun)
    assert journal.get(grey).resolved_by == new and journal.get(new).outcome.terminal_seq == 0x103


@pytest.mark.parametrize("case", ["unknown", "not-torn", "other-card", "settled", "conflict", "bad-outcome"])
def test_a_refused_resolution_changes_nothing(journal, case):
    grey = journal.append(torn(), CONTEXT)
    approved = journal.append(make(terminal_seq=0x300))
    target, outcome, context, message = grey, make(status="recovered"), None, None
    if case == "unknown":
        target, message = 42, r"^record 42: no such record$"
    elif case == "not-torn":
        target, message = approved, r"is approved, not a torn record"
    elif case == "other-card":
        outcome, message = make(status="recovered", card_no="03105810000000005678"), r"belongs to card"
    elif case == "settled":
        journal.resolve(grey, make(status="recovered"))
        outcome, message = make(terminal_seq=0x104), r"already resolved by record 3$"
    elif case == "conflict":
        journal.append(make(terminal_seq=0x300, status="recovered"))       # appended outside resolve
        outcome = make(terminal_seq=0x300, status="recovered", datetime="20261123090000")
        message = r"different contents"
    elif case == "bad-outcome":
        outcome, message = torn(seq=0x105), None                          # torn without context
    before = [(e.id, e.outcome, e.resolved_by) for e in journal.all()]
    with pytest.raises((JournalError, ValueError), match=message):
        journal.resolve(target, outcome, context)
    assert [(e.id, e.outcome, e.resolved_by) for e in journal.all()] == before


def test_one_record_settles_one_grey_record(journal):
    a = journal.append(torn(), CONTEXT)
    b = journal.append(torn(seq=0x103), CONTEXT)
    settle = make(status="recovered")
    journal.resolve(a, settle)
    with pytest.raises(JournalError, match=r"already settles record 1$"):
        journal.resolve(b, settle)
    assert journal.get(b).pending


def test_card_flags(journal):
    card = "03105810000000001234"
    assert journal.take_flag(card) is None
    journal.flag_card(card, "MAC2 refused")
    journal.flag_card(card, "MAC2 refused twice")
    assert journal.take_flag(card) == "MAC2 refused twice"
    assert journal.take_flag(card) is None
    with pytest.raises(ValueError, match=r"^card_no: "):
        journal.flag_card("1234", "x")
    with pytest.raises(ValueError, match=r"^reason: "):
        journal.flag_card(card, " ")


def test_records_and_flags_survive_reopening(tmp_path):
    path = tmp_path / "j.db"
    with Journal(path) as j:
        grey = j.append(torn(), CONTEXT)
        j.flag_card("03105810000000001234", "MAC2 refused")
    with Journal(path) as j:
        assert j.pending_for("03105810000000001234")[0].id == grey
        assert j.take_flag("03105810000000001234") == "MAC2 refused"
        assert j.integrity() == "ok"


def test_not_a_journal(tmp_path):
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(JournalError, match=r"bad.db: not a ykt journal \(not an SQLite database\)$"):
        Journal(bad)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("PRAGMA user_version=7")
    con.close()
    with pytest.raises(JournalError, match=r"other.db: not a ykt journal \(an SQLite database with no tables\)$"):
        Journal(other)
    newer = tmp_path / "newer.db"
    with Journal(newer):
        pass
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version=7")
    con.close()
    with pytest.raises(JournalError, match=r"newer.db: journal schema 7, this code reads 1, 2$"):
        Journal(newer)


# ---------------------------------------------------------------------------------------------------
# Kill the writer at arbitrary moments: the journal must open, pass the integrity check, hold every
# record the writer reported as committed, hold no duplicates, and no half-done resolution.

WRITER = textwrap.dedent("""
    import sys
    from terminal_sim.journal import Journal
    from tests.terminal_sim.test_outcome import make, torn

    path, start = sys.argv[1], int(sys.argv[2])
    context = {"counter": 7, "amount": 200}
    with Journal(path) as journal:
        seq = start
        while True:
            if seq % 3 == 0:   # a torn purchase, settled by its recovery under the same PSAM sequence
                grey = journal.append(torn(seq=seq), {**context, "psam_seq": seq})
                journal.resolve(grey, make(status="recovered", terminal_seq=seq, mac2_verified=False))
            else:
                journal.append(make(terminal_seq=seq))
            print(seq, flush=True)
            seq += 1
""")


def test_the_journal_survives_its_writer_being_killed(tmp_path):
    path = tmp_path / "killed.db"
    rng = random.Random(20261123)
    reported: set[int] = set()
    start = 1
    for _round in range(10):
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(start)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            wanted = rng.randint(5, 60)
            for _ in range(wanted):
                line = child.stdout.readline()
                assert line, f"writer stopped early: {child.stderr.read()}"
                reported.add(int(line))
            # let the writer run on for a random moment, so the kill lands anywhere in its loop
            time.sleep(rng.uniform(0, 0.02))
            child.send_signal(signal.SIGKILL)
            child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            child.stdout.close()
            child.stderr.close()
        assert child.returncode == -signal.SIGKILL
        # restart a few sequences back: the writer re-appends records the journal already holds
        start = max(reported) - rng.randint(0, 4)

        with Journal(path) as journal:
            assert journal.integrity() == "ok"
            entries = journal.all()
        seqs = [(e.outcome.terminal_seq, e.outcome.status) for e in entries]
        assert len(seqs) == len(set(seqs)), "duplicate records"
        held = {seq for seq, _ in seqs}
        assert reported <= held, f"committed records lost: {sorted(reported - held)}"
        assert held == set(range(1, max(held) + 1)), "a gap in the sequence"
        by_id = {e.id: e for e in entries}
        for e in entries:
            if e.outcome.status == "recovered":   # never a recovery without its settled grey record
                settled = [t for t in entries if t.resolved_by == e.id]
                assert len(settled) == 1 and settled[0].outcome.terminal_seq == e.outcome.terminal_seq
            if e.outcome.status == "torn" and e.resolved_by is not None:
                assert by_id[e.resolved_by].outcome.status == "recovered"
        # at most the very last torn record (killed between its append and its resolution) is pending
        pending = [e for e in entries if e.pending]
        assert all(e.outcome.terminal_seq == max(held) for e in pending)
    assert len(reported) >= 10 * 5


def test_resolve_and_flag_commit_together(tmp_path):
    """A MAC2 failure settles the grey record and flags the card in one transaction."""
    with Journal(tmp_path / "j.db") as j:
        grey = torn()
        torn_id = j.append(grey, context={"counter": 1})
        failed = make(status="failed", reason="MAC2 wrong", card_no=grey.card_no, terminal_seq=grey.terminal_seq,
                      mac2_verified=False)
        j.resolve(torn_id, failed, flag="MAC2 failure")
        assert j.take_flag(grey.card_no) == "MAC2 failure"
        assert j.pending_for(grey.card_no) == []
        other = j.append(torn(seq=99, card_no="0" * 19 + "9"), context={"counter": 2})
        with pytest.raises(JournalError):
            j.resolve(other, failed, flag="never written")  # another card's outcome: refused whole
        assert j.take_flag(grey.card_no) is None


# ---------------------------------------------------------------------------------------------------
# QR codes seen (schema 2): written with their ride, read by the replay and anti-pass-back checks

V1_SCHEMA = """
CREATE TABLE outcomes (id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
    card_no TEXT, terminal_id TEXT NOT NULL, terminal_seq INTEGER, record TEXT NOT NULL, context TEXT,
    resolved_by INTEGER REFERENCES outcomes(id), CHECK (resolved_by IS NULL OR status = 'torn'));
CREATE TABLE card_flags (card_no TEXT PRIMARY KEY, reason TEXT NOT NULL);
"""


def ride_record(n: int = 1) -> Outcome:
    return Outcome(status="approved", amount=200, terminal_id="112233445566", datetime="20261124080010",
                   medium="qr", qr_code=f"{n:02X}" * 332, account_no="9001000000000000001F",
                   pay_account="TEST000000000001", qr_issuer="F0000001", qr_platform="F0000002",
                   qr_gen_time=1795478400, ticket_type="01")


def test_a_version_1_journal_gains_the_qr_table_and_keeps_its_records(tmp_path):
    path = tmp_path / "v1.db"
    con = sqlite3.connect(path)
    con.executescript(V1_SCHEMA)
    con.execute("INSERT INTO outcomes (dedup_key, status, card_no, terminal_id, terminal_seq, record) "
                "VALUES (?, ?, ?, ?, ?, ?)", (dedup_key(make()), "approved", make().card_no, make().terminal_id,
                                              make().terminal_seq, make().to_json()))
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()
    with Journal(path) as journal:
        assert [e.outcome for e in journal.all()] == [make()]
        assert journal.append_ride(ride_record(), SeenCode(b"\x01" * 32, "ACC", 100, 180)) == 2
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    con.close()


@pytest.mark.parametrize("kind", ["sqlite", "memory"])
def test_codes_seen_are_kept_then_pruned(kind, tmp_path):
    journal = Journal(tmp_path / "j.db") if kind == "sqlite" else MemoryJournal()
    first = SeenCode(b"\x01" * 32, "ACC-A", 1000, 1080)
    assert not journal.code_seen(first.digest, 1000) and journal.last_accepted("ACC-A", 1000) is None
    journal.append_ride(ride_record(1), first)
    assert journal.code_seen(first.digest, 1080) and not journal.code_seen(first.digest, 1081)
    assert journal.last_accepted("ACC-A", 5000) == 1000 and journal.last_accepted("ACC-B", 5000) is None
    with pytest.raises(CodeAlreadySeen, match=r"^QR code 0101010101010101…: already rode \(a replay\)$"):
        journal.append_ride(ride_record(2), SeenCode(first.digest, "ACC-A", 1010, 1090))
    journal.append_ride(ride_record(3), SeenCode(b"\x03" * 32, "ACC-A", 1020, 1100))
    assert journal.last_accepted("ACC-A", 1020) == 1020
    later = 1000 + 86400 + 1                                    # a day after the first ride: it is forgotten
    journal.append_ride(ride_record(4), SeenCode(b"\x04" * 32, "ACC-B", later, later + 80))
    assert journal.last_accepted("ACC-A", later) == 1020        # the second is a day old only at 1020 + 86400
    if kind == "sqlite":
        digests = [r[0] for r in journal._db.execute("SELECT digest FROM qr_seen ORDER BY at")]
        assert digests == ["03" * 32, "04" * 32]
        assert [e.outcome.qr_code[:2] for e in journal.all()] == ["01", "03", "04"]   # the refused one wrote nothing
        journal.close()


def test_a_ride_and_its_code_commit_together(tmp_path):
    """A ride whose outcome conflicts with the journal leaves no code behind (one transaction)."""
    with Journal(tmp_path / "j.db") as journal:
        journal.append(make())
        clash = make(datetime="20261123081531")                  # same key, other contents
        with pytest.raises(JournalError, match="different contents"):
            journal.append_ride(clash, SeenCode(b"\x09" * 32, "ACC", 1, 2))
        assert not journal.code_seen(b"\x09" * 32, 1) and len(journal) == 1
