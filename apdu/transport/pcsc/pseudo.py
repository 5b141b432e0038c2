"""PC/SC pseudo-APDUs a contactless reader answers itself: GET DATA `FF CA` (PC/SC Part 3 v2, 3.2.2.1.3).

Why: terminal software written for PC/SC readers asks the reader, not the card, for the card's UID
(`FF CA 00 00 Le`) and for the historical bytes of its ATS (`FF CA 01 00 Le`); CLA FF is reserved (PPS)
and never reaches the card. A virtual reader that passed them to the Card OS would answer 6E00 where every
real reader answers the UID, so the reader side (`VpcdEndpoint`) answers them here.

The response codes are the table of 3.2.2.1.3:

    9000      the data (Le = 00 asks for all of it)
    6282      End of data reached before Le bytes (Le is greater than the data): the data, then 6282
    6C XX     Wrong length: Le is less than the data; XX is the data's exact length
    6A81      Function not supported (P1 other than 00 and 01, P2 other than 00)

A command that is not the 5-byte `FF CA P1 P2 Le` is answered 6700 (wrong length, ISO 7816-4).
"""
from __future__ import annotations

from typing import Protocol

__all__ = ["CLA_READER", "INS_GET_DATA", "GET_UID", "GET_HISTORICAL", "is_get_data", "answer_get_data",
           "get_data_command", "GetDataRefused", "SW_NOT_SUPPORTED", "read_uid", "read_historical", "atr_historical"]

#: CLA of the commands a PC/SC reader handles itself (ISO 7816-3 reserves FF for PPS).
CLA_READER = 0xFF
#: GET DATA of PC/SC Part 3, 3.2.2.1.3.
INS_GET_DATA = 0xCA
#: P1 = 00: the UID (ISO 14443 A: the UID of the anticollision, 4, 7 or 10 bytes).
GET_UID = 0x00
#: P1 = 01: all historical bytes of the ATS of an ISO 14443 A card, without CRC.
GET_HISTORICAL = 0x01

SW_OK = b"\x90\x00"
SW_END_BEFORE_LE = b"\x62\x82"
SW_WRONG_LENGTH = b"\x67\x00"
SW_NOT_SUPPORTED = b"\x6A\x81"


def is_get_data(capdu: bytes) -> bool:
    """True for a GET DATA pseudo-APDU (`FF CA …`), which the reader answers instead of the card."""
    return len(capdu) >= 2 and capdu[0] == CLA_READER and capdu[1] == INS_GET_DATA


def answer_get_data(capdu: bytes, uid: bytes, historical: bytes) -> bytes:
    """The reader's answer to `FF CA P1 P2 Le` for a card with this UID and these ATS historical bytes."""
    if len(capdu) != 5:
        return SW_WRONG_LENGTH
    p1, p2, le = capdu[2], capdu[3], capdu[4]
    if p2 != 0x00 or p1 not in (GET_UID, GET_HISTORICAL):
        return SW_NOT_SUPPORTED
    data = bytes(uid if p1 == GET_UID else historical)
    if le == 0x00 or le == len(data):
        return data + SW_OK
    if le < len(data):
        return bytes((0x6C, len(data)))
    return data + SW_END_BEFORE_LE


def get_data_command(p1: int, le: int = 0x00) -> bytes:
    """`FF CA P1 00 Le`: P1 GET_UID or GET_HISTORICAL; Le 00 asks for all the data."""
    if p1 not in (GET_UID, GET_HISTORICAL):
        raise ValueError(f"GET DATA P1: {p1:#04x} is not 00 (UID) or 01 (historical bytes)")
    if not 0 <= le <= 0xFF:
        raise ValueError(f"GET DATA Le: {le} is not a short Le (0..255)")
    return bytes((CLA_READER, INS_GET_DATA, p1, 0x00, le))


class _Transmits(Protocol):
    def transmit(self, capdu: bytes) -> bytes: ...


class GetDataRefused(Exception):
    """The reader did not answer GET DATA with 9000 (it does not implement it, or no card is there)."""

    def __init__(self, what: str, sw: int) -> None:
        super().__init__(f"the reader refused GET DATA ({what}) with SW {sw:04X}")
        self.sw = sw


def _get(reader: _Transmits, p1: int, what: str) -> bytes:
    rapdu = reader.transmit(get_data_command(p1))
    sw = int.from_bytes(rapdu[-2:], "big") if len(rapdu) >= 2 else 0
    if sw != 0x9000:
        raise GetDataRefused(what, sw)
    return bytes(rapdu[:-2])


def read_uid(reader: _Transmits) -> bytes:
    """The card's UID as the PC/SC reader reports it (`FF CA 00 00 00`); GetDataRefused otherwise."""
    return _get(reader, GET_UID, "UID")


def read_historical(reader: _Transmits) -> bytes:
    """The ATS historical bytes as the PC/SC reader reports them (`FF CA 01 00 00`)."""
    return _get(reader, GET_HISTORICAL, "historical bytes")


def atr_historical(atr: bytes) -> bytes:
    """The historical bytes of an ATR (ISO 7816-3 8.2): T0's low nibble counts them, after the interface bytes.

    For the pseudo-ATR of a contactless card (PC/SC Part 3 3.1.3.2.3) these are the ATS historical bytes.
    """
    if len(atr) < 2:
        raise ValueError(f"ATR: {len(atr)} bytes, too short for TS and T0")
    count = atr[1] & 0x0F
    pos, indicator = 2, atr[1]
    while True:
        pos += bin(indicator >> 4).count("1")          # TA, TB, TC, TD present per bits b5..b8
        if not indicator & 0x80:
            break
        if pos > len(atr):
            raise ValueError(f"ATR {atr.hex().upper()}: ends inside its interface bytes")
        indicator = atr[pos - 1]                       # TDi: the last of this group
    if pos + count > len(atr):
        raise ValueError(f"ATR {atr.hex().upper()}: T0 announces {count} historical bytes, fewer follow")
    return bytes(atr[pos:pos + count])
