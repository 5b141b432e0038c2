"""The Validator's API: construction checks, tap() edge cases, the run() loop, repeatability, counting."""
from __future__ import annotations

from pathlib import Path

import pytest

from apdu import InProcessReader
from terminal_sim.journal import Journal
from terminal_sim.links import CountingReader, TappingReader, TearingReader
from terminal_sim.validator import TerminalError, Validator
from ykt_card.card.image import card_to_doc
from ykt_card.psam.issue import psam_to_doc
from ykt_files.schema import ProfileError

from tests.terminal_sim.test_flows import make_world, terminal_profile


def test_construction_refuses_what_cannot_work():
    w = make_world()
    with pytest.raises(ValueError, match="load terminal"):
        Validator(terminal_profile("load"), w.psam_reader, w.card_reader)
    with pytest.raises(ValueError, match="amount: flow metro-exit prices by stations"):
        Validator(terminal_profile("metro-exit"), w.psam_reader, w.card_reader, amount=300)
    with pytest.raises(ValueError, match="amount: expected an integer"):
        Validator(terminal_profile("taxi"), w.psam_reader, w.card_reader, amount=-1)
    with pytest.raises(ProfileError, match="station: unknown station '0399'"):
        Validator(terminal_profile("metro-exit"), w.psam_reader, w.card_reader, station="0399")


def test_station_override_moves_the_terminal():
    w = make_world()
    out = w.validator("metro-entry", station="0305").tap()
    assert out.station == "0305"


def test_without_a_psam_the_terminal_cannot_work():
    w = make_world()
    v = Validator(terminal_profile("bus-flat"), InProcessReader(name="no psam"), w.card_reader)
    with pytest.raises(TerminalError, match="PSAM start-up failed"):
        v.tap()


def test_an_empty_card_slot_is_a_declined_outcome():
    w = make_world()
    v = w.validator("bus-flat")
    w.card_slot.remove()
    out = v.tap()
    assert out.status == "declined" and out.reason.startswith("no card") and out.terminal_id == "000000012345"


def test_the_psam_start_up_sends_the_reference_sequence():
    w = make_world()
    v = Validator(terminal_profile("bus-flat"), w.psam_reader, w.card_reader, clock=w.clock)
    assert v.terminal_id == bytes.fromhex("000000012345")
    assert [c.hex().upper() for who, c, _ in w.log] == ["00A40000023F00", "00B0960006", "00A40000028011"]
    v.tap()
    assert sum(1 for who, c, _ in w.log if c[:2] == bytes.fromhex("00A4") and who == "psam") == 2  # once


def test_run_serves_each_tap_once_and_stops_when_idle(tmp_path: Path):
    w = make_world()
    with Journal(tmp_path / "j.db") as journal:
        reader = TappingReader(w.card_reader, taps_left=5)
        v = w.validator("bus-flat", card_reader=reader, journal=journal)
        seen = []
        assert v.run(idle_timeout=0.05, on_outcome=seen.append, poll_interval=0.001) == 5
        assert [o.status for o in seen] == ["approved"] * 5
        assert len(journal.pending()) == 0
        assert len([e for e in journal.all() if e.outcome.status == "approved"]) == 5
    assert w.balance == 5000 - 5 * 200


def test_run_stops_after_n_taps():
    w = make_world()
    v = w.validator("metro-entry", card_reader=TappingReader(w.card_reader))
    assert v.run(taps=3, poll_interval=0.001) == 3
    assert w.counter == 3


def test_a_card_left_in_the_field_is_not_charged_twice():
    w = make_world()
    v = w.validator("bus-flat")                                # the card never leaves its slot
    assert v.run(idle_timeout=0.05, poll_interval=0.001) == 1
    assert w.balance == 4800


def test_run_with_no_card_returns_after_the_idle_timeout():
    w = make_world()
    v = w.validator("bus-flat")
    w.card_slot.remove()
    assert v.run(idle_timeout=0, poll_interval=0.001) == 0
    with pytest.raises(ValueError, match="taps"):
        v.run(taps=-1)


def test_a_run_repeats_byte_for_byte():
    def one_run():
        w = make_world(seed=42)
        outcomes = []
        for name in ("metro-entry", "metro-exit", "bus-segment", "bus-flat-capp"):
            outcomes.append(w.validator(name).tap().to_json())
        return outcomes, list(w.log), card_to_doc(w.state), psam_to_doc(w.psam_os.state)

    assert one_run() == one_run()


def test_counting_reader_counts_apdus_and_bytes_per_flow():
    w = make_world()
    card, psam = CountingReader(w.card_reader), CountingReader(w.psam_reader)
    v = w.validator("bus-flat", card_reader=card, psam_reader=psam)
    card.reset()
    psam.reset()
    v.tap()
    c, p = card.reset(), psam.reset()
    card_log = [(cmd, rsp) for who, cmd, rsp in w.log if who == "card"]
    psam_log = [(cmd, rsp) for who, cmd, rsp in w.log if who == "psam"]
    assert (c.commands, p.commands) == (len(card_log), len(psam_log)) == (5, 3)
    assert c.bytes_out == sum(len(x) for x, _ in card_log) and c.bytes_in == sum(len(y) for _, y in card_log)
    assert p.bytes_out == sum(len(x) for x, _ in psam_log) and p.bytes_in == sum(len(y) for _, y in psam_log)
    assert c.by_ins == {0xA4: 2, 0xB0: 1, 0x50: 1, 0x54: 1} and p.by_ins == {0x70: 1, 0xC0: 1, 0x72: 1}
    assert card.counts.commands == 0


def test_tearing_reader_arguments_are_checked():
    w = make_world()
    with pytest.raises(ValueError, match="either at"):
        TearingReader(w.card_reader).arm()
    with pytest.raises(ValueError, match="either at"):
        TearingReader(w.card_reader).arm(1, at_ins=0x54)
    with pytest.raises(ValueError, match="when"):
        TearingReader(w.card_reader, at=1, when="during")
    tear = TearingReader(w.card_reader, at_ins=0x50, when="before")
    out = w.validator("bus-flat", card_reader=tear).tap()
    assert tear.fired and out.status == "declined" and "before INITIALIZE answered" in out.reason
