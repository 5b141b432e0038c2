"""Command APDUs (ISO/IEC 7816-4 §5.1): the four cases, short and extended lengths.

Every transport, card and terminal meets the same parser, so a malformed command is refused the same
way everywhere, with a message that names the faulty field (and never echoes the data field, which may
carry cryptograms or keys).
"""
from __future__ import annotations

from dataclasses import dataclass

SHORT_LC_MAX = 255
SHORT_LE_MAX = 256
EXTENDED_LC_MAX = 65535
EXTENDED_LE_MAX = 65536


class ApduError(ValueError):
    """A command APDU that breaks ISO 7816-4 §5.1; `field` names the culprit (for example "Lc").

    Cards answer it with 6700 (wrong length): every fault found while parsing raw bytes is a length
    fault, since the header bytes themselves can hold any value.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _plural(n: int, word: str = "byte") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _follow(n: int) -> str:
    return f"{n} follows" if n == 1 else f"{n} follow"


@dataclass(frozen=True, repr=False)
class CommandApdu:
    """One command APDU: header, optional data field (Nc bytes) and optional Le (Ne, 1..65536).

    `extended` is forced on when the data or Le do not fit the short form; it may also be asked for
    explicitly (a card must then accept the extended encoding of small values). It is meaningless for
    case 1, so it is normalised to False there: `parse(bytes(c)) == c` holds for every valid object.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ApduError(f"{name.upper()} must be an int, not {type(value).__name__}", name.upper())
            if not 0 <= value <= 0xFF:
                raise ApduError(f"{name.upper()} {value} out of range 0..255", name.upper())
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise ApduError(f"data must be bytes, not {type(self.data).__name__}", "data")
        data = bytes(self.data)
        object.__setattr__(self, "data", data)
        if len(data) > EXTENDED_LC_MAX:
            raise ApduError(f"data is {len(data)} bytes, at most {EXTENDED_LC_MAX} fit in Lc", "data")
        if self.le is not None:
            if not isinstance(self.le, int) or isinstance(self.le, bool):
                raise ApduError(f"Le must be an int or None, not {type(self.le).__name__}", "Le")
            if not 1 <= self.le <= EXTENDED_LE_MAX:
                raise ApduError(f"Le {self.le} out of range 1..{EXTENDED_LE_MAX}", "Le")
        needs_extended = len(data) > SHORT_LC_MAX or (self.le is not None and self.le > SHORT_LE_MAX)
        has_length = bool(data) or self.le is not None
        object.__setattr__(self, "extended", has_length and (bool(self.extended) or needs_extended))

    # -- decoding -----------------------------------------------------------------------------------
    @classmethod
    def _parsed(cls, cla: int, ins: int, p1: int, p2: int, data: bytes = b"", le: int | None = None,
                extended: bool = False) -> CommandApdu:
        """Build from fields `parse` has already proven valid, skipping `__post_init__`: a card parses
        every APDU it receives, and the checks are the larger part of that cost."""
        obj = object.__new__(cls)
        obj.__dict__.update(cla=cla, ins=ins, p1=p1, p2=p2, data=data, le=le, extended=extended)
        return obj

    @classmethod
    def parse(cls, raw: bytes) -> CommandApdu:
        """Decode one command APDU; raise ApduError naming the field on any malformed length."""
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise TypeError(f"a command APDU is bytes, not {type(raw).__name__}")
        raw = bytes(raw)
        n = len(raw)
        if n < 4:
            raise ApduError(f"header too short: {_plural(n)}, CLA INS P1 P2 need 4", "header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        if n == 4:  # case 1
            return cls._parsed(cla, ins, p1, p2)
        if n == 5:  # case 2S
            return cls._parsed(cla, ins, p1, p2, le=raw[4] or SHORT_LE_MAX)
        if raw[4] != 0:  # short Lc: case 3S or 4S
            lc = raw[4]
            body = raw[5:]
            if len(body) == lc:
                return cls._parsed(cla, ins, p1, p2, data=body)
            if len(body) == lc + 1:
                return cls._parsed(cla, ins, p1, p2, data=body[:lc], le=body[lc] or SHORT_LE_MAX)
            if len(body) < lc:
                raise ApduError(f"Lc says {_plural(lc)}, {_follow(len(body))}", "Lc")
            raise ApduError(
                f"trailing bytes: Lc says {_plural(lc)} and Le takes 1, {_follow(len(body))}", "Le"
            )
        # raw[4] == 0 and more bytes follow: extended lengths
        if n == 6:
            raise ApduError(
                "Lc zero in short form: after 00 an extended length needs 2 bytes, 1 follows", "Lc"
            )
        if n == 7:  # case 2E: 00 Le1 Le2
            return cls._parsed(cla, ins, p1, p2, le=int.from_bytes(raw[5:7], "big") or EXTENDED_LE_MAX,
                       extended=True)
        lc = int.from_bytes(raw[5:7], "big")
        if lc == 0:
            more = f"{n - 7} more byte follows" if n == 8 else f"{n - 7} more bytes follow"
            raise ApduError(f"extended Lc is 0000 but {more}", "Lc")
        body = raw[7:]
        if len(body) == lc:  # case 3E
            return cls._parsed(cla, ins, p1, p2, data=body, extended=True)
        if len(body) == lc + 2:  # case 4E: Le is 2 bytes after an extended Lc
            le = int.from_bytes(body[lc:], "big") or EXTENDED_LE_MAX
            return cls._parsed(cla, ins, p1, p2, data=body[:lc], le=le, extended=True)
        if len(body) < lc:
            raise ApduError(f"extended Lc says {_plural(lc)}, {_follow(len(body))}", "Lc")
        if len(body) == lc + 1:
            raise ApduError("extended Le mismatch: after an extended Lc, Le takes 2 bytes, 1 follows",
                            "Le")
        raise ApduError(
            f"trailing bytes: extended Lc says {_plural(lc)} and Le takes 2, {_follow(len(body))}",
            "Le"
        )

    # -- encoding -----------------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        """Encode with the shortest form allowed by `extended` (ISO 7816-4 §5.1)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        return header + self._lc_field() + self.data + self._le_field()

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def hex(self) -> str:
        """Upper-case hex of the whole APDU, no separators (the form traces and logs use)."""
        return self.to_bytes().hex().upper()

    def _lc_field(self) -> bytes:
        if not self.data:
            return b""
        if self.extended:
            return b"\x00" + len(self.data).to_bytes(2, "big")
        return bytes((len(self.data),))

    def _le_field(self) -> bytes:
        if self.le is None:
            return b""
        if self.extended:
            le = (self.le % EXTENDED_LE_MAX).to_bytes(2, "big")  # 65536 encodes as 0000
            return le if self.data else b"\x00" + le  # case 2E carries its own 00 marker
        return bytes((self.le % SHORT_LE_MAX,))  # 256 encodes as 00

    # -- views --------------------------------------------------------------------------------------
    @property
    def case(self) -> int:
        """ISO 7816-4 case: 1 no data no Le, 2 Le only, 3 data only, 4 data and Le."""
        if self.data:
            return 4 if self.le is not None else 3
        return 2 if self.le is not None else 1

    @property
    def header(self) -> bytes:
        """CLA INS P1 P2."""
        return bytes((self.cla, self.ins, self.p1, self.p2))

    def __repr__(self) -> str:
        le = "None" if self.le is None else str(self.le)
        return (f"CommandApdu(cla=0x{self.cla:02X}, ins=0x{self.ins:02X}, p1=0x{self.p1:02X}, "
                f"p2=0x{self.p2:02X}, data=bytes.fromhex('{self.data.hex().upper()}'), le={le}, "
                f"extended={self.extended})")

    def __str__(self) -> str:
        parts = [f"{self.cla:02X} {self.ins:02X} {self.p1:02X} {self.p2:02X}"]
        if self.data:
            parts.append(f"Lc={self._lc_field()[-2 if self.extended else -1:].hex().upper()}")
            parts.append(self.data.hex().upper())
        if self.le is not None:
            parts.append(f"Le={self._le_field()[-2 if self.extended else -1:].hex().upper()}")
        return " ".join(parts)
