"""`Psam(reader)`, the host side of the PSAM: exact APDUs on the wire, typed answers, and whole purchases
between the real virtual card OS and the real virtual PSAM, in-process and through pcscd + vpcd.
"""
from __future__ import annotations

import pytest

from apdu.transport.inprocess import InProcessReader
from apdu.transport.pcsc.reader import PcscReader
from keysets.randomness import RandomSource
from apdu.status import CardError
from apdu.trace import TracingReader
from keysets import TYPE_CAPP_PURCHASE, TYPE_PURCHASE, Algorithm, KeySet, purchase_tac
from keysets.ciphers import des
from tests.reference import h, vectors
from tests.ykt_card.helpers import EF15, ScriptedRandom, capp_metro_record, computed_master_keyset, gd_keyset
from ykt_card.card.cos import TUnionCardOS
from ykt_card.host.card import TUnionCard
from ykt_card.psam.cos import ATR, PsamOS
from ykt_card.host.psam import Psam, PsamPurchase, usage_byte
from ykt_card.psam.issue import issue_psam, load_psam, psam_saver, save_psam
from ykt_card.card.state import CardState

TERMINAL = h("112233445566")
ISSUER, SERIAL = EF15[0:8], EF15[12:20]
WHEN = h("20261123081530")


def psam_os(keysets: list[KeySet], seq: int = 1, **kw) -> PsamOS:
    return PsamOS(issue_psam(keysets, TERMINAL, next_terminal_seq=seq), random=RandomSource(5), **kw)


def connect(card_os) -> tuple[TracingReader, Psam]:
    reader = TracingReader(InProcessReader(card_os, "psam"), clock=lambda: 0.0)
    reader.connect()
    return reader, Psam(reader)


def wire(reader: TracingReader) -> list[str]:
    return [f"{e.direction} {e.data.hex().upper()}" for e in reader.exchanges]


def test_startup_and_purchase_send_exactly_the_reference_apdus():
    v = vectors()["computed"]["3des"]
    p = v["purchase"]
    reader, psam = connect(psam_os([computed_master_keyset("3des")], seq=0x102))
    psam.select_mf()
    assert psam.read_terminal_id() == TERMINAL
    psam.select_tunion()
    assert psam.read_key_index() == 1
    got = psam.init_purchase(h(p["random"]), 7, 200, TYPE_PURCHASE, h(p["datetime"]), 1, 0x00,
                             h(v["serial8"]), h(v["issuer_id"]))
    assert got == PsamPurchase(0x102, h(p["mac1"]))
    psam.verify_mac2(h(p["mac2"]))
    init = ("8070000024" + p["random"] + "0007" + "000000C8" + "06" + p["datetime"] + "01" + "00"
            + v["serial8"] + v["issuer_id"] + "08")
    assert wire(reader) == [
        "C 00A40000023F00", "R 9000",
        "C 00B0960006", "R 1122334455669000",
        "C 00A40000028011", "R 9000",
        "C 00B0970001", "R 019000",
        "C " + init, "R 6108",
        "C 00C0000008", "R 00000102" + p["mac1"] + "9000",
        "C 8072000004" + p["mac2"], "R 9000",
    ]


def test_refusals_raise_card_error_with_the_status_word():
    v = vectors()["computed"]["3des"]
    p = v["purchase"]
    reader, psam = connect(psam_os([computed_master_keyset("3des")], seq=0x102))
    with pytest.raises(CardError) as err:                      # purse commands need DF 8011
        psam.init_purchase(h(p["random"]), 7, 200, 6, WHEN, 1, 0, SERIAL, ISSUER)
    assert err.value.sw == 0x6985
    psam.select_tunion()
    with pytest.raises(CardError) as err:
        psam.verify_mac2(h(p["mac2"]))
    assert err.value.sw == 0x6901
    psam.init_purchase(h(p["random"]), 7, 200, 6, h(p["datetime"]), 1, 0, SERIAL, ISSUER)
    with pytest.raises(CardError) as err:
        psam.verify_mac2(h("00000000"))
    assert err.value.sw == 0x9302
    with pytest.raises(CardError) as err:
        psam.init_purchase(h(p["random"]), 7, 200, 6, WHEN, 9, 0, SERIAL, ISSUER)
    assert err.value.sw == 0x9403


def test_bad_host_input_is_refused_before_anything_is_sent():
    reader, psam = connect(psam_os([computed_master_keyset("3des")]))
    psam.select_tunion()
    sent = len(reader.exchanges)
    with pytest.raises(ValueError, match="random4 must be 4 bytes"):
        psam.init_purchase(h("0102"), 7, 200, 6, WHEN, 1, 0, SERIAL, ISSUER)
    with pytest.raises(ValueError, match="amount"):
        psam.init_purchase(h("01020304"), 7, -1, 6, WHEN, 1, 0, SERIAL, ISSUER)
    with pytest.raises(ValueError, match="mac2 must be 4 bytes"):
        psam.verify_mac2(h("0102"))
    with pytest.raises(ValueError, match="factor must be 8 or 16 bytes"):
        psam.diversify(0x44, 0, h("0102"))
    with pytest.raises(ValueError, match="challenge length"):
        psam.get_challenge(5)
    with pytest.raises(ValueError, match="levels"):
        usage_byte(8, 4)
    assert len(reader.exchanges) == sent


def _card(keysets, rng=None, **kw) -> TUnionCard:
    card_os = TUnionCardOS(CardState.new(EF15, list(keysets), **kw), rng=rng or RandomSource(11))
    card = TUnionCard(InProcessReader(card_os, "card"))
    card.connect()
    card.select()
    return card


def _purchase(card: TUnionCard, psam: Psam, key_index: int, amount: int, capp: bool = False):
    tx_type = TYPE_CAPP_PURCHASE if capp else TYPE_PURCHASE
    init = card.initialize_purchase(key_index, amount, TERMINAL, capp=capp)
    if capp:
        card.update_capp_cache(0x01, 0x1A, capp_metro_record(1))
    sam = psam.init_purchase(init.random, init.offline_counter, amount, tx_type, WHEN, init.key_version,
                             init.algorithm.wire_id, SERIAL, ISSUER)
    debit = card.debit(sam.terminal_seq, WHEN, sam.mac1)
    psam.verify_mac2(debit.mac2)
    return init, sam, debit


@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_whole_purchase_with_the_virtual_card_reproduces_the_vectors(alg):
    """Card and PSAM from the computed master key: the card's TAC and MAC2 are the vector's."""
    p = vectors()["computed"][alg]["purchase"]
    index = 1 if alg == "3des" else 2
    card = _card([computed_master_keyset(alg)], rng=ScriptedRandom(p["random"]), offline_counter=7, balance=1000)
    _, psam = connect(psam_os([computed_master_keyset(alg)], seq=0x102))
    psam.select_tunion()
    init, sam, debit = _purchase(card, psam, index, 200)
    assert init.algorithm is Algorithm.parse(alg)
    assert (sam.terminal_seq, sam.mac1, debit.mac2, debit.tac) == (0x102, h(p["mac1"]), h(p["mac2"]), h(p["tac"]))
    tac = psam.recompute_purchase_tac(SERIAL, ISSUER, 200, TYPE_PURCHASE, TERMINAL, 0x102, WHEN,
                                      algorithm=init.algorithm, key_index=index)
    assert tac == debit.tac
    assert card.get_balance("real") == 800


def test_purchases_on_a_two_algorithm_card_with_the_gd_test_keys(tmp_path):
    """D16: one PSAM with both key sets serves the 3DES (index 01) and SM4 (index 02) purse of one card."""
    sets = [gd_keyset("3des"), gd_keyset("sm4")]
    card = _card(sets, balance=5000)
    path = tmp_path / "psam.json"
    save_psam(path, issue_psam(sets, TERMINAL))
    _, psam = connect(PsamOS(load_psam(path), on_change=psam_saver(path)))
    psam.select_tunion()
    for n, (index, capp) in enumerate([(1, False), (2, False), (1, True), (2, True)], start=1):
        init, sam, debit = _purchase(card, psam, index, 100 + n, capp=capp)
        assert sam.terminal_seq == n
        ks = sets[index - 1]
        dtk = ks.card_keys(ISSUER, SERIAL).entry("tac").key.value
        tx_type = TYPE_CAPP_PURCHASE if capp else TYPE_PURCHASE
        assert debit.tac == purchase_tac(ks.algorithm, dtk, 100 + n, tx_type, TERMINAL, n, WHEN)
        assert debit.tac == psam.recompute_purchase_tac(SERIAL, ISSUER, 100 + n, tx_type, TERMINAL, n, WHEN,
                                                        algorithm=init.algorithm, key_index=index)
    assert load_psam(path).next_terminal_seq == 5
    assert card.get_balance("real") == 5000 - (101 + 102 + 103 + 104)


@pytest.mark.parametrize("alg,index", [("3des", 1), ("sm4", 2)])
def test_block_mac_from_the_psam_locks_and_unlocks_the_virtual_card(alg, index):
    sets = [gd_keyset("3des"), gd_keyset("sm4")]
    card = _card(sets)
    _, psam = connect(psam_os(sets))
    psam.select_tunion()
    algorithm = Algorithm.parse(alg)
    mac = psam.block_mac(SERIAL, ISSUER, card.get_challenge(), algorithm=algorithm, key_index=index)
    card.application_block(mac)
    assert card.select().locked == "temporary"
    with pytest.raises(CardError) as err:                      # a MAC for a spent challenge is refused
        card.application_unblock(mac)
    assert err.value.sw in (0x6984, 0x6988)
    mac = psam.block_mac(SERIAL, ISSUER, card.get_challenge(), algorithm=algorithm, unblock=True, key_index=index)
    card.application_unblock(mac)
    assert card.select().locked is None


def test_get_challenge_and_general_crypto_helpers():
    _, psam = connect(psam_os([gd_keyset("3des")]))
    assert psam.get_challenge() == RandomSource(5)(4)
    psam.select_tunion()
    psam.diversify(usage_byte(2, 4), 0, SERIAL + ISSUER)
    dtk = gd_keyset("3des").card_keys(ISSUER, SERIAL).entry("tac").key.value
    folded = bytes(a ^ b for a, b in zip(dtk[:8], dtk[8:]))
    assert psam.encrypt(h("0011223344556677")) == des(folded).encrypt(h("0011223344556677"))
    assert len(psam.mac_with_iv(bytes(8), h("01020304"))) == 4
    psam.select_mf()
    assert psam.read_public()[:10] == bytes(4) + TERMINAL      # serial defaults to 0000 ‖ terminal ID


@pytest.mark.pcsc
def test_psam_behind_pcscd_and_vpcd_slot_1(vpcd_card, tmp_path):
    """`ykt psam serve`'s setting: the PSAM in the second vpcd slot, a purchase through PC/SC."""
    p = vectors()["computed"]["3des"]["purchase"]
    path = tmp_path / "psam.json"
    save_psam(path, issue_psam([computed_master_keyset("3des")], TERMINAL, next_terminal_seq=0x102))
    served = vpcd_card(PsamOS(load_psam(path), on_change=psam_saver(path)), slot=1, atr=ATR)
    reader = PcscReader(served.reader_name)
    try:
        assert reader.connect() == ATR
        assert reader.protocol == "T=0"
        psam = Psam(reader)
        assert psam.read_terminal_id() == TERMINAL
        psam.select_tunion()
        assert psam.read_key_index() == 1
        card = _card([computed_master_keyset("3des")], rng=ScriptedRandom(p["random"]), offline_counter=7,
                     balance=300)
        init, sam, debit = _purchase(card, psam, 1, 200)
        assert (sam.terminal_seq, sam.mac1, debit.tac) == (0x102, h(p["mac1"]), h(p["tac"]))
        assert psam.recompute_purchase_tac(SERIAL, ISSUER, 200, TYPE_PURCHASE, TERMINAL, 0x102, WHEN,
                                           algorithm=Algorithm.TDES) == h(p["tac"])
    finally:
        reader.disconnect()
    assert load_psam(path).next_terminal_seq == 0x103
