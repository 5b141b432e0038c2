"""Names for the APDUs of a T-Union card and PSAM, so traces and the demo read like the reference.

`describe_command(capdu)` → "INITIALIZE FOR CAPP PURCHASE key 01, 0.00 yuan, terminal 440300000001";
`describe_response(rapdu)` → "9000 OK (15 bytes)". Unknown commands fall back to CLA/INS.
"""
from __future__ import annotations

from apdu.command import ApduError, CommandApdu
from apdu.status import describe

from ykt_card.layouts.names import FILE_NAMES as _SFI_NAMES


def _yuan(raw: bytes) -> str:
    fen = int.from_bytes(raw, "big")
    return f"{fen // 100}.{fen % 100:02d} yuan"


def _select(c: CommandApdu) -> str:
    if c.p1 == 0x04:
        name = c.data
        if name.isascii() and name.decode("ascii", "replace").isprintable():
            return f"SELECT {name.decode()}"
        return f"SELECT AID {name.hex().upper()}"
    return f"SELECT FID {c.data.hex().upper()}"


def _initialize(c: CommandApdu) -> str:
    kind = {0x00: "LOAD", 0x01: "PURCHASE", 0x03: "CAPP PURCHASE"}.get(c.p1, f"P1={c.p1:02X}")
    d = c.data
    if len(d) == 11:
        return f"INITIALIZE FOR {kind} key {d[0]:02X}, {_yuan(d[1:5])}, terminal {d[5:11].hex().upper()}"
    return f"INITIALIZE FOR {kind}"


def _read_binary(c: CommandApdu) -> str:
    if c.p1 & 0x80:
        sfi = c.p1 & 0x1F
        return f"READ BINARY {_SFI_NAMES.get(sfi, f'SFI {sfi:02X}')} offset {c.p2}"
    return f"READ BINARY offset {(c.p1 << 8) | c.p2}"


def _read_record(c: CommandApdu) -> str:
    sfi = c.p2 >> 3
    return f"READ RECORD {_SFI_NAMES.get(sfi, f'SFI {sfi:02X}')} record {c.p1}"


def _capp(c: CommandApdu) -> str:
    sfi = c.p2 >> 3
    return f"UPDATE CAPP DATA CACHE {_SFI_NAMES.get(sfi, f'SFI {sfi:02X}')} record {c.p1:02X} ({len(c.data)} bytes)"


def _debit(c: CommandApdu) -> str:
    d = c.data
    if len(d) == 15:
        return f"DEBIT terminal seq {d[0:4].hex().upper()} at {d[4:11].hex()} MAC1 {d[11:15].hex().upper()}"
    return "DEBIT FOR PURCHASE"


def _credit(c: CommandApdu) -> str:
    d = c.data
    if len(d) == 11:
        return f"CREDIT FOR LOAD at {d[0:7].hex()} MAC2 {d[7:11].hex().upper()}"
    return "CREDIT FOR LOAD"


def _psam_init(c: CommandApdu) -> str:
    d = c.data
    if len(d) >= 28:
        return (f"PSAM INIT FOR PURCHASE (MAC1) card ctr {d[4:6].hex().upper()}, {_yuan(d[6:10])}, "
                f"type {d[10]:02X}, alg {d[19]:02X}")
    return "PSAM INIT FOR PURCHASE (MAC1)"


_BY_INS = {
    (0x00, 0xA4): _select,
    (0x00, 0xB0): _read_binary,
    (0x00, 0xB2): _read_record,
    (0x80, 0x50): _initialize,
    (0x80, 0x52): _credit,
    (0x80, 0x54): _debit,
    (0x80, 0xDC): _capp,
    (0x80, 0x70): _psam_init,
    (0x80, 0x5C): lambda c: {0x00: "GET BALANCE", 0x01: "GET OVERDRAFT LIMIT", 0x03: "GET BALANCE (real)"}.get(
        c.p1, "GET BALANCE"),
    (0x80, 0x5A): lambda c: f"GET TRANSACTION PROVE type {c.p2:02X} counter {c.data.hex().upper()}",
    (0x80, 0x72): lambda c: f"PSAM CREDIT FOR PURCHASE (verify MAC2 {c.data.hex().upper()})",
    (0x80, 0x1A): lambda c: f"PSAM DIVERSIFY key usage {c.p1:02X} version {c.p2:02X}",
    (0x80, 0xFA): lambda c: "PSAM MAC" if c.p1 == 0x05 else "PSAM ENCRYPT",
    (0x00, 0x84): lambda c: "GET CHALLENGE",
    (0x00, 0x82): lambda c: "EXTERNAL AUTHENTICATE",
    (0x00, 0x20): lambda c: "VERIFY PIN",
    (0x00, 0xC0): lambda c: "GET RESPONSE",
    (0x84, 0x1E): lambda c: "APPLICATION BLOCK" + (" (permanent)" if c.p2 == 1 else ""),
    (0x84, 0x18): lambda c: "APPLICATION UNBLOCK",
    (0x84, 0x16): lambda c: "CARD BLOCK",
    (0x84, 0xD4): lambda c: f"WRITE KEY type {c.p1:02X} index {c.p2:02X}",
    (0x04, 0xD6): lambda c: f"UPDATE BINARY (SM) {_SFI_NAMES.get(c.p1 & 0x1F, f'SFI {c.p1 & 0x1F:02X}')}",
    (0x04, 0xDC): lambda c: f"UPDATE RECORD (SM) {_SFI_NAMES.get(c.p2 >> 3, f'SFI {c.p2 >> 3:02X}')} record {c.p1}",
}


def describe_command(capdu: bytes) -> str:
    """A one-line name for a command APDU; malformed bytes are named as such, never raise."""
    try:
        c = CommandApdu.parse(capdu)
    except ApduError as exc:
        return f"malformed APDU ({exc})"
    namer = _BY_INS.get((c.cla, c.ins))
    if namer is None:
        return f"CLA {c.cla:02X} INS {c.ins:02X} P1 {c.p1:02X} P2 {c.p2:02X}"
    try:
        return namer(c)
    except Exception:  # a namer must never break a trace listing
        return f"CLA {c.cla:02X} INS {c.ins:02X}"


def describe_response(rapdu: bytes) -> str:
    if len(rapdu) < 2:
        return f"no status word ({len(rapdu)} bytes)"
    sw = int.from_bytes(rapdu[-2:], "big")
    data = len(rapdu) - 2
    return f"{sw:04X} {describe(sw)}" + (f" ({data} bytes)" if data else "")
