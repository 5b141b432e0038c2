"""BER-TLV data objects (ISO/IEC 7816-4 §5.2, as EMV and PBOC use them): parse, build, dump.

FCIs, PPSE directories and issuer data all arrive as BER-TLV; one strict parser turns them into a
tree of `Tlv` objects and says at which offset and why a malformed object was refused. Tags are ints
holding the tag bytes big-endian (`0x9F08`), up to 3 bytes; lengths use the short form or 81/82/83.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

__all__ = ["Tlv", "TlvError", "TAG_NAMES", "parse", "parse_one", "build", "find", "dump",
           "tag_bytes", "tag_hex", "is_constructed", "encode_length"]

MAX_TAG_BYTES = 3
MAX_LENGTH = 0xFFFFFF  # 83 xx xx xx
MAX_DEPTH = 32
PADDING = (0x00, 0xFF)  # ISO 7816-4: may sit before, between and after data objects


class TlvError(ValueError):
    """Malformed BER-TLV: `offset` is where in the input the fault sits (None when building)."""

    def __init__(self, reason: str, offset: int | None = None) -> None:
        super().__init__(f"offset {offset}: {reason}" if offset is not None else reason)
        self.reason = reason
        self.offset = offset


# -- tags and lengths -----------------------------------------------------------------------------
def tag_bytes(tag: int) -> bytes:
    """The encoded tag; raises TlvError unless `tag` is a well-formed BER tag of 1..3 bytes."""
    if not isinstance(tag, int) or isinstance(tag, bool) or tag <= 0:
        raise TlvError(f"tag {tag!r} is not a positive int")
    raw = tag.to_bytes((tag.bit_length() + 7) // 8, "big")
    name = raw.hex().upper()
    if len(raw) > MAX_TAG_BYTES:
        raise TlvError(f"tag {name} longer than {MAX_TAG_BYTES} bytes")
    if raw[0] in PADDING:
        raise TlvError(f"tag {name}: first byte {raw[0]:02X} is padding, not a tag")
    multi = raw[0] & 0x1F == 0x1F
    if len(raw) == 1:
        if multi:
            raise TlvError(f"tag {name}: low 5 bits 1F announce more tag bytes")
        return raw
    if not multi:
        raise TlvError(f"tag {name}: first byte low 5 bits must be 1F for a multi-byte tag")
    if raw[1] == 0x80:
        raise TlvError(f"tag {name}: first subsequent byte 80 has only leading zero bits")
    for b in raw[1:-1]:
        if not b & 0x80:
            raise TlvError(f"tag {name}: byte {b:02X} ends the tag early (bit 8 clear)")
    if raw[-1] & 0x80:
        raise TlvError(f"tag {name}: last byte {raw[-1]:02X} has bit 8 set (tag continues)")
    return raw


def tag_hex(tag: int) -> str:
    """Upper-case hex of a tag as written in specs ("9F0C"); no validation (used in messages)."""
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big").hex().upper()


def is_constructed(tag: int) -> bool:
    """Bit 6 of the first tag byte: the value is itself a sequence of data objects."""
    return bool(tag_bytes(tag)[0] & 0x20)


def encode_length(n: int) -> bytes:
    """Shortest BER length field: 00..7F, 81 xx, 82 xxxx, 83 xxxxxx."""
    if not 0 <= n <= MAX_LENGTH:
        raise TlvError(f"length {n} out of range 0..{MAX_LENGTH}")
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


# -- the data object ------------------------------------------------------------------------------
@dataclass(repr=False, eq=False)
class Tlv:
    """One data object. Constructed tags always carry `children` (possibly empty), primitive never.

    For a constructed object `value` holds its content bytes as received or as built from the
    children; `encode()` always re-encodes from `children`, which are the truth.
    """

    tag: int
    value: bytes = b""
    children: list[Tlv] | None = None

    def __post_init__(self) -> None:
        constructed = is_constructed(self.tag)
        if not isinstance(self.value, (bytes, bytearray, memoryview)):
            raise TlvError(f"tag {tag_hex(self.tag)}: value must be bytes, "
                           f"not {type(self.value).__name__}")
        self.value = bytes(self.value)
        if self.children is not None:
            if not constructed:
                raise TlvError(f"tag {tag_hex(self.tag)} is primitive: it cannot hold children")
            self.children = list(self.children)
            for child in self.children:
                if not isinstance(child, Tlv):
                    raise TlvError(f"tag {tag_hex(self.tag)}: child {child!r} is not a Tlv")
            if not self.value:
                self.value = b"".join(child.encode() for child in self.children)
        elif constructed:
            try:
                self.children = parse(self.value)
            except TlvError as exc:
                raise TlvError(f"tag {tag_hex(self.tag)} is constructed but its value is not BER-TLV "
                               f"(offset {exc.offset}: {exc.reason})") from None
        if len(self.value) > MAX_LENGTH:
            raise TlvError(f"tag {tag_hex(self.tag)}: value of {len(self.value)} bytes is too long")

    def __eq__(self, other: object) -> bool:
        """Same tag and same content: children for constructed objects, value for primitive ones.

        The raw `value` of a constructed object is not compared: BER allows several length
        encodings of the same tree (81 05 and 05).
        """
        if not isinstance(other, Tlv):
            return NotImplemented
        if self.tag != other.tag:
            return False
        if self.children is not None or other.children is not None:
            return self.children == other.children
        return self.value == other.value

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        if self.children is not None:
            return f"Tlv(0x{tag_hex(self.tag)}, children={self.children!r})"
        return f"Tlv(0x{tag_hex(self.tag)}, bytes.fromhex('{self.value.hex().upper()}'))"

    @property
    def constructed(self) -> bool:
        return self.children is not None

    def encode(self) -> bytes:
        content = (b"".join(child.encode() for child in self.children)
                   if self.children is not None else self.value)
        return tag_bytes(self.tag) + encode_length(len(content)) + content

    def __bytes__(self) -> bytes:
        return self.encode()

    def walk(self) -> Iterator[Tlv]:
        """This object, then its descendants, depth-first in encoding order."""
        yield self
        for child in self.children or ():
            yield from child.walk()

    def find(self, tag: int) -> Tlv | None:
        """First object with `tag`, depth-first, starting with this object itself."""
        return next((t for t in self.walk() if t.tag == tag), None)

    def find_all(self, tag: int) -> list[Tlv]:
        return [t for t in self.walk() if t.tag == tag]


# -- parsing --------------------------------------------------------------------------------------
def parse(data: bytes) -> list[Tlv]:
    """Parse a sequence of data objects; constructed ones recursively. Padding 00/FF is skipped."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"BER-TLV data is bytes, not {type(data).__name__}")
    data = bytes(data)
    return _parse(data, 0, len(data), "the data", 0)


def parse_one(data: bytes) -> Tlv:
    """Parse exactly one data object (an FCI, a record template) filling all of `data`."""
    tlvs = parse(data)
    if len(tlvs) != 1:
        raise TlvError(f"expected exactly one data object, found {len(tlvs)}", 0)
    return tlvs[0]


def _parse(data: bytes, pos: int, end: int, where: str, depth: int) -> list[Tlv]:
    if depth > MAX_DEPTH:
        raise TlvError(f"nesting deeper than {MAX_DEPTH} levels", pos)
    out: list[Tlv] = []
    while pos < end:
        if data[pos] in PADDING:
            pos += 1
            continue
        start = pos
        pos += 1
        if data[start] & 0x1F == 0x1F:  # multi-byte tag
            while True:
                if pos >= end:
                    raise TlvError(f"tag {data[start:pos].hex().upper()} truncated: "
                                   f"subsequent tag byte missing at end of {where}", start)
                b = data[pos]
                pos += 1
                if pos - start == 2 and b == 0x80:
                    raise TlvError(f"tag {data[start:pos].hex().upper()}: first subsequent byte 80 "
                                   f"has only leading zero bits", start)
                if not b & 0x80:
                    break
                if pos - start >= MAX_TAG_BYTES:
                    raise TlvError(f"tag {data[start:pos + 1].hex().upper()} longer than "
                                   f"{MAX_TAG_BYTES} bytes", start)
        tag_raw = data[start:pos]
        name = tag_raw.hex().upper()
        if pos >= end:
            raise TlvError(f"tag {name}: length missing at end of {where}", pos)
        lpos = pos
        first = data[pos]
        pos += 1
        if first < 0x80:
            length = first
        elif first == 0x80:
            raise TlvError(f"tag {name}: indefinite length (80) not allowed", lpos)
        elif first <= 0x83:
            size = first & 0x7F
            if pos + size > end:
                raise TlvError(f"tag {name}: length field {first:02X} needs {size} more bytes, "
                               f"{end - pos} left in {where}", lpos)
            length = int.from_bytes(data[pos:pos + size], "big")
            pos += size
        else:
            raise TlvError(f"tag {name}: length field {first:02X} not supported (81..83 only)", lpos)
        if pos + length > end:
            raise TlvError(f"tag {name}: length {length} runs past the end of {where} "
                           f"({end - pos} bytes left)", lpos)
        tag = int.from_bytes(tag_raw, "big")
        value = data[pos:pos + length]
        if tag_raw[0] & 0x20:
            children = _parse(data, pos, pos + length, f"tag {name}", depth + 1)
            out.append(Tlv(tag, value, children))
        else:
            out.append(Tlv(tag, value))
        pos += length
    return out


# -- building and searching -----------------------------------------------------------------------
def build(tag: int, value_or_children: bytes | Tlv | Iterable[Tlv | bytes]) -> bytes:
    """Encode one data object: bytes give the value; Tlv objects or encoded TLVs give children."""
    if isinstance(value_or_children, (bytes, bytearray, memoryview)):
        return Tlv(tag, bytes(value_or_children)).encode()
    items = [value_or_children] if isinstance(value_or_children, Tlv) else list(value_or_children)
    if not is_constructed(tag):
        raise TlvError(f"tag {tag_hex(tag)} is primitive: it cannot hold children")
    content = bytearray()
    for item in items:
        if isinstance(item, Tlv):
            content += item.encode()
        elif isinstance(item, (bytes, bytearray, memoryview)):
            content += item
        else:
            raise TlvError(f"tag {tag_hex(tag)}: child {item!r} is neither a Tlv nor encoded bytes")
    return Tlv(tag, bytes(content)).encode()


def find(tlvs: Iterable[Tlv] | Tlv, tag: int) -> Tlv | None:
    """First object with `tag` in a parsed sequence (or tree), depth-first."""
    for top in [tlvs] if isinstance(tlvs, Tlv) else tlvs:
        hit = top.find(tag)
        if hit is not None:
            return hit
    return None


# -- human-readable dump --------------------------------------------------------------------------
#: Names of the EMV / PBOC tags that show up in transit-card FCIs, PPSE directories and issuer data.
TAG_NAMES: dict[int, str] = {
    0x42: "issuer identification number",
    0x4F: "application identifier (AID)",
    0x50: "application label",
    0x57: "track 2 equivalent data",
    0x5A: "application PAN",
    0x61: "application template",
    0x6F: "FCI template",
    0x70: "record template",
    0x73: "directory discretionary template",
    0x77: "response message template format 2",
    0x80: "response message template format 1",
    0x82: "application interchange profile",
    0x84: "DF name",
    0x87: "application priority indicator",
    0x88: "SFI of the directory EF",
    0x8C: "CDOL1",
    0x8D: "CDOL2",
    0x8E: "CVM list",
    0x94: "application file locator",
    0x9D: "DDF name",
    0xA5: "FCI proprietary template",
    0x5F20: "cardholder name",
    0x5F24: "application expiration date",
    0x5F25: "application effective date",
    0x5F28: "issuer country code",
    0x5F2D: "language preference",
    0x5F34: "PAN sequence number",
    0x5F50: "issuer URL",
    0x9F08: "application version number",
    0x9F0C: "issuer FCI discretionary data",
    0x9F10: "issuer application data",
    0x9F11: "issuer code table index",
    0x9F12: "application preferred name",
    0x9F36: "application transaction counter",
    0x9F38: "PDOL",
    0x9F4D: "log entry",
    0x9F4E: "merchant name and location",
    0x9F79: "electronic cash balance",
    0xBF0C: "FCI issuer discretionary data",
}


def _ascii(value: bytes) -> str | None:
    if len(value) >= 2 and all(0x20 <= b < 0x7F for b in value):
        return value.decode("ascii")
    return None


def dump(data_or_tlvs: bytes | Tlv | Iterable[Tlv], names: Mapping[int, str] | None = None) -> str:
    """Indented dump, one object a line: tag, length field, name, then hex (and ASCII) of values.

    `names` defaults to TAG_NAMES; pass your own mapping (e.g. `{**TAG_NAMES, 0xDF61: "..."}`).
    """
    if isinstance(data_or_tlvs, (bytes, bytearray, memoryview)):
        tlvs = parse(data_or_tlvs)
    elif isinstance(data_or_tlvs, Tlv):
        tlvs = [data_or_tlvs]
    else:
        tlvs = list(data_or_tlvs)
    table = TAG_NAMES if names is None else names
    lines: list[str] = []

    def emit(t: Tlv, depth: int) -> None:
        content_len = (sum(len(c.encode()) for c in t.children) if t.children is not None
                       else len(t.value))  # children are the truth for constructed objects
        head = f"{'  ' * depth}{tag_hex(t.tag)} {encode_length(content_len).hex(' ').upper()}"
        name = table.get(t.tag)
        if name:
            head += f"  {name}"
        if t.children is None:
            head += f": {t.value.hex().upper()}" if t.value else ":"
            text = _ascii(t.value)
            if text is not None:
                head += f' "{text}"'
        lines.append(head)
        for child in t.children or ():
            emit(child, depth + 1)

    for top in tlvs:
        emit(top, 0)
    return "\n".join(lines)
