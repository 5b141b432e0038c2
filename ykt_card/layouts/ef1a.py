"""EF1A (SFI 0x1A), transit process records (公共交通过程信息): one CAPP record per transport mode.

Every record starts with the same 6-byte header: record ID (2: 0x27 ‖ record number, the number being
P1 of UPDATE CAPP DATA CACHE), length of the rest (1), valid flag, interoperable-transaction flag and
lock flag. Records 01 (metro) and 02 (bus) have the interoperable layouts of tunion.md 1.3; every other
record number of the Cardlan index is kept opaque (header + hex body) at its listed size (D9).
Terminal and station numbers are kept as hex even where a source calls them BCD: the real metro record
holds a terminal number with an 'F' digit, and a code decoded as hex loses nothing.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from construct import Struct

from ykt_card.layouts.base import Amount, Bcd, DateTime, FieldProblem, Hex, LayoutError, StructLayout, Text, UInt

RECORD_TAG = 0x27          # byte 0 of every record ID seen; meaning unknown, so never enforced
DEFAULT_RECORD_SIZE = 128
RECORD_SIZES = {0x07: 112, 0x0D: 30}   # parking, discount info (Cardlan record index)
RECORD_NAMES = {
    0x01: "metro", 0x02: "bus", 0x03: "waterborne", 0x04: "taxi", 0x05: "car_rental",
    0x06: "public_bicycle", 0x07: "parking", 0x08: "coach", 0x09: "ferry", 0x0A: "intercity_rail",
    0x0B: "civil_aviation", 0x0C: "expressway_toll", 0x0D: "discount_info", 0x0E: "urban_rail",
}


def record_size(record_no: int) -> int:
    """Size in bytes of EF1A record ``record_no`` (the card profile creates it with this size)."""
    return RECORD_SIZES.get(record_no, DEFAULT_RECORD_SIZE)


def record_name(record_no: int) -> str:
    return RECORD_NAMES.get(record_no, "reserved")


def blank_record(record_no: int) -> bytes:
    """A fresh EF1A record as personalisation creates it: the header 27 ‖ ID ‖ length-after ‖ valid 01 ‖
    interop 01 ‖ unlocked 00, and a zero body at the size of its record number (real cards, tunion.md 1.3)."""
    if not 0x01 <= record_no <= 0xFE:
        raise LayoutError("EF1A", "record_id", f"record number {record_no} out of range 01..FE")
    if record_no == EF1AMetro.record_id:
        return EF1AMetro.encode(EF1AMetro.blank())
    if record_no == EF1ABus.record_id:
        return EF1ABus.encode(EF1ABus.blank())
    return EF1AOther.encode({"record_id": f"{RECORD_TAG:02X}{record_no:02X}"})


def _header() -> list:
    return [
        "record_id" / Hex(2),        # 27 ‖ record number
        "length" / UInt(1),          # bytes after this field (0x7D for a 128-byte record)
        "valid_flag" / Hex(1),       # 应用有效标识, 01
        "interop_flag" / Hex(1),     # 互联互通交易标识: 01 fare/composite, 02 pre-authorisation
        "lock_flag" / Hex(1),        # 应用锁定标识: 00 open, 01 locked (terminal must refuse)
    ]


def _header_defaults(size: int) -> dict[str, Any]:
    return {"length": size - 3, "valid_flag": "01", "interop_flag": "01", "lock_flag": "00"}


class _EF1ARecord(StructLayout):
    """A 128-byte EF1A record with a fixed record number (metro, bus)."""

    sfi = 0x1A
    size = DEFAULT_RECORD_SIZE
    kind = "record"
    label: str

    @classmethod
    def check(cls, raw: bytes) -> None:
        number = raw[1]
        if number != cls.record_id:
            raise LayoutError(cls.name, "record_id", f"record {number:02X} is not record "
                                                     f"{cls.record_id:02X} ({cls.label})", 1)


class EF1AMetro(_EF1ARecord):
    """Record 01, metro (城市轨道): entry and exit stations, terminals, times and the maximum fare."""

    name = "EF1A-metro"
    title = "transit record 01, metro (城市轨道)"
    record_id = 0x01
    label = "metro"
    aliases = ("1a-metro", "1a01", "ef1a01")
    codec = Struct(
        *_header(),
        "trade_serial" / Bcd(8),      # BCD as Shanghai writes it
        "status" / Hex(1),            # 01 entered, 02 exited
        "in_city" / Hex(2),
        "out_city" / Hex(2),
        "in_issuer" / Hex(8),         # acceptor institution ID
        "out_issuer" / Hex(8),
        "in_station" / Hex(8),
        "out_station" / Hex(8),
        "in_terminal" / Hex(8),
        "out_terminal" / Hex(8),
        "in_time" / DateTime(),
        "out_time" / DateTime(),
        "max_fare" / Amount(4),       # 最大消费金额
        "reserved" / Hex(43),         # city-local use (SH fills it; not interoperable)
    )
    defaults = {"record_id": f"{RECORD_TAG:02X}01", **_header_defaults(DEFAULT_RECORD_SIZE),
                "reserved": "00" * 43}
    vectors = [
        # Real Beijing metro record (tunion.md 1.3). The reference elides the all-zero out-fields
        # ("00…00") and the reserved tail ("…"); they are filled with zeros here.
        ("27017D 01 01 00  0000000000065292 01 1000 0000  01011000FFFFFFFF 0000000000000000"
         " 1000751309000819 0000000000000000  100075131F081909 0000000000000000"
         " 20190831175904 00000000000000  00000384" + "00" * 43, {
            "record_id": "2701", "length": 125, "valid_flag": "01", "interop_flag": "01",
            "lock_flag": "00", "trade_serial": "0000000000065292", "status": "01",
            "in_city": "1000", "out_city": "0000",
            "in_issuer": "01011000FFFFFFFF", "out_issuer": "0000000000000000",
            "in_station": "1000751309000819", "out_station": "0000000000000000",
            "in_terminal": "100075131F081909", "out_terminal": "0000000000000000",
            "in_time": "2019-08-31 17:59:04", "out_time": None, "max_fare": 900,
            "reserved": "00" * 43}),
        # Constructed: the same journey after exit at another station (Tianjin acceptor), 5 yuan,
        # locked-flag set, SH-style data in the reserved area.
        ("27017D 01 01 01  0000000000065293 02 1000 1100  01011000FFFFFFFF 02031100FFFFFFFF"
         " 1000751309000819 1100000200000003  100075131F081909 1100000200000301"
         " 20190831175904 20190831184510  000001F4" + "55" + "00" * 38 + "DEADBEEF", {
            "record_id": "2701", "length": 125, "valid_flag": "01", "interop_flag": "01",
            "lock_flag": "01", "trade_serial": "0000000000065293", "status": "02",
            "in_city": "1000", "out_city": "1100",
            "in_issuer": "01011000FFFFFFFF", "out_issuer": "02031100FFFFFFFF",
            "in_station": "1000751309000819", "out_station": "1100000200000003",
            "in_terminal": "100075131F081909", "out_terminal": "1100000200000301",
            "in_time": "2019-08-31 17:59:04", "out_time": "2019-08-31 18:45:10", "max_fare": 500,
            "reserved": "55" + "00" * 38 + "DEADBEEF"}),
    ]


class EF1ABus(_EF1ARecord):
    """Record 02, bus and trolleybus (公共汽电车): boarding and alighting data, mark amount, fare."""

    name = "EF1A-bus"
    title = "transit record 02, bus (公共汽电车)"
    record_id = 0x02
    label = "bus"
    aliases = ("1a-bus", "1a02", "ef1a02")
    codec = Struct(
        *_header(),
        "trade_serial" / Hex(8),           # encoding not documented for bus: kept as hex
        "status" / Hex(1),                 # 00 initial, 01 boarded, 02 alighted
        "on_city" / Hex(2),
        "on_issuer" / Hex(8),
        "on_operator" / Hex(2),
        "on_line" / Hex(2),
        "on_station" / Hex(1),
        "on_bus_no" / Text(8, encoding="ascii", pad=0x00),
        "on_terminal" / Hex(8),
        "on_time" / DateTime(),
        "mark_amount" / Amount(4),         # 标注金额: charged if the rider never taps off
        "direction" / Hex(1),              # AB up, BA down
        "off_city" / Hex(2),
        "off_issuer" / Hex(8),
        "off_operator" / Hex(2),
        "off_line" / Hex(2),
        "off_station" / Hex(1),
        "off_bus_no" / Text(8, encoding="ascii", pad=0x00),
        "off_terminal" / Hex(8),
        "off_time" / DateTime(),
        "fare" / Amount(4),
        "distance" / UInt(2),
        "reserved" / Hex(26),              # reserved / city use
    )
    defaults = {"record_id": f"{RECORD_TAG:02X}02", **_header_defaults(DEFAULT_RECORD_SIZE),
                "reserved": "00" * 26}
    vectors = [
        # Real Zibo bus record, boarded (ZB, tunion.md 1.3). The reference elides the all-zero
        # off-fields ("00…00") and the reserved tail ("…"); they are filled with zeros here.
        ("27027D 01 01 00  0000000000000126 01 4530 13664530FFFFFFFF 4530 00FB 03"
         " 3030343039393938 0000413106163675 20201228214511 00000030 AB"
         " 0000 0000000000000000 4530 0000 00 0000000000000000 0000000000000000 00000000000000"
         " 0000000C 0000" + "00" * 26, {
            "record_id": "2702", "length": 125, "valid_flag": "01", "interop_flag": "01",
            "lock_flag": "00", "trade_serial": "0000000000000126", "status": "01",
            "on_city": "4530", "on_issuer": "13664530FFFFFFFF", "on_operator": "4530",
            "on_line": "00FB", "on_station": "03", "on_bus_no": "00409998",
            "on_terminal": "0000413106163675", "on_time": "2020-12-28 21:45:11", "mark_amount": 48,
            "direction": "AB", "off_city": "0000", "off_issuer": "0000000000000000",
            "off_operator": "4530", "off_line": "0000", "off_station": "00", "off_bus_no": "",
            "off_terminal": "0000000000000000", "off_time": None, "fare": 12, "distance": 0,
            "reserved": "00" * 26}),
        # Constructed: the same ride after alighting three stops later, 2.00 yuan over 5.3 units.
        ("27027D 01 01 00  0000000000000127 02 4530 13664530FFFFFFFF 4530 00FB 03"
         " 3030343039393938 0000413106163675 20201228214511 00000030 BA"
         " 4530 13664530FFFFFFFF 4530 00FB 06 3030343039393938 0000413106163676 20201228220102"
         " 000000C8 0035" + "00" * 26, {
            "record_id": "2702", "length": 125, "valid_flag": "01", "interop_flag": "01",
            "lock_flag": "00", "trade_serial": "0000000000000127", "status": "02",
            "on_city": "4530", "on_issuer": "13664530FFFFFFFF", "on_operator": "4530",
            "on_line": "00FB", "on_station": "03", "on_bus_no": "00409998",
            "on_terminal": "0000413106163675", "on_time": "2020-12-28 21:45:11", "mark_amount": 48,
            "direction": "BA", "off_city": "4530", "off_issuer": "13664530FFFFFFFF",
            "off_operator": "4530", "off_line": "00FB", "off_station": "06", "off_bus_no": "00409998",
            "off_terminal": "0000413106163676", "off_time": "2020-12-28 22:01:02", "fare": 200,
            "distance": 0x35, "reserved": "00" * 26}),
    ]


def _opaque_codec(size: int) -> Struct:
    return Struct(*_header(), "body" / Hex(size - 6))


_OPAQUE_CODECS = {size: _opaque_codec(size) for size in {DEFAULT_RECORD_SIZE, *RECORD_SIZES.values()}}


class EF1AOther(StructLayout):
    """Any other EF1A record (taxi, ferry, parking, ...): the common header and the body as hex.

    Its size follows its record number (``record_size``); the record number comes from byte 1 when
    decoding and from ``record_id`` when encoding.
    """

    name = "EF1A-other"
    title = "transit record, opaque (公共交通过程信息)"
    sfi = 0x1A
    size = DEFAULT_RECORD_SIZE       # most records; see record_size()
    kind = "record"
    aliases = ("1a-other", "ef1a-other")
    codec = _OPAQUE_CODECS[DEFAULT_RECORD_SIZE]
    derived = ("record_type",)

    @classmethod
    def expected_size(cls, raw: bytes) -> int:
        return record_size(raw[1]) if len(raw) >= 2 else DEFAULT_RECORD_SIZE

    @classmethod
    def codec_for(cls, raw: bytes | None = None, fields: Mapping[str, Any] | None = None) -> Struct:
        if raw is not None:
            return _OPAQUE_CODECS[cls.expected_size(raw)]
        if fields is not None and "record_id" in fields:
            try:
                number = Hex(2).from_value(fields["record_id"])[1]
            except FieldProblem as exc:
                raise LayoutError(cls.name, "record_id", exc.reason) from None
            return _OPAQUE_CODECS[record_size(number)]
        return cls.codec

    @classmethod
    def defaults_for(cls, codec: Struct) -> dict[str, Any]:
        size = sum(spec.size for _, spec, _ in cls.field_specs(codec))
        return {**_header_defaults(size), "body": "00" * (size - 6)}

    @classmethod
    def present(cls, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            out[key] = value
            if key == "record_id":
                out["record_type"] = record_name(int(value[2:], 16))
        return out

    vectors = [
        # Constructed: record 04 (taxi), 128 bytes, body unknown to this project.
        ("27047D 01 01 00" + "0123456789ABCDEF" * 15 + "8899", {
            "record_id": "2704", "record_type": "taxi", "length": 125, "valid_flag": "01",
            "interop_flag": "01", "lock_flag": "00",
            "body": "0123456789ABCDEF" * 15 + "8899"}),
        # Constructed: record 07 (parking) is 112 bytes, length byte 0x6D.
        ("27076D 01 02 00" + "00" * 106, {
            "record_id": "2707", "record_type": "parking", "length": 109, "valid_flag": "01",
            "interop_flag": "02", "lock_flag": "00", "body": "00" * 106}),
        # Constructed: record 0D (discount info) is 30 bytes, length byte 0x1B.
        ("270D1B 01 01 01" + "11" * 24, {
            "record_id": "270D", "record_type": "discount_info", "length": 27, "valid_flag": "01",
            "interop_flag": "01", "lock_flag": "01", "body": "11" * 24}),
        # Constructed: a reserved record number (0F) still decodes, at the default size.
        ("270F7D 00 00 00" + "00" * 122, {
            "record_id": "270F", "record_type": "reserved", "length": 125, "valid_flag": "00",
            "interop_flag": "00", "lock_flag": "00", "body": "00" * 122}),
    ]
