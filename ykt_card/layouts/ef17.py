"""EF17 (SFI 0x17), management data, 60 bytes: where the card belongs and whether it interoperates.

Terminals refuse a non-local card unless ``interop`` is 0001 (tunion.md 1.3 and 5.1 step 3). This is
the T-Union EF17; in MOHURD (住建部) cards SFI 0x17 is a record file, a different thing.
"""
from __future__ import annotations

from typing import Any

from construct import Struct

from ykt_card.layouts.base import Hex, StructLayout

INTEROPERABLE = "0001"


class EF17(StructLayout):
    """管理信息: country, province and city codes, the interoperability flag, card type."""

    name = "EF17"
    title = "management data (管理信息)"
    sfi = 0x17
    size = 60
    kind = "binary"
    aliases = ("17", "ef17")
    codec = Struct(
        "country" / Hex(4),           # 国际代码, 00000156 = China
        "province" / Hex(2),          # 省级代码
        "city" / Hex(2),              # 城市代码
        "interop" / Hex(2),           # 互通卡种: 0001 interoperable, 0000 local only
        "card_type" / Hex(1),         # 卡种类型
        "settlement_unit" / Hex(4),   # 结算单元编号
        "reserved" / Hex(45),
    )
    defaults = {"reserved": "00" * 45}
    derived = ("interoperable",)

    @classmethod
    def present(cls, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            out[key] = value
            if key == "interop":
                out["interoperable"] = value == INTEROPERABLE
        return out

    vectors = [
        # Constructed from the sample codes of tunion.md 1.3 (Shandong 4500, Zibo 4530), zero-reserved.
        ("00000156 4500 4530 0001 01 00000000" + "00" * 45, {
            "country": "00000156", "province": "4500", "city": "4530", "interop": "0001",
            "interoperable": True, "card_type": "01", "settlement_unit": "00000000",
            "reserved": "00" * 45}),
        # Constructed from the Guangzhou card's DF11 data (guangdong.md), space-filled reserved area.
        ("00000156 5800 5810 0001 01 00000001" + "20" * 45, {
            "country": "00000156", "province": "5800", "city": "5810", "interop": "0001",
            "interoperable": True, "card_type": "01", "settlement_unit": "00000001",
            "reserved": "20" * 45}),
        # Constructed: a Beijing local-only card (interop 0000).
        ("00000156 1000 1000 0000 01 00000000" + "00" * 45, {
            "country": "00000156", "province": "1000", "city": "1000", "interop": "0000",
            "interoperable": False, "card_type": "01", "settlement_unit": "00000000",
            "reserved": "00" * 45}),
    ]
