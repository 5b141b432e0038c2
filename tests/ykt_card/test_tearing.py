"""Anti-tearing (D7): cut the power before every internal write step of a load, a purchase and a CAPP
purchase; after recovery the card holds the complete old or the complete new state, and GET
TRANSACTION PROVE agrees (9000 + MAC2‖TAC for the new state, 9406 for the old)."""
import pytest

from keysets.randomness import RandomSource
from ykt_card.card.image import load_card, saver
from ykt_card.card.state import FaultInjector, PowerLoss

from tests.ykt_card.helpers import (
    HostTerminal, capp_update_1a, capp_update_1e, gd_keyset, make_card, state_fingerprint,
)

KINDS = {
    # kind: (run the transaction, proof type, counter attribute)
    "load": (lambda t, idx: t.load(700, key_index=idx), 0x02, "online_counter"),
    "purchase": (lambda t, idx: t.purchase(230, key_index=idx), 0x06, "offline_counter"),
    "capp": (lambda t, idx: t.purchase(310, key_index=idx,
                                       capp=[capp_update_1a(1, 0x5C), capp_update_1e(0x6D)]), 0x09, "offline_counter"),
}


def fresh(index: int, on_commit=None):
    """The same card every time: same seed, same history (a load and a CAPP purchase already logged)."""
    card = make_card(rng=RandomSource(2024), balance=4000, overdraft_limit=100)
    if on_commit is not None:
        card.store.on_commit = on_commit
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    t.select()
    assert t.load(1000, key_index=index)["sw"] == 0x9000
    assert t.purchase(50, key_index=index, capp=[capp_update_1a(1, 0x01), capp_update_1e(0x02)])["sw"] == 0x9000
    return card, t


def reference_run(kind: str, index: int):
    """Run once with a counting injector: the old state, the new state, the proof and the step labels."""
    run, tx_type, counter_name = KINDS[kind]
    card, t = fresh(index)
    old = state_fingerprint(card)
    counter_after = getattr(card.state.purse, counter_name) + 1
    fault = FaultInjector()
    card.fault = fault
    result = run(t, index)
    assert result["sw"] == 0x9000
    card.fault = None
    new = state_fingerprint(card)
    proof = t.prove(tx_type, counter_after).data
    assert proof == result["mac2"] + result["tac"]
    return old, new, proof, counter_after, fault.labels


@pytest.mark.parametrize("index", [1, 2], ids=["3des", "sm4"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_power_cut_at_every_step_leaves_old_or_new_state(kind, index):
    run, tx_type, _ = KINDS[kind]
    old, new, proof, counter_after, labels = reference_run(kind, index)
    assert old != new
    complete_at = labels.index("journal complete")
    writes = sum(1 for label in labels if label.startswith("journal ") and label != "journal complete"
                 and label != "journal clear")
    expected_writes = {"load": 5, "purchase": 5, "capp": 8}[kind]   # balance, counter, EF18 slot+ring,
    assert writes == expected_writes                                # proof (+ EF1A record, EF1E slot+ring)
    assert labels[-1] == "response" and len(labels) == 2 * writes + 3
    outcomes = set()
    for k in range(len(labels)):
        card, t = fresh(index)
        card.fault = FaultInjector(cut_after=k)
        with pytest.raises(PowerLoss):
            run(t, index)
        assert card.fault.fired and not card.powered
        card.fault = None
        card.power_on()                                   # recovery: roll forward or discard
        assert card.last_recovery == ("clean" if k in (0, len(labels) - 1) else
                                      "discarded" if k <= complete_at else "rolled forward")
        state = state_fingerprint(card)
        expect_new = k > complete_at
        assert state == (new if expect_new else old), f"cut before step {k} ({labels[k]})"
        outcomes.add(expect_new)
        t.select()
        r = t.prove(tx_type, counter_after)
        if expect_new:
            assert (r.sw, r.data) == (0x9000, proof)
        else:
            assert r.sw == 0x9406
        # the card goes on working and the money adds up
        balance = card.state.purse.balance
        assert t.purchase(1, key_index=index)["sw"] == 0x9000
        assert card.state.purse.balance == balance - 1
    assert outcomes == {False, True}


@pytest.mark.parametrize("kind", list(KINDS))
def test_power_cut_during_recovery_recovers_again(kind):
    run, _, _ = KINDS[kind]
    _, new, _, _, labels = reference_run(kind, 1)
    k = labels.index("journal complete") + 3              # torn in the middle of the apply phase

    def torn_card():
        card, t = fresh(1)
        card.fault = FaultInjector(cut_after=k)
        with pytest.raises(PowerLoss):
            run(t, 1)
        return card

    counting = FaultInjector()
    card = torn_card()
    card.fault = counting
    card.power_on()
    writes = sum(1 for label in labels if label.startswith("journal ")) - 2
    assert counting.steps == writes + 1 and counting.labels[-1] == "recover clear"
    for j in range(counting.steps):
        card = torn_card()
        card.fault = FaultInjector(cut_after=j)
        with pytest.raises(PowerLoss):
            card.power_on()
        assert not card.powered
        card.fault = None
        card.power_on()
        assert card.last_recovery == "rolled forward"
        assert state_fingerprint(card) == new


def test_without_a_fault_injector_the_commit_skips_the_journal():
    card, t = fresh(1)
    seen = []
    card.store.on_commit = lambda st: seen.append((len(st.journal), st.journal_complete))
    assert t.purchase(5)["sw"] == 0x9000
    assert seen == [(0, False)]


def test_on_commit_sees_every_change_and_a_saved_image_is_old_or_new(tmp_path):
    """Persisting from on_commit: if the process dies at any cut point, the file on disk is complete."""
    kind = "capp"
    run, _, _ = KINDS[kind]
    _, new, _, _, labels = reference_run(kind, 1)
    for k in range(len(labels)):
        path = tmp_path / f"card{k}.json"
        card, t = fresh(1, on_commit=saver(path))
        before = state_fingerprint(card)
        saved_before = path.read_bytes()
        card.fault = FaultInjector(cut_after=k)
        with pytest.raises(PowerLoss):
            run(t, 1)
        on_disk = load_card(path)                         # the process "died" here
        # on_commit runs once the journal is cleared, before the response cut point
        assert on_disk.snapshot() == (new if k == len(labels) - 1 else before)
        assert k == len(labels) - 1 or path.read_bytes() == saved_before
        card.fault = None
        card.power_on()                                   # a live card recovers and saves again
        assert load_card(path).snapshot() == state_fingerprint(card)


def test_pin_counter_is_committed_before_the_comparison():
    card, t = fresh(1)
    card.fault = FaultInjector(cut_after=4)               # after decrementing, before the reset
    with pytest.raises(PowerLoss):
        t.x("0020000003123456")
    card.fault = None
    card.power_on()
    assert card.state.pin.tries_left == 2                 # tearing never gives a free try
