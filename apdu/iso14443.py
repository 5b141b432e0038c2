"""ISO/IEC 14443-3/-4 facts as code: ATS, RATS, frame sizes, timing, CRC_A, pseudo-ATR.

Why this exists: a PC/SC reader hides the contactless layer (it reports a pseudo-ATR and carries only
APDUs), but tests, timing budgets and trace exports need the layer back. Everything here is pure
byte work, no I/O, so the virtual card, the NFC target and the trace exporter share one definition.
The block protocol that runs after activation is `apdu.isodep`.

Conventions: frames are given *without* CRC_A unless a function says otherwise; times are microseconds.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

# --- frame sizes ------------------------------------------------------------------------------------

#: FSCI/FSDI code -> frame size in bytes (ISO/IEC 14443-4:2018 table; 9..C were added in 2016).
FRAME_SIZES: tuple[int, ...] = (16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096)

#: FSCI when T0 is absent from the ATS.
DEFAULT_FSCI = 2


def frame_size(code: int) -> int:
    """FSC or FSD for an FSCI/FSDI code; RFU codes D..F read as C (4096), as a PCD must read them."""
    if not 0 <= code <= 0xF:
        raise ValueError(f"FSCI/FSDI: {code} is not a 4-bit code")
    return FRAME_SIZES[min(code, len(FRAME_SIZES) - 1)]


def frame_size_code(size: int) -> int:
    """The largest FSCI/FSDI code whose frame size does not exceed `size` bytes."""
    if size < FRAME_SIZES[0]:
        raise ValueError(f"frame size: {size} is below the minimum of {FRAME_SIZES[0]} bytes")
    return max(code for code, n in enumerate(FRAME_SIZES) if n <= size)


# --- timing -----------------------------------------------------------------------------------------

#: Carrier frequency fc in Hz.
FC_HZ = 13_560_000
#: One (256·16/fc) unit of FWT/SFGT in microseconds, about 302.065 µs.
FWT_UNIT_US = 256 * 16 / FC_HZ * 1e6
#: FWI when TB(1) is absent, and the value an RFU FWI (15) is read as.
DEFAULT_FWI = 4


def fwt_us(fwi: int) -> float:
    """Frame waiting time FWT = (256·16/fc)·2^FWI in µs; FWI 15 is RFU and read as 4."""
    if not 0 <= fwi <= 15:
        raise ValueError(f"FWI: {fwi} is not a 4-bit value")
    return FWT_UNIT_US * 2 ** (DEFAULT_FWI if fwi == 15 else fwi)


def sfgt_us(sfgi: int) -> float:
    """Start-up frame guard time SFGT = (256·16/fc)·2^SFGI in µs; SFGI 0 (and RFU 15) = none needed."""
    if not 0 <= sfgi <= 15:
        raise ValueError(f"SFGI: {sfgi} is not a 4-bit value")
    return 0.0 if sfgi in (0, 15) else FWT_UNIT_US * 2**sfgi


# --- ATS --------------------------------------------------------------------------------------------

_T0_TA = 0x10
_T0_TB = 0x20
_T0_TC = 0x40


@dataclass(frozen=True)
class Ats:
    """Answer To Select (ISO/IEC 14443-4 §5.2), without its CRC_A.

    `ta`, `tb`, `tc` are the raw interface bytes TA(1), TB(1), TC(1), or None when not transmitted;
    `has_t0` is False only for the minimal one-byte ATS `01` (then every field takes its default).
    """

    fsci: int = DEFAULT_FSCI
    ta: int | None = None
    tb: int | None = None
    tc: int | None = None
    historical: bytes = b""
    has_t0: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.fsci <= 0xF:
            raise ValueError(f"ATS FSCI: {self.fsci} is not a 4-bit value")
        for field_name in ("ta", "tb", "tc"):
            value = getattr(self, field_name)
            if value is not None and not 0 <= value <= 0xFF:
                raise ValueError(f"ATS {field_name.upper()}(1): {value} is not a byte")
        if not self.has_t0 and (
            self.fsci != DEFAULT_FSCI or self.ta is not None or self.tb is not None
            or self.tc is not None or self.historical
        ):
            raise ValueError("ATS T0: interface or historical bytes need the format byte T0")
        if len(self.to_bytes()) > 0xFF:
            raise ValueError("ATS TL: longer than 255 bytes")

    @classmethod
    def parse(cls, data: bytes) -> Ats:
        """Decode an ATS (TL..last historical byte, no CRC); raises ValueError naming the field."""
        data = bytes(data)
        if not data:
            raise ValueError("ATS TL: empty ATS")
        tl = data[0]
        if tl != len(data):
            raise ValueError(f"ATS TL: says {tl} bytes, got {len(data)}")
        if tl == 1:
            return cls(has_t0=False)
        t0 = data[1]
        if t0 & 0x80:
            raise ValueError(f"ATS T0: bit 8 must be 0, got {t0:02X}")
        pos = 2
        fields: dict[str, int | None] = {"ta": None, "tb": None, "tc": None}
        for name, bit in (("ta", _T0_TA), ("tb", _T0_TB), ("tc", _T0_TC)):
            if t0 & bit:
                if pos >= tl:
                    raise ValueError(f"ATS {name.upper()}(1): announced by T0 {t0:02X} but missing")
                fields[name] = data[pos]
                pos += 1
        return cls(fsci=t0 & 0x0F, historical=data[pos:], **fields)

    def to_bytes(self) -> bytes:
        """Encode as TL ‖ T0 ‖ TA(1) ‖ TB(1) ‖ TC(1) ‖ historical bytes (no CRC)."""
        if not self.has_t0:
            return b"\x01"
        t0 = self.fsci
        body = bytearray()
        for value, bit in ((self.ta, _T0_TA), (self.tb, _T0_TB), (self.tc, _T0_TC)):
            if value is not None:
                t0 |= bit
                body.append(value)
        rest = bytes([t0]) + bytes(body) + self.historical
        return bytes([1 + len(rest)]) + rest

    build = to_bytes

    @property
    def fsc(self) -> int:
        """Largest frame the PICC accepts, PCB and CRC included."""
        return frame_size(self.fsci)

    @property
    def fwi(self) -> int:
        """Frame waiting time integer from TB(1) (default 4)."""
        return DEFAULT_FWI if self.tb is None else self.tb >> 4

    @property
    def sfgi(self) -> int:
        """Start-up frame guard time integer from TB(1) (default 0)."""
        return 0 if self.tb is None else self.tb & 0x0F

    @property
    def fwt_us(self) -> float:
        """How long the PCD waits for each answer of this card, in µs."""
        return fwt_us(self.fwi)

    @property
    def sfgt_us(self) -> float:
        """How long the PCD waits after the ATS before its first block, in µs."""
        return sfgt_us(self.sfgi)

    @property
    def cid_supported(self) -> bool:
        """TC(1) b2."""
        return bool(self.tc is not None and self.tc & 0x02)

    @property
    def nad_supported(self) -> bool:
        """TC(1) b1."""
        return bool(self.tc is not None and self.tc & 0x01)

    @property
    def same_divisor_required(self) -> bool:
        """TA(1) b8: the PICC needs the same bit rate in both directions."""
        return bool(self.ta is not None and self.ta & 0x80)

    @property
    def divisors_picc_to_pcd(self) -> tuple[int, ...]:
        """Bit rate divisors DS the PICC supports besides 1 (106 kbit/s), from TA(1) b7..b5."""
        ta = self.ta or 0
        return tuple(d for d, bit in ((2, 0x10), (4, 0x20), (8, 0x40)) if ta & bit)

    @property
    def divisors_pcd_to_picc(self) -> tuple[int, ...]:
        """Bit rate divisors DR the PICC supports besides 1, from TA(1) b3..b1."""
        ta = self.ta or 0
        return tuple(d for d, bit in ((2, 0x01), (4, 0x02), (8, 0x04)) if ta & bit)


def rats(fsdi: int = 8, cid: int = 0) -> bytes:
    """Request for Answer To Select `E0 ‖ FSDI<<4|CID` (no CRC); FSDI 8 = FSD 256, the usual reader."""
    if not 0 <= fsdi <= 0xF:
        raise ValueError(f"RATS FSDI: {fsdi} is not a 4-bit value")
    if not 0 <= cid <= 14:
        raise ValueError(f"RATS CID: {cid} is not in 0..14")
    return bytes([0xE0, fsdi << 4 | cid])


# --- UID (ISO/IEC 14443-3 6.5.4) ----------------------------------------------------------------------

#: A 4-byte UID starting with 08: ISO 14443-3 reserves that first byte for random IDs, i.e. no vendor's.
DEFAULT_UID = bytes.fromhex("08594B54")
#: Cascade tag: a UID byte 0 of 88 announces a further cascade level, it is never a UID's first byte.
CASCADE_TAG = 0x88


def check_uid(uid: bytes) -> bytes:
    """A Type A UID: single (4), double (7) or triple (10) size, not starting with the cascade tag."""
    uid = bytes(uid)
    if len(uid) not in (4, 7, 10):
        raise ValueError(f"UID: {len(uid)} bytes, must be 4, 7 or 10 (ISO 14443-3 single, double, triple size)")
    if uid[0] == CASCADE_TAG:
        raise ValueError("UID: first byte 88 is the cascade tag, not a UID byte")
    return uid


# --- pseudo-ATR (PC/SC Part 3 §3.1.3.2.3) ------------------------------------------------------------


def pseudo_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader reports for an ISO 14443-4 Type A card: 3B 8n 80 01 ‖ historical ‖ TCK.

    T0 = 8n (TD1 follows, n historical bytes), TD1 = 80 (T=0, TD2 follows), TD2 = 01 (T=1);
    TCK = XOR of T0 up to the last historical byte. At most 15 historical bytes fit in n.
    """
    historical = bytes(historical)
    if len(historical) > 15:
        raise ValueError(f"historical bytes: {len(historical)} bytes, a pseudo-ATR holds at most 15")
    body = bytes([0x80 | len(historical), 0x80, 0x01]) + historical
    return b"\x3B" + body + bytes([reduce(lambda a, b: a ^ b, body, 0)])


# --- CRC_A (ISO/IEC 14443-3 Annex B) ----------------------------------------------------------------


def _crc_a_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


#: CRC_A of each byte value, so the air link checks a frame a byte (not a bit) at a time.
_CRC_A_TABLE = _crc_a_table()


def crc_a_value(data: bytes) -> int:
    """CRC_A as an integer: CRC-16 polynomial x^16+x^12+x^5+1, reflected, initial 0x6363, no final XOR."""
    crc = 0x6363
    table = _CRC_A_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def crc_a(data: bytes) -> bytes:
    """CRC_A in transmission order (least significant byte first)."""
    return crc_a_value(data).to_bytes(2, "little")


def with_crc_a(frame: bytes) -> bytes:
    """The frame as it travels over the air: frame ‖ CRC_A."""
    return bytes(frame) + crc_a(frame)


def check_crc_a(frame_with_crc: bytes) -> bool:
    """True when the last two bytes are the CRC_A of the rest."""
    if len(frame_with_crc) < 3:
        return False
    return crc_a(frame_with_crc[:-2]) == bytes(frame_with_crc[-2:])
