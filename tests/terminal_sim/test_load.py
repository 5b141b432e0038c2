"""The load (圈存) terminal of reference 5.7 against a simulated host holding the TEST master keys."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from ykt_card.clock import SimulatedClock
from keysets import Algorithm, KeySet, KeySetError, LoadSession, load_tac
from terminal_sim.flows import load
from terminal_sim.journal import Journal
from terminal_sim.load_host import LoadHost, LoadRequest
from terminal_sim.links import TamperingReader, TearingReader

from tests.terminal_sim.test_flows import (KS3, KS4, SELECT, TERMINAL_ID, World, answer, card_key, command,
                                           headers, make_world, terminal_profile)

HOST_CLOCK = "20241124093000"


def host(*keysets: KeySet) -> LoadHost:
    return LoadHost(keysets or (KS3, KS4), SimulatedClock.parse(HOST_CLOCK))


def books(journal: Journal, w: World, loads: int, amount: int, start: int = 5000) -> None:
    money = [e.outcome for e in journal.all() if e.outcome.moved_money]
    assert len(money) == loads and all(o.type == "02" for o in money)
    assert w.balance == start + loads * amount
    assert w.state.purse.online_counter == loads
    assert sorted(o.card_counter for o in money) == list(range(loads))
    assert journal.pending() == []


def test_a_load_follows_reference_5_7_and_the_host_checks_mac1_and_the_tac():
    w = make_world()
    out = load(w.card_reader, host(), 1000, TERMINAL_ID, clock=w.clock)
    assert headers(w.log) == [*SELECT, ("card", "80500002"), ("card", "80520000")]
    init = command(w.log, "card", "80500002")
    assert init.data == bytes((1,)) + (1000).to_bytes(4, "big") + TERMINAL_ID and init.le == 0x10
    init_answer = answer(w.log, "card", "80500002")
    credit = command(w.log, "card", "80520000")
    assert credit.data[:7].hex() == HOST_CLOCK and credit.le == 4
    dlk = card_key(w.state, "load")
    session = LoadSession.derive(Algorithm.TDES, dlk, init_answer[8:12], 0)
    assert credit.data[7:] == session.mac2(1000, TERMINAL_ID, bytes.fromhex(HOST_CLOCK))
    tac = load_tac(Algorithm.TDES, card_key(w.state, "tac"), 6000, 0, 1000, TERMINAL_ID, bytes.fromhex(HOST_CLOCK))
    assert answer(w.log, "card", "80520000") == tac
    assert out.status == "approved" and out.type == "02" and out.mode == "load" and out.tac == tac.hex().upper()
    assert (out.amount, out.balance_before, out.balance_after, out.card_counter) == (1000, 5000, 6000, 0)
    assert out.datetime == HOST_CLOCK and out.mac2_verified is True and out.terminal_seq is None
    assert w.balance == 6000 and w.state.purse.online_counter == 1


def test_an_sm4_card_key_index_loads_with_the_sm4_key_set():
    w = make_world()
    out = load(w.card_reader, host(), 500, TERMINAL_ID, clock=w.clock, key_index=2)
    assert out.status == "approved" and out.algorithm == "sm4"


def test_a_wrong_mac1_is_refused_by_the_host_and_nothing_is_loaded():
    w = make_world()

    def flip_mac1(rapdu: bytes) -> bytes:
        return rapdu[:12] + bytes((rapdu[12] ^ 0x80,)) + rapdu[13:]

    out = load(TamperingReader(w.card_reader, ins=0x50, tamper=flip_mac1), host(), 1000, TERMINAL_ID, clock=w.clock)
    assert out.status == "declined" and "MAC1 does not verify" in out.reason
    assert ("card", "80520000") not in headers(w.log) and w.balance == 5000


def test_a_host_without_the_card_s_key_refuses():
    w = make_world()
    out = load(w.card_reader, host(KS4), 1000, TERMINAL_ID, clock=w.clock, key_index=1)
    assert out.status == "declined" and "no 3des load key with index 01" in out.reason


def test_amount_limits_of_the_card_and_of_the_terminal_profile():
    w = make_world()
    over = load(w.card_reader, host(), 100_000, TERMINAL_ID, clock=w.clock)
    assert over.status == "declined" and "above its maximum balance" in over.reason
    settings = terminal_profile("load").load
    odd = load(w.card_reader, host(), 1500, TERMINAL_ID, clock=w.clock, settings=settings)
    assert odd.status == "declined" and "not one of 1000, 2000, 5000, 10000" in odd.reason
    assert w.balance == 5000
    with pytest.raises(ValueError, match="amount"):
        load(w.card_reader, host(), 0, TERMINAL_ID)
    with pytest.raises(ValueError, match="terminal_id"):
        load(w.card_reader, host(), 10, b"\x00")


def test_a_wrong_tac_fails_the_load_but_keeps_the_tac():
    w = make_world()

    def flip_tac(rapdu: bytes) -> bytes:
        return bytes((rapdu[0] ^ 0x01,)) + rapdu[1:]

    out = load(TamperingReader(w.card_reader, ins=0x52, tamper=flip_tac), host(), 1000, TERMINAL_ID, clock=w.clock)
    assert out.status == "failed" and "TAC wrong" in out.reason and out.tac is not None


def test_pin_before_a_load_on_a_card_that_wants_one():
    w = make_world(pin_required_for_load=True)
    refused = load(w.card_reader, host(), 1000, TERMINAL_ID, clock=w.clock)
    assert refused.status == "declined" and "6982" in refused.reason
    wrong = load(w.card_reader, host(), 1000, TERMINAL_ID, clock=w.clock, pin="654321")
    assert wrong.status == "declined" and "2 tries left" in wrong.reason
    ok = load(w.card_reader, host(), 1000, TERMINAL_ID, clock=w.clock, pin="123456")
    assert ok.status == "approved" and w.balance == 6000
    assert ("card", "00200000") in headers(w.log)


def test_credit_answer_lost_is_recovered_and_not_loaded_twice(tmp_path: Path):
    w = make_world()
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader, at=4, when="after")
        torn = load(tear, host(), 1000, TERMINAL_ID, clock=w.clock, journal=journal)
        assert torn.status == "torn" and w.balance == 6000
        w.log.clear()
        out = load(tear, host(), 1000, TERMINAL_ID, clock=w.clock, journal=journal)
        assert headers(w.log) == [*SELECT, ("card", "805A0002")]
        assert command(w.log, "card", "805A0002").data == (1).to_bytes(2, "big")
        assert out.status == "recovered" and out.mac2_verified is True and out.balance_after == 6000
        books(journal, w, 1, 1000)


def test_credit_never_received_is_loaded_again_once(tmp_path: Path):
    w = make_world()
    with Journal(tmp_path / "j.db") as journal:
        tear = TearingReader(w.card_reader, at=4, when="before")
        bank = host()                                           # one host: its clock moves on
        assert load(tear, bank, 1000, TERMINAL_ID, clock=w.clock, journal=journal).status == "torn"
        assert w.balance == 5000
        out = load(tear, bank, 1000, TERMINAL_ID, clock=w.clock, journal=journal)
        assert out.status == "approved"
        books(journal, w, 1, 1000)


def test_tearing_at_every_command_of_a_load(tmp_path: Path):
    for position in (1, 2, 3, 4):
        for when in ("before", "after"):
            w = make_world()
            with Journal(tmp_path / f"{position}{when}.db") as journal:
                tear = TearingReader(w.card_reader, at=position, when=when)
                bank = host()
                first = load(tear, bank, 2000, TERMINAL_ID, clock=w.clock, journal=journal)
                assert tear.fired and first.status in ("declined", "failed", "torn")
                second = load(tear, bank, 2000, TERMINAL_ID, clock=w.clock, journal=journal)
                assert second.status in ("approved", "recovered")
                books(journal, w, 1, 2000)


def test_the_host_keeps_its_keys_to_itself():
    h = host()
    text = repr(h)
    assert "EFD8EE" in text                                    # the 3DES load key's KCV
    for ks in (KS3, KS4):
        assert ks.entry("load").key.value.hex().upper() not in text
    production = dataclasses.replace(KS3, test_only=False)
    with pytest.raises(KeySetError, match="not marked test_only"):
        LoadHost(production)
    with pytest.raises(ValueError, match="mac1"):
        LoadRequest(bytes(8), bytes(8), 1, 1, Algorithm.TDES, 0, 0, bytes(4), bytes(3), 1, bytes(6))


def test_power_loss_at_every_write_step_of_credit(tmp_path: Path):
    from ykt_card.card.state import FaultInjector

    probe = make_world()
    probe.card_os.fault = FaultInjector()
    load(probe.card_reader, host(), 1000, TERMINAL_ID, clock=probe.clock)
    steps = probe.card_os.fault.steps
    seen = set()
    for cut in range(steps):
        w = make_world()
        w.card_os.fault = FaultInjector(cut)
        with Journal(tmp_path / f"{cut}.db") as journal:
            bank = host()
            first = load(w.card_reader, bank, 1000, TERMINAL_ID, clock=w.clock, journal=journal)
            assert first.status == "torn" and w.card_os.fault.fired
            w.card_os.fault = None
            second = load(w.card_reader, bank, 1000, TERMINAL_ID, clock=w.clock, journal=journal)
            seen.add(second.status)
            books(journal, w, 1, 1000)
    assert seen == {"approved", "recovered"}
