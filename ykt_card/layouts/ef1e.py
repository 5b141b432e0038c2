"""EF1E (SFI 0x1E), transit history (公共交通过程信息循环记录): cyclic, 48-byte records.

Two layouts are in the wild and differ only in bytes 9..16 (D8): layout A (Shanghai, Beijing, Cardlan
``CardLanCPU``) has industry code, line, station and operator there; layout B (Zibo, Cardlan
``t_record_001E``) has a trade serial. The terminal writes this file, so the layout is a setting of the
terminal's city profile, and whoever decodes a dump must say which one to use.
The balance after the transaction is read as signed: design.md counts an overdrawn balance as negative.
"""
from __future__ import annotations

from construct import Struct

from ykt_card.layouts.base import Amount, DateTime, Hex, SignedAmount, StructLayout

# Type codes seen in EF1E records (tunion.md 1.3): 03 entry/board, 04 exit/alight, 06 flat purchase,
# 09 composite purchase (Zibo), E1 (a Beijing metro sample).


class EF1EA(StructLayout):
    """Layout A: type, terminal, industry, line, station, operator, amount, balance, time, acceptor."""

    name = "EF1E-A"
    title = "transit history record, layout A (公共交通过程信息循环记录)"
    sfi = 0x1E
    size = 48
    capacity = 30
    kind = "record"
    layout = "A"
    aliases = ("1e-a", "1ea", "ef1e-a")
    codec = Struct(
        "type" / Hex(1),
        "terminal_id" / Hex(8),
        "industry" / Hex(1),            # 01 metro, 02 bus
        "line" / Hex(2),
        "station" / Hex(2),
        "operator" / Hex(2),
        "rfu1" / Hex(1),
        "amount" / Amount(4),
        "balance_after" / SignedAmount(4),
        "datetime" / DateTime(),
        "city" / Hex(2),                # acceptor city
        "institution_id" / Hex(8),      # acceptor institution
        "rfu2" / Hex(6),
    )
    defaults = {"rfu1": "00", "rfu2": "00" * 6}
    vectors = [
        # Constructed: a Shanghai metro entry (type 03, industry 01), 0 fen, balance 35.24 yuan.
        ("03 0000290000001234 01 0002 0115 0001 00 00000000 00000DC4 20190831175904"
         " 2900 02002900FFFFFFFF 000000000000", {
            "type": "03", "terminal_id": "0000290000001234", "industry": "01", "line": "0002",
            "station": "0115", "operator": "0001", "rfu1": "00", "amount": 0, "balance_after": 3524,
            "datetime": "2019-08-31 17:59:04", "city": "2900", "institution_id": "02002900FFFFFFFF",
            "rfu2": "000000000000"}),
        # Constructed: a Beijing flat-fare bus purchase (type 06, industry 02) that overdraws the
        # purse: balance after -1.00 yuan.
        ("06 0000100000000042 02 0300 0000 0007 00 000000C8 FFFFFF9C 20261123081530"
         " 1000 01011000FFFFFFFF 000000000000", {
            "type": "06", "terminal_id": "0000100000000042", "industry": "02", "line": "0300",
            "station": "0000", "operator": "0007", "rfu1": "00", "amount": 200, "balance_after": -100,
            "datetime": "2026-11-23 08:15:30", "city": "1000", "institution_id": "01011000FFFFFFFF",
            "rfu2": "000000000000"}),
    ]


class EF1EB(StructLayout):
    """Layout B: type, terminal, trade serial, amount, balance, time, acceptor."""

    name = "EF1E-B"
    title = "transit history record, layout B (公共交通过程信息循环记录)"
    sfi = 0x1E
    size = 48
    capacity = 30
    kind = "record"
    layout = "B"
    aliases = ("1e-b", "1eb", "ef1e-b")
    codec = Struct(
        "type" / Hex(1),
        "terminal_id" / Hex(8),
        "trade_serial" / Hex(8),
        "amount" / Amount(4),
        "balance_after" / SignedAmount(4),
        "datetime" / DateTime(),
        "city" / Hex(2),
        "institution_id" / Hex(8),
        "rfu" / Hex(6),
    )
    defaults = {"rfu": "00" * 6}
    vectors = [
        # Real Zibo record (ZB, tunion.md 1.3); the reference elides the RFU tail ("…"), filled with
        # zeros here.
        ("09 0000370020095428 0000000000000078 00000000 00000DC4 20201228214511 4530 13664530FFFFFFFF"
         " 000000000000", {
            "type": "09", "terminal_id": "0000370020095428", "trade_serial": "0000000000000078",
            "amount": 0, "balance_after": 3524, "datetime": "2020-12-28 21:45:11", "city": "4530",
            "institution_id": "13664530FFFFFFFF", "rfu": "000000000000"}),
        # Constructed: the alighting record of the same ride, 2.00 yuan.
        ("09 0000370020095428 0000000000000079 000000C8 00000CFC 20201228220102 4530 13664530FFFFFFFF"
         " 000000000000", {
            "type": "09", "terminal_id": "0000370020095428", "trade_serial": "0000000000000079",
            "amount": 200, "balance_after": 3324, "datetime": "2020-12-28 22:01:02", "city": "4530",
            "institution_id": "13664530FFFFFFFF", "rfu": "000000000000"}),
    ]
