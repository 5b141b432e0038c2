"""Issuing a virtual PSAM from TEST key sets, and its JSON image (design.md "Card and PSAM images").

`ykt psam issue` and `ykt psam serve` are thin wrappers: `issue_psam` builds a `PsamState`, `save_psam`
writes it atomically, `load_psam` reads it back (refusing a corrupt, truncated or foreign image with a
one-line reason). A PSAM image keeps its master keys in clear, so only key sets marked `test_only` go in
(D15), both when issuing and when loading.

Image (`"kind": "psam"`, `"format": 1`), hex upper case:

    {"format": 1, "kind": "psam",
     "files": {"EF15": "<14 B>", "EF16": "<terminal ID, 6 B>", "EF17": "<DF 8011 EF17, 25 B>"},
     "next_terminal_seq": 1,                  # the sequence the next 8070 hands out
     "mac2_failures": {"count": 0, "last_serial": null, "last_issuer_id": null, "last_terminal_seq": null},
     "pending_purchase": {"algorithm_id": "00", "key_version": "01", "serial": "<8 B>",
                                 "issuer_id": "<8 B>" | null, "random": "<4 B>", "card_counter": 5,
                                 "terminal_seq": 7, "amount": 200},   # only while an 8070 awaits its MAC2
     "keysets": [ {name, test_only, algorithm, diversification,
                   keys: {role: {index, version, value, kcv}}} ]}   # the key set file format, as JSON

EF15 = serial(10) ‖ version ‖ key card type ‖ command set version ‖ issuer data (ykt_card.layouts.psam).
The image is read by the schema layer (`PsamImage`, ykt_files.schema): every refusal names the file, the
field and the reason (``psam.json: keysets[0].keys.tac: required role missing``); the key sets are the
key set file format, checked by keysets.KeySet (roles, lengths, KCVs).
"""
from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, model_validator

from keysets import KeySet, KeySetError
from keysets.keyset import Use
from ykt_files.atomic import write_json_atomic
from ykt_files.schema import HexBytes, IntRange, Model, problem, validate

from ykt_card.card.image import FormatOne, ImageError, check_envelope, read_image
from ykt_card.layouts.psam import PsamEF15, PsamEF16, PsamEF17
from ykt_card.persistence import image_saver
from ykt_card.psam.cos import (FIRST_TERMINAL_SEQ, MAC2_FAILURES_MAX, SEQ_EXHAUSTED, Mac2Failures, PendingPurchase,
                               PsamState, PsamStateError)

__all__ = ["IMAGE_KIND", "IMAGE_FORMAT", "issue_psam", "save_psam", "load_psam", "psam_saver",
           "psam_to_doc", "psam_from_doc", "PsamStateError", "ImageError"]

IMAGE_KIND = "psam"
IMAGE_FORMAT = 1
_FILE_NAMES = {"ef15": "EF15", "ef16": "EF16", "ef17": "EF17"}
"""PsamState's file attributes → their names in the image."""


def _bytes(value: Any, name: str, size: int) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise PsamStateError(name, f"must be bytes, not {type(value).__name__}")
    if len(value) != size:
        raise PsamStateError(name, f"must be {size} bytes, got {len(value)}")
    return bytes(value)


def issue_psam(keysets: Sequence[KeySet], terminal_id: bytes, serial: bytes | None = None, *,
               issuer_id: bytes = bytes(8), receiver_id: bytes = bytes(8),
               start_date: _dt.date | None = None, expiry_date: _dt.date | None = None,
               version: int = 0x01, next_terminal_seq: int = FIRST_TERMINAL_SEQ) -> PsamState:
    """A new PSAM holding the master keys of `keysets` (one or two, D16; the first is the default).

    terminal_id: 6 bytes (EF16). serial: 10 bytes (EF15); None = 0000 ‖ terminal ID, so that a PSAM
    is reproducible from its terminal number. issuer_id, receiver_id, dates: EF17 (key index = the
    first key set's purchase key index). next_terminal_seq: where the sequence starts (D10: 1).
    """
    keysets = tuple(keysets)
    if not keysets:
        raise PsamStateError("keysets", "a PSAM needs at least one key set")
    for i, ks in enumerate(keysets):
        if not isinstance(ks, KeySet):
            raise PsamStateError(f"keysets[{i}]", f"{type(ks).__name__} is not a KeySet")
        try:
            ks.require(Use.SIMULATION)
        except ValueError as exc:
            raise PsamStateError(f"keysets[{i}]", str(exc)) from None
    terminal_id = _bytes(terminal_id, "terminal_id", PsamEF16.size)  # type: ignore[arg-type]
    serial_size = PsamEF15.field_size("serial")
    serial = bytes(serial_size - len(terminal_id)) + terminal_id if serial is None else _bytes(serial, "serial",
                                                                                             serial_size)
    issuer_id = _bytes(issuer_id, "issuer_id", PsamEF17.field_size("issuer_id"))
    receiver_id = _bytes(receiver_id, "receiver_id", PsamEF17.field_size("receiver_id"))
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= 0xFF:
        raise PsamStateError("version", f"{version!r} is not one byte")
    try:
        ef15 = PsamEF15.encode({"serial": serial.hex().upper(), "version": f"{version:02X}",
                                "key_card_type": "00", "command_set_version": "00", "issuer_data": "00"})
        ef17 = PsamEF17.encode({"key_index": f"{keysets[0].entry('purchase').index:02X}",
                                "issuer_id": issuer_id.hex().upper(), "receiver_id": receiver_id.hex().upper(),
                                "start_date": start_date, "expiry_date": expiry_date})
    except ValueError as exc:
        raise PsamStateError(getattr(exc, "field", None) or "files", getattr(exc, "reason", str(exc))) from None
    state = PsamState(ef15=ef15, ef16=PsamEF16.encode({"terminal_id": terminal_id}), ef17=ef17, keysets=keysets,
                      next_terminal_seq=next_terminal_seq)
    state.validate()
    return state


# --- the image --------------------------------------------------------------------------------------

def _keyset_doc(ks: KeySet) -> dict[str, Any]:
    return {
        "name": ks.name,
        "test_only": ks.test_only,
        "algorithm": ks.algorithm.value,
        "diversification": list(ks.diversification),
        "keys": {role: {"index": e.index, "version": e.version, "value": e.key.value.hex().upper(),
                        "kcv": e.kcv}
                 for role, e in ks.keys.items()},
    }


def _hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex().upper()


def psam_to_doc(state: PsamState) -> dict[str, Any]:
    """The JSON document of a PSAM image (holds key values: write it to image files only)."""
    state.validate()
    f = state.mac2_failures
    return {
        "format": IMAGE_FORMAT,
        "kind": IMAGE_KIND,
        "files": {name: getattr(state, attr).hex().upper() for attr, name in _FILE_NAMES.items()},
        "next_terminal_seq": state.next_terminal_seq,
        "mac2_failures": {"count": f.count, "last_serial": _hex_or_none(f.last_serial),
                          "last_issuer_id": _hex_or_none(f.last_issuer_id),
                          "last_terminal_seq": f.last_terminal_seq},
        **({} if state.pending_purchase is None else {"pending_purchase": _pending_doc(state.pending_purchase)}),
        "keysets": [_keyset_doc(ks) for ks in state.keysets],
    }


def _pending_doc(p: PendingPurchase) -> dict[str, Any]:
    return {"algorithm_id": f"{p.algorithm_id:02X}", "key_version": f"{p.key_version:02X}",
            "serial": p.serial.hex().upper(), "issuer_id": _hex_or_none(p.issuer_id), "random": p.random.hex().upper(),
            "card_counter": p.card_counter, "terminal_seq": p.terminal_seq, "amount": p.amount}


def _psam_keyset(value: Any) -> KeySet:
    """A PSAM image's key set: the key set file format (keysets.KeySetFile), TEST sets only (D15)."""
    if isinstance(value, dict) and value.get("test_only") is not True:
        raise problem("PSAM images hold TEST key sets only (D15)", at="test_only")
    try:
        return KeySet.from_dict(value, source="PSAM image")
    except KeySetError as exc:
        raise problem(exc.reason, at=exc.field) from None


class PsamFilesDoc(Model):
    EF15: HexBytes(PsamEF15.size)
    EF16: HexBytes(PsamEF16.size)
    EF17: HexBytes(PsamEF17.size)


class Mac2FailuresDoc(Model):
    count: IntRange(0, MAC2_FAILURES_MAX)
    last_serial: HexBytes(8) | None
    last_issuer_id: HexBytes(8) | None
    last_terminal_seq: IntRange(0, 0xFFFFFFFF) | None

    def build(self) -> Mac2Failures:
        return Mac2Failures(self.count, self.last_serial, self.last_issuer_id, self.last_terminal_seq)


class PendingPurchaseDoc(Model):
    algorithm_id: HexBytes(1)
    key_version: HexBytes(1)
    serial: HexBytes(8)
    issuer_id: HexBytes(8) | None
    random: HexBytes(4)
    card_counter: IntRange(0, 0xFFFF)
    terminal_seq: IntRange(FIRST_TERMINAL_SEQ, 0xFFFFFFFF)
    amount: IntRange(0, 0xFFFFFFFF)

    def build(self) -> PendingPurchase:
        return PendingPurchase(self.algorithm_id[0], self.key_version[0], self.serial, self.issuer_id, self.random,
                               self.card_counter, self.terminal_seq, self.amount)


class PsamImage(Model):
    """A PSAM image as written (format 1); `build()` makes the `PsamState` (validated by the caller)."""

    format: FormatOne
    kind: Literal["psam"]
    files: PsamFilesDoc
    next_terminal_seq: IntRange(FIRST_TERMINAL_SEQ, SEQ_EXHAUSTED)
    mac2_failures: Mac2FailuresDoc
    pending_purchase: PendingPurchaseDoc | None = None     # images written before it was kept: none pending
    keysets: list[Annotated[Any, BeforeValidator(_psam_keyset)]]

    @model_validator(mode="after")
    def _some_keys(self) -> "PsamImage":
        if not self.keysets:
            raise problem("a PSAM needs at least one key set", at="keysets")
        return self

    def build(self) -> PsamState:
        return PsamState(ef15=self.files.EF15, ef16=self.files.EF16, ef17=self.files.EF17,
                         keysets=tuple(self.keysets), next_terminal_seq=self.next_terminal_seq,
                         mac2_failures=self.mac2_failures.build(),
                         pending_purchase=None if self.pending_purchase is None else self.pending_purchase.build())


_STATE_FIELDS = {attr: f"files.{name}" for attr, name in _FILE_NAMES.items()}
"""PsamState's file attributes → their place in the image."""


def psam_from_doc(doc: Mapping[str, Any], source: str = "<image>") -> PsamState:
    """Rebuild a PSAM from its image document; an ImageError names the source and the field.

    The whole state is built and validated before it is returned: a bad image is never half-loaded.
    """
    check_envelope(doc, IMAGE_KIND, source)
    state = validate(PsamImage, doc, source, ImageError).build()
    try:
        state.validate()
    except PsamStateError as exc:
        raise ImageError(source, _STATE_FIELDS.get(exc.field, exc.field), exc.reason) from None
    return state


def save_psam(path: str | Path, state: PsamState) -> None:
    """Write the PSAM image atomically (the PSAM OS calls this through `on_change` before answering)."""
    write_json_atomic(path, psam_to_doc(state))


def load_psam(path: str | Path) -> PsamState:
    """Read a PSAM image; a missing, corrupt, truncated or non-PSAM file raises ImageError (one line)."""
    doc = read_image(path, kind=IMAGE_KIND)
    return psam_from_doc(doc, source=str(path))


def psam_saver(path: str | Path) -> Callable[[PsamState], None]:
    """The `on_change` callback of `PsamOS` that saves the image after every change; a failed save raises
    `ImageSaveError` naming this image and the cause (the PSAM then undoes the change and answers 6581)."""
    return image_saver("PSAM image", path, save_psam)
