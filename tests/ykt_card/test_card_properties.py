"""Card invariants under random valid and invalid command sequences (hypothesis state machine).

Money is conserved (balance = issued + loads - purchases), counters only grow and move exactly with
completed transactions, a bad MAC or a malformed APDU changes nothing, every response ends in a valid
status word (never 6F00), GET TRANSACTION PROVE agrees with the last DEBIT and CREDIT, and a power
cut at any commit step leaves the card consistent with either outcome.
"""
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from keysets.randomness import RandomSource
from apdu.status import is_valid_sw
from ykt_card.card.state import FaultInjector, PowerLoss

from tests.ykt_card.helpers import (
    Exchange, HostTerminal, capp_update_1a, capp_update_1e, gd_keyset, h, make_card,
)

KNOWN_INS = [0xA4, 0xB0, 0xB2, 0x5C, 0x5A, 0x84, 0x82, 0x20, 0x50, 0x52, 0xDC, 0x54, 0x1E, 0x18, 0xD6, 0xD4]


class CheckedTerminal(HostTerminal):
    """Every response must end in a valid status word and never in 6F00 (D17)."""

    def x(self, capdu) -> Exchange:
        r = super().x(capdu)
        assert is_valid_sw(r.sw) and r.sw != 0x6F00, f"{self.log[-1]}"
        return r


def money(card):
    p = card.state.purse
    return p.balance, p.online_counter, p.offline_counter


class CardMachine(RuleBasedStateMachine):
    @initialize(balance=st.integers(0, 60_000), limit=st.integers(0, 2_000), seed=st.integers(0, 2**32))
    def issue(self, balance, limit, seed):
        self.card = make_card(rng=RandomSource(seed), balance=balance, overdraft_limit=limit)
        self.t = CheckedTerminal.for_card(self.card, [gd_keyset("3des"), gd_keyset("sm4")])
        assert self.t.select().sw == 0x9000
        self.issued = balance
        self.loads = 0
        self.purchases = 0
        self.counters = (0, 0)
        self.proofs = {}
        self.limit = limit

    # -- model helpers ---------------------------------------------------------------------------
    def snapshot(self):
        return self.card.state.snapshot()

    def expect_unchanged(self, action):
        before = self.snapshot()
        out = action()
        assert self.snapshot() == before
        return out

    def balance(self):
        return self.issued + self.loads - self.purchases

    # -- valid transactions ----------------------------------------------------------------------
    @rule(amount=st.integers(0, 30_000), index=st.sampled_from([1, 2]))
    def load(self, amount, index):
        ok = amount > 0 and self.balance() + amount <= 100_000
        if not ok:
            r = self.expect_unchanged(lambda: self.t.load(amount, key_index=index))
            assert r["sw"] == 0x6A80
            return
        r = self.t.load(amount, key_index=index)
        assert r["sw"] == 0x9000
        assert r["total_before"] == self.balance() + self.limit
        self.loads += amount
        online, offline = self.counters
        self.counters = (online + 1, offline)
        self.proofs[0x02] = (online + 1, r["mac2"] + r["tac"])

    @rule(amount=st.integers(0, 8_000), index=st.sampled_from([1, 2]), capp=st.booleans(),
          fill=st.integers(0, 255))
    def purchase(self, amount, index, capp, fill):
        updates = [capp_update_1a(1 + fill % 2, fill), capp_update_1e(fill)] if capp else None
        if self.balance() - amount < -self.limit:
            r = self.expect_unchanged(lambda: self.t.purchase(amount, key_index=index, capp=updates))
            assert r["sw"] == 0x9401
            return
        r = self.t.purchase(amount, key_index=index, capp=updates)
        assert r["sw"] == 0x9000
        self.purchases += amount
        online, offline = self.counters
        self.counters = (online, offline + 1)
        self.proofs.pop(0x06, None)
        self.proofs.pop(0x09, None)
        self.proofs[r["type"]] = (offline + 1, r["mac2"] + r["tac"])

    # -- refusals that change nothing ------------------------------------------------------------
    @rule(amount=st.integers(1, 500))
    def purchase_with_bad_mac1(self, amount):
        r = self.expect_unchanged(lambda: self.t.purchase(amount, bad_mac1=True))
        assert r["sw"] in (0x9302, 0x9401)

    @rule(amount=st.integers(1, 500))
    def load_with_bad_mac2(self, amount):
        r = self.expect_unchanged(lambda: self.t.load(amount, bad_mac2=True))
        assert r["sw"] in (0x9302, 0x6A80)

    @rule(amount=st.integers(0, 500), capp=st.booleans())
    def interrupted_purchase(self, amount, capp):
        r = self.expect_unchanged(lambda: self.t.purchase(
            amount, capp=[capp_update_1a()] if capp else None,
            before_debit=lambda: self.t.x("00B095001E")))
        assert r["sw"] in (0x6985, 0x9401)

    @rule(raw=st.binary(min_size=0, max_size=40))
    def random_bytes(self, raw):
        self._random_apdu(raw)

    @rule(cla=st.sampled_from([0x00, 0x04, 0x80, 0x84, 0x0C, 0xFF]), ins=st.sampled_from(KNOWN_INS),
          p1=st.integers(0, 255), p2=st.integers(0, 255), data=st.binary(max_size=140),
          le=st.none() | st.integers(0, 255))
    def random_command(self, cla, ins, p1, p2, data, le):
        raw = bytes((cla, ins, p1, p2))
        if data:
            raw += bytes((len(data),)) + data
        if le is not None:
            raw += bytes((le,))
        self._random_apdu(raw)

    def _random_apdu(self, raw):
        before = self.snapshot()
        r = self.t.x(raw)
        after = self.snapshot()
        if len(raw) > 1 and raw[1] == 0x20:
            before["pin_tries"] = after["pin_tries"]       # VERIFY may count a try: the only change allowed
        assert after == before, f"{raw.hex()} changed the card"
        self.t.select()

    @rule()
    def power_cycle(self):
        self.expect_unchanged(lambda: (self.card.power_off(), self.card.power_on(), self.t.select()))

    # -- tearing ---------------------------------------------------------------------------------
    @rule(kind=st.sampled_from(["load", "purchase", "capp"]), cut=st.integers(0, 25),
          amount=st.integers(1, 3_000))
    def torn_transaction(self, kind, cut, amount):
        if kind == "load" and self.balance() + amount > 100_000:
            return
        if kind != "load" and self.balance() - amount < -self.limit:
            return
        online, offline = self.counters
        self.card.fault = FaultInjector(cut_after=cut)
        try:
            if kind == "load":
                r = self.t.load(amount)
            else:
                r = self.t.purchase(amount, capp=[capp_update_1e(0x5E)] if kind == "capp" else None)
            torn = False
        except PowerLoss:
            torn = True
        self.card.fault = None
        if torn:
            self.card.power_on()
            self.t.select()
            tx_type = {"load": 0x02, "purchase": 0x06, "capp": 0x09}[kind]
            counter = (online if kind == "load" else offline) + 1
            proof = self.t.prove(tx_type, counter)
            done = proof.sw == 0x9000
            assert proof.sw in (0x9000, 0x9406)
        else:
            assert r["sw"] == 0x9000
            done = True
            proof = Exchange(r["mac2"] + r["tac"], 0x9000)
        if done:
            if kind == "load":
                self.loads += amount
                self.counters = (online + 1, offline)
                self.proofs[0x02] = (online + 1, proof.data)
            else:
                self.purchases += amount
                self.counters = (online, offline + 1)
                self.proofs.pop(0x06, None)
                self.proofs.pop(0x09, None)
                self.proofs[0x09 if kind == "capp" else 0x06] = (offline + 1, proof.data)

    @rule()
    @precondition(lambda self: hasattr(self, "proofs") and self.proofs)
    def prove_agrees_with_the_last_transactions(self):
        for tx_type, (counter, expected) in self.proofs.items():
            r = self.t.prove(tx_type, counter)
            assert (r.sw, r.data) == (0x9000, expected)
            assert self.t.prove(tx_type, counter + 1).sw == 0x9406

    # -- invariants ------------------------------------------------------------------------------
    @invariant()
    def money_is_conserved(self):
        if not hasattr(self, "card"):
            return
        balance, online, offline = money(self.card)
        assert balance == self.balance()
        assert (online, offline) == self.counters
        assert balance >= -self.limit
        assert self.card.state.journal == [] and not self.card.state.journal_complete


CardMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None,
                                         suppress_health_check=[HealthCheck.too_slow])
TestCardMachine = CardMachine.TestCase


@settings(max_examples=400, deadline=None)
@given(raw=st.binary(max_size=300), selected=st.booleans(), challenge=st.booleans())
def test_random_apdus_never_raise_and_never_6f00(raw, selected, challenge):
    card = make_card(balance=100)
    if selected:
        card.process(h("00A4040008A00000063201010500"))
    if challenge:
        card.process(h("0084000004"))
    r = card.process(raw)
    sw = int.from_bytes(r[-2:], "big")
    assert is_valid_sw(sw) and sw != 0x6F00
