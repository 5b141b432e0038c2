"""TUnionCard against the real virtual card OS, exchange by exchange (nfcpy style).

Every test wires TUnionCard -> a recording reader -> InProcessReader -> ykt_card.card.cos.TUnionCardOS and
checks the exact command bytes the reference lists (section 2 and the read commands of 1.3), the
card's answer, and the typed result. Cryptograms come from vectors.json (a real card log and the
computed vectors) or from keysets playing PSAM and load host; the card is never mocked. Cards that
answer with the wrong shape are real card OSes with one handler changed (test cards, as the
conformance suite uses).
"""
from __future__ import annotations

from collections import deque

import pytest

from apdu.transport.inprocess import InProcessReader
from apdu.status import CardError
from keysets import (TEST_KEYSET_DIR, TYPE_CAPP_PURCHASE, TYPE_LOAD, TYPE_PURCHASE, Algorithm,
                     KeyEntry, KeySet, LoadSession, PurchaseSession, SecretKey, load_tac,
                     purchase_tac, secure_messaging_iv, secure_messaging_mac)
from tests.reference import h, vectors
from tests.ykt_card.helpers import ScriptedRandom
from ykt_card.card.cos import TUnionCardOS
from ykt_card.host.card import (TUNION_AID, CardResponseError, Debit, Fci, LoadInit, PinRejected, Proof,
                                PublicData, PurchaseInit, TUnionCard, application_block_mac,
                                application_unblock_mac, encode_pin, sm_mac)
from ykt_card.layouts import EF15 as EF15_LAYOUT
from ykt_card.layouts import EF16
from ykt_card.card.state import CardState

EF15 = h("58105810FFFFFFFF 02 01 03105810000000001234 20240101 20341231 0000")
"""Issuer 5810/5810, EP application, card number 03105810000000001234: the card of the computed
vectors (vectors.json 'computed', serial8 5810000000001234)."""
TERMINAL = h("112233445566")
REFERENCE_PPSE = ("6F49 840E 325041592E5359532E4444463031 A537 BF0C34"
                  " 6119 4F08A000000632010106 500A4D4F545F545F43415348 870101"
                  " 6117 4F08A000000632010105 50084D4F545F545F4550 870102")
"""The PPSE of tunion.md 1.2, byte for byte."""


# -- test rig ---------------------------------------------------------------------------------------

class RecordingReader:
    """A Reader decorator that keeps every (command, response) pair as upper-case hex."""

    def __init__(self, inner: InProcessReader) -> None:
        self.inner = inner
        self.name = inner.name
        self.exchanges: list[tuple[str, str]] = []

    def connect(self) -> bytes:
        return self.inner.connect()

    def transmit(self, capdu: bytes) -> bytes:
        rapdu = self.inner.transmit(capdu)
        self.exchanges.append((bytes(capdu).hex().upper(), rapdu.hex().upper()))
        return rapdu

    def disconnect(self) -> None:
        self.inner.disconnect()

    def card_present(self) -> bool:
        return self.inner.card_present()

    @property
    def commands(self) -> list[str]:
        return [c for c, _ in self.exchanges]

    def clear(self) -> None:
        self.exchanges.clear()


def shipped_keyset(alg: str) -> KeySet:
    return KeySet.load(TEST_KEYSET_DIR / f"gd-test-{alg}.toml")


def card_keys(alg: str) -> KeySet:
    """The card's own keys for a shipped TEST key set (D2 diversification of EF15's factors)."""
    return shipped_keyset(alg).card_keys(EF15[0:8], EF15[12:20])


def computed_keyset(alg: str) -> KeySet:
    """vectors.json 'computed': one master key for every role, diversified to the vector card key."""
    v = vectors()["computed"][alg]
    algorithm = Algorithm.parse(alg)
    index = 1 if alg == "3des" else 2
    master = SecretKey(algorithm, h(v["master_key"]))
    return KeySet(f"computed {alg} (TEST)", True, algorithm, ("issuer", "serial"),
                  {r: KeyEntry(r, index, 1, master)
                   for r in ("purchase", "load", "tac", "app_maintenance")}, "vectors.json")


def real_card_keyset() -> KeySet:
    """The real card of vectors.json 'pboc_load_3des' (card keys, key index 01, version 01)."""
    k = vectors()["pboc_load_3des"]["card_keys"]

    def entry(role: str, value: str) -> KeyEntry:
        return KeyEntry(role, 1, 1, SecretKey(Algorithm.TDES, h(value)))
    return KeySet("real card log (TEST)", True, Algorithm.TDES, (),
                  {"load": entry("load", k["DLK"]), "purchase": entry("purchase", k["DPK"]),
                   "tac": entry("tac", k["DTK"]),
                   "app_maintenance": entry("app_maintenance", k["DPK"])}, "vectors.json")


class Rig:
    def __init__(self, key_sets=None, rng: ScriptedRandom | None = None, card_cls=TUnionCardOS,
                 **state) -> None:
        if key_sets is None:
            key_sets = [shipped_keyset("3des"), shipped_keyset("sm4")]
        self.state = CardState.new(state.pop("ef15", EF15), list(key_sets), **state)
        self.rng = rng or ScriptedRandom()
        self.os = card_cls(self.state, rng=self.rng)
        self.rec = RecordingReader(InProcessReader(self.os))
        self.card = TUnionCard(self.rec)
        self.card.connect()


@pytest.fixture
def rig() -> Rig:
    return Rig()


def selected(rig: Rig) -> Rig:
    rig.card.select()
    rig.rec.clear()
    return rig


# -- selection --------------------------------------------------------------------------------------

def test_select_ppse_sends_the_reference_command_and_parses_the_directory(rig: Rig) -> None:
    ppse = rig.card.select_ppse()
    assert rig.rec.exchanges == [("00A404000E325041592E5359532E444446303100",
                                  h(REFERENCE_PPSE).hex().upper() + "9000")]
    assert ppse.df_name == "2PAY.SYS.DDF01"
    assert [(e.aid.hex().upper(), e.label, e.priority) for e in ppse.entries] == [
        ("A000000632010106", "MOT_T_CASH", 1), ("A000000632010105", "MOT_T_EP", 2)]
    assert ppse.find(TUNION_AID).label == "MOT_T_EP"
    assert ppse.find(b"\xA0\x00\x00\x00\x03") is None


def test_select_returns_the_fci_of_reference_1_2(rig: Rig) -> None:
    fci = rig.card.select()
    assert rig.rec.exchanges == [(
        "00A4040008A00000063201010500",
        "6F318408A000000632010105A5259F0801029F0C1E" + EF15.hex().upper() + "9000")]
    assert fci == Fci(aid="A000000632010105", app_version="02", public_data=PublicData(EF15), locked=None,
                      sw=0x9000)
    assert fci.public_data.card_no == "03105810000000001234" and fci.public_data.raw == EF15


def test_select_of_an_absent_application_raises_card_error(rig: Rig) -> None:
    with pytest.raises(CardError) as err:
        rig.card.select(h("A000000632010106"))
    assert err.value.sw == 0x6A82
    assert "SELECT" in str(err.value)
    assert rig.rec.commands == ["00A4040008A00000063201010600"]


def test_select_rejects_a_bad_aid_before_sending(rig: Rig) -> None:
    with pytest.raises(ValueError, match="aid"):
        rig.card.select(b"\xA0\x00")
    assert rig.rec.exchanges == []


# -- files ------------------------------------------------------------------------------------------

def test_read_public_holder_and_management_data() -> None:
    ef16 = EF16.encode({"card_type_flag": "01", "staff_flag": "00", "name": "张三",
                        "id_number": "110101199001011237", "id_type": "00"})
    ef17 = h("00000156 5800 5810 0001 01 00000001" + "00" * 45)
    r = selected(Rig(ef16=ef16, ef17=ef17))
    public = r.card.read_public_data()
    holder = r.card.read_holder()
    management = r.card.read_management()
    assert r.rec.commands == ["00B095001E", "00B0960037", "00B097003C"]
    assert public.raw == EF15 and public.fields() == EF15_LAYOUT.decode(EF15)
    assert (public.issuer_id, public.serial8) == ("58105810FFFFFFFF", "5810000000001234")
    assert public.factors == (h("58105810FFFFFFFF"), h("5810000000001234"))
    assert (public.card_no, public.card_no_printed) == ("03105810000000001234", "3105810000000001234")
    assert (public.app_type, public.app_version) == ("02", "01")
    assert (public.start_date, public.expiry_date) == ("2024-01-01", "2034-12-31")
    assert holder.raw == ef16 and holder.name == "张三" and holder.id_number == "110101199001011237"
    assert management.raw == ef17
    assert (management.country, management.province, management.city) == ("00000156", "5800", "5810")
    assert management.interoperable is True and management.card_type == "01"


def test_read_binary_and_read_record_primitives(rig: Rig) -> None:
    selected(rig)
    assert rig.card.read_binary(0x15, offset=10, length=10) == EF15[10:20]
    assert rig.card.read_binary(0x15) == EF15
    assert rig.card.read_record(0x1A, 2) == rig.state.files[0x1A].records[2]
    assert rig.rec.commands == ["00B0950A0A", "00B0950000", "00B202D400"]


def test_read_binary_follows_6cxx_once_through_the_channel(rig: Rig) -> None:
    """Le beyond the file: the card answers 6C1E, the channel resends with Le 1E (no retry here)."""
    selected(rig)
    assert rig.card.read_binary(0x15, offset=0, length=0x1E) == EF15
    with pytest.raises(CardResponseError) as err:
        rig.card.read_binary(0x15, offset=0x14, length=0x20)
    assert err.value.command == "READ BINARY 15" and (err.value.length, err.value.expected) == (10, 32)
    assert rig.rec.commands == ["00B095001E", "00B0951420", "00B095140A"]


def test_record_walks_stop_at_6a83_and_absent_records_raise(rig: Rig) -> None:
    selected(rig)
    assert rig.card.read_transactions() == []
    assert rig.card.read_history() == []
    assert rig.rec.exchanges == [("00B201C400", "6A83"), ("00B201F430", "6A83")]
    with pytest.raises(CardError) as err:
        rig.card.read_capp_record(0x05)
    assert err.value.sw == 0x6A83 and "record 5" in str(err.value)


@pytest.mark.parametrize("kwargs, field", [
    ({"sfi": 0}, "sfi"), ({"sfi": 31}, "sfi"), ({"sfi": 0x15, "offset": 256}, "offset"),
    ({"sfi": 0x15, "length": -1}, "length"),
])
def test_read_binary_refuses_bad_arguments_before_sending(rig: Rig, kwargs, field) -> None:
    with pytest.raises(ValueError, match=field):
        rig.card.read_binary(**kwargs)
    assert rig.rec.exchanges == []


# -- balance ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("balance, limit", [(1234, 500), (-100, 500), (0, 0)])
def test_get_balance_p1_00_01_03(balance: int, limit: int) -> None:
    r = selected(Rig(balance=balance, overdraft_limit=limit))
    got = {kind: r.card.get_balance(kind) for kind in ("total", "limit", "real")}
    assert r.rec.commands == ["805C000204", "805C010204", "805C030204"]
    assert got == {"total": balance + limit, "limit": limit, "real": balance}


def test_get_balance_refuses_an_unknown_kind(rig: Rig) -> None:
    with pytest.raises(ValueError, match="kind"):
        rig.card.get_balance("available")
    assert rig.rec.exchanges == []


# -- load -------------------------------------------------------------------------------------------

def test_load_reproduces_the_real_card_log() -> None:
    """vectors.json pboc_load_3des: a real PBOC card's INITIALIZE/CREDIT exchange, byte for byte."""
    v = vectors()["pboc_load_3des"]
    r = selected(Rig(key_sets=[real_card_keyset()], rng=ScriptedRandom("CDEF4F20")))
    init = r.card.initialize_load(0x01, 0x1C37, h("000001000050"))
    tac = r.card.credit_load(h(v["host_datetime"]), h(v["mac2"]))
    assert r.rec.exchanges == [
        (v["initialize_for_load"]["capdu"], v["initialize_for_load"]["rapdu"].replace(" ", "")),
        (v["credit_for_load"]["capdu"], v["credit_for_load"]["rapdu_tac"] + "9000"),
    ]
    assert init == LoadInit(balance=0, online_counter=0, key_version=1, algorithm=Algorithm.TDES,
                            random=h("CDEF4F20"), mac1=h("06B1BEF5"))
    assert tac == h("ED0F8755")
    r.rec.clear()
    log = r.card.read_transactions()
    assert [rec.raw for rec in log] == [h(v["ef18_record_after"])]
    assert (log[0].counter, log[0].amount, log[0].type, log[0].type_name) == (1, 0x1C37, "02", "ep_load")
    assert (log[0].terminal_id, log[0].datetime) == ("000001000050", "2014-08-25 10:31:00")
    proof = r.card.get_transaction_prove(TYPE_LOAD, 1)
    assert proof == Proof(TYPE_LOAD, 1, mac2=h("0641DCD8"), tac=h("ED0F8755"))
    assert r.rec.commands[-1] == "805A0002020001" + "08"


@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_load_with_the_computed_vectors(alg: str) -> None:
    v = vectors()["computed"][alg]["load"]
    index = 1 if alg == "3des" else 2
    r = selected(Rig(key_sets=[computed_keyset(alg)], rng=ScriptedRandom(v["random"]),
                     balance=int(v["balance_before"], 16), online_counter=int(v["online_counter"], 16)))
    amount, terminal = int(v["amount"], 16), h(v["terminal_id"])
    init = r.card.initialize_load(index, amount, terminal)
    assert init.mac1 == h(v["mac1"]) and init.algorithm is Algorithm.parse(alg)
    assert (init.balance, init.online_counter) == (int(v["balance_before"], 16), 3)
    assert r.card.credit_load(h(v["datetime"]), h(v["mac2"])) == h(v["tac"])
    assert r.rec.commands == [
        f"80500002 0B {index:02X} {v['amount']} {v['terminal_id']} 10".replace(" ", ""),
        f"80520000 0B {v['datetime']} {v['mac2']} 04".replace(" ", ""),
    ]
    assert r.card.get_balance("real") == int(v["balance_before"], 16) + amount


def test_credit_load_with_a_wrong_mac2_raises_9302_and_changes_nothing(rig: Rig) -> None:
    selected(rig)
    rig.card.initialize_load(0x01, 500, TERMINAL)
    before = rig.state.snapshot()
    with pytest.raises(CardError) as err:
        rig.card.credit_load(h("20261123090000"), h("00000000"))
    assert err.value.sw == 0x9302 and "CREDIT FOR LOAD" in str(err.value)
    assert rig.state.snapshot() == before


@pytest.mark.parametrize("call, field", [
    (lambda c: c.initialize_load(1, 100, h("1122334455")), "terminal_id"),
    (lambda c: c.initialize_load(256, 100, TERMINAL), "key_index"),
    (lambda c: c.initialize_load(1, -1, TERMINAL), "amount"),
    (lambda c: c.initialize_load(1, 1 << 32, TERMINAL), "amount"),
    (lambda c: c.credit_load(h("20261123"), h("00000000")), "host_datetime7"),
    (lambda c: c.credit_load(h("2026112309000A"), h("00000000")), "host_datetime7"),
    (lambda c: c.credit_load(h("20261123090000"), h("000000")), "mac2"),
    (lambda c: c.initialize_purchase(1, 100, "112233445566"), "terminal_id"),
    (lambda c: c.debit(1 << 32, h("20261123090000"), h("00000000")), "terminal_seq"),
    (lambda c: c.get_transaction_prove(6, 0x10000), "counter_after"),
    (lambda c: c.update_capp_cache(1, 0x1A, b""), "data"),
    (lambda c: c.verify_pin("12a456"), "pin"),
    (lambda c: c.application_block(h("0000000000")), "mac"),
    (lambda c: c.external_authenticate(1, h("00")), "cryptogram"),
    (lambda c: c.get_challenge(5), "n"),
])
def test_bad_arguments_are_refused_by_name_and_nothing_is_sent(rig: Rig, call, field) -> None:
    with pytest.raises((ValueError, TypeError), match=field):
        call(rig.card)
    assert rig.rec.exchanges == []


# -- purchase ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_purchase_with_the_computed_vectors(alg: str) -> None:
    """INITIALIZE FOR PURCHASE, DEBIT and GET TRANSACTION PROVE: vectors.json 'computed' MAC1 in,
    the card's TAC and MAC2 out, exactly."""
    v = vectors()["computed"][alg]["purchase"]
    index = 1 if alg == "3des" else 2
    r = selected(Rig(key_sets=[computed_keyset(alg)], rng=ScriptedRandom(v["random"]),
                     balance=1000, overdraft_limit=300, offline_counter=int(v["offline_counter"], 16)))
    amount, seq = int(v["amount"], 16), int(v["terminal_seq"], 16)
    init = r.card.initialize_purchase(index, amount, h(v["terminal_id"]))
    assert init == PurchaseInit(balance_total=1300, offline_counter=7, overdraft_limit=300,
                                key_version=1, algorithm=Algorithm.parse(alg), random=h(v["random"]))
    assert init.real_balance == 1000
    debit = r.card.debit(seq, h(v["datetime"]), h(v["mac1"]))
    assert debit == Debit(tac=h(v["tac"]), mac2=h(v["mac2"]))
    proof = r.card.get_transaction_prove(TYPE_PURCHASE, 8)
    assert proof == Proof(TYPE_PURCHASE, 8, mac2=h(v["mac2"]), tac=h(v["tac"]))
    assert r.rec.exchanges == [
        (f"805001020B{index:02X}{v['amount']}{v['terminal_id']}0F",
         f"00000514 0007 00012C 01 {'00' if alg == '3des' else '04'} {v['random']} 9000".replace(" ", "")),
        (f"805401000F{v['terminal_seq']}{v['datetime']}{v['mac1']}08", f"{v['tac']}{v['mac2']}9000"),
        ("805A000602000808", f"{v['mac2']}{v['tac']}9000"),
    ]
    assert r.card.get_balance("real") == 1000 - amount


def test_overdrawn_purchase_reports_a_negative_real_balance() -> None:
    r = selected(Rig(balance=50, overdraft_limit=500))
    init = r.card.initialize_purchase(0x01, 200, TERMINAL)
    assert (init.balance_total, init.overdraft_limit, init.real_balance) == (550, 500, 50)
    keys = card_keys("3des")
    sess = PurchaseSession.derive(Algorithm.TDES, keys.entry("purchase").key.value, init.random,
                                  init.offline_counter, 7)
    r.card.debit(7, h("20261123081530"), sess.mac1(200, TYPE_PURCHASE, TERMINAL, h("20261123081530")))
    assert r.card.get_balance("real") == -150
    assert r.card.initialize_purchase(0x01, 0, TERMINAL).real_balance == -150


def test_capp_purchase_writes_ef1a_and_ef1e_with_the_reference_p2(rig: Rig) -> None:
    """INITIALIZE FOR CAPP PURCHASE (P1 03), 80DC 01 D0 80 and 80DC 00 F0 30, DEBIT (type 09)."""
    selected(rig)
    keys = card_keys("3des")
    metro = bytes((0x27, 0x01, 0x7D, 0x01, 0x01, 0x00)) + bytes(range(122))
    history = bytes((0x03,)) + bytes(range(100, 147))
    when = h("20261123081530")
    init = rig.card.initialize_purchase(0x01, 0, TERMINAL, capp=True)
    rig.card.update_capp_cache(0x01, 0x1A, metro)
    rig.card.update_capp_cache(0x00, 0x1E, history)
    sess = PurchaseSession.derive(Algorithm.TDES, keys.entry("purchase").key.value, init.random,
                                  init.offline_counter, 0x2A)
    debit = rig.card.debit(0x2A, when, sess.mac1(0, TYPE_CAPP_PURCHASE, TERMINAL, when))
    assert sess.verify_mac2(debit.mac2, 0)
    assert debit.tac == purchase_tac(Algorithm.TDES, keys.entry("tac").key.value, 0,
                                     TYPE_CAPP_PURCHASE, TERMINAL, 0x2A, when)
    assert rig.rec.commands[:3] == [
        "805003020B0100000000" + TERMINAL.hex().upper() + "0F",
        "80DC01D080" + metro.hex().upper(),
        "80DC00F030" + history.hex().upper(),
    ]
    rig.rec.clear()
    assert rig.card.read_capp_record(0x01) == metro
    assert rig.card.read_history() == [history]
    log = rig.card.read_transactions()
    assert [(e.counter, e.amount, e.type) for e in log] == [(1, 0, f"{TYPE_CAPP_PURCHASE:02X}")]
    assert rig.rec.commands == ["00B201D400", "00B201F430", "00B202F430", "00B201C400",
                                "00B202C400"]


def test_read_transactions_lists_newest_first(rig: Rig) -> None:
    selected(rig)
    keys = card_keys("3des")
    for i, amount in enumerate((1000, 2000, 3000)):
        init = rig.card.initialize_load(0x01, amount, TERMINAL)
        when = h(f"202611230900{i:02d}")
        sess = LoadSession.derive(Algorithm.TDES, keys.entry("load").key.value, init.random,
                                  init.online_counter)
        assert init.mac1 == sess.mac1(init.balance, amount, TERMINAL)
        tac = rig.card.credit_load(when, sess.mac2(amount, TERMINAL, when))
        assert tac == load_tac(Algorithm.TDES, keys.entry("tac").key.value, init.balance + amount,
                               init.online_counter, amount, TERMINAL, when)
    log = rig.card.read_transactions()
    assert [(e.counter, e.amount) for e in log] == [(3, 3000), (2, 2000), (1, 1000)]
    assert [e.datetime for e in log] == [
        "2026-11-23 09:00:02", "2026-11-23 09:00:01", "2026-11-23 09:00:00"]


def test_purchase_refusals_carry_their_status_words(rig: Rig) -> None:
    selected(rig)
    cases = [
        (lambda: rig.card.initialize_purchase(0x01, 1, TERMINAL), 0x9401),     # balance 0
        (lambda: rig.card.initialize_purchase(0x09, 0, TERMINAL), 0x9403),     # no key index 09
        (lambda: rig.card.debit(1, h("20261123081530"), h("00000000")), 0x6985),  # no INITIALIZE
        (lambda: rig.card.get_transaction_prove(TYPE_PURCHASE, 1), 0x9406),    # no such proof
        (lambda: rig.card.update_capp_cache(0x01, 0x1A, bytes(128)), 0x6985),  # not in CAPP
    ]
    for call, sw in cases:
        with pytest.raises(CardError) as err:
            call()
        assert err.value.sw == sw


# -- wrong answers ----------------------------------------------------------------------------------

class ShortInitCard(TUnionCardOS):
    """A card whose INITIALIZE answers one byte short."""

    def initialize(self, cmd):
        return super().initialize(cmd)[:-1]


class UnknownAlgorithmCard(TUnionCardOS):
    """A card that reports algorithm ID 07 in INITIALIZE FOR PURCHASE."""

    def initialize(self, cmd):
        data = super().initialize(cmd)
        return data[:10] + b"\x07" + data[11:] if cmd.p1 != 0x00 else data


class ChattyCard(TUnionCardOS):
    """A card that answers UPDATE CAPP DATA CACHE and GET BALANCE with an extra byte."""

    def update_capp_data_cache(self, cmd):
        super().update_capp_data_cache(cmd)
        return b"\x00"

    def get_balance(self, cmd):
        return super().get_balance(cmd) + b"\x00"


def test_a_short_initialize_answer_is_a_card_response_error() -> None:
    r = selected(Rig(card_cls=ShortInitCard, balance=100))
    with pytest.raises(CardResponseError) as err:
        r.card.initialize_purchase(0x01, 10, TERMINAL)
    assert err.value.command == "INITIALIZE FOR PURCHASE"
    assert (err.value.length, err.value.expected) == (14, 15)
    assert "answered 14 bytes, expected 15 bytes" in str(err.value)
    with pytest.raises(CardResponseError, match="INITIALIZE FOR LOAD: answered 15 bytes, expected 16"):
        r.card.initialize_load(0x01, 10, TERMINAL)


def test_an_unknown_algorithm_id_is_a_card_response_error() -> None:
    r = selected(Rig(card_cls=UnknownAlgorithmCard, balance=100))
    with pytest.raises(CardResponseError, match="INITIALIZE FOR CAPP PURCHASE: algorithm ID 07"):
        r.card.initialize_purchase(0x01, 10, TERMINAL, capp=True)


def test_data_where_none_is_due_and_long_balances_are_refused() -> None:
    r = selected(Rig(card_cls=ChattyCard, balance=100))
    with pytest.raises(CardResponseError, match=r"GET BALANCE \(total\): answered 5 bytes"):
        r.card.get_balance()
    r.card.initialize_purchase(0x01, 0, TERMINAL, capp=True)
    with pytest.raises(CardResponseError, match="UPDATE CAPP DATA CACHE: answered 1 byte, expected no"):
        r.card.update_capp_cache(0x00, 0x1E, bytes(48))


# -- PIN, challenge, authentication -----------------------------------------------------------------

def test_verify_pin(rig: Rig) -> None:
    selected(rig)
    rig.card.verify_pin("123456")
    with pytest.raises(PinRejected) as err:
        rig.card.verify_pin("654321")
    assert (err.value.sw, err.value.tries_left) == (0x63C2, 2)
    assert rig.rec.exchanges == [("0020000003123456", "9000"), ("0020000003654321", "63C2")]


def test_a_blocked_pin_reports_no_tries_left(rig: Rig) -> None:
    selected(rig)
    for _ in range(3):
        with pytest.raises(PinRejected):
            rig.card.verify_pin("000000")
    with pytest.raises(PinRejected) as err:
        rig.card.verify_pin("123456")
    assert (err.value.sw, err.value.tries_left) == (0x6983, 0)


@pytest.mark.parametrize("pin, data", [("123456", "123456"), ("12345", "12345F"), ("0000", "0000"),
                                       ("123456789012", "123456789012")])
def test_encode_pin(pin: str, data: str) -> None:
    assert encode_pin(pin) == h(data)


@pytest.mark.parametrize("pin", ["123", "1234567890123", "12 34", "１２３４", ""])
def test_encode_pin_refuses(pin: str) -> None:
    with pytest.raises(ValueError, match="pin"):
        encode_pin(pin)


def test_get_challenge_and_external_authenticate(rig: Rig) -> None:
    rig.rng.push("5A6B7C8D", "01020304", "0A0B0C0D0E0F1011")
    selected(rig)
    key = card_keys("3des").entry("external_auth").key
    challenge = rig.card.get_challenge()
    assert challenge == h("5A6B7C8D")
    cryptogram = key.algorithm.cipher(key.value).encrypt(secure_messaging_iv(key.algorithm, challenge))
    rig.card.external_authenticate(0x01, cryptogram)
    assert rig.card.get_challenge() == h("01020304")
    with pytest.raises(CardError) as err:
        rig.card.external_authenticate(0x01, cryptogram)     # made for the previous challenge
    assert err.value.sw == 0x6300
    assert rig.card.get_challenge(8) == h("0A0B0C0D0E0F1011")
    assert rig.rec.commands == ["0084000004", "0082000108" + cryptogram.hex().upper(),
                                "0084000004", "0082000108" + cryptogram.hex().upper(), "0084000008"]


# -- secure messaging -------------------------------------------------------------------------------

@pytest.mark.parametrize("alg", ["3des", "sm4"])
def test_application_block_mac_matches_the_computed_vector(alg: str) -> None:
    v = vectors()["computed"][alg]["secure_messaging_mac"]
    key = SecretKey(Algorithm.parse(alg), h(v["key"]))
    assert v["apdu_without_mac"] == "841E000004"
    assert application_block_mac(key, h(v["challenge"])) == h(v["mac"])
    assert sm_mac(key, h(v["challenge"]), 0x84, 0x1E, 0x00, 0x00) == h(v["mac"])
    assert application_block_mac(key, h(v["challenge"]), permanent=True) != h(v["mac"])


def test_sm_mac_needs_a_secret_key() -> None:
    with pytest.raises(TypeError, match="SecretKey"):
        sm_mac(bytes(16), h("01020304"), 0x84, 0x1E, 0, 0)  # type: ignore[arg-type]


def test_block_and_unblock_a_card(rig: Rig) -> None:
    """Temporary lock: SELECT still answers the FCI, with 6283, and the purse refuses; UNBLOCK lifts it."""
    rig.rng.push("11223344", "55667788")
    selected(rig)
    keys = card_keys("3des")
    rig.card.application_block_with_key(keys.entry("app_block").key)
    block_mac = application_block_mac(keys.entry("app_block").key, h("11223344"))
    assert rig.rec.exchanges == [("0084000004", "112233449000"),
                                 ("841E000004" + block_mac.hex().upper(), "9000")]
    fci = rig.card.select()
    assert (fci.locked, fci.sw, fci.public_data.raw) == ("temporary", 0x6283, EF15)
    assert rig.card.read_public_data().card_no == "03105810000000001234"
    with pytest.raises(CardError) as err:
        rig.card.initialize_purchase(0x01, 0, TERMINAL)
    assert err.value.sw == 0x6985
    rig.rec.clear()
    rig.card.application_unblock_with_key(keys.entry("app_unblock").key)
    unblock_mac = application_unblock_mac(keys.entry("app_unblock").key, h("55667788"))
    assert rig.rec.commands == ["0084000004", "8418000004" + unblock_mac.hex().upper()]
    assert rig.card.select().locked is None


def test_permanent_block_and_a_wrong_mac(rig: Rig) -> None:
    selected(rig)
    key = card_keys("3des").entry("app_block").key
    challenge = rig.card.get_challenge()
    with pytest.raises(CardError) as err:
        rig.card.application_block(application_block_mac(key, challenge, permanent=False),
                                   permanent=True)
    assert err.value.sw == 0x6988
    assert rig.card.select().locked is None
    rig.card.application_block_with_key(key, permanent=True)
    assert rig.rec.commands[-1][:10] == "841E000104"
    fci = rig.card.select()
    assert (fci.locked, fci.sw, fci.aid, fci.app_version) == ("permanent", 0x9303, "A000000632010105", "02")
    with pytest.raises(CardError) as err:
        rig.card.read_public_data()
    assert err.value.sw == 0x9303


def test_update_binary_and_record_with_secure_messaging(rig: Rig) -> None:
    rig.rng.push("0A0B0C0D", "01010101")
    selected(rig)
    key = card_keys("3des").entry("app_maintenance").key
    holder = EF16.encode({"card_type_flag": "01", "staff_flag": "00", "name": "LI SI",
                          "id_number": "A1234567", "id_type": "01"})
    rig.card.update_binary_with_key(key, 0x16, 0, holder)
    mac = sm_mac(key, h("0A0B0C0D"), 0x04, 0xD6, 0x96, 0x00, holder)
    assert mac == secure_messaging_mac(Algorithm.TDES, key.value, h("0A0B0C0D"),
                                       h("04D696003B") + holder)
    assert rig.rec.commands == ["0084000004", "04D696003B" + holder.hex().upper() + mac.hex().upper()]
    assert rig.card.read_holder().name == "LI SI"
    bus = bytes((0x27, 0x02, 0x7D, 0x01, 0x01, 0x00)) + bytes([0x5A]) * 122
    rig.rec.clear()
    rig.card.update_record_with_key(key, 0x1A, 0x02, bus)
    mac = sm_mac(key, h("01010101"), 0x04, 0xDC, 0x02, 0xD4, bus)
    assert rig.rec.commands == ["0084000004", "04DC02D484" + bus.hex().upper() + mac.hex().upper()]
    assert rig.card.read_capp_record(0x02) == bus


def test_update_without_a_fresh_challenge_is_refused(rig: Rig) -> None:
    selected(rig)
    with pytest.raises(CardError) as err:
        rig.card.update_binary_sm(0x16, 0, bytes(55), h("01020304"))
    assert err.value.sw == 0x6984
    assert rig.rec.commands == ["04D696003B" + "00" * 55 + "01020304"]


def test_write_key_passes_the_data_through(rig: Rig) -> None:
    """WRITE KEY in the card's format (ykt_card.card.cos): replace the app_block key, then block with it."""
    rig.rng.push("31323334")
    selected(rig)
    keys = card_keys("3des")
    protector = keys.entry("card_master").key
    new_key = SecretKey(Algorithm.TDES, h("00112233445566778899AABBCCDDEEFF"))
    plain = bytes((0x14, 0x00, 0x05, 0x00, 0x00)) + new_key.value + b"\x80\x00\x00"
    encrypted = protector.algorithm.cipher(protector.value).encrypt(plain)
    mac = sm_mac(protector, h("31323334"), 0x84, 0xD4, 0x3A, 0x01, encrypted)
    with pytest.raises(CardError) as err:
        rig.card.write_key(0x3A, 0x01, encrypted + mac)      # no GET CHALLENGE before it
    assert err.value.sw == 0x6984
    assert rig.card.get_challenge() == h("31323334")
    rig.card.write_key(0x3A, 0x01, encrypted + mac)
    assert rig.rec.commands[-1] == "84D43A011C" + (encrypted + mac).hex().upper()
    assert rig.rec.commands.count(rig.rec.commands[-1]) == 2
    rig.card.application_block_with_key(new_key)
    assert rig.card.select().locked == "temporary"


def test_card_errors_name_the_command_but_never_its_data(rig: Rig) -> None:
    selected(rig)
    secret_looking = h("DEADBEEFCAFEBABE0011223344556677")
    with pytest.raises(CardError) as err:
        rig.card.write_key(0x3A, 0x01, secret_looking + h("01020304"))
    text = str(err.value)
    assert "WRITE KEY" in text and "84 D4 3A 01" in text
    assert "DEADBEEF" not in text.upper() and "CAFEBABE" not in repr(err.value).upper()


# -- decoded views ----------------------------------------------------------------------------------

def test_views_are_the_layouts_decode_read_only() -> None:
    from ykt_card.host.card import Holder, LogRecord, Management
    from ykt_card.layouts import EF17, EF18
    for view, layout in ((PublicData, EF15_LAYOUT), (Holder, EF16), (Management, EF17), (LogRecord, EF18)):
        for raw, fields in layout.vector_bytes():
            v = view(raw)
            assert v.fields() == fields and v.raw == raw
            assert all(getattr(v, name) == value for name, value in fields.items())
            assert v == view(raw) and hash(v) == hash(view(raw)) and v == view.from_fields(fields)
            with pytest.raises(AttributeError, match="read-only"):
                v.raw = b""
            with pytest.raises(AttributeError, match="has no field 'colour'"):
                v.colour
    assert "card_no='03105810000000001234'" in repr(PublicData(EF15))


def test_bytes_a_layout_refuses_are_a_card_response_error_naming_the_field() -> None:
    r = selected(Rig(ef17=h("00000156 5800 5810 0001 01 00000001") + bytes(45)))
    assert r.card.read_management().settlement_unit == "00000001"
    bad = EF15[:20] + h("20241301") + EF15[24:]                   # month 13
    r = Rig(ef15=bad)
    with pytest.raises(CardResponseError, match=r"SELECT: FCI\.ef15\.start_date: not a date: 20241301"):
        r.card.select()
    with pytest.raises(CardResponseError, match=r"READ BINARY 15 \(public data\): EF15\.start_date"):
        r.card.read_public_data()
    assert r.card.read_binary(0x15) == bad                        # the bytes themselves stay readable


class NoEf15InFciCard(TUnionCardOS):
    """A card whose FCI carries the application version but not EF15 (9F0C)."""

    def select(self, cmd):
        answer = super().select(cmd)
        if cmd.data == TUNION_AID:
            return h("6F10 8408A000000632010105 A504 9F080102")
        return answer


def test_an_fci_without_ef15_leaves_public_data_to_read_binary() -> None:
    r = Rig(card_cls=NoEf15InFciCard)
    fci = r.card.select()
    assert (fci.aid, fci.app_version, fci.public_data) == ("A000000632010105", "02", None)
    assert r.card.read_public_data() == PublicData(EF15)


def test_log_records_come_raw_or_decoded(rig: Rig) -> None:
    selected(rig)
    keys = card_keys("3des")
    init = rig.card.initialize_load(0x01, 700, TERMINAL)
    when = h("20261123090000")
    sess = LoadSession.derive(Algorithm.TDES, keys.entry("load").key.value, init.random, init.online_counter)
    rig.card.credit_load(when, sess.mac2(700, TERMINAL, when))
    raw = rig.card.read_transaction_records()
    assert [r.raw for r in rig.card.read_transactions()] == raw
    assert rig.card.read_transactions()[0].fields() == {
        "counter": 1, "overdraft_limit": 0, "amount": 700, "type": "02", "type_name": "ep_load",
        "terminal_id": "112233445566", "datetime": "2026-11-23 09:00:00"}
