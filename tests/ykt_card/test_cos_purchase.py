"""Purchase and CAPP purchase: computed vectors byte for byte, host-checked runs in 3DES and SM4, D5, D6."""
import pytest

from tests.ykt_card.helpers import (
    SELECT_AID, VECTORS, HostTerminal, ScriptedRandom, capp_metro_record, capp_update_1a, capp_update_1e,
    computed_master_keyset, gd_keyset, h, make_card, run_table, state_fingerprint,
)


def selected(card):
    assert card.process(h(SELECT_AID))[-2:] == b"\x90\x00"
    return card


def terminal(card, *algs):
    return HostTerminal.for_card(card, [gd_keyset(a) for a in algs or ("3des", "sm4")])


def unchanged(card, action):
    before = state_fingerprint(card)
    result = action()
    assert state_fingerprint(card) == before
    return result


@pytest.mark.parametrize("alg,index,wire", [("3des", 1, "00"), ("sm4", 2, "04")])
def test_computed_purchase_vectors(alg, index, wire):
    v = VECTORS["computed"][alg]["purchase"]
    card = selected(make_card([computed_master_keyset(alg)], rng=ScriptedRandom(v["random"]),
                              balance=5000, offline_counter=int(v["offline_counter"], 16)))
    after = int(v["offline_counter"], 16) + 1
    run_table(card, [
        (f"805001020B{index:02X}{v['amount']}{v['terminal_id']}0F",
         f"00001388{v['offline_counter']}00000001{wire}{v['random']}9000"),
        (f"805401000F{v['terminal_seq']}{v['datetime']}{v['mac1']}08", f"{v['tac']}{v['mac2']}9000"),
        ("00B201C400", f"{after:04X}000000{v['amount']}06{v['terminal_id']}{v['datetime']}9000"),
        (f"805A000602{after:04X}08", f"{v['mac2']}{v['tac']}9000"),
        (f"805A000902{after:04X}08", "9406"),           # same counter, other type
        (f"805A000602{after - 1:04X}08", "9406"),
        ("805C000204", f"{5000 - int(v['amount'], 16):08X}9000"),
    ])
    assert card.state.purse.offline_counter == after and card.state.purse.online_counter == 0


@pytest.mark.parametrize("index", [1, 2])
def test_capp_purchase_writes_ef1a_ef1e_atomically_with_the_debit(index):
    card = selected(make_card(balance=1000))
    t = terminal(card)
    r = t.purchase(150, key_index=index, capp=[capp_update_1a(1, 0x5A), capp_update_1e(0x33)])
    assert r["sw"] == 0x9000 and r["type"] == 0x09
    st = card.state
    assert st.purse.balance == 850 and st.purse.offline_counter == 1
    assert st.files[0x1A].records[1] == capp_metro_record(1, 0x5A)
    assert t.x("00B201F430").data == bytes([0x03]) + bytes([0x33]) * 47
    log = t.x("00B201C400").data
    assert log == h("0001 000000 00000096 09") + t.terminal_id + h("20261123081530")
    assert t.prove(0x09, 1).data == r["mac2"] + r["tac"]
    assert t.prove(0x06, 1).sw == 0x9406


def test_zero_amount_metro_entry_gets_a_tac_and_counts():
    card = selected(make_card([gd_keyset()], balance=0))
    t = terminal(card, "3des")
    r = t.purchase(0, capp=[capp_update_1a(1, 0x01), capp_update_1e(0x03)])
    assert r["sw"] == 0x9000 and len(r["tac"]) == 4
    assert card.state.purse.offline_counter == 1 and card.state.purse.balance == 0


def test_several_cache_writes_last_1a_write_wins_and_1e_appends_in_order():
    card = selected(make_card([gd_keyset()], balance=1000))
    t = terminal(card, "3des")
    r = t.purchase(10, capp=[capp_update_1a(2, 0x01), capp_update_1e(0x41), capp_update_1a(2, 0x02),
                             capp_update_1e(0x42)])
    assert r["sw"] == 0x9000
    assert card.state.files[0x1A].records[2] == capp_metro_record(2, 0x02)
    assert t.x("00B201F400").data[1] == 0x42 and t.x("00B202F400").data[1] == 0x41


def test_ef1e_wraps_after_30_records():
    card = selected(make_card([gd_keyset()], balance=100_000))
    t = terminal(card, "3des")
    for i in range(32):
        assert t.purchase(1, capp=[capp_update_1e(i)])["sw"] == 0x9000
    assert t.x("00B201F400").data[1] == 31 and t.x("00B21EF400").data[1] == 2
    assert t.x("00B21FF400").sw == 0x6A83
    assert t.x("00B20AC400").data[0:2] == (23).to_bytes(2, "big")   # EF18 keeps the newest 10
    assert t.x("00B20BC400").sw == 0x6A83


def test_overdraft_lets_balance_go_negative_down_to_the_limit():
    card = selected(make_card([gd_keyset()], balance=100, overdraft_limit=500))
    t = terminal(card, "3des")
    r = t.purchase(550)
    assert r["sw"] == 0x9000 and r["total_before"] == 600 and r["limit"] == 500
    assert card.state.purse.balance == -450
    assert t.x("805C000204").data == (50).to_bytes(4, "big")
    assert unchanged(card, lambda: t.purchase(51))["sw"] == 0x9401
    assert t.purchase(50)["sw"] == 0x9000 and card.state.purse.balance == -500
    assert t.x("00B201C400").data[2:5] == h("0001F4")        # EF18 records the limit


def test_purchase_refusals_change_nothing():
    card = selected(make_card([gd_keyset()], balance=100))
    t = terminal(card, "3des")
    tid = "112233445566"
    unchanged(card, lambda: run_table(card, [
        ("805001020B0100000065" + tid + "0F", "9401"),
        ("805003020B0100000065" + tid + "0F", "9401"),
        ("805001020B0200000001" + tid + "0F", "9403"),
        ("805001020B0100000001" + tid + "05", "6700"),
        ("805401000F" + "00000001" + "20261123081530" + "00000000" + "08", "6985"),  # DEBIT without INIT
        ("80DC01D080" + capp_metro_record().hex(), "6985"),                         # 80DC without INIT
    ]))
    assert unchanged(card, lambda: t.purchase(10, bad_mac1=True))["sw"] == 0x9302


def test_wrong_mac1_ends_the_session():
    card = selected(make_card([gd_keyset()], balance=100))
    t = terminal(card, "3des")
    r = t.purchase(10, bad_mac1=True)
    assert r["sw"] == 0x9302
    assert unchanged(card, lambda: t.x(r["good_debit_apdu"])).sw == 0x6985   # the right MAC1, too late


def test_debit_header_and_length_checks():
    card = selected(make_card([gd_keyset()], balance=100))
    t = terminal(card, "3des")
    for bad, sw in [("805400000F", 0x6A86), ("805401010F", 0x6A86), ("805401000E", 0x6700)]:
        assert t.init_purchase(10).sw == 0x9000
        body = "00000001" "20261123081530" + "00000000"
        apdu = bad + (body[:-2] if bad.endswith("0E") else body) + "08"
        assert unchanged(card, lambda: t.x(apdu)).sw == sw


def test_d6_any_command_between_cache_and_debit_abandons_everything():
    card = selected(make_card([gd_keyset()], balance=500))
    t = terminal(card, "3des")

    def interrupt():
        assert t.x("805C000204").sw == 0x9000

    before = state_fingerprint(card)
    r = t.purchase(20, capp=[capp_update_1a(1, 0x77)], before_debit=interrupt)
    assert r["sw"] == 0x6985
    assert state_fingerprint(card) == before          # no record written, no money moved


def test_capp_cache_needs_a_capp_initialize():
    card = selected(make_card([gd_keyset()], balance=500))
    t = terminal(card, "3des")
    assert t.init_purchase(10, capp=False).sw == 0x9000
    assert unchanged(card, lambda: t.x(capp_update_1a())).sw == 0x6985


@pytest.mark.parametrize("apdu,sw", [
    ("80DC03D080" + capp_metro_record(3).hex(), 0x6A83),           # no record 03 on the reference card
    ("80DC01D07F" + capp_metro_record(1).hex()[:-2], 0x6700),       # record 01 is 128 bytes
    ("80DC01D080" + capp_metro_record(2).hex(), 0x6A80),            # data says record 02, P1 says 01
    ("80DC00C017" + "00" * 23, 0x6982),                             # EF18: the card's own log
    ("80DC00A81E" + "00" * 30, 0x6981),                             # EF15 is binary
    ("80DC00E030" + "00" * 48, 0x6A82),                             # SFI 1C absent
    ("80DC01D480" + capp_metro_record(1).hex(), 0x6A86),            # P2 low bits must be 000
    ("80DC01F030" + "00" * 48, 0x6A86),                             # cyclic: P1 00 appends
    ("80DC00F02F" + "00" * 47, 0x6700),
    ("80DC00F0", 0x6700),
])
def test_capp_cache_refusals_abandon_the_transaction(apdu, sw):
    card = selected(make_card([gd_keyset()], balance=500))
    t = terminal(card, "3des")
    before = state_fingerprint(card)
    r = t.purchase(5, capp=[capp_update_1e(), h(apdu)])
    assert r["sw"] == sw and r["stage"] == "capp"
    assert t.x(h("805401000F" + "00000001" "20261123081530" "00000000" "08")).sw == 0x6985
    assert state_fingerprint(card) == before


def test_capp_cache_holds_at_most_eight_writes():
    card = selected(make_card([gd_keyset()], balance=500))
    t = terminal(card, "3des")
    r = t.purchase(5, capp=[capp_update_1e(i) for i in range(9)])
    assert r["sw"] == 0x6A84
    assert t.purchase(5, capp=[capp_update_1e(i) for i in range(8)])["sw"] == 0x9000


def test_offline_counter_at_ffff_answers_9402():
    card = selected(make_card([gd_keyset()], balance=500, offline_counter=0xFFFF))
    t = terminal(card, "3des")
    assert unchanged(card, lambda: t.init_purchase(1)).sw == 0x9402
    assert unchanged(card, lambda: t.init_purchase(1, capp=True)).sw == 0x9402


def test_prove_keeps_latest_load_and_latest_purchase():
    card = selected(make_card([gd_keyset()], balance=500))
    t = terminal(card, "3des")
    p1 = t.purchase(1)
    ld = t.load(10)
    p2 = t.purchase(2, capp=[])
    assert t.prove(0x06, 1).sw == 0x9406                 # superseded by the newer purchase
    assert t.prove(0x09, 2).data == p2["mac2"] + p2["tac"]
    assert t.prove(0x02, 1).data == ld["mac2"] + ld["tac"]
    proof = (p2["mac2"] + p2["tac"]).hex().upper()
    run_table(card, [("805A000302000208", "6A86"), ("805A010902000208", "6A86"),
                     ("805A00090100020008", "6700"),
                     ("805A0009020002", proof + "9000"),       # Le may be absent (case 3, T=0 style)
                     ("805A000902000204", "6700")])
    assert p1["sw"] == 0x9000


def test_purchase_random_comes_from_the_injected_source():
    card = selected(make_card([gd_keyset()], rng=ScriptedRandom("DEADBEEF"), balance=10))
    assert card.process(h("805001020B0100000001112233445566" "0F")).hex().upper() == \
        "0000000A" "0000" "000000" "01" "00" "DEADBEEF" "9000"
