"""The two FCIs a terminal sees first: the PPSE directory and the T-Union ADF's FCI (tunion.md 1.2).

Both are BER-TLV (parsed and built by ``apdu.tlv``). The layouts accept exactly the tags the reference
shows, in its order, and say which tag is wrong or missing otherwise; the ADF FCI's 9F0C is the 30
bytes of EF15 and is decoded by the EF15 layout. Input in canonical BER (shortest lengths, no padding)
encodes back to the same bytes.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from apdu import tlv
from apdu.tlv import Tlv, TlvError

from ykt_card.layouts.base import FileLayout, LayoutError, to_bytes
from ykt_card.layouts.ef15 import EF15

TAG_FCI = 0x6F
TAG_DF_NAME = 0x84
TAG_PROPRIETARY = 0xA5
TAG_ISSUER_DISCRETIONARY = 0xBF0C
TAG_APP_TEMPLATE = 0x61
TAG_AID = 0x4F
TAG_LABEL = 0x50
TAG_PRIORITY = 0x87
TAG_APP_VERSION = 0x9F08
TAG_EF15 = 0x9F0C


@dataclass(frozen=True, slots=True)
class PpseEntry:
    """One application of a PPSE directory (tag 61): AID (4F), label (50) and priority (87).

    The card keeps its directory as these; the host reads one back from `PpseFci.decode`. A card may
    leave out the label or the priority (None).
    """

    aid: bytes
    label: str | None = None
    priority: int | None = None

    def fields(self) -> dict[str, Any]:
        """The entry as `PpseFci` encodes and decodes it."""
        return {"aid": self.aid.hex().upper(), "label": self.label, "priority": self.priority}

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> "PpseEntry":
        return cls(bytes.fromhex(fields["aid"]), fields.get("label"), fields.get("priority"))


class BerTlvCodec:
    """The codec of an FCI: one BER-TLV data object (apdu.tlv), as a construct-like parse/build pair."""

    def parse(self, raw: bytes) -> Tlv:
        return tlv.parse_one(raw)

    def build(self, obj: Tlv) -> bytes:
        return obj.encode()


def _t(tag: int) -> str:
    """A tag as it is written: 6F, 9F0C."""
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big").hex().upper()


class _TlvLayout(FileLayout):
    """Shared helpers: strict walking of the TLV tree with errors that name the field or tag."""

    kind = "fci"
    codec = BerTlvCodec()

    @classmethod
    def expected_size(cls, raw: bytes) -> int | None:
        """Size announced by the outer tag and length, or None when they cannot be read."""
        pos = 1
        if not raw:
            return None
        if raw[0] & 0x1F == 0x1F:
            while pos < len(raw) and raw[pos] & 0x80:
                pos += 1
            pos += 1
        if pos >= len(raw):
            return None
        first = raw[pos]
        if first < 0x80:
            return pos + 1 + first
        size = first & 0x7F
        if not 1 <= size <= 3 or pos + 1 + size > len(raw):
            return None
        return pos + 1 + size + int.from_bytes(raw[pos + 1:pos + 1 + size], "big")

    @classmethod
    def _error(cls, field: str | None, reason: str, offset: int | None = None) -> LayoutError:
        return LayoutError(cls.name, field, reason, offset)

    @classmethod
    def _parse(cls, raw: bytes) -> Tlv:
        raw = to_bytes(cls.name, raw)
        try:
            top = cls.codec.parse(raw)
        except TlvError as exc:
            raise cls._error(None, exc.reason, exc.offset) from None
        if top.tag != TAG_FCI:
            raise cls._error(None, f"expected tag 6F (FCI template), found {_t(top.tag)}", 0)
        return top

    @classmethod
    def _children(cls, node: Tlv, wanted: list[tuple[int, bool]]) -> dict[int, Tlv]:
        """Match the children of ``node`` against (tag, required) in order; nothing else may appear."""
        found: dict[int, Tlv] = {}
        kids = list(node.children or [])
        for tag, required in wanted:
            if kids and kids[0].tag == tag:
                found[tag] = kids.pop(0)
            elif required:
                got = f"found {_t(kids[0].tag)}" if kids else "nothing left"
                raise cls._error(_t(node.tag), f"expected tag {_t(tag)}, {got}")
        if kids:
            raise cls._error(_t(node.tag), f"unexpected tag {_t(kids[0].tag)}")
        return found

    @classmethod
    def _fields(cls, fields: Any, allowed: tuple[str, ...], required: tuple[str, ...],
                prefix: str = "") -> Mapping[str, Any]:
        if not isinstance(fields, Mapping):
            raise cls._error(prefix.rstrip(".") or None,
                             f"expected a mapping of fields, got {type(fields).__name__}")
        for key in fields:
            if key not in allowed:
                raise cls._error(f"{prefix}{key}", "unknown field")
        for key in required:
            if key not in fields:
                raise cls._error(f"{prefix}{key}", "missing")
        return fields

    @classmethod
    def _hex_value(cls, field: str, value: Any, low: int, high: int) -> bytes:
        if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", value):
            raise cls._error(field, f"expected a hex string of whole bytes, got {value!r}")
        if not low <= len(value) // 2 <= high:
            raise cls._error(field, f"{len(value) // 2} bytes, expected {low}..{high}")
        return bytes.fromhex(value)

    @classmethod
    def _text_value(cls, field: str, value: Any, high: int) -> bytes:
        if not isinstance(value, str) or not all(0x20 <= ord(c) < 0x7F for c in value):
            raise cls._error(field, f"expected printable ASCII text, got {value!r}")
        if not 1 <= len(value) <= high:
            raise cls._error(field, f"{len(value)} characters, expected 1..{high}")
        return value.encode("ascii")

    @classmethod
    def _text(cls, field: str, raw: bytes) -> str:
        if not raw or not all(0x20 <= b < 0x7F for b in raw):
            raise cls._error(field, f"not printable ASCII text: {raw.hex().upper()}")
        return raw.decode("ascii")

    @classmethod
    def _aid(cls, field: str, raw: bytes) -> str:
        if not 5 <= len(raw) <= 16:
            raise cls._error(field, f"AID of {len(raw)} bytes, expected 5..16")
        return raw.hex().upper()


class PpseFci(_TlvLayout):
    """The answer to SELECT 2PAY.SYS.DDF01: the directory of payment applications (AID, label, priority)."""

    name = "PPSE"
    title = "PPSE directory (SELECT 2PAY.SYS.DDF01)"
    aliases = ("ppse",)

    @classmethod
    def decode(cls, raw: bytes) -> dict[str, Any]:
        top = cls._parse(raw)
        parts = cls._children(top, [(TAG_DF_NAME, True), (TAG_PROPRIETARY, True)])
        a5 = cls._children(parts[TAG_PROPRIETARY], [(TAG_ISSUER_DISCRETIONARY, True)])
        directory = a5[TAG_ISSUER_DISCRETIONARY]
        entries = []
        for i, entry in enumerate(directory.children or []):
            where = f"entries[{i}]"
            if entry.tag != TAG_APP_TEMPLATE:
                raise cls._error("BF0C", f"expected tag 61 (application template), found {_t(entry.tag)}")
            try:
                items = cls._children(entry, [(TAG_AID, True), (TAG_LABEL, False), (TAG_PRIORITY, False)])
            except LayoutError as exc:
                raise cls._error(where, exc.reason) from None
            priority = items.get(TAG_PRIORITY)
            if priority is not None and len(priority.value) != 1:
                raise cls._error(f"{where}.priority", f"{len(priority.value)} bytes, expected 1")
            entries.append({
                "aid": cls._aid(f"{where}.aid", items[TAG_AID].value),
                "label": cls._text(f"{where}.label", items[TAG_LABEL].value) if TAG_LABEL in items else None,
                "priority": priority.value[0] if priority is not None else None,
            })
        return {"df_name": cls._text("df_name", parts[TAG_DF_NAME].value), "entries": entries}

    @classmethod
    def encode(cls, fields: Mapping[str, Any]) -> bytes:
        fields = cls._fields(fields, ("df_name", "entries"), ("df_name", "entries"))
        df_name = cls._text_value("df_name", fields["df_name"], 16)
        if not isinstance(fields["entries"], (list, tuple)):
            raise cls._error("entries", f"expected a list, got {type(fields['entries']).__name__}")
        templates = []
        for i, entry in enumerate(fields["entries"]):
            where = f"entries[{i}]"
            entry = cls._fields(entry, ("aid", "label", "priority"), ("aid",), f"{where}.")
            items = [Tlv(TAG_AID, cls._hex_value(f"{where}.aid", entry["aid"], 5, 16))]
            if entry.get("label") is not None:
                items.append(Tlv(TAG_LABEL, cls._text_value(f"{where}.label", entry["label"], 16)))
            priority = entry.get("priority")
            if priority is not None:
                if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 255:
                    raise cls._error(f"{where}.priority", f"expected an integer 0..255, got {priority!r}")
                items.append(Tlv(TAG_PRIORITY, bytes([priority])))
            templates.append(Tlv(TAG_APP_TEMPLATE, children=items))
        return cls.codec.build(Tlv(TAG_FCI, children=[
            Tlv(TAG_DF_NAME, df_name),
            Tlv(TAG_PROPRIETARY, children=[Tlv(TAG_ISSUER_DISCRETIONARY, children=templates)]),
        ]))

    vectors = [
        # Real (assembled from HY personalisation data DGI 0100, tunion.md 1.2): T-Union cash and EP.
        ("6F49 840E 325041592E5359532E4444463031"
         " A537 BF0C34"
         "  6119 4F08A000000632010106 500A4D4F545F545F43415348 870101"
         "  6117 4F08A000000632010105 50084D4F545F545F4550 870102", {
            "df_name": "2PAY.SYS.DDF01", "entries": [
                {"aid": "A000000632010106", "label": "MOT_T_CASH", "priority": 1},
                {"aid": "A000000632010105", "label": "MOT_T_EP", "priority": 2}]}),
        # Constructed: an EP-only card (the second entry alone) ...
        ("6F2E 840E 325041592E5359532E4444463031 A51C BF0C19"
         "  6117 4F08A000000632010105 50084D4F545F545F4550 870101", {
            "df_name": "2PAY.SYS.DDF01", "entries": [
                {"aid": "A000000632010105", "label": "MOT_T_EP", "priority": 1}]}),
        # ... and a phone card's extended AID (Guangzhou's, guangdong.md) without label or priority.
        ("6F29 840E 325041592E5359532E4444463031 A517 BF0C14"
         "  6112 4F10A0000006320101055800022058100000", {
            "df_name": "2PAY.SYS.DDF01", "entries": [
                {"aid": "A0000006320101055800022058100000", "label": None, "priority": None}]}),
    ]


class AdfFci(_TlvLayout):
    """The answer to SELECT A000000632010105: AID (84), application version (9F08) and EF15 (9F0C).

    A card may leave out the proprietary template (A5) or either of its tags: ``app_version`` and
    ``ef15`` are then None, and a terminal reads EF15 with READ BINARY (5.1 step 2). ``encode`` takes
    ``ef15`` as EF15's fields or as its 30 raw bytes (what a card answers with).
    """

    name = "FCI"
    title = "T-Union application FCI (SELECT AID)"
    aliases = ("fci", "adf")

    @classmethod
    def decode(cls, raw: bytes) -> dict[str, Any]:
        top = cls._parse(raw)
        parts = cls._children(top, [(TAG_DF_NAME, True), (TAG_PROPRIETARY, False)])
        a5 = {}
        if TAG_PROPRIETARY in parts:
            a5 = cls._children(parts[TAG_PROPRIETARY], [(TAG_APP_VERSION, False), (TAG_EF15, False)])
            if not a5:
                raise cls._error("A5", "empty proprietary template")
        out: dict[str, Any] = {"aid": cls._aid("aid", parts[TAG_DF_NAME].value), "app_version": None, "ef15": None}
        if TAG_APP_VERSION in a5:
            version = a5[TAG_APP_VERSION].value
            if not version:
                raise cls._error("app_version", "empty 9F08")
            out["app_version"] = version.hex().upper()
        if TAG_EF15 in a5:
            try:
                out["ef15"] = EF15.decode(a5[TAG_EF15].value)
            except LayoutError as exc:
                raise cls._sub_error(exc, "of 9F0C") from None
        return out

    @classmethod
    def _sub_error(cls, exc: LayoutError, where: str) -> LayoutError:
        at = f" (byte {exc.offset} {where})" if exc.offset is not None else ""
        field = f"ef15.{exc.field}" if exc.field else "ef15"
        return cls._error(field, exc.reason + at)

    @classmethod
    def encode(cls, fields: Mapping[str, Any]) -> bytes:
        keys = ("aid", "app_version", "ef15")
        fields = cls._fields(fields, keys, keys)
        aid = cls._hex_value("aid", fields["aid"], 5, 16)
        proprietary = []
        if fields["app_version"] is not None:
            proprietary.append(Tlv(TAG_APP_VERSION, cls._hex_value("app_version", fields["app_version"], 1, 4)))
        if fields["ef15"] is not None:
            proprietary.append(Tlv(TAG_EF15, cls._ef15_bytes(fields["ef15"])))
        children = [Tlv(TAG_DF_NAME, aid)]
        if proprietary:
            children.append(Tlv(TAG_PROPRIETARY, children=proprietary))
        return cls.codec.build(Tlv(TAG_FCI, children=children))

    @classmethod
    def _ef15_bytes(cls, ef15: Any) -> bytes:
        if isinstance(ef15, (bytes, bytearray)):
            # a card answers with the bytes its EF15 holds, checked or not (it never decodes its own files)
            if len(ef15) != EF15.size:
                raise cls._error("ef15", f"{len(ef15)} bytes, expected {EF15.size}")
            return bytes(ef15)
        try:
            return EF15.encode(ef15)
        except LayoutError as exc:
            raise cls._sub_error(exc, "of EF15") from None

    vectors = [
        # Real: a Beijing T-Union card's FCI (tunion.md 1.2: HCE replay of the card, 9F0C sample).
        ("6F31 8408A000000632010105 A525 9F080102"
         " 9F0C1E 01011000FFFFFFFF 02 01 03105170010170907984 20190806 20401231 0000", {
            "aid": "A000000632010105", "app_version": "02",
            "ef15": dict(EF15.vectors[0][1])}),
        # Constructed: the Guangzhou card's EF15 (guangdong.md) inside the same FCI frame.
        ("6F31 8408A000000632010105 A525 9F080101"
         " 9F0C1E 02205810FFFFFFFF 02 01 03104870395346358827 20240715 20401215 0000", {
            "aid": "A000000632010105", "app_version": "01",
            "ef15": dict(EF15.vectors[1][1])}),
        # Constructed: an FCI with the AID only (no proprietary template): the terminal reads EF15 itself ...
        ("6F0A 8408A000000632010105", {"aid": "A000000632010105", "app_version": None, "ef15": None}),
        # ... and one with the application version but not EF15.
        ("6F10 8408A000000632010105 A504 9F080102", {"aid": "A000000632010105", "app_version": "02", "ef15": None}),
    ]
