"""A QR ride whose journal fails (the faults side's rule for every transaction, mobile media included).

A journal that cannot take a ride and its code — locked by a real second connection, a real full tmpfs, a
real ext4 forced read-only by the kernel — never raises out of the gate: the ride is `declined` with one
line naming the journal's failure ("journal failed: …; nothing charged"), nothing is journaled, and the
code is not remembered, so the same code rides once the journal works again (and only once). A journal
that refuses the replay checks themselves declines the ride the same way.
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

from keysets.randomness import RandomSource
from specs.catalog import terminal_profile_path
from terminal_sim.journal import Journal, check_journal
from terminal_sim.outcome import Outcome
from terminal_sim.profile import load_terminal_profile
from terminal_sim.qr import QrGate, ride
from terminal_sim.salvage import salvage
from terminal_sim.transaction import QR_STAGES, Device
from ykt_card.clock import CHINA_TZ
from ykt_qr import TEST_PKI_DIR
from ykt_qr.pki import account_number, load_issuer

from tests.storage import copy_journal, ext4, tmpfs
from tests.terminal_sim.test_journal_faults import Locker

GEN_TIME = 1795478400            # 2026-11-24 08:00:00 China time
NOW = _dt.datetime.fromtimestamp(GEN_TIME + 5, CHINA_TZ)
TERMINAL = bytes.fromhex("440300000001")


def codes(n: int) -> list[bytes]:
    """`n` codes of `n` accounts of the TEST issuer, generated at GEN_TIME (valid at NOW)."""
    issuer = load_issuer(TEST_PKI_DIR / "test-issuer.toml")
    rng = RandomSource(11)
    out = []
    for i in range(n):
        account = issuer.new_account(f"FAULT{i:011d}".encode(), account_number(f"90010000000000{i:05d}"),
                                     GEN_TIME + 86400, rng)
        out.append(account.show(GEN_TIME, rng).to_bytes())
    return out


def scan(journal: Journal, code: bytes) -> Outcome:
    profile = load_terminal_profile(terminal_profile_path("bus-qr"))
    device = Device(profile, TERMINAL, journal, list_version="2024112401")
    return ride(device, QrGate(profile, journal), code, NOW, 200)


def declined_for_the_journal(out: Outcome, path: Path, doing: str, cause: str) -> None:
    assert (out.medium, out.status, out.tac) == ("qr", "declined", None), out
    assert out.reason.startswith(f"journal failed: {path}: {doing}: ") and cause in out.reason, out.reason
    assert out.reason.endswith("; nothing charged") and "\n" not in out.reason


def rides_once_the_journal_works(path: Path, code: bytes, records_before: int) -> None:
    """Nothing of the failed ride was kept: the code rides now, then is a replay."""
    with Journal(path) as journal:
        assert len(journal) == records_before and not journal.code_seen(_digest(code), GEN_TIME + 5)
        assert scan(journal, code).status == "approved"
        again = scan(journal, code)
        assert (again.status, again.reason) == ("declined", "replay")
    report = check_journal(path)
    assert report.codes == 1 and report.by_status == {"approved": 1, "declined": 1}


def _digest(code: bytes) -> bytes:
    import hashlib
    return hashlib.sha256(code).digest()


def test_the_qr_stage_table_declines_a_ride_its_journal_cannot_take():
    assert {stage.journal_status for stage in QR_STAGES.values()} == {"declined"}


def test_locked_by_another_writer_the_ride_is_declined_and_its_code_not_remembered(tmp_path):
    path = tmp_path / "j.db"
    [code] = codes(1)
    with Journal(path, timeout=0.2) as journal:
        other = Locker(path)
        other.lock()
        try:
            out = scan(journal, code)
        finally:
            other.release()
        declined_for_the_journal(out, path, "append QR ride", "database is locked")
        assert out.qr_code == code.hex().upper()
        assert len(journal) == 0
    rides_once_the_journal_works(path, code, 0)


def test_a_full_disk_declines_the_ride(tmp_path):
    [code] = codes(1)
    with tmpfs(tmp_path / "small", size="1m") as fs:
        path = fs.point / "j.db"
        with Journal(path) as journal:
            filler = fs.fill()
            try:
                out = scan(journal, code)
            finally:
                filler.unlink()
            declined_for_the_journal(out, path, "append QR ride", "database or disk is full")
        rides_once_the_journal_works(path, code, 0)


def test_a_file_system_forced_read_only_under_the_gate(tmp_path):
    first, second = codes(2)
    rescued = tmp_path / "rescued"
    rescued.mkdir()
    with ext4(tmp_path / "ro") as fs:
        path = fs.point / "j.db"
        with Journal(path) as journal:
            assert scan(journal, first).status == "approved"
            fs.fail_read_only()
            out = scan(journal, second)
            declined_for_the_journal(out, path, "append QR ride", "disk I/O error")
            replay = scan(journal, first)          # still remembered: refused, and that refusal not journaled
            assert (replay.status, replay.reason) == ("declined", f"journal failed: {path}: append: disk I/O error; "
                                                                  "nothing charged (declined: replay)")
        copy_journal(path, rescued)
    with Journal(rescued / "j.db") as journal:
        assert [e.outcome.qr_code for e in journal.all()] == [first.hex().upper()]
        assert journal.code_seen(_digest(first), GEN_TIME + 5) and not journal.code_seen(_digest(second), GEN_TIME)
        assert scan(journal, second).status == "approved"


def test_a_journal_that_refuses_the_replay_checks_declines_the_ride(tmp_path):
    path = tmp_path / "j.db"
    [code] = codes(1)
    journal = Journal(path)
    profile = load_terminal_profile(terminal_profile_path("bus-qr"))
    device, gate = Device(profile, TERMINAL, journal, list_version="2024112401"), QrGate(profile, journal)
    journal.close()                                             # under the gate: every call now refuses
    out = ride(device, gate, code, NOW, 200)
    assert (out.status, out.reason) == ("declined", f"journal failed: {path}: the journal is closed; nothing charged")
    rides_once_the_journal_works(path, code, 0)


def test_salvage_keeps_the_codes_that_rode_so_a_salvaged_journal_still_refuses_their_replay(tmp_path):
    first, second, third = codes(3)
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        assert [scan(journal, c).status for c in (first, second)] == ["approved", "approved"]
        assert scan(journal, first).reason == "replay"
        rides = {e.id for e in journal.all() if e.outcome.status == "approved"}
    report = salvage(path, tmp_path / "salvaged.db")
    assert (report.copied, report.codes, report.codes_lost) == (3, 2, False)
    assert report.to_dict()["qr_codes_seen"] == 2
    with Journal(report.out) as journal:
        assert {(seen.digest, ride_id) for seen, ride_id in journal.codes_seen()} == \
            {(_digest(first), min(rides)), (_digest(second), max(rides))}
        assert scan(journal, second).reason == "replay" and scan(journal, third).status == "approved"
    assert check_journal(report.out).codes == 3
