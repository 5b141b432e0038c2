"""Online load (圈存): the real-card vector byte for byte, the computed 3DES/SM4 vectors, every refusal."""
import pytest

from ykt_card.card.state import CardState

from tests.ykt_card.helpers import (
    EF15, SELECT_AID, VECTORS, HostTerminal, ScriptedRandom, computed_master_keyset, gd_keyset, h,
    make_card, run_table, state_fingerprint, vector_keyset,
)



def selected(card):
    r = card.process(h(SELECT_AID))
    assert r[-2:] == b"\x90\x00"
    return card


def test_real_card_load_vector_byte_for_byte():
    """vectors.json pboc_load_3des: INITIALIZE response, MAC2 accepted, TAC ED0F8755, EF18 record."""
    v = VECTORS["pboc_load_3des"]
    card = selected(make_card([vector_keyset()], rng=ScriptedRandom(v["initialize_for_load"]["fields"]["random"])))
    run_table(card, [
        (v["initialize_for_load"]["capdu"], v["initialize_for_load"]["rapdu"]),
        (v["credit_for_load"]["capdu"], v["credit_for_load"]["rapdu_tac"] + "9000"),
        ("00B201C417", v["ef18_record_after"] + "9000"),
        ("805C000204", v["new_balance"] + "9000"),
        ("805A0002020001" "08", v["mac2"] + v["credit_for_load"]["rapdu_tac"] + "9000"),  # D5: host MAC2 ‖ TAC
        ("805A0002020000" "08", "9406"),
    ])
    assert card.state.purse.online_counter == 1 and card.state.purse.offline_counter == 0


@pytest.mark.parametrize("alg,index,wire", [("3des", 1, "00"), ("sm4", 2, "04")])
def test_computed_load_vectors(alg, index, wire):
    """Card keys diversified in CardState.new from the vector master key (D2) give the vector's MACs."""
    v = VECTORS["computed"][alg]["load"]
    card = make_card([computed_master_keyset(alg)], rng=ScriptedRandom(v["random"]),
                     balance=int(v["balance_before"], 16), online_counter=int(v["online_counter"], 16))
    assert card.state.key_sets[index].entry("load").key.value == h(VECTORS["computed"][alg]["card_key_div_by_serial"])
    selected(card)
    ctr_after = int(v["online_counter"], 16) + 1
    run_table(card, [
        (f"805000020B{index:02X}{v['amount']}{v['terminal_id']}10",
         f"{v['balance_before']}{v['online_counter']}01{wire}{v['random']}{v['mac1']}9000"),
        (f"805200000B{v['datetime']}{v['mac2']}04", f"{v['tac']}9000"),
        ("00B201C400", f"{ctr_after:04X}000000{v['amount']}02{v['terminal_id']}{v['datetime']}9000"),
        (f"805A000202{ctr_after:04X}08", f"{v['mac2']}{v['tac']}9000"),
    ])
    assert card.state.purse.balance == int(v["balance_before"], 16) + int(v["amount"], 16)


def test_load_on_a_card_with_both_key_sets_d16():
    card = selected(make_card())
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    r1 = t.load(1000, key_index=1)
    r2 = t.load(2000, key_index=2)
    assert r1["sw"] == r2["sw"] == 0x9000
    assert card.state.purse.balance == 3000 and card.state.purse.online_counter == 2
    assert t.init_load(1, key_index=3).sw == 0x9403


def test_load_with_overdraft_reports_balance_plus_limit():
    card = selected(make_card([gd_keyset()], balance=-200, overdraft_limit=500))
    t = HostTerminal.for_card(card, [gd_keyset()])
    r = t.load(1000)
    assert r["sw"] == 0x9000 and r["total_before"] == 300  # 1.4: INITIALIZE offset 0 includes the limit
    assert card.state.purse.balance == 800
    assert t.x("805C000204").data == (1300).to_bytes(4, "big")


def unchanged(card, action):
    before = state_fingerprint(card)
    result = action()
    assert state_fingerprint(card) == before
    return result


def test_load_refusals_change_nothing():
    card = selected(make_card([gd_keyset()], balance=99_000, online_counter=5))
    t = HostTerminal.for_card(card, [gd_keyset()])
    tid = "112233445566"
    table = [
        ("805000020B0200000064" + tid + "10", "9403"),           # key index 02 absent on a 3DES-only card
        ("805000020B0000000064" + tid + "10", "9403"),
        ("805000020B0100000000" + tid + "10", "6A80"),           # zero amount
        ("805000020B01000003E9" + tid + "10", "6A80"),           # 99,000 + 1,001 > 100,000
        ("805000020A0100000064" + tid[:-2] + "10", "6700"),      # Lc 0A
        ("805000020C0100000064" + tid + "0010", "6700"),
        ("805000010B0100000064" + tid + "10", "6A86"),           # P2 01 (ED) not supported
        ("805002020B0100000064" + tid + "10", "6A86"),           # P1 02
        ("805000020B0100000064" + tid + "05", "6700"),           # Le shorter than the 16-byte answer
        ("805200000B2026112309000001020304" "04", "6985"),      # CREDIT without INITIALIZE
        ("005000020B0100000064" + tid + "10", "6E00"),
    ]
    unchanged(card, lambda: run_table(card, table))
    assert t.init_load(1000).sw == 0x9000                      # exactly up to the maximum is fine
    assert unchanged(card, lambda: t.x("805200000A20261123090000010203")).sw == 0x6700


def test_wrong_mac2_answers_9302_and_ends_the_session():
    card = selected(make_card([gd_keyset()]))
    t = HostTerminal.for_card(card, [gd_keyset()])
    r = unchanged(card, lambda: t.load(500, bad_mac2=True))
    assert r["sw"] == 0x9302
    # the session is gone: even the right MAC2 now answers 6985
    assert unchanged(card, lambda: t.x("805200000B20261123090000" + "00000000" + "04")).sw == 0x6985
    assert card.state.purse.online_counter == 0


def test_any_command_between_initialize_and_credit_abandons_the_load():
    card = selected(make_card([gd_keyset()]))
    t = HostTerminal.for_card(card, [gd_keyset()])
    from keysets import LoadSession
    r = t.init_load(700)
    ks = t.keys[1]
    sess = LoadSession.derive(ks.algorithm, ks.entry("load").key.value, r.data[8:12], 0)
    when = h("20261123090000")
    mac2 = sess.mac2(700, t.terminal_id, when)
    assert t.x("805C000204").sw == 0x9000               # harmless, but it abandons the load (D6)
    assert unchanged(card, lambda: t.x(b"\x80\x52\x00\x00\x0b" + when + mac2 + b"\x04")).sw == 0x6985
    # a malformed command abandons it too
    r = t.init_load(700)
    sess = LoadSession.derive(ks.algorithm, ks.entry("load").key.value, r.data[8:12], 0)
    mac2 = sess.mac2(700, t.terminal_id, when)
    assert t.x("805C00").sw == 0x6700
    assert t.x(b"\x80\x52\x00\x00\x0b" + when + mac2 + b"\x04").sw == 0x6985
    # power off too
    r = t.init_load(700)
    card.power_off(); card.power_on(); t.select()
    assert t.x(b"\x80\x52\x00\x00\x0b" + when + mac2 + b"\x04").sw == 0x6985


def test_online_counter_at_ffff_answers_9402():
    card = selected(make_card([gd_keyset()], online_counter=0xFFFF))
    t = HostTerminal.for_card(card, [gd_keyset()])
    assert unchanged(card, lambda: t.init_load(100)).sw == 0x9402
    card2 = selected(make_card([gd_keyset()], online_counter=0xFFFE))
    t2 = HostTerminal.for_card(card2, [gd_keyset()])
    assert t2.load(100)["sw"] == 0x9000 and card2.state.purse.online_counter == 0xFFFF
    assert t2.init_load(100).sw == 0x9402


def test_pin_required_for_load_is_a_state_flag_d11():
    card = selected(make_card([gd_keyset()], pin_required_for_load=True))
    t = HostTerminal.for_card(card, [gd_keyset()])
    assert t.init_load(100).sw == 0x6982
    assert t.x("0020000003123456").sw == 0x9000
    assert t.load(100)["sw"] == 0x9000
    t.select()                                           # a new selection forgets the PIN
    assert t.init_load(100).sw == 0x6982


def test_the_reference_profile_loads_without_pin():
    card = selected(make_card([gd_keyset()]))
    assert card.state.pin_required_for_load is False
    assert HostTerminal.for_card(card, [gd_keyset()]).load(100)["sw"] == 0x9000


def test_state_constructor_refuses_non_test_keys():
    from dataclasses import replace
    ks = replace(gd_keyset(), test_only=False)
    with pytest.raises(ValueError, match="test_only"):
        CardState.new(EF15, [ks])
