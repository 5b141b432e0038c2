"""A card or PSAM whose image cannot be saved changes nothing (issue 12, part 1), in process.

The card and the PSAM save their image after every change (ykt_card.persistence); here the one atomic
write they use (ykt_files.atomic.write_text_atomic) meets ENOSPC or EROFS at its Nth call, N running
over every write of a purchase, a CAPP purchase, a load and a personalisation: fault injection at the OS
boundary, with the real card OS, PSAM, validator, journal and image files. After each:

* memory equals the image on disk (card and PSAM), so no later save can carry a refused change;
* a card that could not save DEBIT or CREDIT is exactly as before (balance, counters, records, proofs,
  journal) and answered 6581; the journal says `failed`, nothing charged, and the export holds nothing;
* the same card then rides again normally, and its image shows that one ride only.
"""
from __future__ import annotations

import errno
import os

import pytest

from apdu.status import SW_MEMORY_FAILURE
from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource
from terminal_sim.export import clearing_entries
from terminal_sim.flows import load
from terminal_sim.journal import Journal
from terminal_sim.load_host import LoadHost
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import card_to_doc, load_card, save_card, saver
from ykt_card.clock import SimulatedClock
from ykt_card.host.script import ScriptRefused, build_script, run_script, script_keys
from ykt_card.issuance.personalise import blank_card, transport_key_for, select_key_sets
from ykt_card.persistence import ImageSaveError
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam, load_psam, psam_saver, psam_to_doc, save_psam
import ykt_files.atomic

from tests.terminal_sim.test_flows import CARD_NO, KS3, KS4, TERMINAL_ID, World, make_world

ERRNOS = {"ENOSPC": errno.ENOSPC, "EROFS": errno.EROFS}


class FailingDisk:
    """`write_text_atomic` failing with `err` at its `fail_at`-th call (0-based; None: never), counting
    calls by path: the disk filling up or going read-only under the card at one chosen write."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, err: int, fail_at: int | None) -> None:
        self.err, self.fail_at, self.paths = err, fail_at, []
        real = ykt_files.atomic.write_text_atomic

        def write(path, text):
            n = len(self.paths)
            self.paths.append(os.fspath(path))
            if n == self.fail_at:
                raise OSError(self.err, os.strerror(self.err))
            real(path, text)
        monkeypatch.setattr(ykt_files.atomic, "write_text_atomic", write)


def imaged_world(tmp_path) -> tuple[World, str, str]:
    """make_world's card and PSAM, each saved to an image and served from it, saving every change."""
    w = make_world(balance=5000)
    card_path, psam_path = str(tmp_path / "card.json"), str(tmp_path / "psam.json")
    save_card(card_path, w.state)
    save_psam(psam_path, issue_psam([KS3, KS4], TERMINAL_ID))
    card_os = TUnionCardOS(load_card(card_path), rng=RandomSource(1), on_commit=saver(card_path))
    psam_os = PsamOS(load_psam(psam_path), random=RandomSource(1001), on_change=psam_saver(psam_path))
    w = World(card_os.state, card_os, psam_os, InProcessReader(card_os, "card"), InProcessReader(psam_os, "psam"),
              SimulatedClock.parse("20241124080000"))
    return w, card_path, psam_path


def memory_is_disk(w: World, card_path: str, psam_path: str) -> None:
    assert card_to_doc(w.card_os.state) == card_to_doc(load_card(card_path))
    assert psam_to_doc(w.psam_os.state) == psam_to_doc(load_psam(psam_path))


def writes_of(tmp_path, monkeypatch, ride) -> list[str]:
    """The images a clean ride writes, in order (a dry run counts the cut points)."""
    w, card_path, psam_path = imaged_world(tmp_path)
    disk = FailingDisk(monkeypatch, errno.ENOSPC, None)
    with Journal(tmp_path / "count.db") as journal:
        ride(w, journal)
    return [("card" if p == card_path else "psam") for p in disk.paths]


def bus_ride(profile: str):
    def ride(w: World, journal: Journal):
        return w.validator(profile, journal=journal).tap()
    return ride


def top_up(w: World, journal: Journal):
    return load(w.card_reader, LoadHost((KS3, KS4), clock=w.clock), 1000, bytes.fromhex("000000012345"),
                journal=journal, clock=w.clock)


RIDES = {"purchase": (bus_ride("bus-flat"), -200), "capp purchase": (bus_ride("bus-flat-capp"), -200),
         "load": (top_up, 1000)}


@pytest.mark.parametrize("err", sorted(ERRNOS))
@pytest.mark.parametrize("kind", sorted(RIDES))
def test_every_write_of_a_ride_failing_changes_nothing_the_disk_does_not_hold(tmp_path, monkeypatch, kind, err):
    ride, amount = RIDES[kind]
    (tmp_path / "dry").mkdir()
    whose = writes_of(tmp_path / "dry", monkeypatch, ride)
    monkeypatch.undo()
    assert whose == (["card"] if kind == "load" else ["psam", "card", "psam"])   # 8070, DEBIT, 8072
    for n, who in enumerate(whose):
        run = tmp_path / f"w{n}"
        run.mkdir()
        w, card_path, psam_path = imaged_world(run)
        card_before = card_to_doc(w.card_os.state)
        FailingDisk(monkeypatch, ERRNOS[err], n)
        with Journal(run / "j.db") as journal:
            out = ride(w, journal)
            memory_is_disk(w, card_path, psam_path)
            failed_os = w.card_os if who == "card" else w.psam_os
            failure = failed_os.memory_failure
            assert failure is not None and failure.sw == SW_MEMORY_FAILURE
            assert isinstance(failure.cause, ImageSaveError) and failure.cause.errno == ERRNOS[err]
            saved = card_path if who == "card" else psam_path
            assert str(failure.cause) == f"{saved}: cannot save the {'card' if who == 'card' else 'PSAM'} image: " \
                                         f"{os.strerror(ERRNOS[err])}"
            if (kind, n) != ("load", 0) and n == 2:   # the PSAM could not save the consumed session
                assert out.status == "approved" and out.mac2_verified is False and "6581" in out.reason
                assert w.card_os.state.purse.balance == 5000 + amount
            else:                           # the PSAM's 8070 or the card's DEBIT/CREDIT: nothing moved
                assert out.status == "failed" and out.tac is None and out.balance_after is None
                assert card_to_doc(w.card_os.state) == card_before            # exactly as before
                assert "6581 memory failure" in out.reason and "nothing" in out.reason
                assert clearing_entries(journal) == [] and journal.pending() == []
            # the disk works again: the next ride saves one change, never the refused one
            monkeypatch.undo()
            w.clock.advance(60)
            again = ride(w, journal)
            assert again.status == "approved", again.reason
            memory_is_disk(w, card_path, psam_path)
            moved = 2 if out.status == "approved" else 1
            assert load_card(card_path).purse.balance == 5000 + moved * amount


@pytest.mark.parametrize("err", sorted(ERRNOS))
def test_every_write_of_a_personalisation_failing_leaves_the_image_at_the_step_before(tmp_path, monkeypatch, err):
    from ykt_card.issuance.personalise import issue_card
    from ykt_card.issuance.profile import load_card_profile
    from specs.catalog import card_profile_path
    import datetime as dt

    prof = load_card_profile(card_profile_path("reference"))
    issued = issue_card(prof, [KS3, KS4], CARD_NO, dt.date(2026, 11, 24))
    transport = transport_key_for(select_key_sets(prof, [KS3, KS4], None))
    script = build_script(issued.state, transport, prof.name)
    keys = script_keys(script, [KS3, KS4])
    n = 0
    while True:
        path = tmp_path / f"blank{n}.json"
        save_card(path, blank_card(prof, transport))
        card_os = TUnionCardOS(load_card(path), rng=RandomSource(1), on_commit=saver(path))
        reader = InProcessReader(card_os)
        reader.connect()
        disk = FailingDisk(monkeypatch, ERRNOS[err], n)
        try:
            run_script(script, reader, keys)
        except ScriptRefused as exc:
            assert exc.sw == SW_MEMORY_FAILURE
            assert card_to_doc(card_os.state) == card_to_doc(load_card(path))       # memory is the disk
            assert card_os.memory_failure.cause.filename == str(path)
        else:
            assert len(disk.paths) == n, "every write was made to fail once"
            break
        monkeypatch.undo()
        n += 1
    assert n > 5                                  # a write per key and per file: each one failed once
    assert card_to_doc(card_os.state) == card_to_doc(load_card(path))
