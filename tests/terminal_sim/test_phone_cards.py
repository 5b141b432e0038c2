"""Phone (virtual) T-Union cards at the validator (mobile.md M1, M2, 2.2): exact exchange tables of how the
T-Union EP is found — through the PPSE, or by partial selection when the PPSE is absent or lacks it — and a
phone card accepted by every shipped terminal profile, on the real card OS and PSAM in-process."""
from __future__ import annotations

import pytest

from specs.catalog import terminal_profile_names, terminal_profile_path
from terminal_sim.prechecks import Refusal, Selected, find_in_ppse, select_card
from terminal_sim.profile import load_terminal_profile
from terminal_sim.terminal import make_terminal
from ykt_card.host.card import Ppse, TUnionCard
from ykt_card.layouts.fci import PpseEntry
from ykt_card.layouts.names import DEFAULT_PPSE, MOT_T_CASH

from tests.terminal_sim.test_flows import PSAM_8070, PSAM_8072, READ_17, headers, make_world, tac_of

GZ_PHONE = "A0000006320101055800022058100000"
PHONE_NO = "03104870300000000042"
SELECT_PPSE = "00A404000E325041592E5359532E444446303100"
PPSE_PHYSICAL = ("6F49840E325041592E5359532E4444463031A537BF0C34"
                 "61194F08A000000632010106500A4D4F545F545F43415348870101"
                 "61174F08A00000063201010550084D4F545F545F4550870102")
PPSE_PHONE = ("6F36840E325041592E5359532E4444463031A524BF0C21"
              "611F4F10" + GZ_PHONE + "50084D4F545F545F4550870101")
PPSE_CASH_ONLY = ("6F30840E325041592E5359532E4444463031A51EBF0C1B"
                  "61194F08A000000632010106500A4D4F545F545F43415348870101")
PURCHASE = [READ_17, ("card", "80500102"), *PSAM_8070, ("card", "80540100"), PSAM_8072]


def fci(aid: str, ef15: bytes) -> str:
    """The EP's FCI as a card answers it (tunion.md 1.2): 84 the whole AID, A5 { 9F08 02, 9F0C EF15 }."""
    return f"6F{len(aid) // 2 + 0x29:02X}84{len(aid) // 2:02X}{aid}A5259F0801029F0C1E{ef15.hex().upper()}"


def card_table(log) -> list[tuple[str, str]]:
    """(command, response) of the card's side, in order, hex."""
    return [(c.hex().upper(), r.hex().upper()) for who, c, r in log if who == "card"]


def test_physical_card_found_through_the_ppse():
    w = make_world()
    out = w.validator("bus-flat").tap()
    assert card_table(w.log)[:2] == [
        (SELECT_PPSE, PPSE_PHYSICAL + "9000"),                       # MOT_T_CASH first: not the EP
        ("00A4040008A00000063201010500", fci("A000000632010105", w.state.ef15) + "9000"),
    ]
    assert headers(w.log)[2:] == PURCHASE
    assert out.status == "approved" and out.tac == tac_of(out, w.state)


def test_phone_card_found_through_the_ppse():
    w = make_world("gd-guangzhou-virtual", card_no=PHONE_NO)
    out = w.validator("bus-flat").tap()
    assert card_table(w.log)[:2] == [
        (SELECT_PPSE, PPSE_PHONE + "9000"),
        ("00A4040010" + GZ_PHONE + "00", fci(GZ_PHONE, w.state.ef15) + "9000"),   # the full extended AID
    ]
    assert headers(w.log)[2:] == PURCHASE
    assert out.status == "approved" and out.card_no == PHONE_NO and out.tac == tac_of(out, w.state)
    assert w.balance == 5000 - 200


@pytest.mark.parametrize("ppse,answer", [((), "6A82"), ((PpseEntry(MOT_T_CASH, "MOT_T_CASH", 1),),
                                                        PPSE_CASH_ONLY + "9000")],
                         ids=["no PPSE", "PPSE without the EP"])
def test_phone_card_found_by_partial_selection(ppse, answer):
    w = make_world("gd-guangzhou-virtual", card_no=PHONE_NO)
    w.state.ppse = ppse
    out = w.validator("bus-flat").tap()
    assert card_table(w.log)[:2] == [
        (SELECT_PPSE, answer),
        ("00A4040008A00000063201010500", fci(GZ_PHONE, w.state.ef15) + "9000"),   # P2 00: first occurrence
    ]
    assert headers(w.log)[2:] == PURCHASE
    assert out.status == "approved" and out.tac == tac_of(out, w.state)


def test_the_selected_aid_and_the_way_it_was_found_reach_the_validator():
    """What `select_card` gives the flows: FCI tag 84 (the medium of M4 is read from its length)."""
    cases = [("reference", "03105810000000001234", None, "A000000632010105", "ppse"),
             ("gd-guangzhou-virtual", PHONE_NO, None, GZ_PHONE, "ppse"),
             ("gd-guangzhou-virtual", PHONE_NO, (), GZ_PHONE, "partial"),
             ("generic-virtual", "03105810900000000007", None, "A00000063201010558105810FFFFFFFF", "ppse")]
    for profile, number, ppse, aid, via in cases:
        w = make_world(profile, card_no=number)
        if ppse is not None:
            w.state.ppse = ppse
        card = TUnionCard(w.card_reader)
        card.connect()
        selected = select_card(card)
        assert isinstance(selected, Selected), selected
        assert (selected.aid.hex().upper(), selected.fci.aid, selected.via) == (aid, aid, via)
        assert selected.card_no == number


def test_a_card_whose_application_answers_another_aid_is_refused():
    w = make_world()
    w.state.ppse = ()
    w.state.aid = bytes.fromhex("A000000632010106")       # partial selection of ...0105 finds nothing
    card = TUnionCard(w.card_reader)
    card.connect()
    refusal = select_card(card)
    assert refusal == Refusal("not a T-Union card: SELECT answered 6A82 (no such application)")


def test_the_ppse_entry_is_the_t_union_ep_of_the_highest_priority():
    phone_a, phone_b = bytes.fromhex(GZ_PHONE), bytes.fromhex("A00000063201010510009156000014A1")
    assert find_in_ppse(Ppse("2PAY.SYS.DDF01", DEFAULT_PPSE)).aid == bytes.fromhex("A000000632010105")
    assert find_in_ppse(Ppse("2PAY.SYS.DDF01", (PpseEntry(phone_a, None, 3), PpseEntry(phone_b, "MOT_T_EP", 2)))
                        ).aid == phone_b
    assert find_in_ppse(Ppse("2PAY.SYS.DDF01", (PpseEntry(phone_a), PpseEntry(phone_b)))).aid == phone_a
    assert find_in_ppse(Ppse("2PAY.SYS.DDF01", (PpseEntry(MOT_T_CASH, "MOT_T_CASH", 1),))) is None


@pytest.mark.parametrize("name", terminal_profile_names())
def test_every_shipped_terminal_profile_accepts_physical_and_phone_cards_alike(name):
    profile = load_terminal_profile(terminal_profile_path(name))
    amount = 1000 if profile.flow in ("load", "taxi") else None
    results = []
    for card_profile, number in (("reference", "03105810000000001234"), ("gd-guangzhou-virtual", PHONE_NO),
                                 ("generic-virtual", "03105810900000000007")):
        w = make_world(card_profile, card_no=number)
        terminal = make_terminal(profile, w.psam_reader, w.card_reader, clock=w.clock)
        out = terminal.tap(amount) if amount is not None else terminal.tap()
        assert out.status == "approved", (name, card_profile, out.reason)
        assert out.card_no == number
        results.append((out.type, out.amount, w.balance))
    assert results[0] == results[1] == results[2]             # the medium changes nothing in the ride
