"""EF15 (SFI 0x15), public application data, 30 bytes: who issued the card, its number and its dates.

The card number is 20 BCD digits (bytes 10..19); cards print it without its first digit, and the PSAM
and the key diversification use its last 8 bytes (``serial8``). The issuer ID is org code (2) ‖ city
code (2) ‖ FFFFFFFF. Source: tunion.md 1.3 (EF15 table) and 1.2 (the 9F0C sample), guangdong.md.
"""
from __future__ import annotations

from typing import Any

from construct import Struct

from ykt_card.layouts.base import Bcd, Date, Hex, StructLayout


class EF15(StructLayout):
    """公共应用基本数据: issuer ID, application type and version, card number, start and expiry dates."""

    name = "EF15"
    title = "public application data (公共应用基本数据)"
    sfi = 0x15
    size = 30
    kind = "binary"
    aliases = ("15", "ef15")
    codec = Struct(
        "issuer_id" / Hex(8),      # org code ‖ city code ‖ FFFFFFFF
        "app_type" / Hex(1),       # 01 ED, 02 EP, 03 ED+EP
        "app_version" / Hex(1),
        "card_no" / Bcd(10),       # 应用序列号, 20 digits
        "start_date" / Date(),     # 应用启用日期
        "expiry_date" / Date(),    # 应用有效日期
        "issuer_data" / Hex(2),    # 发卡机构自定义FCI数据
    )
    derived = ("org_code", "city_code", "card_no_printed", "serial8")

    @classmethod
    def present(cls, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            out[key] = value
            if key == "issuer_id":
                out["org_code"] = value[0:4]
                out["city_code"] = value[4:8]
            elif key == "card_no":
                out["card_no_printed"] = value[1:]   # as MetroDroid and NFCard print it
                out["serial8"] = value[4:]           # the last 8 bytes, the diversification factor
        return out

    # -- the diversification factors as bytes, by the layout's own offsets --------------------------
    @classmethod
    def issuer_id_of(cls, raw: bytes) -> bytes:
        """Bytes 0..7, org code ‖ city code ‖ FFFFFFFF: the first factor of D2."""
        return cls.field_bytes(raw, "issuer_id")

    @classmethod
    def card_no_of(cls, raw: bytes) -> str:
        """The 20 digits of the card number as stored (hex of its bytes, so a bad nibble still shows)."""
        return cls.field_bytes(raw, "card_no").hex().upper()

    @classmethod
    def serial8_of(cls, raw: bytes) -> bytes:
        """The last 8 bytes of the card number (``serial8``): the second factor of D2 and of PSAM 8070."""
        return cls.serial8_of_card_no(cls.card_no_of(raw))

    @staticmethod
    def serial8_of_card_no(card_no: str) -> bytes:
        """``serial8`` of a 20-digit card number: its last 16 digits as 8 bytes."""
        return bytes.fromhex(card_no)[-8:]

    vectors = [
        # Real: Beijing T-Union card, the 9F0C of its FCI (tunion.md 1.2).
        ("01011000FFFFFFFF 02 01 03105170010170907984 20190806 20401231 0000", {
            "issuer_id": "01011000FFFFFFFF", "org_code": "0101", "city_code": "1000",
            "app_type": "02", "app_version": "01",
            "card_no": "03105170010170907984", "card_no_printed": "3105170010170907984",
            "serial8": "5170010170907984",
            "start_date": "2019-08-06", "expiry_date": "2040-12-31", "issuer_data": "0000"}),
        # Real: Guangzhou 岭南通·羊城通 card (guangdong.md).
        ("02205810FFFFFFFF 02 01 03104870395346358827 20240715 20401215 0000", {
            "issuer_id": "02205810FFFFFFFF", "org_code": "0220", "city_code": "5810",
            "app_type": "02", "app_version": "01",
            "card_no": "03104870395346358827", "card_no_printed": "3104870395346358827",
            "serial8": "4870395346358827",
            "start_date": "2024-07-15", "expiry_date": "2040-12-15", "issuer_data": "0000"}),
        # Constructed around the card number printed by MetroDroid/NFCard (tunion.md 1.3), Zibo-area
        # acceptor issuer ID, ED+EP application, no start date.
        ("13664530FFFFFFFF 03 01 03104931001000001349 00000000 20301231 0102", {
            "issuer_id": "13664530FFFFFFFF", "org_code": "1366", "city_code": "4530",
            "app_type": "03", "app_version": "01",
            "card_no": "03104931001000001349", "card_no_printed": "3104931001000001349",
            "serial8": "4931001000001349",
            "start_date": None, "expiry_date": "2030-12-31", "issuer_data": "0102"}),
        # Constructed: the card of the computed crypto vectors (vectors.json, issuer 5810/5810).
        ("58105810FFFFFFFF 02 01 03105810000000001234 20260101 20351231 0000", {
            "issuer_id": "58105810FFFFFFFF", "org_code": "5810", "city_code": "5810",
            "app_type": "02", "app_version": "01",
            "card_no": "03105810000000001234", "card_no_printed": "3105810000000001234",
            "serial8": "5810000000001234",
            "start_date": "2026-01-01", "expiry_date": "2035-12-31", "issuer_data": "0000"}),
    ]
