"""The PSAM's files (D10, tunion.md 4.1): MF EF15 (serial), MF EF16 (terminal ID), DF 8011 EF17.

A validator reads EF16 for the 6-byte terminal number it puts in every purchase, and EF17 byte 0 for
the purchase key index of INITIALIZE FOR PURCHASE. The reference only says EF15 is "serial (10) +
version (1) … (14 bytes)"; this project completes it with the PBOC PSAM public file: serial (10) ‖
PSAM version (1) ‖ key card type (1) ‖ command set version (1) ‖ issuer FCI data (1) — a choice [L].
"""
from __future__ import annotations

from construct import Struct

from ykt_card.layouts.base import Date, Hex, StructLayout


class PsamEF15(StructLayout):
    """PSAM MF EF15: the PSAM's serial number and versions."""

    name = "PSAM-EF15"
    df = 0x3F00           # the MF
    title = "PSAM public data (serial number)"
    app = "psam"
    sfi = 0x15
    size = 14
    kind = "binary"
    aliases = ("psam15", "psamef15", "psam-ef15")
    codec = Struct(
        "serial" / Hex(10),
        "version" / Hex(1),
        "key_card_type" / Hex(1),
        "command_set_version" / Hex(1),
        "issuer_data" / Hex(1),
    )
    vectors = [
        # Constructed: a simulated PSAM of this project.
        ("0000000000000000 0001 01 00 00 00", {
            "serial": "00000000000000000001", "version": "01", "key_card_type": "00",
            "command_set_version": "00", "issuer_data": "00"}),
        ("3104 4530 0000 1234 5678 02 06 10 FF", {
            "serial": "31044530000012345678", "version": "02", "key_card_type": "06",
            "command_set_version": "10", "issuer_data": "FF"}),
    ]


class PsamEF16(StructLayout):
    """PSAM MF EF16: the terminal number (终端机编号) the PSAM signs with; read with 00B0960006."""

    name = "PSAM-EF16"
    df = 0x3F00           # the MF
    title = "PSAM terminal number (终端机编号)"
    app = "psam"
    sfi = 0x16
    size = 6
    kind = "binary"
    aliases = ("psam16", "psamef16", "psam-ef16")
    codec = Struct("terminal_id" / Hex(6))
    vectors = [
        # Constructed: the terminal IDs of the real Zibo EF18 records and of the computed vectors.
        ("413106163675", {"terminal_id": "413106163675"}),
        ("112233445566", {"terminal_id": "112233445566"}),
    ]


class PsamEF17(StructLayout):
    """PSAM DF 8011 EF17: purchase key index, issuer and receiver IDs, validity (25 bytes, PBOC)."""

    name = "PSAM-EF17"
    df = 0x8011           # the T-Union DF
    title = "PSAM application data, DF 8011 (key index, issuer, receiver, dates)"
    app = "psam"
    sfi = 0x17
    size = 25
    kind = "binary"
    aliases = ("psam17", "psamef17", "psam-ef17")
    codec = Struct(
        "key_index" / Hex(1),        # first data byte of 8050 (purchase key index)
        "issuer_id" / Hex(8),
        "receiver_id" / Hex(8),
        "start_date" / Date(),
        "expiry_date" / Date(),
    )
    vectors = [
        # Constructed: key index 01 (the reference profile's 3DES set, D16), Zibo-area issuer.
        ("01 13664530FFFFFFFF 0000000000000001 20200101 20301231", {
            "key_index": "01", "issuer_id": "13664530FFFFFFFF", "receiver_id": "0000000000000001",
            "start_date": "2020-01-01", "expiry_date": "2030-12-31"}),
        # Constructed: key index 02 (SM4, D16), no dates set.
        ("02 58105810FFFFFFFF 5810000000000000 00000000 00000000", {
            "key_index": "02", "issuer_id": "58105810FFFFFFFF", "receiver_id": "5810000000000000",
            "start_date": None, "expiry_date": None}),
    ]
