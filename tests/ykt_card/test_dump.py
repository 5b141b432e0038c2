"""read_card / to_json over the real virtual card OS (through InProcessReader); the text is tools/render.py's.

A fresh card, the same card after a load and a CAPP purchase (metro entry with EF1A and EF1E
records), cards with extra EF1A records, locked cards, a card that is not T-Union and one whose EF15
does not decode. Expected values are computed from what the test wrote to the card (through the
layouts' encoders and the host API), never copied from a dump.
"""
from __future__ import annotations

import json

import pytest

from apdu.status import CardError
from keysets import TYPE_CAPP_PURCHASE, TYPE_LOAD, Algorithm, LoadSession, PurchaseSession
from tests.reference import h
from tests.ykt_card.test_host import EF15, TERMINAL, Rig, card_keys, shipped_keyset
from ykt_card.card.cos import TUnionCardOS
from ykt_card.host.dump import CAPP_RECORD_IDS, read_card, to_json
from ykt_card.layouts import EF1AMetro, EF1EA, EF1EB, EF18

LOAD_TIME = h("20261123090000")
ENTRY_TIME = h("20261123081530")


def load(rig: Rig, amount: int) -> bytes:
    keys = card_keys("3des")
    init = rig.card.initialize_load(0x01, amount, TERMINAL)
    sess = LoadSession.derive(Algorithm.TDES, keys.entry("load").key.value, init.random,
                              init.online_counter)
    return rig.card.credit_load(LOAD_TIME, sess.mac2(amount, TERMINAL, LOAD_TIME))


def metro_entry_record() -> bytes:
    fields = EF1AMetro.blank()
    fields.update({"trade_serial": "0000000000000042", "status": "01", "in_city": "5810",
                   "in_issuer": "58105810FFFFFFFF", "in_station": "5810000100000007",
                   "in_terminal": "0000581000000123", "in_time": "2026-11-23 08:15:30",
                   "max_fare": 900})
    return EF1AMetro.encode(fields)


def history_record(amount: int, balance_after: int) -> bytes:
    return EF1EA.encode({"type": "03", "terminal_id": "0000581000000123", "industry": "01",
                         "line": "0003", "station": "0007", "operator": "0001", "amount": amount,
                         "balance_after": balance_after, "datetime": "2026-11-23 08:15:30",
                         "city": "5810", "institution_id": "58105810FFFFFFFF"})


def capp_purchase(rig: Rig, amount: int, records: list[tuple[int, int, bytes]]) -> bytes:
    keys = card_keys("3des")
    init = rig.card.initialize_purchase(0x01, amount, TERMINAL, capp=True)
    for record_id, sfi, data in records:
        rig.card.update_capp_cache(record_id, sfi, data)
    sess = PurchaseSession.derive(Algorithm.TDES, keys.entry("purchase").key.value, init.random,
                                  init.offline_counter, 0x77)
    return rig.card.debit(0x77, ENTRY_TIME,
                          sess.mac1(amount, TYPE_CAPP_PURCHASE, TERMINAL, ENTRY_TIME)).tac


@pytest.fixture
def used_card() -> Rig:
    """A card that took a 50.00 load, then a 2.00 CAPP metro purchase writing EF1A 01 and EF1E."""
    rig = Rig()
    rig.card.select()
    load(rig, 5000)
    capp_purchase(rig, 200, [(0x01, 0x1A, metro_entry_record()),
                             (0x00, 0x1E, history_record(200, 4800))])
    rig.rec.clear()
    return rig


# -- a fresh card -----------------------------------------------------------------------------------

def test_fresh_card_dump() -> None:
    rig = Rig(balance=1234, overdraft_limit=500)
    dump = read_card(rig.card)
    assert dump["format"] == 1
    assert dump["ppse"] == {"df_name": "2PAY.SYS.DDF01", "entries": [
        {"aid": "A000000632010106", "label": "MOT_T_CASH", "priority": 1},
        {"aid": "A000000632010105", "label": "MOT_T_EP", "priority": 2}]}
    assert dump["application"] == {"aid": "A000000632010105", "app_version": "02", "locked": None,
                                   "sw": "9000", "ef15": EF15.hex().upper()}
    assert dump["card_no"] == "03105810000000001234"
    public = dump["public_data"]
    assert public["file"] == "EF15" and public["raw"] == EF15.hex().upper()
    assert {k: public["fields"][k] for k in ("card_no", "card_no_printed", "issuer_id",
                                              "start_date", "expiry_date")} == {
        "card_no": "03105810000000001234", "card_no_printed": "3105810000000001234",
        "issuer_id": "58105810FFFFFFFF", "start_date": "2024-01-01", "expiry_date": "2034-12-31"}
    assert dump["holder"]["fields"]["name"] == ""
    assert dump["management"]["file"] == "EF17" and "fields" in dump["management"]
    assert dump["balance"] == {"total": 1734, "limit": 500, "real": 1234}
    assert dump["transactions"] == []
    assert [(r["record_id"], r["name"], r["file"]) for r in dump["transit_records"]] == [
        ("01", "metro", "EF1A-metro"), ("02", "bus", "EF1A-bus")]
    assert dump["transit_records"][0]["raw"] == rig.state.files[0x1A].records[1].hex().upper()
    assert dump["transit_records"][0]["fields"]["lock_flag"] == "00"
    assert dump["history"] == {"layout": "A", "records": []}


def test_read_card_sends_the_reference_read_commands() -> None:
    rig = Rig()
    read_card(rig.card)
    assert rig.rec.commands == [
        "00A404000E325041592E5359532E444446303100",
        "00A4040008A00000063201010500",
        "00B095001E", "00B0960037", "00B097003C",
        "805C000204", "805C010204", "805C030204",
        "00B201C400",
        *[f"00B2{rid:02X}D400" for rid in CAPP_RECORD_IDS],
        "00B201F430",
    ]
    answers = dict(rig.rec.exchanges)
    assert [answers[f"00B2{rid:02X}D400"][-4:] for rid in CAPP_RECORD_IDS] == (
        ["9000", "9000"] + ["6A83"] * (len(CAPP_RECORD_IDS) - 2))


def test_extra_ef1a_records_are_kept_and_decoded_opaque() -> None:
    rig = Rig(capp_records=[0x01, 0x02, 0x07, 0x0D])
    records = read_card(rig.card)["transit_records"]
    assert [(r["record_id"], r["name"], r["file"]) for r in records] == [
        ("01", "metro", "EF1A-metro"), ("02", "bus", "EF1A-bus"),
        ("07", "parking", "EF1A-other"), ("0D", "discount_info", "EF1A-other")]
    assert [len(r["raw"]) // 2 for r in records] == [128, 128, 112, 30]
    assert records[3]["fields"]["body"] == "00" * 24


# -- after a load and a purchase --------------------------------------------------------------------

def test_dump_after_a_load_and_a_capp_purchase(used_card: Rig) -> None:
    dump = read_card(used_card.card)
    assert dump["balance"] == {"total": 4800, "limit": 0, "real": 4800}
    txs = dump["transactions"]
    assert [t["record"] for t in txs] == [1, 2]
    assert [(t["fields"]["type"], t["fields"]["amount"], t["fields"]["counter"]) for t in txs] == [
        (f"{TYPE_CAPP_PURCHASE:02X}", 200, 1), (f"{TYPE_LOAD:02X}", 5000, 1)]
    assert txs[0]["fields"]["type_name"] == "capp_purchase"
    assert txs[0]["fields"]["terminal_id"] == TERMINAL.hex().upper()
    assert txs[0]["fields"] == EF18.decode(h(txs[0]["raw"]))
    metro = dump["transit_records"][0]
    assert metro["raw"] == metro_entry_record().hex().upper()
    assert metro["fields"] == EF1AMetro.decode(metro_entry_record())
    assert metro["fields"]["in_station"] == "5810000100000007"
    history = dump["history"]["records"]
    assert len(history) == 1 and history[0]["record"] == 1
    assert history[0]["fields"] == EF1EA.decode(history_record(200, 4800))
    assert history[0]["fields"]["balance_after"] == 4800


def test_history_decodes_with_layout_b_on_request(used_card: Rig) -> None:
    dump = read_card(used_card.card, layout_1e="b")
    assert dump["history"]["layout"] == "B"
    record = dump["history"]["records"][0]
    assert record["file"] == "EF1E-B"
    assert record["fields"] == EF1EB.decode(history_record(200, 4800))


def test_layout_must_be_a_or_b(used_card: Rig) -> None:
    with pytest.raises(ValueError, match="layout_1e"):
        read_card(used_card.card, layout_1e="C")
    assert used_card.rec.exchanges == []


def test_json_is_deterministic_and_round_trips(used_card: Rig) -> None:
    first = to_json(read_card(used_card.card))
    second = to_json(read_card(used_card.card))
    assert first == second
    assert json.loads(first) == read_card(used_card.card)
    assert first.endswith("\n")


def test_json_holds_no_key_material(used_card: Rig) -> None:
    text = to_json(read_card(used_card.card)).upper()
    secrets = []
    for alg in ("3des", "sm4"):
        for ks in (shipped_keyset(alg), card_keys(alg)):
            secrets += [entry.key.value.hex().upper() for entry in ks.keys.values()]
    for secret in secrets:
        for i in range(0, len(secret) - 15, 8):     # no 8-byte run of any key either
            assert secret[i:i + 16] not in text


# -- locked, foreign and damaged cards --------------------------------------------------------------

def test_a_temporarily_locked_card_still_dumps(used_card: Rig) -> None:
    used_card.card.application_block_with_key(card_keys("3des").entry("app_block").key)
    dump = read_card(used_card.card)
    assert dump["application"]["locked"] == "temporary" and dump["application"]["sw"] == "6283"
    assert dump["card_no"] == "03105810000000001234"
    assert dump["balance"]["real"] == 4800
    assert len(dump["transactions"]) == 2


def test_a_permanently_locked_card_shows_its_refusals(used_card: Rig) -> None:
    used_card.card.application_block_with_key(card_keys("3des").entry("app_block").key,
                                              permanent=True)
    dump = read_card(used_card.card)
    assert dump["application"]["locked"] == "permanent"
    assert dump["application"]["ef15"] == EF15.hex().upper()
    refusal = {"sw": "9303", "error": "application permanently locked"}
    assert dump["public_data"] == refusal and dump["balance"] == refusal
    assert dump["transactions"] == refusal and dump["history"]["records"] == refusal
    assert {r["sw"] for r in dump["transit_records"]} == {"9303"}
    assert dump["card_no"] is None


class NoPpseCard(TUnionCardOS):
    """A card without the contactless directory: SELECT 2PAY.SYS.DDF01 answers 6A82."""

    def select(self, cmd):
        if cmd.data == b"2PAY.SYS.DDF01":
            raise CardError(0x6A82)
        return super().select(cmd)


def test_a_card_without_ppse_still_dumps() -> None:
    rig = Rig(card_cls=NoPpseCard)
    dump = read_card(rig.card)
    assert dump["ppse"] == {"sw": "6A82", "error": "file or application not found"}
    assert dump["application"]["aid"] == "A000000632010105"
    assert dump["card_no"] == "03105810000000001234"


def test_a_card_without_the_tunion_application_is_refused() -> None:
    rig = Rig()
    rig.state.aid = h("A00000000386980701")
    with pytest.raises(CardError) as err:
        read_card(rig.card)
    assert err.value.sw == 0x6A82


def test_an_undecodable_ef15_is_shown_raw_with_the_reason() -> None:
    bad = EF15[:10] + h("0310581000000000123A") + EF15[20:]
    rig = Rig(ef15=bad)
    dump = read_card(rig.card)
    public = dump["public_data"]
    assert public["raw"] == bad.hex().upper() and "fields" not in public
    assert "card_no" in public["decode_error"] and "byte 19" in public["decode_error"]
    assert dump["card_no"] is None
