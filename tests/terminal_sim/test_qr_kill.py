"""Kill a QR gate with SIGKILL at random moments: no code ever rides twice, none that rode is forgotten.

A child process (this module run as a script) scans a list of codes (each one twice in a row: the
second is a replay) at the shipped bus-qr terminal, journaling to SQLite. The parent kills it at seeded
random moments and starts it again on the same list and journal. After every kill:

* the journal is intact;
* every code rode (``approved``) at most once, and every ride's code is remembered in ``qr_seen``,
  linked to that ride, and nothing else is: the ride and its replay entry committed together.

A last, unkilled run scans the whole list: every code has then ridden exactly once.
"""
from __future__ import annotations

import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 16
KILLS = 14
GEN_TIME = 1795478400            # 2026-11-24 08:00:00 China time


def child(argv: list[str]) -> None:
    """Scan the codes of CODES_FILE at the bus-qr terminal with JOURNAL (run as: test_qr_kill.py JOURNAL CODES)."""
    import datetime as _dt

    from specs.catalog import terminal_profile_path
    from terminal_sim.journal import Journal
    from terminal_sim.profile import load_terminal_profile
    from terminal_sim.qr import QrGate, ride
    from terminal_sim.transaction import Device
    from ykt_card.clock import CHINA_TZ

    journal_path, codes_path = argv
    codes = [bytes.fromhex(line) for line in Path(codes_path).read_text().split()]
    profile = load_terminal_profile(terminal_profile_path("bus-qr"))
    now = _dt.datetime.fromtimestamp(GEN_TIME + 5, CHINA_TZ)
    with Journal(journal_path) as journal:
        device = Device(profile, bytes.fromhex("000000012345"), journal, list_version="2024112401")
        gate = QrGate(profile, journal)
        print("ready", flush=True)
        for n, code in enumerate(codes):
            out = ride(device, gate, code, now, 200)
            print(n, out.status, out.reason, flush=True)


def _codes(tmp: Path) -> Path:
    from keysets.randomness import RandomSource
    from ykt_qr import TEST_PKI_DIR
    from ykt_qr.pki import account_number, load_issuer

    issuer = load_issuer(TEST_PKI_DIR / "test-issuer.toml")
    rng = RandomSource(7)
    lines = []
    for i in range(ACCOUNTS):
        account = issuer.new_account(f"KILL{i:012d}".encode(), account_number(f"90010000000000{i:05d}"),
                                     GEN_TIME + 86400, rng)
        code = account.show(GEN_TIME, rng).to_bytes().hex().upper()
        lines += [code, code]
    path = tmp / "codes.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def _start(journal: Path, codes: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, __file__, str(journal), str(codes)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


def _books(journal_path: Path) -> dict[str, int]:
    """Check the invariants; returns how often each code rode."""
    from terminal_sim.journal import Journal

    with Journal(journal_path) as journal:
        assert journal.integrity() == "ok"
        rides = {e.id: e.outcome for e in journal.all() if e.outcome.status == "approved"}
        seen = journal._db.execute("SELECT digest, record_id FROM qr_seen ORDER BY record_id").fetchall()
    count: dict[str, int] = {}
    for outcome in rides.values():
        count[outcome.qr_code] = count.get(outcome.qr_code, 0) + 1
    assert all(n == 1 for n in count.values()), count
    assert sorted(r for _, r in seen) == sorted(rides)
    for digest, record in seen:
        assert digest == hashlib.sha256(bytes.fromhex(rides[record].qr_code)).hexdigest().upper()
    return count


def test_a_killed_gate_never_lets_a_code_ride_twice(tmp_path):
    codes = _codes(tmp_path)
    journal = tmp_path / "journal.db"
    rng = random.Random(20261124)
    scanned_before_kill = []
    for _ in range(KILLS):
        proc = _start(journal, codes)
        lines = rng.randrange(0, 2 * ACCOUNTS)
        for _ in range(lines):
            if not proc.stdout.readline():
                break
        time.sleep(rng.random() * 0.004)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        scanned_before_kill.append(lines)
        _books(journal)
    proc = _start(journal, codes)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    statuses = [line.split(" ", 1)[1] for line in out.splitlines()]
    assert len(statuses) == 2 * ACCOUNTS
    assert all(s == "declined replay" for s in statuses[1::2])   # every second scan repeats the first
    count = _books(journal)
    assert len(count) == ACCOUNTS                                   # every code rode exactly once
    assert max(scanned_before_kill) > 0


if __name__ == "__main__":
    child(sys.argv[1:])
