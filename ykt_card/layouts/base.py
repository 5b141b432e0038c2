"""What every T-Union file layout shares: the error type, the field codecs and the two base classes.

A layout turns the raw bytes of one file, record or FCI into a plain JSON-able dict of named fields and
back, byte for byte. Fields are `construct` adapters over fixed-size byte strings so that each one can
check its own bytes and say precisely what is wrong; the layout adds the absolute byte offset and the
file name, so a bad dump is reported as ``EF15.card_no: bad BCD digit 'A' at byte 12`` rather than with
a traceback. Conventions of the decoded form: codes and identifiers are upper-case hex strings, amounts
and counters are ints (amounts in fen), dates are ``YYYY-MM-DD`` and date-times ``YYYY-MM-DD hh:mm:ss``
strings, or None when the bytes are all zero (an empty date on the card).
"""
from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from construct import Adapter, Bytes, Construct, ConstructError, Renamed, Struct

__all__ = [
    "LayoutError", "FileLayout", "StructLayout",
    "Hex", "Bcd", "Date", "DateTime", "UInt", "Amount", "SignedAmount", "Text",
]


class LayoutError(ValueError):
    """Bad bytes or bad field values for a layout; names the layout, the field and, if known, the byte.

    ``field`` is None when the problem is the whole input (its length, its type); ``offset`` is the
    absolute byte offset inside the decoded object, or None.
    """

    def __init__(self, layout: str, field: str | None, reason: str, offset: int | None = None) -> None:
        self.layout = layout
        self.field = field
        self.reason = reason
        self.offset = offset
        where = f"{layout}.{field}" if field else layout
        at = f" at byte {offset}" if offset is not None else ""
        super().__init__(f"{where}: {reason}{at}")


class FieldProblem(ConstructError):
    """Raised inside a field codec; the layout turns it into a LayoutError with the absolute offset.

    ``at`` is the byte index inside the field (None when the problem is the value as a whole).
    """

    def __init__(self, reason: str, at: int | None = None, path: str | None = None) -> None:
        super().__init__(reason, path=path)
        self.reason = reason
        self.at = at


# ---------------------------------------------------------------------------------------------------
# Field codecs. Each is a construct Adapter over Bytes(size) with a `kind` and a `zero` value, so tests
# and tools can see what a field holds without parsing its bytes.

class _Field(Adapter):
    kind: ClassVar[str] = "bytes"

    def __init__(self, size: int) -> None:
        super().__init__(Bytes(size))
        self.size = size

    @property
    def zero(self) -> Any:
        """The value of the field in a blank record: that of an all-zero field (empty text for `Text`)."""
        return self.to_value(bytes(self.size))

    def _decode(self, obj: bytes, context: Any, path: str) -> Any:
        try:
            return self.to_value(obj)
        except FieldProblem as exc:
            exc.path = path
            raise

    def from_value(self, obj: Any) -> bytes:
        """The field's bytes for a decoded-form value; bytes of the right size are taken as they are."""
        if obj.__class__ is bytes or isinstance(obj, bytearray):
            if len(obj) != self.size:
                raise FieldProblem(f"expected {self.size} bytes, got {len(obj)}")
            return obj if obj.__class__ is bytes else bytes(obj)
        return self._value_to_bytes(obj)

    def _encode(self, obj: Any, context: Any, path: str) -> bytes:
        try:
            return self.from_value(obj)
        except FieldProblem as exc:
            exc.path = path
            raise

    def to_value(self, obj: bytes) -> Any:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _value_to_bytes(self, obj: Any) -> bytes:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


class Hex(_Field):
    """A code or identifier kept as its upper-case hex string (issuer ID, terminal ID, city code, ...)."""

    kind = "hex"

    def to_value(self, obj: bytes) -> str:
        return obj.hex().upper()

    def _value_to_bytes(self, obj: Any) -> bytes:
        if not isinstance(obj, str):
            raise FieldProblem(f"expected a hex string of {2 * self.size} digits, got {type(obj).__name__}")
        if len(obj) != 2 * self.size:
            raise FieldProblem(f"expected {2 * self.size} hex digits, got {len(obj)}")
        bad = re.search(r"[^0-9A-Fa-f]", obj)
        if bad:
            raise FieldProblem(f"not a hex digit {bad.group()!r} at character {bad.start() + 1}")
        return bytes.fromhex(obj)


def _bcd_digits(raw: bytes) -> str:
    """The digits of packed BCD, strict: a nibble above 9 is an error naming the byte inside the field."""
    text = raw.hex()
    if text.isdigit() or not text:        # a-f are not digits: the common case needs no loop
        return text
    for i, byte in enumerate(raw):
        for nibble in (byte >> 4, byte & 0x0F):
            if nibble > 9:
                raise FieldProblem(f"bad BCD digit '{nibble:X}'", at=i)
    return raw.hex()


class Bcd(_Field):
    """A number printed as digits (card number, trade serial): the digit string, 2 digits per byte."""

    kind = "bcd"

    def to_value(self, obj: bytes) -> str:
        return _bcd_digits(obj)

    def _value_to_bytes(self, obj: Any) -> bytes:
        if not isinstance(obj, str):
            raise FieldProblem(f"expected a string of {2 * self.size} digits, got {type(obj).__name__}")
        if len(obj) != 2 * self.size:
            raise FieldProblem(f"expected {2 * self.size} digits, got {len(obj)}")
        bad = re.search(r"[^0-9]", obj)
        if bad:
            raise FieldProblem(f"not a decimal digit {bad.group()!r} at character {bad.start() + 1}")
        return bytes.fromhex(obj)


class Date(_Field):
    """YYYYMMDD in BCD (4 bytes) as ``YYYY-MM-DD``; all zeros is None (no date)."""

    kind = "date"
    _TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")

    def __init__(self) -> None:
        super().__init__(4)

    def to_value(self, obj: bytes) -> str | None:
        if not any(obj):
            return None
        digits = _bcd_digits(obj)
        try:
            return _dt.date(int(digits[:4]), int(digits[4:6]), int(digits[6:8])).isoformat()
        except ValueError:
            raise FieldProblem(f"not a date: {digits}", at=0) from None

    def _value_to_bytes(self, obj: Any) -> bytes:
        if obj is None:
            return bytes(4)
        if isinstance(obj, _dt.datetime):
            raise FieldProblem("expected a date, got a datetime")
        if isinstance(obj, _dt.date):
            day = obj
        elif isinstance(obj, str) and self._TEXT.fullmatch(obj):
            try:
                day = _dt.date.fromisoformat(obj)
            except ValueError:
                raise FieldProblem(f"not a date: {obj!r}") from None
        else:
            raise FieldProblem(f"expected 'YYYY-MM-DD' or None, got {obj!r}")
        return bytes.fromhex(f"{day.year:04d}{day.month:02d}{day.day:02d}")


class DateTime(_Field):
    """YYYYMMDDhhmmss in BCD (7 bytes) as ``YYYY-MM-DD hh:mm:ss``; all zeros is None."""

    kind = "datetime"
    _TEXT = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})")

    def __init__(self) -> None:
        super().__init__(7)

    def to_value(self, obj: bytes) -> str | None:
        if not any(obj):
            return None
        d = _bcd_digits(obj)
        try:
            moment = _dt.datetime(int(d[:4]), int(d[4:6]), int(d[6:8]), int(d[8:10]), int(d[10:12]),
                                  int(d[12:14]))
        except ValueError:
            raise FieldProblem(f"not a date-time: {d}", at=0) from None
        return _iso_datetime(moment)

    def _value_to_bytes(self, obj: Any) -> bytes:
        if obj is None:
            return bytes(7)
        if isinstance(obj, _dt.datetime):
            moment = obj
        elif isinstance(obj, str) and (match := self._TEXT.fullmatch(obj)):
            try:
                moment = _dt.datetime(*map(int, match.groups()))
            except ValueError:
                raise FieldProblem(f"not a date-time: {obj!r}") from None
        else:
            raise FieldProblem(f"expected 'YYYY-MM-DD hh:mm:ss' or None, got {obj!r}")
        return bytes.fromhex(_iso_datetime(moment).replace("-", "").replace(" ", "").replace(":", ""))


def _iso_datetime(moment: _dt.datetime) -> str:
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")


class UInt(_Field):
    """An unsigned big-endian count (counter, length, distance)."""

    kind = "uint"
    signed = False

    def __init__(self, size: int) -> None:
        super().__init__(size)
        bits = 8 * size
        self.low, self.high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if self.signed else (0, (1 << bits) - 1)

    def to_value(self, obj: bytes) -> int:
        return int.from_bytes(obj, "big", signed=self.signed)

    def from_value(self, obj: Any) -> bytes:
        if obj.__class__ is int and self.low <= obj <= self.high:   # the card OS's hot path: one call
            return obj.to_bytes(self.size, "big", signed=self.signed)
        return super().from_value(obj)

    def _value_to_bytes(self, obj: Any) -> bytes:
        if obj.__class__ is not int and (isinstance(obj, bool) or not isinstance(obj, int)):
            raise FieldProblem(f"expected an integer, got {obj!r}")
        if not self.low <= obj <= self.high:
            raise FieldProblem(f"{obj} out of range {self.low}..{self.high}")
        return obj.to_bytes(self.size, "big", signed=self.signed)


class Amount(UInt):
    """Money in fen (分), unsigned big-endian (D13)."""

    kind = "amount"


class SignedAmount(Amount):
    """Money in fen that may be negative (a balance after an overdraft), two's complement."""

    signed = True


class Text(_Field):
    """Fixed-size text padded at the end with one pad byte; the decoded string has no padding.

    The string must not end with the pad character and must hold no control characters, so that
    decode(encode(s)) == s and a garbled field is reported instead of printed.
    """

    kind = "text"

    def __init__(self, size: int, encoding: str = "ascii", pad: int = 0x20) -> None:
        super().__init__(size)
        self.encoding = encoding
        self.pad = pad

    @property
    def zero(self) -> str:
        """Blank text is empty (all padding), whatever the pad byte."""
        return ""

    def to_value(self, obj: bytes) -> str:
        body = obj.rstrip(bytes([self.pad]))
        try:
            text = body.decode(self.encoding)
        except UnicodeDecodeError as exc:
            raise FieldProblem(f"not {self.encoding} text", at=exc.start) from None
        for i, ch in enumerate(text):
            if ord(ch) < 0x20 or ord(ch) == 0x7F:
                at = len(text[:i].encode(self.encoding))
                raise FieldProblem(f"control character {ord(ch):02X} in text", at=at)
        return text

    def _value_to_bytes(self, obj: Any) -> bytes:
        if not isinstance(obj, str):
            raise FieldProblem(f"expected text, got {type(obj).__name__}")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in obj):
            raise FieldProblem("control characters are not allowed")
        if obj and obj[-1] == chr(self.pad):
            raise FieldProblem(f"ends with the padding character {self.pad:02X}")
        try:
            body = obj.encode(self.encoding)
        except UnicodeEncodeError as exc:
            raise FieldProblem(f"{obj[exc.start]!r} cannot be written in {self.encoding}") from None
        if len(body) > self.size:
            raise FieldProblem(f"too long: {len(body)} bytes, at most {self.size}")
        return body + bytes([self.pad]) * (self.size - len(body))


# ---------------------------------------------------------------------------------------------------

def to_bytes(layout: str, raw: Any) -> bytes:
    """Accept bytes-like input only; anything else is the caller's mistake, named."""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        return bytes(raw)
    raise LayoutError(layout, None, f"expected bytes, got {type(raw).__name__}")


class FileLayout:
    """One file, record or FCI of the card or PSAM: its identifiers, its codec and its own test vectors.

    Subclasses set the class attributes and implement ``decode``/``encode``; ``vectors`` pairs raw hex
    (spaces allowed, they only group fields) with the decoded dict, and the generic test checks both
    directions for every registered layout.
    """

    name: ClassVar[str]                 # unique, used in error messages: 'EF15', 'EF1A-metro', 'PSAM-EF16'
    title: ClassVar[str]                # what the file is, for humans
    app: ClassVar[str] = "card"         # 'card' (T-Union ADF) or 'psam'
    sfi: ClassVar[int | None] = None    # short file identifier, None for an FCI
    record_id: ClassVar[int | None] = None  # EF1A: the record number in byte 1 (None: any)
    size: ClassVar[int | None] = None   # bytes; None when variable
    capacity: ClassVar[int | None] = None  # cyclic files: records on a reference card (a profile may differ)
    df: ClassVar[int | None] = None     # PSAM files: the FID of the DF that holds the file (3F00 = MF)
    kind: ClassVar[str]                 # 'binary', 'record' or 'fci'
    codec: ClassVar[Construct]
    aliases: ClassVar[tuple[str, ...]] = ()
    vectors: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    @classmethod
    def decode(cls, raw: bytes) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def encode(cls, fields: Mapping[str, Any]) -> bytes:
        raise NotImplementedError

    @classmethod
    def expected_size(cls, raw: bytes) -> int | None:
        """How long ``raw`` should be (records whose size depends on their ID, an FCI's outer TLV)."""
        return cls.size

    @classmethod
    def vector_bytes(cls) -> list[tuple[bytes, dict[str, Any]]]:
        return [(bytes.fromhex("".join(h.split())), d) for h, d in cls.vectors]


class StructLayout(FileLayout):
    """A fixed-size file or record whose codec is a flat ``Struct`` of the field codecs above.

    ``defaults`` fills fields a caller may leave out on encode (reserved bytes, header constants);
    ``derived`` names read-only fields that decode adds (they are checked, not written, on encode).
    """

    defaults: ClassVar[dict[str, Any]] = {}
    derived: ClassVar[tuple[str, ...]] = ()

    # -- introspection ---------------------------------------------------------------------------
    @classmethod
    def codec_for(cls, raw: bytes | None = None, fields: Mapping[str, Any] | None = None) -> Struct:
        """The Struct to use; layouts whose size depends on the record override this."""
        return cls.codec

    @classmethod
    def field_specs(cls, codec: Struct | None = None) -> list[tuple[str, _Field, int]]:
        """(name, field codec, absolute offset) in file order."""
        return list(_specs(codec or cls.codec))

    @classmethod
    def field_size(cls, name: str) -> int:
        """The size in bytes of field ``name`` (of the default codec)."""
        for field_name, field, _ in _specs(cls.codec):
            if field_name == name:
                return field.size
        raise LayoutError(cls.name, name, "no such field")

    @classmethod
    def field_bytes(cls, raw: bytes, name: str) -> bytes:
        """The bytes of one field of ``raw``, found by the layout's own offsets (no decoding).

        For code that needs a factor as bytes (issuer ID, card number) even from a file whose other
        fields would not decode; the offsets are the layout's, so nobody writes ``raw[12:20]``.
        """
        for field_name, field, offset in _specs(cls.codec_for(raw=raw)):
            if field_name == name:
                return bytes(raw[offset:offset + field.size])
        raise LayoutError(cls.name, name, "no such field")

    @classmethod
    def field_kinds(cls) -> dict[str, str]:
        return {name: f.kind for name, f, _ in cls.field_specs()}

    @classmethod
    def blank(cls) -> dict[str, Any]:
        """Every field with its empty value and the defaults applied: start here to build a record."""
        values = {name: f.zero for name, f, _ in cls.field_specs()}
        values.update(cls.defaults_for(cls.codec))
        return values

    @classmethod
    def defaults_for(cls, codec: Struct) -> dict[str, Any]:
        return dict(cls.defaults)

    # -- hooks -----------------------------------------------------------------------------------
    @classmethod
    def present(cls, fields: dict[str, Any]) -> dict[str, Any]:
        """Add the derived fields to the parsed ones (in display order)."""
        return fields

    @classmethod
    def check(cls, raw: bytes) -> None:
        """Rules on the raw bytes checked before the fields (e.g. the record number of EF1A)."""

    # -- the two directions ----------------------------------------------------------------------
    @classmethod
    def decode(cls, raw: bytes) -> dict[str, Any]:
        raw = to_bytes(cls.name, raw)
        expected = cls.expected_size(raw)
        if len(raw) != expected:
            raise LayoutError(cls.name, None, f"wrong length {len(raw)} bytes, expected {expected}")
        cls.check(raw)
        return cls.present(cls._parse_fields(cls.codec_for(raw=raw), raw))

    @classmethod
    def _parse_fields(cls, codec: Struct, raw: bytes) -> dict[str, Any]:
        """``codec.parse(raw)`` as a plain loop over the fields (the Struct is a flat run of fixed-size
        field adapters, so this is the same parse, several times faster than construct's interpreter)."""
        out: dict[str, Any] = {}
        for name, field, offset in _specs(codec):
            try:
                out[name] = field.to_value(raw[offset:offset + field.size])
            except FieldProblem as exc:
                raise LayoutError(cls.name, name, exc.reason,
                                  offset + exc.at if exc.at is not None else None) from None
        return out

    @classmethod
    def _build_fields(cls, codec: Struct, values: Mapping[str, Any]) -> bytes:
        """``codec.build(values)`` as a plain loop over the fields (see `_parse_fields`)."""
        try:
            return b"".join([field.from_value(values[name]) for name, field, _ in _specs(codec)])
        except FieldProblem:
            pass
        for name, field, offset in _specs(codec):  # again, to say which field (the rare path)
            try:
                field.from_value(values[name])
            except FieldProblem as exc:
                raise LayoutError(cls.name, name, exc.reason,
                                  offset + exc.at if exc.at is not None else None) from None
        raise AssertionError("unreachable: a field failed once and not twice")

    @classmethod
    def packer(cls) -> Callable[..., bytes]:
        """A function that packs one record from positional field values, for a card OS's hot path.

        Generated once from the layout's fields (integers for integer fields, bytes of the field's
        size for the others) and unchecked: the caller guarantees sizes and ranges. `pack` is the
        checked form and gives the same bytes (a test holds them equal).
        """
        packer = _PACKERS.get(cls)
        if packer is None:
            parts, args = [], []
            for i, (_, field, _) in enumerate(_specs(cls.codec)):
                args.append(f"_{i}")
                if isinstance(field, UInt):
                    parts.append(f"_{i}.to_bytes({field.size}, 'big', signed={field.signed})")
                else:
                    parts.append(f"_{i}")
            namespace: dict[str, Any] = {}
            exec(f"def pack({', '.join(args)}):\n    return b''.join(({', '.join(parts)},))\n", namespace)  # noqa: S102
            packer = _PACKERS[cls] = namespace["pack"]
            packer.__qualname__ = f"{cls.__name__}.packer"
        return packer

    @classmethod
    def pack(cls, values: Mapping[str, Any]) -> bytes:
        """The bytes of every field in ``values`` (all of them, no defaults), without ``encode``'s
        round-trip check: for a card OS writing its own records on the hot path. Field values may be
        raw bytes of the field's size, taken as they are (a card stores what it was sent)."""
        return cls._build_fields(cls.codec_for(fields=values), values)

    @classmethod
    def encode(cls, fields: Mapping[str, Any]) -> bytes:
        if not isinstance(fields, Mapping):
            raise LayoutError(cls.name, None, f"expected a mapping of fields, got {type(fields).__name__}")
        codec = cls.codec_for(fields=fields)
        names = [name for name, _, _ in cls.field_specs(codec)]
        for key in fields:
            if key not in names and key not in cls.derived:
                raise LayoutError(cls.name, str(key), "unknown field")
        values = {**cls.defaults_for(codec), **{k: v for k, v in fields.items() if k in names}}
        for name in names:
            if name not in values:
                raise LayoutError(cls.name, name, "missing")
        raw = cls._build_fields(codec, values)
        decoded = cls.decode(raw)  # also applies check(); derived fields come from here
        for key in cls.derived:
            if key in fields and not _same(fields[key], decoded[key]):
                raise LayoutError(cls.name, key, f"{fields[key]!r} disagrees with {decoded[key]!r} "
                                                 "derived from the other fields")
        return raw


_SPECS: dict[int, tuple[Struct, tuple[tuple[str, _Field, int], ...]]] = {}
_PACKERS: dict[type, Callable[..., bytes]] = {}


def _specs(codec: Struct) -> tuple[tuple[str, _Field, int], ...]:
    """(name, field codec, absolute offset) of a flat Struct of field codecs, computed once per codec."""
    known = _SPECS.get(id(codec))
    if known is not None and known[0] is codec:
        return known[1]
    out, offset = [], 0
    for sub in codec.subcons:
        assert isinstance(sub, Renamed) and isinstance(sub.subcon, _Field), sub
        out.append((sub.name, sub.subcon, offset))
        offset += sub.subcon.size
    specs = tuple(out)
    _SPECS[id(codec)] = (codec, specs)
    return specs


def _same(given: Any, derived: Any) -> bool:
    if isinstance(given, str) and isinstance(derived, str):
        return given.upper() == derived.upper()
    return given == derived
