"""Known-answer tests: every vector of the project's copy, tests/data/reference/vectors.json, through the named functions."""
import pytest

from keysets import (
    Algorithm,
    LoadSession,
    PurchaseSession,
    diversify,
    load_mac1_input,
    load_mac2_input,
    load_tac,
    load_tac_input,
    purchase_tac,
    secure_messaging_iv,
    secure_messaging_mac,
    tac_key,
)
from keysets.ciphers import sm4

from tests.reference import h


def test_sm4_block_standard_example(vectors):
    v = vectors["sm4_block"]
    assert sm4(h(v["key"])).encrypt(h(v["plaintext"])) == h(v["ciphertext"])


class TestRealCardLoad:
    """The real PBOC purse card log: INITIALIZE/CREDIT FOR LOAD with known card keys."""

    @pytest.fixture
    def v(self, vectors):
        return vectors["pboc_load_3des"]

    def test_session_key(self, v):
        f = v["initialize_for_load"]["fields"]
        s = LoadSession.derive(Algorithm.TDES, h(v["card_keys"]["DLK"]), h(f["random"]), int(f["online_counter"], 16))
        assert s.session_key == h(v["session_key_SESLK"])

    def test_mac1_and_its_input(self, v):
        f = v["initialize_for_load"]["fields"]
        assert load_mac1_input(0, 0x1C37, h("000001000050")) == h(v["mac1_input"])
        s = LoadSession(Algorithm.TDES, h(v["session_key_SESLK"]))
        assert s.mac1(int(f["balance"], 16), 0x1C37, h("000001000050")) == h(f["mac1"])

    def test_mac2_and_its_input(self, v):
        dt = h(v["host_datetime"])
        assert load_mac2_input(0x1C37, h("000001000050"), dt) == h(v["mac2_input"])
        s = LoadSession(Algorithm.TDES, h(v["session_key_SESLK"]))
        assert s.mac2(0x1C37, h("000001000050"), dt) == h(v["mac2"])
        assert s.verify_mac2(h(v["mac2"]), 0x1C37, h("000001000050"), dt)
        assert not s.verify_mac2(h("0641DCD9"), 0x1C37, h("000001000050"), dt)

    def test_credit_apdu_carries_the_mac2(self, v):
        capdu = h(v["credit_for_load"]["capdu"])
        assert capdu[5:12] == h(v["host_datetime"]) and capdu[12:16] == h(v["mac2"])

    def test_tac_key_and_tac(self, v):
        dtk = h(v["card_keys"]["DTK"])
        assert tac_key(Algorithm.TDES, dtk) == h(v["tac_key"])
        dt = h(v["host_datetime"])
        assert load_tac_input(0x1C37, 0, 0x1C37, h("000001000050"), dt) == h(v["tac_input"])
        assert load_tac(Algorithm.TDES, dtk, 0x1C37, 0, 0x1C37, h("000001000050"), dt) == h(v["credit_for_load"]["rapdu_tac"])


@pytest.mark.parametrize("name,algorithm", [("3des", Algorithm.TDES), ("sm4", Algorithm.SM4)])
class TestComputed:
    """The project's pinned choices (D2 order, the SM4 branch, secure-messaging IVs)."""

    def test_two_level_diversification(self, vectors, name, algorithm):
        c = vectors["computed"][name]
        mk = h(c["master_key"])
        assert c["card_no"].endswith(c["serial8"])
        level1 = diversify(algorithm, mk, [h(c["issuer_id"])])
        assert level1 == h(c["level1_key_div_by_issuer"])
        assert diversify(algorithm, level1, [h(c["serial8"])]) == h(c["card_key_div_by_serial"])
        assert diversify(algorithm, mk, [h(c["issuer_id"]), h(c["serial8"])]) == h(c["card_key_div_by_serial"])

    def test_purchase(self, vectors, name, algorithm):
        p = vectors["computed"][name]["purchase"]
        amount, seq, tid, dt = int(p["amount"], 16), int(p["terminal_seq"], 16), h(p["terminal_id"]), h(p["datetime"])
        s = PurchaseSession.derive(algorithm, h(p["dpk"]), h(p["random"]), int(p["offline_counter"], 16), seq)
        assert s.session_key == h(p["session_key_SESPK"])
        assert s.mac1(amount, int(p["type"], 16), tid, dt) == h(p["mac1"])
        assert s.verify_mac1(h(p["mac1"]), amount, int(p["type"], 16), tid, dt)
        assert s.mac2(amount) == h(p["mac2"])
        assert tac_key(algorithm, h(p["dtk"])) == h(p["tac_key"])
        assert purchase_tac(algorithm, h(p["dtk"]), amount, int(p["type"], 16), tid, seq, dt) == h(p["tac"])

    def test_load(self, vectors, name, algorithm):
        ld = vectors["computed"][name]["load"]
        bb, amount, ctr = int(ld["balance_before"], 16), int(ld["amount"], 16), int(ld["online_counter"], 16)
        tid, dt = h(ld["terminal_id"]), h(ld["datetime"])
        s = LoadSession.derive(algorithm, h(ld["dlk"]), h(ld["random"]), ctr)
        assert s.session_key == h(ld["session_key_SESLK"])
        assert s.mac1(bb, amount, tid) == h(ld["mac1"])
        assert s.mac2(amount, tid, dt) == h(ld["mac2"])
        assert load_tac(algorithm, h(ld["dtk"]), bb + amount, ctr, amount, tid, dt) == h(ld["tac"])

    def test_secure_messaging_mac(self, vectors, name, algorithm):
        sm = vectors["computed"][name]["secure_messaging_mac"]
        assert secure_messaging_iv(algorithm, h(sm["challenge"])) == h(sm["iv"])
        mac = secure_messaging_mac(algorithm, h(sm["key"]), h(sm["challenge"]), h(sm["apdu_without_mac"]))
        assert mac == h(sm["mac"])
