"""Reader specifications of the command line (design.md) → a `Reader`.

`pcsc` (first reader holding a card), `pcsc:NAME` (exact name or unique prefix), `image:PATH` (an in-process
virtual card or PSAM from an image, saved back after every change), `nfc:DEVICE` (an nfcpy reader: `nfc:usb`,
or `nfc:udp[:HOST:PORT]` for a card served by `ykt card serve --nfc`). One resolver, so `card read`,
`terminal tap` and `terminal load` accept the same forms.
"""
from __future__ import annotations

import json

from dataclasses import dataclass
from pathlib import Path

from apdu.transport.inprocess import InProcessReader
from apdu.transport.pcsc.pseudo import GetDataRefused, read_uid
from apdu.reader import Reader, ReaderDecorator
from keysets.randomness import RandomSource

from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import ImageError, load_card, saver
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import load_psam, psam_saver


class ReaderSpecError(ValueError):
    """A reader option that names no usable reader form."""


@dataclass
class OpenedReader:
    """A reader plus what a tool may want to know about it (the virtual card behind an image reader)."""

    reader: Reader
    spec: str
    kind: str                    # "pcsc", "image" or "nfc"
    card_os: object | None = None


def image_kind(path: Path) -> str:
    """`card` or `psam`, from the image's own `kind` field (the full check happens on load)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ImageError(str(path), "file", "no such image") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise ImageError(str(path), "file", "not a readable JSON image; truncated or corrupt") from None
    kind = doc.get("kind") if isinstance(doc, dict) else None
    if kind not in ("card", "psam"):
        raise ImageError(str(path), "kind", f"must be 'card' or 'psam', got {kind!r}")
    return kind


def open_reader(spec: str, *, rng: RandomSource | None = None, expect: str | None = None,
                option: str = "--card") -> OpenedReader:
    """Resolve `spec`; `expect` ('card'/'psam') refuses an image of the other kind by option name."""
    rng = rng or RandomSource()
    scheme, _, rest = spec.partition(":")
    if scheme == "pcsc":
        from apdu.transport.pcsc.reader import PcscReader  # needs pyscard; only imported when asked for
        return OpenedReader(PcscReader(rest or None), spec, "pcsc")
    if scheme == "image":
        if not rest:
            raise ReaderSpecError(f"{option} {spec!r}: image: needs a path (image:PATH)")
        path = Path(rest)
        kind = image_kind(path)
        if expect is not None and kind != expect:
            raise ReaderSpecError(f"{option} {spec!r}: the image holds a {kind}, not a {expect}")
        os_: object
        if kind == "card":
            os_ = TUnionCardOS(load_card(path), rng=rng.fork("card"), on_commit=saver(path))
        else:
            os_ = PsamOS(load_psam(path), random=rng.fork("psam"), on_change=psam_saver(path))
        return OpenedReader(InProcessReader(os_, name=f"image:{path}"), spec, "image", os_)  # type: ignore[arg-type]
    if scheme == "nfc":
        if not rest:
            raise ReaderSpecError(f"{option} {spec!r}: nfc: needs an nfcpy device path (nfc:usb, nfc:udp:HOST:PORT)")
        from apdu.transport.nfc.reader import NfcReader  # needs nfcpy; only imported when asked for
        try:
            nfc_reader = NfcReader(rest)
        except ValueError as exc:
            raise ReaderSpecError(f"{option} {spec!r}: {exc}") from None
        nfc_reader.open()  # a reader that is not there (or not ours to open) is no "card absent": say so now
        return OpenedReader(nfc_reader, spec, "nfc")
    raise ReaderSpecError(f"{option} {spec!r}: expected pcsc, pcsc:NAME, image:PATH or nfc:DEVICE")




def innermost(reader: Reader) -> Reader:
    """The reader under any decorators (tracing, link policies): where transport facts like the UID live."""
    while isinstance(reader, ReaderDecorator):
        reader = reader.inner
    return reader


def card_uid(opened: OpenedReader) -> bytes | None:
    """The connected card's ISO 14443-3 UID, as the reader knows it; None when the reader cannot say.

    PC/SC: the reader's GET DATA (`FF CA 00 00 00`, PC/SC Part 3), sent through `opened.reader` so a trace
    records it; a reader that refuses it (a contact reader, a reader without the command) gives None. nfcpy:
    the UID of the anticollision. An image: the UID the image holds, as a reader would have read it.
    """
    if opened.kind == "pcsc":
        try:
            return read_uid(opened.reader)
        except GetDataRefused:
            return None
    if opened.kind == "nfc":
        return getattr(innermost(opened.reader), "uid", None)
    if isinstance(opened.card_os, TUnionCardOS):
        return opened.card_os.state.uid
    return None
