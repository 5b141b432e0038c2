"""The persistence seam the card and the PSAM share (ykt_card.persistence, issue 12 part 1): a change
whose image cannot be saved is undone in memory and answered 6581, with or without the anti-tearing
journal, for each kind of transaction; a recovery that cannot be saved stays recovered in memory."""
import errno

import pytest

from apdu.status import SW_MEMORY_FAILURE
from keysets.randomness import RandomSource
from ykt_card.card.image import card_to_doc, load_card, save_card, saver
from ykt_card.card.state import FaultInjector, PersistentStore, PowerLoss
from ykt_card.persistence import ImageSaveError, MemoryFailure

from tests.ykt_card.helpers import HostTerminal, capp_update_1a, capp_update_1e, gd_keyset, make_card
from tests.ykt_card.test_tearing import KINDS


class Disk:
    """The card's save callback: writes the image until `broken`, then fails as a full disk does."""

    def __init__(self, path) -> None:
        self.save, self.broken, self.path = saver(path), False, path

    def __call__(self, state) -> None:
        if self.broken:
            raise ImageSaveError("card image", self.path, OSError(errno.ENOSPC, "No space left on device"))
        self.save(state)


@pytest.mark.parametrize("journalled", [False, True], ids=["direct", "journalled"])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_a_commit_whose_save_fails_is_undone_and_answered_6581(tmp_path, kind, journalled):
    run, _, _ = KINDS[kind]
    card = make_card(rng=RandomSource(7), balance=4000)
    disk = Disk(tmp_path / "card.json")
    save_card(disk.path, card.state)
    card.store.on_commit = disk
    if journalled:
        card.fault = FaultInjector()                       # counts the steps, never cuts
    t = HostTerminal.for_card(card, [gd_keyset("3des"), gd_keyset("sm4")])
    t.select()
    assert t.purchase(50, key_index=1, capp=[capp_update_1a(1, 0x01), capp_update_1e(0x02)])["sw"] == 0x9000
    before = card_to_doc(card.state)
    disk.broken = True
    assert run(t, 1)["sw"] == SW_MEMORY_FAILURE
    assert card_to_doc(card.state) == before == card_to_doc(load_card(disk.path))
    assert isinstance(card.memory_failure, MemoryFailure)
    assert str(card.memory_failure) == (f"6581 memory failure: {disk.path}: cannot save the card image: No space left "
                                        "on device; the change was undone")
    disk.broken = False
    assert run(t, 1)["sw"] == 0x9000                       # the disk is back: one change, saved
    assert card_to_doc(card.state) == card_to_doc(load_card(disk.path)) != before


def test_a_recovery_that_cannot_be_saved_stays_recovered_in_memory(tmp_path):
    """The image still holds the complete journal; recovering it on the next load gives the same state."""
    run, _, _ = KINDS["purchase"]
    card = make_card(rng=RandomSource(7), balance=4000)
    disk = Disk(tmp_path / "card.json")
    card.store.on_commit = disk
    counting = FaultInjector()
    card.fault = counting
    t = HostTerminal.for_card(card, [gd_keyset("3des")])
    t.select()
    run(t, 1)
    steps = counting.labels.index("journal clear")          # cut after the journal is complete
    card2 = make_card(rng=RandomSource(7), balance=4000)
    disk2 = Disk(tmp_path / "card2.json")
    card2.store.on_commit = disk2
    card2.fault = FaultInjector(steps)
    t2 = HostTerminal.for_card(card2, [gd_keyset("3des")])
    t2.select()
    with pytest.raises(PowerLoss):
        run(t2, 1)
    save_card(disk2.path, card2.state)                      # the image as the cut left it: a complete journal
    assert card2.state.journal_complete
    disk2.broken = True
    card2.power_on()
    assert card2.last_recovery == "rolled forward" and card2.memory_failure is not None
    assert not card2.state.journal and card2.state.purse.balance == 4000 - 230
    on_disk = load_card(disk2.path)
    assert on_disk.journal_complete                          # recovered again on its next load: the same card
    PersistentStore(on_disk).recover()
    assert card_to_doc(on_disk) == card_to_doc(card2.state)
