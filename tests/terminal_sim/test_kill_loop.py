"""Kill the validator loop with SIGKILL at random moments; after each kill the books must still balance.

A child process (this module run as a script) serves one image-backed virtual card, tapped again and
again, through an image-backed virtual PSAM, journaling to SQLite. The card image is saved after every
commit and the PSAM image after every change (ykt_card.card.image, ykt_card.psam.issue: atomic writes, both
saved before the answer leaves). The parent kills the child at 50+ seeded random moments, each time
restarting it with a clock that continues where the journal left off, and checks after every kill:

* the journal is intact, holds at most one pending grey record, and every money record once (one per
  card counter value, and every counter value the card used is either a money record or that grey
  record, when the card shows the grey's debit happened);
* card balance = initial − Σ(approved + recovered amounts) − (the pending grey's amount if its debit
  happened); every TAC verifies with the card's TAC key.

A last, unkilled run taps until the grey record is settled; then the balance equation holds exactly.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import random
import select
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("bus-flat", "bus-flat-capp", "metro-exit")
KILLS = 55
EXTRA_KILLS = 40
START_BALANCE = 5_000_000


def child(argv: list[str]) -> None:
    """The validator loop on image-backed parts (run as: python test_kill_loop.py CARD PSAM DB ...)."""
    from apdu import InProcessReader
    from keysets.randomness import RandomSource
    from ykt_card.clock import SimulatedClock
    from specs.catalog import terminal_profile_path
    from terminal_sim.journal import Journal
    from terminal_sim.profile import load_terminal_profile
    from terminal_sim.links import TappingReader
    from terminal_sim.validator import Validator
    from ykt_card.card.cos import TUnionCardOS
    from ykt_card.card.image import load_card, saver
    from ykt_card.psam.cos import PsamOS
    from ykt_card.psam.issue import load_psam, psam_saver

    parser = argparse.ArgumentParser()
    for name in ("card", "psam", "journal", "profile", "clock"):
        parser.add_argument(name)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--taps", type=int, default=None)
    args = parser.parse_args(argv)
    card_os = TUnionCardOS(load_card(args.card), rng=RandomSource(args.seed), on_commit=saver(args.card))
    psam_os = PsamOS(load_psam(args.psam), random=RandomSource(args.seed + 1), on_change=psam_saver(args.psam))
    with Journal(args.journal) as journal:
        v = Validator(load_terminal_profile(terminal_profile_path(args.profile)), InProcessReader(psam_os, "psam"),
                      TappingReader(InProcessReader(card_os, "card")), journal=journal,
                      clock=SimulatedClock.parse(args.clock))
        v.start()
        print("ready", flush=True)
        v.run(taps=args.taps, poll_interval=0)


# ---------------------------------------------------------------------------------------------------
# the parent: the test

def _world(tmp: Path) -> tuple[Path, Path, Path, int]:
    from tests.terminal_sim.test_flows import KS3, KS4, TERMINAL_ID
    from ykt_card.card.image import save_card
    from ykt_card.issuance.personalise import issue_card
    from ykt_card.issuance.profile import load_card_profile
    from ykt_card.psam.issue import issue_psam, save_psam
    from specs.catalog import card_profile_path

    profile = dataclasses.replace(load_card_profile(card_profile_path("reference")), max_balance=2 * START_BALANCE)
    card = issue_card(profile, [KS3, KS4], "03105810000000001234", _dt.date(2024, 1, 1), balance=START_BALANCE)
    paths = tmp / "card.json", tmp / "psam.json", tmp / "journal.db"
    save_card(paths[0], card.state)
    save_psam(paths[1], issue_psam([KS3, KS4], TERMINAL_ID))
    return (*paths, card.state.purse.offline_counter)


def _next_clock(journal_path: Path) -> str:
    """One second after the newest record, so a pending grey record is still inside its window."""
    from terminal_sim.journal import Journal

    start = _dt.datetime(2024, 11, 24, 8, 0, 0)
    if journal_path.exists():
        with Journal(journal_path) as journal:
            moments = [e.outcome.moment for e in journal.all()]
        if moments:
            start = max(moments) + _dt.timedelta(seconds=1)
    return start.strftime("%Y%m%d%H%M%S")


def _spawn(paths: tuple[Path, Path, Path], profile: str, seed: int, taps: int | None = None) -> subprocess.Popen:
    card, psam, db = paths
    cmd = [sys.executable, str(Path(__file__).resolve()), str(card), str(psam), str(db), profile,
           _next_clock(db), "--seed", str(seed)]
    if taps is not None:
        cmd += ["--taps", str(taps)]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env)


def _check(paths: tuple[Path, Path, Path], counter0: int, exact: bool) -> tuple[int, str | None]:
    """The invariants of the module docstring; returns (money records, the pending grey record's state:
    None, "debited" (the card committed it) or "not debited")."""
    from terminal_sim.journal import Journal
    from ykt_card.card.image import load_card

    from tests.terminal_sim.test_flows import tac_of

    card_path, _, db = paths
    state = load_card(card_path)
    with Journal(db) as journal:
        assert journal.integrity() == "ok"
        entries = journal.all()
        pending = [e.outcome for e in entries if e.pending]
    money = [e.outcome for e in entries if e.outcome.moved_money]
    assert all(o.status in ("approved", "recovered") for o in money), [o.status for o in money]
    counters = [o.card_counter for o in money]
    assert len(counters) == len(set(counters)), "a card transaction journaled twice"
    for o in money:
        assert o.tac == tac_of(o, state)
    assert len(pending) <= 1, [p.card_counter for p in pending]
    used = set(range(counter0, state.purse.offline_counter))
    expected = START_BALANCE - sum(o.amount for o in money)
    grey = None
    if pending:
        grey = "not debited"
        if pending[0].card_counter in used:                   # the grey's debit happened
            assert pending[0].card_counter not in counters
            expected -= pending[0].amount
            counters.append(pending[0].card_counter)
            grey = "debited"
    assert set(counters) == used, "a completed transaction is missing from the journal"
    assert state.purse.balance == expected
    if exact:
        assert not pending and state.purse.balance == START_BALANCE - sum(o.amount for o in money)
    return len(money), grey


def test_sigkill_at_random_moments_loses_nothing_and_charges_nothing_twice(tmp_path: Path):
    *paths, counter0 = _world(tmp_path)
    paths = tuple(paths)
    rnd = random.Random(20241124)
    greys: list[str] = []
    cycle = 0
    # at least KILLS kills; a few more if chance has not yet hit both sides of a DEBIT commit
    while cycle < KILLS or (not {"debited", "not debited"} <= set(greys) and cycle < KILLS + EXTRA_KILLS):
        cycle += 1
        proc = _spawn(paths, PROFILES[cycle % len(PROFILES)], seed=cycle + 1)
        try:
            started, _, _ = select.select([proc.stdout], [], [], 60)
            assert started, "the child did not start within 60 s"
            line = proc.stdout.readline()
            assert line.strip() == "ready", proc.stderr.read()
            delay = rnd.uniform(0.0, 0.2)
            try:
                proc.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                pass
            assert proc.poll() is None, f"the loop ended by itself: {proc.stderr.read()}"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
            proc.stdout.close()
            proc.stderr.close()
        _, grey = _check(paths, counter0, exact=False)
        if grey is not None:
            greys.append(grey)
    final = _spawn(paths, PROFILES[0], seed=cycle + 1, taps=3)
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, err
    money, _ = _check(paths, counter0, exact=True)
    assert money > cycle                                     # the children did real work between kills
    # kills landed inside purchases, both before and after the card committed the DEBIT
    assert {"debited", "not debited"} <= set(greys), greys


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    child(sys.argv[1:])
