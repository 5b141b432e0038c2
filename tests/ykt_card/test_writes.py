"""Typed card writes (ykt_card.card.writes): each kind applies itself idempotently, says why it cannot
apply to a state, and serialises to the image journal's [tag, ...] form, which the image loader reads
back into the same write. The commit and power-cut behaviour is tests/ykt_card/test_tearing.py's."""
from __future__ import annotations

import copy
import dataclasses

import pytest

from keysets import Algorithm, KeyEntry, SecretKey
from tests.ykt_card.helpers import make_card
from ykt_card.card.image import WRITE_DOCS, card_from_doc, card_to_doc
from ykt_card.card.state import Lock
from ykt_card.card.writes import (WRITE_KINDS, BinaryWrite, KeyWrite, LockWrite, PinTriesWrite, ProofWrite,
                                  PurseWrite, RecordWrite, RingWrite, SlotWrite, TransportKeyWrite)
from ykt_card.proof import Proof

KEY = SecretKey(Algorithm.TDES, bytes(range(16)))
SAMPLES = [
    PurseWrite("balance", 1200),
    BinaryWrite(0x16, 2, b"\x41\x42"),
    SlotWrite(0x18, 0, bytes(range(23))),
    RingWrite(0x18, 0, 1),
    RecordWrite(0x1A, 0x01, bytes((0x27, 0x01, 0x7D, 0x01, 0x01, 0x01)) + bytes(122)),
    ProofWrite("purchase", Proof(0x09, 8, b"\x01\x02\x03\x04", b"\x05\x06\x07\x08")),
    PinTriesWrite(2),
    LockWrite(Lock.TEMPORARY),
    KeyWrite(1, KeyEntry("app_block", 1, 7, KEY)),
    TransportKeyWrite(KEY),
]


def test_there_is_one_sample_and_one_json_model_per_kind() -> None:
    assert sorted(w.tag for w in SAMPLES) == sorted(WRITE_KINDS) == sorted(WRITE_DOCS)
    for tag, kind in WRITE_KINDS.items():
        names = [f.name for f in dataclasses.fields(kind)]
        assert list(WRITE_DOCS[tag].model_fields) == ["tag", *names], tag


@pytest.mark.parametrize("write", SAMPLES, ids=lambda w: w.tag)
def test_a_write_applies_once_or_twice_alike(write) -> None:
    once, twice = make_card().state, make_card().state
    assert write.problem(once) is None
    write.apply(once)
    write.apply(twice)
    write.apply(twice)
    assert once == twice
    assert once != make_card().state


@pytest.mark.parametrize("write", SAMPLES, ids=lambda w: w.tag)
def test_a_write_goes_through_the_image_journal_unchanged(write) -> None:
    state = make_card().state
    state.journal = [write]
    doc = card_to_doc(state)
    assert doc["journal"]["writes"] == [write.to_doc()] and write.to_doc()[0] == write.tag
    again = card_from_doc(copy.deepcopy(doc), "card.json")
    assert again.journal == [write] and type(again.journal[0]) is type(write)


@pytest.mark.parametrize("write, reason", [
    (PurseWrite("wallet", 1), "purse field 'wallet' unknown"),
    (BinaryWrite(0x18, 0, b"\x00"), "needs a binary file at SFI 18"),
    (BinaryWrite(0x15, 29, b"\x00\x00"), "runs past the 30-byte file"),
    (SlotWrite(0x18, 10, bytes(23)), "outside the 10 slots"),
    (SlotWrite(0x15, 0, bytes(23)), "needs a cyclic file at SFI 15"),
    (RingWrite(0x1E, 0, 31), "outside the file's 30 slots"),
    (RecordWrite(0x1A, 0x05, bytes(128)), "missing record 05"),
    (RecordWrite(0x1A, 0x01, bytes(127)), "of the wrong size"),
    (ProofWrite("refund", Proof(0x02, 1, bytes(4), bytes(4))), "proof kind 'refund' unknown"),
    (ProofWrite("load", Proof(0x09, 1, bytes(4), bytes(4))), "a load proof of transaction type 09"),
    (PinTriesWrite(4), "PIN tries 4 outside 0..3"),
    (KeyWrite(2, KeyEntry("app_block", 2, 1, KEY)), "key algorithm differs from key set 02"),
])
def test_a_write_that_does_not_fit_says_why(write, reason) -> None:
    assert reason in write.problem(make_card().state)


def test_writes_are_immutable_and_never_print_a_key() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        SAMPLES[0].value = 5  # type: ignore[misc]
    for write in SAMPLES:
        assert KEY.value.hex().upper() not in repr(write).upper()


def test_writes_are_dataclasses_in_every_respect() -> None:
    w = SlotWrite(0x18, 3, bytes(23))
    assert dataclasses.is_dataclass(w) and dataclasses.astuple(w) == (0x18, 3, bytes(23))
    assert dataclasses.replace(w, slot=4) == SlotWrite(sfi=0x18, slot=4, data=bytes(23))
    assert w != RecordWrite(0x18, 3, bytes(23)) and hash(w) == hash(SlotWrite(0x18, 3, bytes(23)))
    assert repr(w).startswith("SlotWrite(sfi=24, slot=3, data=") and not hasattr(w, "__dict__")
