"""A tiny host-side test terminal: builds APDUs and computes MAC1/MAC2/TAC on the host side via keysets.

It plays the PSAM and the load host with the card keys in hand, so card tests can run whole loads and
purchases and check every cryptogram the card returns against an independent computation. It never
reaches into the card's state: only APDUs go in and out.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from keysets import (
    TYPE_CAPP_PURCHASE, TYPE_PURCHASE, Algorithm, KeyEntry, KeySet, LoadSession,
    PurchaseSession, SecretKey, load_tac, purchase_tac, secure_messaging_mac, TEST_KEYSET_DIR,
)
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.state import CardState
from tests.reference import vectors

VECTORS = vectors()
AID = "A000000632010105"
SELECT_AID = "00A4040008" + AID + "00"
EF15 = bytes.fromhex("58105810FFFFFFFF0201" "03105810000000001234" "20240101" "20341231" "0000")
"""Issuer 58105810FFFFFFFF, EP app, card number 03105810000000001234 (serial8 5810000000001234)."""


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


class ScriptedRandom:
    """Random bytes from a script (then from a counter), so a test can fix what the card draws."""

    def __init__(self, *chunks: str) -> None:
        self.queue = deque(h(c) for c in chunks)
        self.n = 0

    def push(self, *chunks: str) -> None:
        self.queue.extend(h(c) for c in chunks)

    def __call__(self, n: int) -> bytes:
        if self.queue:
            chunk = self.queue.popleft()
            assert len(chunk) == n, f"script holds {len(chunk)} bytes, card asked for {n}"
            return chunk
        self.n += 1
        return (self.n.to_bytes(4, "big") * 4)[:n]


def gd_keyset(alg: str = "3des") -> KeySet:
    return KeySet.load(TEST_KEYSET_DIR / f"gd-test-{alg}.toml")


def vector_keyset() -> KeySet:
    """The real-card keys of vectors.json (already card keys) as a 3DES key set with index 01."""
    v = VECTORS["pboc_load_3des"]["card_keys"]
    alg = Algorithm.TDES

    def e(role: str, hexkey: str) -> KeyEntry:
        return KeyEntry(role, 1, 1, SecretKey(alg, h(hexkey)))

    keys = {"load": e("load", v["DLK"]), "purchase": e("purchase", v["DPK"]), "tac": e("tac", v["DTK"]),
            "app_maintenance": e("app_maintenance", "00112233445566778899AABBCCDDEEFF")}
    return KeySet("vector card (TEST)", True, alg, (), keys, "vectors.json")


def make_card(key_sets: Iterable[KeySet] | None = None, rng=None, **kwargs) -> TUnionCardOS:
    if key_sets is None:
        key_sets = [gd_keyset("3des"), gd_keyset("sm4")]
    state = CardState.new(EF15, list(key_sets), **kwargs)
    return TUnionCardOS(state, rng=rng if rng is not None else ScriptedRandom())


@dataclass
class Exchange:
    data: bytes
    sw: int

    @property
    def hex(self) -> str:
        return (self.data + self.sw.to_bytes(2, "big")).hex().upper()


class HostTerminal:
    """Terminal + PSAM + load host for tests, holding the card keys per key index."""

    def __init__(self, card: TUnionCardOS, card_keys: dict[int, KeySet],
                 terminal_id: bytes = h("112233445566"), terminal_seq: int = 0x100) -> None:
        self.card = card
        self.keys = card_keys
        self.terminal_id = terminal_id
        self.terminal_seq = terminal_seq
        self.log: list[tuple[str, str]] = []

    @classmethod
    def for_card(cls, card: TUnionCardOS, master_sets: Iterable[KeySet], **kw) -> "HostTerminal":
        st = card.state
        keys = {}
        for ks in master_sets:
            ck = ks.card_keys(st.issuer_id, st.serial8) if ks.diversification else ks
            keys[ck.entry("purchase").index] = ck
        return cls(card, keys, **kw)

    def x(self, capdu: bytes | str) -> Exchange:
        raw = h(capdu) if isinstance(capdu, str) else capdu
        r = self.card.process(raw)
        self.log.append((raw.hex().upper(), r.hex().upper()))
        return Exchange(r[:-2], int.from_bytes(r[-2:], "big"))

    def select(self) -> Exchange:
        return self.x(SELECT_AID)

    # -- load ------------------------------------------------------------------------------------
    def init_load(self, amount: int, key_index: int = 1) -> Exchange:
        return self.x(b"\x80\x50\x00\x02\x0b" + bytes([key_index]) + amount.to_bytes(4, "big")
                      + self.terminal_id + b"\x10")

    def load(self, amount: int, key_index: int = 1, when: bytes = h("20261123090000"),
             bad_mac2: bool = False) -> dict:
        """A whole online load; checks MAC1 from the card and the TAC against host computations."""
        r = self.init_load(amount, key_index)
        if r.sw != 0x9000:
            return {"sw": r.sw, "stage": "init"}
        ks = self.keys[key_index]
        d = r.data
        total, ctr, rnd, mac1 = int.from_bytes(d[0:4], "big"), int.from_bytes(d[4:6], "big"), d[8:12], d[12:16]
        assert d[7] == ks.algorithm.wire_id
        sess = LoadSession.derive(ks.algorithm, ks.entry("load").key.value, rnd, ctr)
        assert sess.mac1(total, amount, self.terminal_id) == mac1, "card MAC1 wrong"
        mac2 = sess.mac2(amount, self.terminal_id, when)
        if bad_mac2:
            mac2 = bytes([mac2[0] ^ 1]) + mac2[1:]
        r2 = self.x(b"\x80\x52\x00\x00\x0b" + when + mac2 + b"\x04")
        out = {"sw": r2.sw, "stage": "credit", "counter": ctr, "total_before": total, "mac2": mac2}
        if r2.sw == 0x9000:
            expect = load_tac(ks.algorithm, ks.entry("tac").key.value, total + amount, ctr, amount,
                              self.terminal_id, when)
            assert r2.data == expect, "card TAC wrong"
            out["tac"] = r2.data
        return out

    # -- purchase --------------------------------------------------------------------------------
    def init_purchase(self, amount: int, key_index: int = 1, capp: bool = False) -> Exchange:
        p1 = 3 if capp else 1
        return self.x(bytes([0x80, 0x50, p1, 0x02, 0x0B, key_index]) + amount.to_bytes(4, "big")
                      + self.terminal_id + b"\x0f")

    def purchase(self, amount: int, key_index: int = 1, capp: list[bytes] | None = None,
                 when: bytes = h("20261123081530"), bad_mac1: bool = False,
                 before_debit=None) -> dict:
        """A whole purchase (CAPP when `capp` lists 80DC APDUs); checks MAC2 and TAC on the host."""
        tx_type = TYPE_CAPP_PURCHASE if capp is not None else TYPE_PURCHASE
        r = self.init_purchase(amount, key_index, capp is not None)
        if r.sw != 0x9000:
            return {"sw": r.sw, "stage": "init"}
        ks = self.keys[key_index]
        d = r.data
        total, ctr, limit = int.from_bytes(d[0:4], "big"), int.from_bytes(d[4:6], "big"), int.from_bytes(d[6:9], "big")
        assert d[10] == ks.algorithm.wire_id
        rnd = d[11:15]
        for apdu in capp or []:
            rc = self.x(apdu)
            if rc.sw != 0x9000:
                return {"sw": rc.sw, "stage": "capp"}
        self.terminal_seq += 1
        seq = self.terminal_seq
        sess = PurchaseSession.derive(ks.algorithm, ks.entry("purchase").key.value, rnd, ctr, seq)
        mac1 = sess.mac1(amount, tx_type, self.terminal_id, when)
        good_debit = b"\x80\x54\x01\x00\x0f" + seq.to_bytes(4, "big") + when + mac1 + b"\x08"
        if bad_mac1:
            mac1 = bytes([mac1[0] ^ 0x80]) + mac1[1:]
        debit = b"\x80\x54\x01\x00\x0f" + seq.to_bytes(4, "big") + when + mac1 + b"\x08"
        if before_debit is not None:
            before_debit()
        out = {"stage": "debit", "counter": ctr, "total_before": total, "limit": limit, "type": tx_type,
               "seq": seq, "debit_apdu": debit, "good_debit_apdu": good_debit}
        out["expected_mac2"] = sess.mac2(amount)
        out["expected_tac"] = purchase_tac(ks.algorithm, ks.entry("tac").key.value, amount, tx_type,
                                           self.terminal_id, seq, when)
        r2 = self.x(debit)
        out["sw"] = r2.sw
        if r2.sw == 0x9000:
            assert r2.data[4:8] == out["expected_mac2"], "card MAC2 wrong"
            assert r2.data[0:4] == out["expected_tac"], "card TAC wrong"
            out["tac"], out["mac2"] = r2.data[0:4], r2.data[4:8]
        return out

    def prove(self, tx_type: int, counter_after: int) -> Exchange:
        return self.x(bytes([0x80, 0x5A, 0x00, tx_type, 0x02]) + counter_after.to_bytes(2, "big") + b"\x08")

    # -- secure messaging ------------------------------------------------------------------------
    def sm_command(self, header_lc: bytes, body: bytes, role: str = "app_maintenance", key_index: int = 1,
                   challenge_len: int = 4, tamper: bool = False) -> Exchange:
        """GET CHALLENGE, then `header_lc ‖ body ‖ MAC` under the card key of `role`."""
        ch = self.x(bytes([0x00, 0x84, 0x00, 0x00, challenge_len]))
        assert ch.sw == 0x9000
        ks = self.keys[key_index]
        key = (ks.keys.get(role) or ks.keys["app_maintenance"]).key
        m = secure_messaging_mac(key.algorithm, key.value, ch.data, header_lc + body)
        if tamper:
            m = bytes([m[0] ^ 1]) + m[1:]
        return self.x(header_lc + body + m)


def capp_metro_record(rec_id: int = 1, fill: int = 0x11) -> bytes:
    """A 128-byte EF1A record with the standard header and a recognisable body."""
    return bytes((0x27, rec_id, 0x7D, 0x01, 0x01, 0x00)) + bytes([fill]) * 122


def capp_update_1a(rec_id: int = 1, fill: int = 0x11) -> bytes:
    return bytes((0x80, 0xDC, rec_id, 0xD0, 0x80)) + capp_metro_record(rec_id, fill)


def capp_update_1e(fill: int = 0x22) -> bytes:
    return bytes((0x80, 0xDC, 0x00, 0xF0, 0x30)) + bytes([0x03]) + bytes([fill]) * 47


def run_table(card: TUnionCardOS, table: list[tuple[str, str]]) -> None:
    """nfcpy-style exchange table: each command must get exactly the expected response."""
    for i, (capdu, expected) in enumerate(table):
        got = card.process(h(capdu)).hex().upper()
        assert got == expected.replace(" ", "").upper(), f"step {i}: {capdu} -> {got}, expected {expected}"


def computed_master_keyset(alg: str) -> KeySet:
    """A master key set whose every role is the 'computed' master key of vectors.json (D2 diversification).

    With EF15 above (issuer 58105810FFFFFFFF, serial 5810000000001234) every card key becomes the
    vector's `card_key_div_by_serial`, so the vector's MAC1/MAC2/TAC apply to the card as built.
    """
    v = VECTORS["computed"][alg]
    algorithm = Algorithm.parse(alg)
    index = 1 if alg == "3des" else 2
    master = SecretKey(algorithm, h(v["master_key"]))
    roles = ("purchase", "load", "tac", "app_maintenance")
    return KeySet(f"computed vector {alg} (TEST)", True, algorithm, ("issuer", "serial"),
                  {r: KeyEntry(r, index, 1, master) for r in roles}, "vectors.json")


def state_fingerprint(card: TUnionCardOS):
    """Everything persistent, comparable (includes files, purse, proofs, keys' KCVs, lock, PIN tries)."""
    return card.state.snapshot()
