"""Tearing and recovery (reference 5.5, D12): never a double charge, never a lost record.

The card leaves the field at every command of every flow, before the card got the command or after it
processed it (answer lost); the virtual card loses power at every internal write step of DEBIT; the
PSAM link fails at every PSAM command. After the card comes back, the journal and the card agree: one
money record per ride, balance and counter explained by the money records, every TAC right, no grey
record left.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from terminal_sim.journal import Journal
from terminal_sim.links import TamperingReader, TearingReader
from ykt_card.card.state import FaultInjector

from tests.terminal_sim.test_flows import (PSAM_8072, SELECT, World, answer, command, headers, make_world,
                                           tac_of, terminal_profile)

FLOWS: dict[str, tuple[str, dict, dict]] = {   # id -> (profile, profile changes, validator options)
    "bus-flat": ("bus-flat", {}, {}),
    "bus-flat-capp": ("bus-flat-capp", {}, {}),
    "bus-segment": ("bus-segment", {}, {}),
    "metro-entry": ("metro-entry", {}, {}),
    "metro-exit": ("metro-exit", {}, {}),
    "ferry": ("ferry", {}, {}),
    "ferry-capp": ("ferry", {"transaction_type": "09"}, {}),
    "taxi": ("taxi", {}, {"amount": 500}),
    "taxi-capp": ("taxi", {"transaction_type": "09"}, {"amount": 500}),
}


def flow(flow_id: str):
    """(profile, validator options) of a sweep entry."""
    name, changes, options = FLOWS[flow_id]
    return terminal_profile(name, **changes), options
PROVE = ("card", "805A0006")
PROVE_09 = ("card", "805A0009")


def books_balance(journal: Journal, w: World, rides: int, start_balance: int = 5000) -> None:
    """Card and journal agree: money records explain balance and counter; one per ride; TACs right."""
    money = [e.outcome for e in journal.all() if e.outcome.moved_money]
    assert len(money) == rides, [e.outcome.status for e in journal.all()]
    assert w.balance == start_balance - sum(o.amount for o in money)
    assert w.counter == rides
    counters = [o.card_counter for o in money]
    assert sorted(counters) == list(range(rides))             # each card transaction exactly once
    for o in money:
        assert o.tac == tac_of(o, w.state)
    assert journal.pending() == []
    assert journal.integrity() == "ok"


def debit_position(name, kwargs: dict) -> tuple[int, int]:
    """(number of card commands of a clean tap, 1-based position of DEBIT among them)."""
    w = make_world()
    w.validator(name, **kwargs).tap()
    cards = [c for who, c, _ in w.log if who == "card"]
    return len(cards), [c[:2] for c in cards].index(bytes.fromhex("8054")) + 1


# ---------------------------------------------------------------------------------------------------
# the two cases of a lost DEBIT answer

def test_debit_answer_lost_then_recovered_with_the_psam_still_holding_the_session(tmp_path: Path):
    w = make_world()
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat", card_reader=tear, journal=journal)
        tear.arm(at_ins=0x54, when="after")                    # the DEBIT's answer is lost
        torn = v.tap()
        assert torn.status == "torn" and torn.tac is None and tear.fired
        assert (torn.card_no, torn.amount, torn.card_counter) == (w.state.card_no, 200, 0)
        assert w.balance == 4800                                # the card did commit
        assert [e.outcome.status for e in journal.pending()] == ["torn"]
        w.log.clear()
        out = v.tap()
        assert headers(w.log) == [*SELECT, PROVE, PSAM_8072]
        prove = command(w.log, "card", "805A0006")
        assert prove.data == (1).to_bytes(2, "big") and prove.le == 8     # INIT counter + 1 (D5)
        proof = answer(w.log, "card", "805A0006")
        assert command(w.log, "psam", "80720000").data == proof[0:4]
        assert out.status == "recovered" and out.mac2_verified is True
        assert out.tac == proof[4:8].hex().upper() == tac_of(out, w.state)
        assert (out.terminal_seq, out.datetime, out.balance_after) == (torn.terminal_seq, torn.datetime, 4800)
        books_balance(journal, w, 1)
        assert w.psam_os.has_pending_purchase is False


def test_without_a_journal_file_the_validator_still_recovers_in_memory():
    w = make_world()
    tear = TearingReader(w.card_reader)
    v = w.validator("metro-exit", card_reader=tear)
    tear.arm(8, "after")                                      # ... 80DC 80DC DEBIT
    assert v.tap().status == "torn"
    assert len(v.journal.pending()) == 1
    out = v.tap()
    assert out.status == "recovered" and out.mac2_verified is True and out.amount == 1400
    assert v.journal.pending() == [] and w.balance == 5000 - 1400 and w.counter == 1


def test_after_another_card_the_proof_is_kept_with_mac2_unverified(tmp_path: Path):
    w = make_world()
    other = make_world(card_no="03105810000000005678", seed=7)
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat", card_reader=tear, journal=journal)
        tear.arm(5, "after")
        assert v.tap().status == "torn"
        w.swap_card(other)
        assert v.tap().status == "approved"                     # the PSAM's session is now this one's
        w.back()
        w.log.clear()
        out = v.tap()
        assert headers(w.log) == [*SELECT, PROVE]                # no 8072: the PSAM lost the session
        assert out.status == "recovered" and out.mac2_verified is False and out.tac == tac_of(out, w.state)
        assert "clearing checks the TAC" in out.reason
        assert w.balance == 4800 and other.balance == 4800


def test_debit_never_received_runs_the_purchase_again(tmp_path: Path):
    w = make_world()
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat-capp", card_reader=tear, journal=journal)
        n, debit = debit_position("bus-flat-capp", {})
        tear.arm(debit, "before")
        torn = v.tap()
        assert torn.status == "torn" and w.balance == 5000 and w.counter == 0
        w.log.clear()
        out = v.tap()
        assert headers(w.log)[:4] == [*SELECT, PROVE_09, ("card", "00B09700")]
        assert w.log[2][2][-2:] == bytes.fromhex("9406")        # no proof: the debit never happened
        assert headers(w.log)[-2:] == [("card", "80540100"), PSAM_8072]
        assert out.status == "approved" and out.terminal_seq == torn.terminal_seq + 1
        statuses = {e.id: (e.outcome.status, e.resolved_by) for e in journal.all()}
        torn_entry = next(e for e in journal.all()
                          if e.outcome.status == "torn" and e.outcome.terminal_seq == torn.terminal_seq)
        settled = journal.get(torn_entry.resolved_by).outcome
        assert settled.status == "failed" and "never happened" in settled.reason and settled.tac is None
        assert len(statuses) == 4                               # torn, its void, the re-run's grey and approval
        books_balance(journal, w, 1)


def test_a_grey_record_outlives_the_process(tmp_path: Path):
    w = make_world()
    path = tmp_path / "j.db"
    with Journal(path) as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("metro-entry", card_reader=tear, journal=journal)
        tear.arm(8, "after")                                   # PPSE AID 17 1A INIT 80DC 80DC DEBIT
        assert v.tap().status == "torn"
    w.psam_slot.disconnect()                                    # the terminal restarts: PSAM power cycle
    with Journal(path) as journal:
        v2 = w.validator("metro-entry", journal=journal)
        out = v2.tap()
        # the PSAM keeps its pending purchase across the power cycle, and the new validator learns it
        # from its journal: the MAC2 is verified (issue 12 part 6)
        assert out.status == "recovered" and out.mac2_verified is True and out.amount == 0
        books_balance(journal, w, 1)


def test_outside_the_window_the_grey_record_stays_for_clearing(tmp_path: Path):
    w = make_world()
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat", card_reader=tear, journal=journal)
        tear.arm(5, "after")
        torn = v.tap()
        w.clock.advance(121)                                    # D12: 120 s
        w.log.clear()
        out = v.tap()
        assert PROVE not in headers(w.log) and out.status == "approved"
        pending = journal.pending_for(w.state.card_no)
        assert [e.outcome.terminal_seq for e in pending] == [torn.terminal_seq]


def test_a_card_used_elsewhere_since_keeps_its_grey_record_pending(tmp_path: Path):
    w = make_world()
    elsewhere = make_world()                                    # another terminal (its own PSAM)
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat", card_reader=tear, journal=journal)
        tear.arm(5, "after")
        torn = v.tap()
        elsewhere.card_slot.remove()
        elsewhere.card_slot.insert(w.card_os)
        w.card_slot.remove()
        assert elsewhere.validator("bus-flat").tap().status == "approved"   # the card's proof moves on
        elsewhere.card_slot.remove()
        w.card_slot.insert(w.card_os)
        out = v.tap()
        assert out.status == "approved" and out.card_counter == 2
        assert [e.outcome.terminal_seq for e in journal.pending()] == [torn.terminal_seq]
        assert w.balance == 5000 - 3 * 200                      # three debits; clearing settles the grey


def test_a_mac2_failure_fails_with_the_tac_and_refuses_the_card_once(tmp_path: Path):
    w = make_world()

    def flip(rapdu: bytes) -> bytes:
        return rapdu[:4] + bytes((rapdu[4] ^ 0x01,)) + rapdu[5:]

    with Journal(tmp_path / "j.db") as journal:
        bad = TamperingReader(w.card_reader, ins=0x54, tamper=flip)
        v = w.validator("bus-flat", card_reader=bad, journal=journal)
        out = v.tap()
        assert out.status == "failed" and out.mac2_verified is False and out.tac == tac_of(out, w.state)
        assert "9302" in out.reason and w.balance == 4800
        assert w.psam_os.state.mac2_failures.count == 1
        w.log.clear()
        refused = v.tap()
        assert refused.status == "declined" and "MAC2 failure" in refused.reason
        assert headers(w.log) == [*SELECT]
        assert v.tap().status == "approved"                     # refused on the next tap only
        money = [e.outcome for e in journal.all() if e.outcome.moved_money]
        assert [o.status for o in money] == ["failed", "approved"]
        assert w.balance == 5000 - 400 and journal.pending() == []


def test_tearing_during_the_recovery_itself_keeps_the_grey_record(tmp_path: Path):
    for position in (1, 2, 3):                                # SELECT PPSE, SELECT AID, GET TRANSACTION PROVE
        for when in ("before", "after"):
            w = make_world()
            with Journal(tmp_path / f"r{position}{when}.db") as journal:
                tear = TearingReader(w.card_reader)
                v = w.validator("bus-flat", card_reader=tear, journal=journal)
                tear.arm(5, "after")
                assert v.tap().status == "torn"
                tear.arm(position, when)
                out = v.tap()
                assert out.status == "declined" and tear.fired
                assert len(journal.pending()) == 1
                again = v.tap()
                assert again.status == "recovered" and again.mac2_verified is True
                books_balance(journal, w, 1)


# ---------------------------------------------------------------------------------------------------
# sweeps: every APDU boundary of every flow

@pytest.mark.parametrize("flow_id", sorted(FLOWS))
def test_tearing_at_every_card_command_never_charges_twice_nor_loses_a_record(flow_id: str, tmp_path: Path):
    name, kwargs = flow(flow_id)
    n, debit = debit_position(name, kwargs)
    for position in range(1, n + 1):
        for when in ("before", "after"):
            w = make_world()
            with Journal(tmp_path / f"{position}-{when}.db") as journal:
                tear = TearingReader(w.card_reader)
                v = w.validator(name, card_reader=tear, journal=journal, **kwargs)
                tear.arm(position, when)
                first = v.tap()
                assert tear.fired
                expected = ("torn",) if position == debit else ("declined", "failed")
                assert first.status in expected, (position, when, first)
                second = v.tap()
                assert second.status in ("approved", "recovered"), (position, when, second)
                if position == debit:
                    assert second.status == ("recovered" if when == "after" else "approved")
                books_balance(journal, w, 1)


@pytest.mark.parametrize("name", ["bus-flat", "metro-exit"])
def test_power_loss_at_every_write_step_of_debit(name: str, tmp_path: Path):
    probe = make_world()
    probe.card_os.fault = FaultInjector()
    probe.validator(name).tap()
    steps = probe.card_os.fault.steps                            # the write steps of one tap (DEBIT only)
    assert steps > 5
    outcomes = set()
    for cut in range(steps + 1):
        w = make_world()
        w.card_os.fault = FaultInjector()
        with Journal(tmp_path / f"{cut}.db") as journal:
            v = w.validator(name, journal=journal)
            w.card_os.fault.arm(cut)
            first = v.tap()
            fired = w.card_os.fault.fired
            w.card_os.fault = None
            second = v.tap()
            outcomes.add((first.status, second.status))
            assert (first.status == "torn") == fired
            books_balance(journal, w, 1 if fired else 2)     # unfired: two rides
    # cut before the commit is complete: the debit never happened, run again; after it: recovered;
    # the last cut point is past the response (never fires)
    assert outcomes == {("torn", "approved"), ("torn", "recovered"), ("approved", "approved")}


@pytest.mark.parametrize("flow_id", sorted(FLOWS))
def test_the_psam_link_failing_at_every_psam_command(flow_id: str, tmp_path: Path):
    name, kwargs = flow(flow_id)
    probe = make_world()
    probe.validator(name, **kwargs).tap()
    psam_commands = sum(1 for who, _, _ in probe.log if who == "psam")
    for position in range(1, psam_commands + 1):
        for when in ("before", "after"):
            w = make_world()
            with Journal(tmp_path / f"{position}-{when}.db") as journal:
                flaky = TearingReader(w.psam_reader)
                v = w.validator(name, psam_reader=flaky, journal=journal, **kwargs)
                flaky.arm(position, when)
                first = v.tap()
                assert flaky.fired
                if first.status == "approved":                  # the link died at 8072: MAC2 unverified
                    assert first.mac2_verified is False
                else:
                    assert first.status == "failed" and first.tac is None, first
                    second = v.tap()                            # the validator restarts its PSAM
                    assert second.status == "approved" and second.mac2_verified is True
                books_balance(journal, w, 1)
