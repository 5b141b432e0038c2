"""EF16 (SFI 0x16), cardholder data, 55 bytes; blank (0x00 then spaces) on anonymous cards.

Layout from the Cardlan header and the HY personalisation sample (tunion.md 1.3): card-type flag (1) ‖
staff flag (1) ‖ name (20, GB2312, space-padded) ‖ ID number (32, ASCII, space-padded) ‖ ID type (1).
"""
from __future__ import annotations

from construct import Struct

from ykt_card.layouts.base import Hex, StructLayout, Text


class EF16(StructLayout):
    """持卡人基本信息: the holder's name and ID document, for personalised cards."""

    name = "EF16"
    title = "cardholder data (持卡人基本信息)"
    sfi = 0x16
    size = 55
    kind = "binary"
    aliases = ("16", "ef16")
    codec = Struct(
        "card_type_flag" / Hex(1),
        "staff_flag" / Hex(1),                            # 本行职工标识
        "name" / Text(20, encoding="gb2312", pad=0x20),
        "id_number" / Text(32, encoding="ascii", pad=0x20),
        "id_type" / Hex(1),
    )
    vectors = [
        # Constructed: an anonymous card as tunion.md describes it (0x00 then spaces).
        ("00" + "20" * 54, {
            "card_type_flag": "00", "staff_flag": "20", "name": "", "id_number": "", "id_type": "20"}),
        # Constructed: a personalised card (name 张三 in GB2312, an 18-character ID number, type 00).
        ("01 00 D5C5C8FD" + "20" * 16 + "313130313031313939303031303131323337" + "20" * 14 + "00", {
            "card_type_flag": "01", "staff_flag": "00", "name": "张三",
            "id_number": "110101199001011237", "id_type": "00"}),
    ]
