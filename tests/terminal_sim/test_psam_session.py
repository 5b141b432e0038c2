"""The PSAM's pending purchase seen by a validator started later (D12, issue 12 part 6).

A new validator (a new process) learns its PSAM's session from its journal's newest terminal sequence.
That is an inference: an 8070 the journal never saw (a terminal killed before journaling it, a run
without the journal) may have replaced the session. Then the PSAM answers 9302 to the recovered MAC2:
the record is recovered with the MAC2 unverified, and the card is not refused on its next tap.
"""
from __future__ import annotations

from terminal_sim.journal import Journal
from terminal_sim.links import TearingReader

from tests.terminal_sim.test_flows import make_world

DEBIT_INS = 0x54


def test_a_9302_on_a_session_known_only_from_the_journal_is_unverified_not_a_refusal(tmp_path):
    w = make_world()
    other = make_world(card_no="03105810000000005678", seed=7)
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader)
        v = w.validator("bus-flat", card_reader=tear, journal=journal)
        tear.arm(at_ins=DEBIT_INS, when="after")
        grey = v.tap()
        assert grey.status == "torn" and w.psam_os.state.pending_purchase.terminal_seq == grey.terminal_seq
    # another rider on the same PSAM, torn too, journaled nowhere this terminal reads
    w.swap_card(other)
    tear_other = TearingReader(w.card_reader)
    unjournaled = w.validator("bus-flat", card_reader=tear_other)
    tear_other.arm(at_ins=DEBIT_INS, when="after")
    assert unjournaled.tap().status == "torn"
    assert w.psam_os.state.pending_purchase.terminal_seq == grey.terminal_seq + 1
    w.back()
    w.clock.advance(20)
    with Journal(tmp_path / "j.db") as journal:
        out = w.validator("bus-flat", journal=journal).tap()       # a new process: the session from the journal
        assert out.status == "recovered" and out.mac2_verified is False
        assert out.reason == ("recovered with GET TRANSACTION PROVE; PSAM 8072 answered 9302 for a session known "
                              "only from the journal (another 8070 may have replaced it): MAC2 unverified, clearing "
                              "checks the TAC")
        assert journal.take_flag(w.state.card_no) is None           # not refused on its next tap
