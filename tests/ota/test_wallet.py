"""The wallet's top-up as exchange tables: card APDUs and host messages interleaved, every value linked.

The card is the real virtual card (reference profile, TEST key sets); the host is the real TopUpHost in
process, with its SQLite journal, reached through the same signed bytes as over HTTP. Each table lists
every command and every message in order; cryptograms are checked by recomputing them with the TEST
keys (MAC2 from the card's load key and the INITIALIZE answer, the TAC from its TAC key, tunion.md 3.2).
Then the losses: a CREDIT answer lost, a CREDIT never received, a confirmation lost, a load_init answer
lost, another load in between; after each, the card holds exactly the money of the orders the host
confirmed, each credited once.
"""
from __future__ import annotations

import pytest

from apdu.command import CommandApdu
from keysets import Algorithm
from terminal_sim.flows import load as office_load
from terminal_sim.links import TearingReader
from terminal_sim.load_host import LoadHost
from ykt_card.clock import SimulatedClock

from tests.terminal_sim.test_flows import KS3, KS4, make_world

from ota import InProcessHostClient

from .helpers import CARD, CREDENTIALS, HOST_CLOCK, ISSUER, WALLET_TID, Dropping, mac2_of, make_host, table, tac_of, wallet


def card_rows(log, header: str) -> list[tuple[CommandApdu, bytes]]:
    return [(CommandApdu.parse(c), r) for who, c, r in log if who == "card" and c[:4].hex().upper() == header]


def host_rows(log, op: str) -> list[tuple[dict, object]]:
    return [(m, a) for who, m, a in log if who == "host" and m["op"] == op]


def books(host, w, loaded: int) -> None:
    """The card holds its start balance plus the confirmed orders, each once, and nothing else."""
    orders = host.journal.all()
    confirmed = [o for o in orders if o.state == "confirmed"]
    assert w.balance == 5000 + loaded == 5000 + sum(o.amount for o in confirmed)
    assert sorted(o.counter for o in confirmed) == list(range(w.state.purse.online_counter))
    assert len({o.counter for o in orders if o.state != "void"}) == len([o for o in orders if o.state != "void"])


def test_a_top_up_is_select_pending_init_load_init_credit_confirm(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    result = wallet(w, host).topup(1000)
    assert table(w.log) == [("card", "00A40400"), ("host", "pending"), ("card", "80500002"), ("host", "load_init"),
                            ("card", "80520000"), ("host", "load_confirm")]
    select = CommandApdu.parse(w.log[0][1])
    assert select.data == bytes.fromhex("A000000632010105")
    assert host_rows(w.log, "pending") == [({"op": "pending", "card_no": CARD}, {"orders": []})]
    (init_cmd, init_answer), = card_rows(w.log, "80500002")
    assert init_cmd.data == bytes((1,)) + (1000).to_bytes(4, "big") + WALLET_TID and init_cmd.le == 0x10
    init = init_answer[:-2]
    (request, answer), = host_rows(w.log, "load_init")
    assert request == {"op": "load_init", "card_no": CARD, "issuer_id": ISSUER, "aid": "A000000632010105",
                       "terminal_id": "FF0000000001", "amount": 1000, "init": init.hex().upper()}
    mac2 = mac2_of(w.state, init, 1000, WALLET_TID, HOST_CLOCK)
    assert answer == {"order": "000000000001", "datetime": HOST_CLOCK, "mac2": mac2}
    (credit, credit_answer), = card_rows(w.log, "80520000")
    assert credit.data.hex().upper() == HOST_CLOCK + mac2 and credit.le == 4
    tac = tac_of(w.state, init, 1000, WALLET_TID, HOST_CLOCK)
    assert credit_answer.hex().upper() == tac + "9000"
    assert host_rows(w.log, "load_confirm") == [({"op": "load_confirm", "order": "000000000001", "sw": "9000",
                                                  "tac": tac}, {"order": "000000000001", "state": "confirmed"})]
    assert result.to_dict() == {"status": "loaded", "amount": 1000, "card_no": CARD, "order": "000000000001",
                                "datetime": HOST_CLOCK, "balance_before": 5000, "balance_after": 6000, "tac": tac,
                                "settled": []}
    books(host, w, 1000)


def test_an_sm4_key_index_loads_with_the_sm4_master(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    assert wallet(w, host, key_index=2).topup(700).status == "loaded"
    (_, init_answer), = card_rows(w.log, "80500002")
    (_, answer), = host_rows(w.log, "load_init")
    assert answer["mac2"] == mac2_of(w.state, init_answer[:-2], 700, WALLET_TID, HOST_CLOCK, Algorithm.SM4)
    assert host.journal.all()[0].algorithm == "sm4"


def test_a_lost_credit_answer_is_proven_on_the_next_contact(tmp_path):
    """The card was credited, its TAC never reached the wallet: the next contact reads the proof."""
    w = make_world()
    host = make_host(tmp_path)
    tear = TearingReader(w.card_reader, at_ins=0x52, when="after")
    first = wallet(w, host, reader=tear).topup(1000)
    assert (first.status, first.order, w.balance) == ("pending", "000000000001", 6000)
    assert "no answer to CREDIT FOR LOAD" in first.reason
    assert [o.state for o in host.journal.all()] == ["pending"]
    w.log.clear()
    second = wallet(w, host, reader=tear).topup(500)
    assert table(w.log) == [("card", "00A40400"), ("host", "pending"), ("card", "805A0002"), ("host", "load_confirm"),
                            ("card", "80500002"), ("host", "load_init"), ("card", "80520000"),
                            ("host", "load_confirm")]
    (prove, proof), = card_rows(w.log, "805A0002")
    assert prove.data == (1).to_bytes(2, "big") and prove.le == 8       # online counter 0 + 1 (D5)
    order = host.journal.all()[0]
    assert proof[:4].hex().upper() == order.mac2                        # D5: a load's proof carries the host's MAC2
    (confirm, answer), = host_rows(w.log, "load_confirm")[:1]
    assert confirm == {"op": "load_confirm", "order": "000000000001", "sw": "9000", "tac": proof[4:8].hex().upper(),
                       "mac2": order.mac2}
    assert answer == {"order": "000000000001", "state": "confirmed"}
    assert [s.to_dict() for s in second.settled] == [{"order": "000000000001", "amount": 1000, "result": "proven",
                                                      "tac": proof[4:8].hex().upper()}]
    assert second.status == "loaded" and second.balance_before == 6000 and w.balance == 6500
    books(host, w, 1500)


def test_a_credit_the_card_never_received_is_completed_on_the_next_contact(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    tear = TearingReader(w.card_reader, at_ins=0x52, when="before")
    first = wallet(w, host, reader=tear).topup(1000)
    assert (first.status, w.balance) == ("pending", 5000)
    w.log.clear()
    seen, settled, why = wallet(w, host, reader=tear).sync()
    assert why is None and seen.card_no == CARD
    assert table(w.log) == [("card", "00A40400"), ("host", "pending"), ("card", "805A0002"), ("card", "80500002"),
                            ("host", "load_init"), ("card", "80520000"), ("host", "load_confirm")]
    assert card_rows(w.log, "805A0002")[0][1].hex().upper() == "9406"    # no proof: the load never happened
    (init_cmd, init_answer), = card_rows(w.log, "80500002")
    assert init_cmd.data[1:5] == (1000).to_bytes(4, "big")               # the order's amount
    (request, answer), = host_rows(w.log, "load_init")
    assert answer["order"] == "000000000001"                             # the same order, completed
    assert answer["mac2"] == mac2_of(w.state, init_answer[:-2], 1000, WALLET_TID, answer["datetime"])
    assert [(s.order, s.result) for s in settled] == [("000000000001", "completed")]
    order, = host.journal.all()
    assert (order.state, order.attempts) == ("confirmed", 2) and w.balance == 6000
    books(host, w, 1000)


def test_a_lost_confirmation_is_proven_on_the_next_contact(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    dropping = Dropping(InProcessHostClient(host, CREDENTIALS["wallet-0001"]), "load_confirm", carried_out=False)
    first = wallet(w, host, client=dropping).topup(1000)
    assert first.status == "loaded" and w.balance == 6000
    assert first.reason == ("the host was not told (answer to load_confirm lost): order 000000000001 is proven on "
                            "the next contact")
    assert [o.state for o in host.journal.all()] == ["pending"]
    seen, settled, why = wallet(w, host).sync()
    assert [(s.order, s.result) for s in settled] == [("000000000001", "proven")]
    books(host, w, 1000)


def test_a_lost_load_init_answer_is_retried_or_completed(tmp_path):
    """The host took the order but its answer was lost and no retry got through: nothing loaded now; the
    next contact completes the order the host holds (it was paid for)."""
    w = make_world()
    host = make_host(tmp_path)
    dropping = Dropping(InProcessHostClient(host, CREDENTIALS["wallet-0001"]), "load_init")
    first = wallet(w, host, client=dropping).topup(1000)
    assert first.status == "refused" and w.balance == 5000 and "nothing loaded now" in first.reason
    assert [o.state for o in host.journal.all()] == ["pending"]
    seen, settled, why = wallet(w, host).sync()
    assert [(s.order, s.result) for s in settled] == [("000000000001", "completed")] and w.balance == 6000
    books(host, w, 1000)


def test_a_retried_load_init_returns_the_same_mac2_and_credits_once(tmp_path):
    w = make_world()
    host = make_host(tmp_path)
    client = InProcessHostClient(host, CREDENTIALS["wallet-0001"])

    class Twice:
        """Sends every load_init twice, as a wallet does when the first answer is lost on the way."""
        def call(self, message):
            first = client.call(message)
            if message["op"] == "load_init":
                assert client.call(message) == first
            return first

    assert wallet(w, host, client=Twice()).topup(1000).status == "loaded"
    order, = host.journal.all()
    assert order.attempts == 1 and order.state == "confirmed"
    books(host, w, 1000)


def test_another_load_in_between_leaves_the_order_to_clearing(tmp_path):
    """The answer was lost and the card never got the CREDIT; a ticket office then loaded the card at the
    same counter. The card's proof at counter + 1 is that load's: the host cannot settle its order alone."""
    w = make_world()
    host = make_host(tmp_path)
    tear = TearingReader(w.card_reader, at_ins=0x52, when="before")
    assert wallet(w, host, reader=tear).topup(1000).status == "pending"
    office = office_load(tear, LoadHost([KS3, KS4], SimulatedClock.parse("20261124100000")), 300,
                         bytes.fromhex("000000009999"))
    assert office.status == "approved" and w.balance == 5300
    seen, settled, why = wallet(w, host, reader=tear).sync()
    assert [(s.order, s.result) for s in settled] == [("000000000001", "clearing")]
    assert settled[0].reason == "the card's load at online counter 1 carries another MAC2: left for clearing"
    assert host.journal.all()[0].state == "clearing" and w.balance == 5300
    assert wallet(w, host).sync()[1] == ()                               # no longer pending


def test_the_host_refuses_what_the_card_cannot_hold_and_strangers(tmp_path):
    w = make_world()
    low = make_host(tmp_path, max_balance=5500)
    refused = wallet(w, low).topup(1000)
    assert refused.status == "refused" and refused.reason == (
        "host refused (422): amount 1000: balance 5000 + 1000 would exceed the card's maximum balance 5500: "
        "nothing loaded")
    assert low.journal.all() == [] and w.balance == 5000
    other = make_world(card_no="03105810000000009999")
    stranger = wallet(other, low, account="wallet-0002").topup(100)
    assert stranger.reason.startswith("host refused (403): account wallet-0002 may not top up card "
                                      "03105810000000009999")
    card_limit = wallet(w, low).topup(100_000)
    assert card_limit.reason == "the card refused the amount (zero, or above its maximum balance): nothing loaded"
    assert ("host", "load_init") not in table(w.log)[-3:]


def test_a_card_refusing_credit_leaves_the_order_pending_with_its_sw(tmp_path):
    """A MAC2 spoilt on the way: the card answers 9302 and credits nothing; the order stays pending (an
    error SW proves nothing to the host) until the next contact completes it."""
    w = make_world()
    host = make_host(tmp_path)

    class BadMac2:
        def __init__(self, inner):
            self.inner = inner

        def call(self, message):
            answer = self.inner.call(message)
            if message["op"] == "load_init":
                answer = {**answer, "mac2": "00000000"}
            return answer

    client = BadMac2(InProcessHostClient(host, CREDENTIALS["wallet-0001"]))
    result = wallet(w, host, client=client).topup(1000)
    assert result.status == "refused" and result.reason.startswith("CREDIT FOR LOAD refused: 9302")
    order, = host.journal.all()
    assert (order.state, order.last_sw) == ("pending", "9302") and w.balance == 5000
    seen, settled, why = wallet(w, host).sync()
    assert [(s.order, s.result) for s in settled] == [("000000000001", "completed")] and w.balance == 6000
