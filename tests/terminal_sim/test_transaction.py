"""The transaction skeleton (base fields, stage table, write-ahead grey record, endings), the pure fare
plan, and the terminal seam the conformance suite calls (`make_terminal(...).tap(amount)`)."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pytest

from specs.catalog import terminal_profile_path
from terminal_sim.journal import Journal, MemoryJournal
from terminal_sim.links import PsamLinkError, TearingReader
from terminal_sim.outcome import Outcome
from terminal_sim.plan import Plan, plan
from terminal_sim.prechecks import Lists, check_card, select_card
from terminal_sim.profile import load_terminal_profile
from terminal_sim.records import Place
from terminal_sim.terminal import LoadTerminal, make_terminal
from terminal_sim.transaction import (LOAD_STAGES, PURCHASE_STAGES, VOID_REASON, Stage, Transaction, card_fields,
                                      money_fields, terminal_fields)
from terminal_sim.validator import TerminalError, Validator
from ykt_card.host.card import TUnionCard

from tests.terminal_sim.test_flows import (PSAM_8070, PSAM_8072, READ_17, SELECT, TERMINAL_ID, headers, make_world,
                                           tac_of, terminal_profile)

NOW = _dt.datetime(2024, 11, 24, 8, 0, 0)
CARD = card_fields("03105810000000001234", "58105810FFFFFFFF", "01")
MONEY = money_fields(200, 5000, 7, 1, "3des", 0)
CONTEXT = {"counter": 7, "amount": 200}


def purchase_tx(journal, **fields) -> Transaction:
    profile = terminal_profile("bus-flat")
    base = terminal_fields(TERMINAL_ID, NOW, profile=profile, list_version="2024112401")
    return Transaction(journal, PURCHASE_STAGES, {**base, "type": "06", **fields})


# ---------------------------------------------------------------------------------------------------
# base fields

def test_base_fields_of_terminal_card_and_money():
    profile = terminal_profile("bus-segment")
    base = terminal_fields(TERMINAL_ID, NOW, profile=profile, list_version="2024112401")
    assert base == {"terminal_id": "000000012345", "datetime": "20241124080000", "list_version": "2024112401",
                    "mode": "bus", "city": "5880", "operator": "0402", "line": "0105", "station": "01",
                    "vehicle": "B20105", "direction": "AB"}
    flat = terminal_fields(TERMINAL_ID, NOW, profile=terminal_profile("bus-flat"))
    assert flat["direction"] is None                     # only a segmented-fare bus has one
    aware = _dt.datetime(2024, 11, 24, 0, 0, 0, tzinfo=_dt.timezone.utc)
    assert terminal_fields(TERMINAL_ID, aware, mode="load") == {
        "terminal_id": "000000012345", "datetime": "20241124080000", "list_version": None, "mode": "load"}
    assert CARD == {"card_no": "03105810000000001234", "issuer_id": "58105810FFFFFFFF", "card_type": "01"}
    assert MONEY == {"amount": 200, "balance_before": 5000, "overdraft_limit": 0, "card_counter": 7,
                     "key_version": 1, "algorithm": "3des"}


def test_an_outcome_without_a_card_is_a_plain_terminal_record():
    """Nothing in the skeleton assumes a card: a transaction refused before one answered has none."""
    journal = MemoryJournal()
    out = purchase_tx(journal).decline("no card: nothing in the field")
    assert out.card_no is None and out.issuer_id is None and out.tac is None
    assert out.status == "declined" and out.mode == "bus" and out.terminal_id == "000000012345"


# ---------------------------------------------------------------------------------------------------
# the stage table

@pytest.mark.parametrize("stage", [s for s, entry in PURCHASE_STAGES.items() if not entry.grey])
def test_the_card_leaving_at_each_purchase_stage_ends_by_the_table(stage, tmp_path: Path):
    with Journal(tmp_path / "j.db") as journal:
        tx = purchase_tx(journal, **CARD)
        tx.at(stage)
        out = tx.card_left()
        entry = PURCHASE_STAGES[stage]
        assert (out.status, out.reason) == (entry.status, entry.reason)
        assert [e.outcome for e in journal.all()] == [out]
        lost = purchase_tx(journal, **CARD)
        lost.at(stage)
        out = lost.link_lost(PsamLinkError("PSAM reader 'psam': gone"))
        assert (out.status, out.reason) == ("failed", "PSAM reader 'psam': gone; nothing charged")


def test_the_stage_tables_name_every_stage_of_the_reference():
    assert list(PURCHASE_STAGES) == ["select", "recovery", "checks", "init", "initialized", "debit", "debited"]
    assert [s for s, e in PURCHASE_STAGES.items() if e.grey] == ["debit", "debited"]
    assert list(LOAD_STAGES) == ["select", "init", "initialized", "credit"]
    assert [s for s, e in LOAD_STAGES.items() if e.grey] == ["credit"]
    assert {e.status for e in PURCHASE_STAGES.values() if not e.grey} == {"declined", "failed"}
    with pytest.raises(ValueError, match=r"^stage: 'debitt' is not one of select, "):
        purchase_tx(MemoryJournal()).at("debitt")


def test_write_ahead_then_the_card_leaves_keeps_the_grey_record(tmp_path: Path):
    with Journal(tmp_path / "j.db") as journal:
        tx = purchase_tx(journal, **CARD, **MONEY, terminal_seq=9)
        tx.at("debit")
        grey = tx.write_ahead("no answer to DEBIT", CONTEXT)
        assert [e.outcome for e in journal.pending()] == [grey] and journal.pending()[0].context == CONTEXT
        assert tx.card_left() is grey and tx.link_lost(PsamLinkError("gone")) is grey
        assert len(journal) == 1                              # nothing else journaled: the grey stands


def test_settle_and_fail_resolve_the_grey_record_with_a_flag(tmp_path: Path):
    with Journal(tmp_path / "j.db") as journal:
        tx = purchase_tx(journal, **CARD, **MONEY, terminal_seq=9)
        tx.write_ahead("no answer to DEBIT", CONTEXT)
        out = tx.settle("approved", tac="11223344", balance_after=4800, mac2_verified=True)
        assert journal.pending() == [] and journal.get(tx.grey_id).resolved_by == journal.all()[-1].id
        assert out.status == "approved" and tx.done is out
        refused = purchase_tx(journal, **CARD, **MONEY, terminal_seq=10)
        refused.write_ahead("no answer to DEBIT", CONTEXT)
        failed = refused.settle("failed", tac="11223344", mac2_verified=False, reason="MAC2 wrong", flag="MAC2")
        assert failed.moved_money and journal.take_flag(CARD["card_no"]) == "MAC2"
        declined = purchase_tx(journal, **CARD)
        declined.settle("declined", reason="card refused", flag="again")   # no grey: flagged all the same
        assert journal.take_flag(CARD["card_no"]) == "again"


def test_void_settles_a_grey_record_only_when_the_counter_did_not_move(tmp_path: Path):
    with Journal(tmp_path / "j.db") as journal:
        old = purchase_tx(journal, **CARD, **MONEY, terminal_seq=9)
        old.write_ahead("no answer to DEBIT", CONTEXT)
        entry = journal.pending()[0]
        again = purchase_tx(journal, **CARD)
        assert again.void(entry, 8) is False and len(journal.pending()) == 1   # used elsewhere: stays
        assert again.void(entry, 7) is True and journal.pending() == []
        settled = journal.get(journal.get(entry.id).resolved_by).outcome
        assert (settled.status, settled.reason, settled.tac) == ("failed", VOID_REASON, None)


def test_another_record_type_plugs_in():
    """A second medium brings its own record factory; the skeleton hands it the fields and journals the result."""
    made: list[dict] = []

    def record(**fields) -> Outcome:
        made.append(fields)
        return Outcome(**fields)

    tx = Transaction(MemoryJournal(), {"scan": Stage("declined", "code gone")},
                     {**terminal_fields(TERMINAL_ID, NOW, mode="bus"), "type": "06"}, record=record)
    assert tx.card_left().reason == "code gone" and made[0]["status"] == "declined"


# ---------------------------------------------------------------------------------------------------
# the plan is pure

def test_the_plan_sends_nothing_and_depends_only_on_its_inputs():
    w = make_world()
    profile = terminal_profile("metro-exit")
    v = w.validator("metro-entry", station="0302")
    v.tap()
    card = TUnionCard(w.card_reader)
    card.connect()
    psam_unused = None
    view = check_card(card, psam_unused, profile, Lists.of(profile), select_card(card), NOW.date())
    w.log.clear()
    place = Place.of(profile, "000000012345")
    first = plan(profile, view, place, NOW)
    assert w.log == []                                      # no APDU
    assert isinstance(first, Plan) and first == plan(profile, view, place, NOW)
    assert (first.amount, first.full_fare, first.capp, first.ef1a_record) == (400, 400, True, 1)
    assert first.context["entry_station"] == "0302"
    assert plan(terminal_profile("taxi"), view, place, NOW).reason.endswith("(--amount) is needed")


# ---------------------------------------------------------------------------------------------------
# the terminal seam

def test_make_terminal_gives_a_validator_whose_tap_takes_the_amount_of_this_tap():
    w = make_world()
    profile = load_terminal_profile(terminal_profile_path("taxi"))
    terminal = make_terminal(profile, w.psam_reader, w.card_reader, clock=w.clock)
    assert isinstance(terminal, Validator)
    first = terminal.tap(amount=3550)
    second = terminal.tap(amount=1200)
    assert (first.status, first.amount, second.amount) == ("approved", 3550, 1200)
    assert second.tac == tac_of(second, w.state) and w.balance == 5000 - 4750
    refused = terminal.tap()
    assert refused.status == "declined" and "--amount" in refused.reason
    with pytest.raises(ValueError, match="amount: flow metro-exit prices by stations"):
        make_terminal(terminal_profile("metro-exit"), w.psam_reader, w.card_reader).tap(amount=100)


def test_make_terminal_of_a_load_profile_loads_with_the_psam_s_terminal_id(tmp_path: Path):
    w = make_world()
    profile = load_terminal_profile(terminal_profile_path("load"))
    with Journal(tmp_path / "j.db") as journal:
        terminal = make_terminal(profile, w.psam_reader, w.card_reader, journal=journal, clock=w.clock)
        assert isinstance(terminal, LoadTerminal)
        out = terminal.tap(amount=2000)
        assert headers(w.log) == [("psam", "00A40000"), ("psam", "00B09600"), ("psam", "00A40000"), *SELECT,
                                  ("card", "80500002"), ("card", "80520000")]
        assert out.status == "approved" and out.terminal_id == TERMINAL_ID.hex().upper()
        assert (out.amount, out.balance_after, out.type, out.mode) == (2000, 7000, "02", "load")
        odd = terminal.tap(amount=1500)                       # the profile's amounts: 1000, 2000, 5000, 10000
        assert odd.status == "declined" and "not one of" in odd.reason
        assert [e.outcome.status for e in journal.all()] == ["torn", "approved", "declined"]   # write-ahead first
        assert journal.pending() == []
        with pytest.raises(ValueError, match="needs the amount"):
            terminal.tap()


def test_the_seam_recovers_a_torn_load_on_the_card_s_return():
    w = make_world()
    tear = TearingReader(w.card_reader)
    terminal = make_terminal(load_terminal_profile(terminal_profile_path("load")), w.psam_reader, tear,
                             clock=w.clock)
    tear.arm(at_ins=0x52, when="after")
    assert terminal.tap(amount=1000).status == "torn" and w.balance == 6000
    again = terminal.tap(amount=1000)
    assert again.status == "recovered" and again.mac2_verified is True and w.balance == 6000


def test_the_seam_without_a_psam_cannot_work():
    w = make_world()
    w.psam_slot.remove()
    with pytest.raises(TerminalError, match="PSAM start-up failed"):
        make_terminal(load_terminal_profile(terminal_profile_path("load")), w.psam_reader, w.card_reader).tap(1000)


def test_a_validator_tap_through_the_seam_is_the_reference_exchange():
    w = make_world()
    terminal = make_terminal(terminal_profile("bus-flat"), w.psam_reader, w.card_reader, clock=w.clock)
    terminal.tap()
    assert headers(w.log)[3:] == [*SELECT, READ_17, ("card", "80500102"), *PSAM_8070, ("card", "80540100"),
                                  PSAM_8072]
