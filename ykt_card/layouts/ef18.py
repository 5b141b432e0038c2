"""EF18 (SFI 0x18), the purse's transaction log: cyclic, 23-byte records, record 1 the newest.

The COS writes it, so it is the card's own account of each load and purchase: the counter *after* the
transaction (D4), the overdraft limit, the amount, the type, the PSAM terminal ID and the date-time.
"""
from __future__ import annotations

from typing import Any

from construct import Struct

from ykt_card.layouts.base import Amount, DateTime, Hex, StructLayout, UInt

# 交易类型标识 (PBOC transaction types, tunion.md 1.3).
TRANSACTION_TYPES: dict[str, str] = {
    "01": "ed_load",
    "02": "ep_load",
    "03": "unload",
    "04": "ed_cash_withdrawal",
    "05": "ed_purchase",
    "06": "ep_purchase",
    "07": "overdraft_limit_update",
    "08": "credit_purchase",
    "09": "capp_purchase",
}


def transaction_type_name(code: str) -> str:
    """The name of a transaction type code ('06' -> 'ep_purchase'), 'unknown' if not PBOC's."""
    return TRANSACTION_TYPES.get(code.upper(), "unknown")


class EF18(StructLayout):
    """交易明细: one record of the EP/ED transaction log."""

    name = "EF18"
    title = "transaction log record (交易明细)"
    sfi = 0x18
    size = 23
    capacity = 10
    kind = "record"
    aliases = ("18", "ef18")
    codec = Struct(
        "counter" / UInt(2),            # online (load) or offline (purchase) counter, after the increment
        "overdraft_limit" / Amount(3),
        "amount" / Amount(4),
        "type" / Hex(1),
        "terminal_id" / Hex(6),
        "datetime" / DateTime(),        # date (4) ‖ time (3)
    )
    derived = ("type_name",)

    @classmethod
    def present(cls, fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in fields.items():
            out[key] = value
            if key == "type":
                out["type_name"] = transaction_type_name(value)
        return out

    vectors = [
        # Real: Zibo bus validator dumps (ZB), a composite purchase of 0 fen on boarding ...
        ("0079 000000 00000000 09 413106163675 20201228 214511", {
            "counter": 0x79, "overdraft_limit": 0, "amount": 0, "type": "09", "type_name": "capp_purchase",
            "terminal_id": "413106163675", "datetime": "2020-12-28 21:45:11"}),
        # ... and one of 6 fen.
        ("005F 000000 00000006 09 413106162370 20201228 214342", {
            "counter": 0x5F, "overdraft_limit": 0, "amount": 6, "type": "09", "type_name": "capp_purchase",
            "terminal_id": "413106162370", "datetime": "2020-12-28 21:43:42"}),
        # Real: Huada COS log, the first load of a PBOC purse (CS t2_load; vectors.json ef18_record_after).
        ("0001 000000 00001C37 02 000001000050 20140825 103100", {
            "counter": 1, "overdraft_limit": 0, "amount": 0x1C37, "type": "02", "type_name": "ep_load",
            "terminal_id": "000001000050", "datetime": "2014-08-25 10:31:00"}),
        # Constructed: the computed 3DES purchase of vectors.json (counter 0007 -> logged 0008), with a
        # 10.00 yuan overdraft limit.
        ("0008 0003E8 000000C8 06 112233445566 20261123 081530", {
            "counter": 8, "overdraft_limit": 1000, "amount": 200, "type": "06", "type_name": "ep_purchase",
            "terminal_id": "112233445566", "datetime": "2026-11-23 08:15:30"}),
        # Constructed: a type code outside the PBOC list still decodes, named 'unknown'.
        ("FFFF FFFFFF FFFFFFFF E1 FFFFFFFFFFFF 99991231 235959", {
            "counter": 0xFFFF, "overdraft_limit": 0xFFFFFF, "amount": 0xFFFFFFFF, "type": "E1",
            "type_name": "unknown", "terminal_id": "FFFFFFFFFFFF", "datetime": "9999-12-31 23:59:59"}),
    ]
