"""Response APDUs and status words (ISO/IEC 7816-4 §5.6).

One table gives every status word its meaning, so cards, terminals, traces and reports all print the
same words. An application that gives status words meanings of its own (the PBOC purse's 9302, 9401...)
registers them with `register_meanings`, and from then on `describe` prints them too. `CardError` is the
status word as a Python exception: card handlers raise it to refuse a command, and the host side raises
it when a card refuses one.
"""
from __future__ import annotations

from dataclasses import dataclass

from apdu.command import ApduError

__all__ = [
    "ResponseApdu", "CardError", "STATUS_WORDS", "describe", "is_valid_sw", "pin_tries_sw", "register_meanings",
]

# -- named status words ------------------------------------------------------------------------------
SW_OK = 0x9000
SW_WARNING = 0x6200
SW_DATA_CORRUPTED = 0x6281
SW_END_OF_FILE = 0x6282
SW_FILE_INVALIDATED = 0x6283
SW_FCI_NOT_FORMATTED = 0x6284
SW_VERIFY_FAILED = 0x63C0  # low nibble = tries left; see pin_tries_sw
SW_EXEC_ERROR = 0x6400
SW_MEMORY_FAILURE = 0x6581
SW_WRONG_LENGTH = 0x6700
SW_LOGICAL_CHANNEL = 0x6881
SW_SM_NOT_SUPPORTED = 0x6882
SW_NOT_ALLOWED = 0x6900
SW_FILE_INCOMPATIBLE = 0x6981
SW_SECURITY_STATUS = 0x6982
SW_AUTH_BLOCKED = 0x6983
SW_REF_DATA_INVALID = 0x6984
SW_CONDITIONS = 0x6985
SW_NO_CURRENT_EF = 0x6986
SW_SM_MISSING = 0x6987
SW_SM_MAC = 0x6988
SW_WRONG_DATA = 0x6A80
SW_FUNC_NOT_SUPPORTED = 0x6A81
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_NO_SPACE = 0x6A84
SW_WRONG_P1P2 = 0x6A86
SW_LC_P1P2 = 0x6A87
SW_KEY_NOT_FOUND = 0x6A88
SW_WRONG_OFFSET = 0x6B00
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW_UNKNOWN = 0x6F00

__all__ += [name for name in list(globals()) if name.startswith("SW_")]

# -- the table ---------------------------------------------------------------------------------------
#: Meaning of every fixed status word of ISO/IEC 7816-4; applications add theirs (`register_meanings`).
STATUS_WORDS: dict[int, str] = {
    0x9000: "OK",
    0x6200: "warning: no information given, state unchanged",
    0x6281: "warning: part of returned data may be corrupted",
    0x6282: "warning: end of file or record reached before Le bytes",
    0x6283: "warning: selected file invalidated",
    0x6284: "warning: FCI not formatted according to ISO 7816-4",
    0x6300: "warning: state changed, no information given",
    0x6400: "execution error, state unchanged",
    0x6581: "memory failure",
    0x6700: "wrong length",
    0x6881: "logical channel not supported",
    0x6882: "secure messaging not supported",
    0x6900: "command not allowed",
    0x6981: "command incompatible with file structure",
    0x6982: "security status not satisfied",
    0x6983: "authentication method blocked (key or PIN locked)",
    0x6984: "reference data not usable (challenge invalid)",
    0x6985: "conditions of use not satisfied",
    0x6986: "command not allowed (no current EF)",
    0x6987: "expected secure messaging data objects missing",
    0x6988: "secure messaging MAC wrong",
    0x6A80: "incorrect data field",
    0x6A81: "function not supported",
    0x6A82: "file or application not found",
    0x6A83: "record not found",
    0x6A84: "not enough memory space",
    0x6A85: "Lc inconsistent with TLV structure",
    0x6A86: "incorrect P1 P2",
    0x6A87: "Lc inconsistent with P1 P2",
    0x6A88: "referenced data or key not found",
    0x6B00: "wrong offset (P1 P2 outside the file)",
    0x6D00: "instruction not supported",
    0x6E00: "class not supported",
    0x6F00: "no precise diagnosis",
}


def register_meanings(meanings: dict[int, str]) -> None:
    """Give status words an application's meanings (they replace ISO's for the same word).

    A card application whose terminals act on its own codes (the PBOC purse: 9302 MAC invalid, 9401
    insufficient balance, 6283 application locked) registers them once, at import.
    """
    for sw, text in meanings.items():
        if not is_valid_sw(sw) and sw != SW_OK:
            raise ValueError(f"status word {sw!r}: SW1 must be 61..6F or 90..9F")
        if not isinstance(text, str) or not text:
            raise ValueError(f"status word {sw:04X}: meaning must be non-empty text")
    STATUS_WORDS.update(meanings)


def is_valid_sw(sw: int) -> bool:
    """True for a status word ISO 7816-3/-4 allows: SW1 in 61..6F or 90..9F."""
    if not isinstance(sw, int) or isinstance(sw, bool) or not 0 <= sw <= 0xFFFF:
        return False
    sw1 = sw >> 8
    return 0x61 <= sw1 <= 0x6F or 0x90 <= sw1 <= 0x9F


def pin_tries_sw(tries_left: int) -> int:
    """The 63Cx status word a failed VERIFY answers with `tries_left` (0..15) tries remaining."""
    if not isinstance(tries_left, int) or not 0 <= tries_left <= 15:
        raise ValueError(f"tries_left {tries_left!r} out of range 0..15")
    return SW_VERIFY_FAILED | tries_left


def describe(sw: int) -> str:
    """Meaning of a status word, without the hex (callers print `f"{sw:04X} {describe(sw)}"`)."""
    if not isinstance(sw, int) or isinstance(sw, bool) or not 0 <= sw <= 0xFFFF:
        return f"not a status word ({sw!r})"
    if sw in STATUS_WORDS:
        return STATUS_WORDS[sw]
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more response bytes available (GET RESPONSE)"
    if sw1 == 0x6C:
        return f"wrong Le: {sw2 or 256} bytes available"
    if sw & 0xFFF0 == 0x63C0:
        return f"verification failed, {sw & 0x0F} tries left"
    if not is_valid_sw(sw):
        return "invalid status word (SW1 must be 61..6F or 90..9F)"
    return "unknown status word"


class _StatusWordParts:
    """SW1 and SW2 of anything carrying a status word `sw` (responses, card refusals)."""

    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF


@dataclass(frozen=True)
class ResponseApdu(_StatusWordParts):
    """One response APDU: data field (0..65536 bytes) then SW1 SW2."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise ApduError(f"response data must be bytes, not {type(self.data).__name__}", "data")
        object.__setattr__(self, "data", bytes(self.data))
        if len(self.data) > 65536:
            raise ApduError(f"response data is {len(self.data)} bytes, at most 65536", "data")
        if not isinstance(self.sw, int) or isinstance(self.sw, bool) or not 0 <= self.sw <= 0xFFFF:
            raise ApduError(f"SW {self.sw!r} out of range 0000..FFFF", "SW")

    @classmethod
    def parse(cls, raw: bytes) -> ResponseApdu:
        """Split raw bytes into data and SW1 SW2; fewer than 2 bytes raises ApduError."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(f"a response APDU is bytes, not {type(raw).__name__}")
        raw = bytes(raw)
        if len(raw) < 2:
            got = "1 byte" if len(raw) == 1 else f"{len(raw)} bytes"
            raise ApduError(f"response too short: {got}, SW1 SW2 need 2", "SW")
        return cls(raw[:-2], int.from_bytes(raw[-2:], "big"))

    def to_bytes(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def hex(self) -> str:
        """Upper-case hex of data ‖ SW1 SW2."""
        return self.to_bytes().hex().upper()


    @property
    def ok(self) -> bool:
        return self.sw == SW_OK

    def check(self) -> bytes:
        """The data when SW is 9000, else raise CardError with the status word."""
        if self.sw != SW_OK:
            raise CardError(self.sw)
        return self.data

    def __str__(self) -> str:
        status = f"{self.sw:04X} {describe(self.sw)}"
        return f"{self.data.hex().upper()} {status}" if self.data else status


class CardError(_StatusWordParts, Exception):
    """A card refused a command: carries the status word (`sw`) and an optional `detail` for humans.

    Card handlers raise it and the dispatcher answers `sw` with no data; host APIs raise it when a
    card answers anything but 9000. `detail` must never hold key material or secret data.
    """

    def __init__(self, sw: int, detail: str | None = None) -> None:
        if not isinstance(sw, int) or isinstance(sw, bool) or not 0 <= sw <= 0xFFFF:
            raise ValueError(f"CardError needs a status word 0000..FFFF, got {sw!r}")
        if sw == SW_OK:
            raise ValueError("CardError needs an error status word, not 9000")
        super().__init__(sw, detail)
        self.sw = sw
        self.detail = detail


    def __str__(self) -> str:
        text = f"{self.sw:04X} {describe(self.sw)}"
        return f"{text}: {self.detail}" if self.detail else text
