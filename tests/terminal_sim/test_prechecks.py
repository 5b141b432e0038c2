"""The pre-checks of reference 5.1, in order: each refusal is a declined outcome with a clear reason,
sent with exactly the commands needed to reach it (black-listed cards are locked on the spot)."""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from keysets import Algorithm, SecretKey
from terminal_sim.export import export
from terminal_sim.journal import Journal
from terminal_sim.prechecks import Lists, algorithm_of_key_index, card_medium
from terminal_sim.links import TamperingReader
from ykt_card.host.card import application_block_mac
from ykt_card.card.state import Lock

from tests.terminal_sim.test_flows import (READ_17, SELECT, answer, card_key, command, headers, make_world,
                                           terminal_profile)

BLACKLISTED = "03105810000000009999"     # on specs/lists/blacklist-gd.txt


def declined(out, *words: str) -> None:
    assert out.status == "declined", out
    assert out.tac is None and out.list_version == "2024112401"
    for word in words:
        assert word in out.reason, (word, out.reason)


def test_a_card_without_the_t_union_application_is_refused_after_select():
    w = make_world()
    w.state.aid = bytes.fromhex("A00000000386980701")        # a MOHURD purse, not T-Union
    out = w.validator("bus-flat").tap()
    declined(out, "not a T-Union card", "6A82")
    assert headers(w.log) == [*SELECT] and out.card_no is None


def test_locked_applications_are_refused_by_their_select_status_word():
    w = make_world()
    w.state.lock = Lock.TEMPORARY
    declined(w.validator("bus-flat").tap(), "temporarily locked", "6283")
    w.state.lock = Lock.PERMANENT
    declined(w.validator("bus-flat").tap(), "permanently locked", "9303")
    assert headers(w.log) == [*SELECT]


def test_an_ed_only_application_has_no_purse():
    w = make_world(app_type=0x01)
    declined(w.validator("bus-flat").tap(), "no electronic purse")
    assert headers(w.log) == [*SELECT]


def test_dates_of_ef15():
    expired = make_world(clock="20450101080000")             # issued 2024-01-01, valid 20 years
    declined(expired.validator("bus-flat").tap(), "expired on 20440101")
    early = make_world(issued_on=_dt.date(2025, 1, 1))
    declined(early.validator("bus-flat").tap(), "not valid before 20250101")
    assert headers(early.log) == [*SELECT]


def test_a_card_of_another_city_must_be_interoperable():
    foreign = make_world("gd-shenzhen", card_no="03104870400000000042", interoperable=False)
    declined(foreign.validator("bus-flat").tap(), "5840", "not interoperable")
    assert headers(foreign.log) == [*SELECT, READ_17]
    local = make_world("gd-guangzhou", card_no="03104870300000000042", interoperable=False)
    assert local.validator("bus-flat").tap().status == "approved"


def test_the_issuer_white_list_narrows_acceptance():
    w = make_world(org_code="1234")                          # issuer 12345810FFFFFFFF is not listed
    narrowed = terminal_profile("ferry", lists={"blacklist": "../../lists/blacklist-gd.txt",
                                                "whitelist": "../../lists/issuers-gd.txt"})
    declined(w.validator(narrowed).tap(), "12345810FFFFFFFF", "not on issuer list 2024112401")
    assert headers(w.log) == [*SELECT, READ_17]
    assert w.validator("ferry").tap().status == "approved"      # shipped: any interoperable card
    assert w.validator("bus-flat").tap().status == "approved"


def test_shipped_profiles_accept_every_interoperable_issuer():
    """The national interoperability rule: no shipped terminal profile narrows acceptance by issuer."""
    from specs.catalog import terminal_profile_names
    for name in terminal_profile_names():
        assert terminal_profile(name).whitelist is None, name


def test_a_black_listed_card_is_locked_on_the_spot_with_a_psam_mac():
    w = make_world(card_no=BLACKLISTED)
    out = w.validator("bus-flat").tap()
    declined(out, "black list 2024112401", "application locked")
    assert headers(w.log) == [*SELECT, READ_17, ("card", "00840000"), ("psam", "801A4901"), ("psam", "80FA0500"),
                              ("psam", "00C00000"), ("card", "841E0000")]
    assert command(w.log, "card", "00840000").le == 4
    assert command(w.log, "psam", "801A4901").data == w.state.serial8 + w.state.issuer_id
    challenge = answer(w.log, "card", "00840000")
    mac_input = command(w.log, "psam", "80FA0500").data
    assert mac_input[:8] == challenge + bytes(4)
    assert mac_input[8:] == bytes.fromhex("841E000004800000")
    key = SecretKey(Algorithm.TDES, card_key(w.state, "app_block"))
    assert command(w.log, "card", "841E0000").data == application_block_mac(key, challenge)
    assert w.state.lock is Lock.TEMPORARY
    again = w.validator("bus-flat").tap()
    declined(again, "temporarily locked")
    assert w.balance == 5000 and w.counter == 0


def test_the_block_mac_uses_the_block_size_of_the_key_index():
    assert algorithm_of_key_index(1) is Algorithm.TDES and algorithm_of_key_index(2) is Algorithm.SM4
    w = make_world(card_no=BLACKLISTED)
    out = w.validator("bus-flat-capp").tap()                  # key index 2: SM4, 16-byte blocks
    declined(out, "application locked")
    assert len(command(w.log, "psam", "80FA0500").data) == 32
    assert w.state.lock is Lock.TEMPORARY


def test_the_order_dates_before_interoperability_before_the_black_list():
    both = make_world(card_no=BLACKLISTED, clock="20450101080000")
    declined(both.validator("bus-flat").tap(), "expired")
    assert both.state.lock is Lock.NONE                       # never reached step 4
    foreign = make_world("gd-shenzhen", card_no="03104870400000000025", interoperable=False)
    declined(foreign.validator("bus-flat").tap(), "not interoperable")
    assert foreign.state.lock is Lock.NONE


def test_the_ef1a_lock_flag_refuses_the_card():
    w = make_world()
    rec = bytearray(w.state.files[0x1A].records[1])
    rec[5] = 0x01
    w.state.files[0x1A].records[1] = bytes(rec)
    out = w.validator("metro-entry").tap()
    declined(out, "EF1A record 01 is locked")
    assert headers(w.log) == [*SELECT, READ_17, ("card", "00B201D4")]
    assert w.validator("bus-segment").tap().status == "approved"   # record 02 is not locked


def test_a_card_without_the_flow_record_is_refused():
    w = make_world(capp_records=(2,))
    declined(w.validator("metro-entry").tap(), "no EF1A record 01")


def test_a_new_list_file_is_picked_up_between_taps_and_named_in_the_outcome(tmp_path: Path):
    lst = tmp_path / "black.txt"
    lst.write_text("kind: blacklist\nversion: 2024112401\n03104870300000000017\n", encoding="utf-8")
    w = make_world()
    v = w.validator(terminal_profile("bus-flat", lists={"blacklist": str(lst)}))
    first = v.tap()
    assert first.status == "approved" and first.list_version == "2024112401"
    lst.write_text("kind: blacklist\nversion: 2024112502\n03105810000000001234\n", encoding="utf-8")
    os.utime(lst, ns=(0, 10**18))                               # a new stamp even within one tick
    second = v.tap()
    assert second.status == "declined" and second.list_version == "2024112502"
    assert "black list 2024112502" in second.reason
    lst.write_text("kind: blacklist\nversion: broken\n", encoding="utf-8")
    os.utime(lst, ns=(0, 2 * 10**18))
    v.lists.refresh()
    assert v.lists.version == "2024112502"                     # a broken file keeps the last good list
    assert Lists(terminal_profile("bus-flat").blacklist).version == "2024112401"


def test_ef15_is_read_only_when_the_fci_lacks_it():
    w = make_world()

    def bare_fci(rapdu: bytes) -> bytes:             # 6F(84 AID) 9000: no proprietary template
        aid = bytes.fromhex("A000000632010105")
        if b"2PAY.SYS.DDF01" in rapdu:
            return rapdu                             # the PPSE passes unchanged
        return bytes((0x6F, len(aid) + 2, 0x84, len(aid))) + aid + rapdu[-2:]

    bare = TamperingReader(w.card_reader, ins=0xA4, tamper=bare_fci, times=2)
    out = w.validator("bus-flat", card_reader=bare).tap()
    assert out.status == "approved"
    assert headers(w.log)[:4] == [*SELECT, ("card", "00B09500"), READ_17]
    assert command(w.log, "card", "00B09500").le == 0x1E


# -- the medium of a card record (mobile.md M4) ---------------------------------------------------------

PHONE_AID = bytes.fromhex("A0000006320101055800022058100000")     # M1: the Guangdong virtual card


def test_the_medium_is_virtual_only_for_a_df_name_longer_than_8_bytes():
    assert card_medium(bytes.fromhex("A000000632010105")) == "physical"
    assert card_medium(bytes.fromhex("A00000063201010558")) == "virtual"          # 9 bytes
    assert card_medium(PHONE_AID) == "virtual"


def test_a_card_whose_fci_names_an_extended_aid_is_journaled_and_exported_virtual(tmp_path: Path):
    """A phone card (gd-guangzhou-virtual: FCI tag 84 the 16-byte extended AID of mobile.md M1) and a
    plastic card tapped at one validator: the records say `virtual` and `physical` (M4), in the journal and
    in the clearing export."""
    phone_world = make_world("gd-guangzhou-virtual", card_no="03104870300000000042")
    card_world = make_world(psam=phone_world.psam_os)          # one validator: one PSAM, one journal
    card_world.clock.advance(120)
    with Journal(tmp_path / "journal.db") as journal:
        phone = phone_world.validator("bus-flat", journal=journal).tap()
        card = card_world.validator("bus-flat", journal=journal).tap()
    assert (phone.status, phone.medium, card.status, card.medium) == ("approved", "virtual", "approved", "physical")
    export(tmp_path / "journal.db", "jsonl", tmp_path / "upload.jsonl")
    rows = [json.loads(line) for line in (tmp_path / "upload.jsonl").read_text().splitlines()]
    assert [(r["card_no"], r["medium"]) for r in rows] == [(phone.card_no, "virtual"), (card.card_no, "physical")]
