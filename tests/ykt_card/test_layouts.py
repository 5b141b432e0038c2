"""The file layouts: one generic test over every registered layout's vectors, the registry, the real
samples of the reference, precise errors, and hypothesis round trips from random field values."""
from __future__ import annotations

import datetime as dt
import inspect
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ykt_card.layouts as layouts
from tests.reference import REFERENCE_DIR, h, vectors
from ykt_card.layouts import (ALL, EF15, EF16, EF18, EF1ABus, EF1AMetro, EF1AOther, EF1EA, EF1EB, AdfFci,
                              FileLayout, LayoutError, PpseFci, PsamEF15, PsamEF16, PsamEF17,
                              StructLayout, by_name, by_sfi, for_1a_record, record_size)
from ykt_card.layouts.base import Text

STRUCT_LAYOUTS = [cls for cls in ALL if issubclass(cls, StructLayout)]
VECTOR_CASES = [pytest.param(cls, i, id=f"{cls.name}-{i}") for cls in ALL for i in range(len(cls.vectors))]


def _concrete_layouts() -> set[type]:
    """Every layout class defined in the package that declares its own name (i.e. is not a base)."""
    found: set[type] = set()
    stack = [FileLayout]
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "name" in cls.__dict__ and cls.__module__.startswith("ykt_card.layouts"):
            found.add(cls)
    return found


# -- the generic vector test ----------------------------------------------------------------------

@pytest.mark.parametrize("cls,index", VECTOR_CASES)
def test_vector_decodes_and_encodes_back(cls: type[FileLayout], index: int) -> None:
    raw, expected = cls.vector_bytes()[index]
    decoded = cls.decode(raw)
    assert decoded == expected
    assert cls.encode(expected) == raw
    assert json.loads(json.dumps(decoded)) == decoded  # plain JSON-able data


@pytest.mark.parametrize("cls", STRUCT_LAYOUTS, ids=lambda c: c.name)
def test_struct_layout_fields_fill_the_file_and_decode_names_them_all(cls: type[StructLayout]) -> None:
    specs = cls.field_specs()
    assert sum(field.size for _, field, _ in specs) == cls.size
    assert [offset for _, _, offset in specs] == sorted({offset for _, _, offset in specs})
    raw, _ = cls.vector_bytes()[0]
    assert set(cls.decode(raw)) == {name for name, _, _ in specs} | set(cls.derived)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_every_layout_declares_identifiers_and_vectors(cls: type[FileLayout]) -> None:
    assert cls.kind in ("binary", "record", "fci")
    assert cls.app in ("card", "psam")
    assert len(cls.vectors) >= 2
    assert cls.title and cls.name
    if cls.kind == "fci":
        assert cls.sfi is None and cls.size is None
    else:
        assert isinstance(cls.sfi, int) and isinstance(cls.size, int)


# -- registry -------------------------------------------------------------------------------------

def test_registry_lists_every_layout_class_once() -> None:
    assert set(ALL) == _concrete_layouts()
    assert len(ALL) == len(set(ALL))
    keys = [k.lower() for cls in ALL for k in {cls.name.lower(), *cls.aliases}]
    assert len(keys) == len(set(keys)), "a name or alias is used by two layouts"


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.name)
def test_by_name_finds_a_layout_by_name_and_aliases(cls: type[FileLayout]) -> None:
    for key in (cls.name, cls.name.lower(), *cls.aliases, f" {cls.name.upper()} "):
        assert by_name(key) is cls


def test_by_name_short_names_of_the_brief() -> None:
    assert by_name("15") is EF15 and by_name("ppse") is PpseFci and by_name("fci") is AdfFci
    assert by_name("psam16") is PsamEF16 and by_name("EF1E-B") is EF1EB
    with pytest.raises(LayoutError) as err:
        by_name("EF99")
    assert err.value.field == "name" and "EF15" in str(err.value)


def test_by_sfi() -> None:
    assert by_sfi(0x15) is EF15 and by_sfi(0x16) is EF16 and by_sfi(0x18) is EF18
    assert by_sfi(0x15, app="psam") is PsamEF15 and by_sfi(0x17, app="psam") is PsamEF17
    assert by_sfi(0x1A, record_no=1) is EF1AMetro and by_sfi(0x1A, record_no=2) is EF1ABus
    assert by_sfi(0x1A, record_no=7) is EF1AOther
    assert by_sfi(0x1E, layout="A") is EF1EA and by_sfi(0x1E, layout="b") is EF1EB
    for kwargs, field in [({"sfi": 0x1A}, "record_no"), ({"sfi": 0x1E}, "layout"),
                          ({"sfi": 0x1E, "layout": "C"}, "layout"), ({"sfi": 0x19}, "sfi"),
                          ({"sfi": 0x18, "app": "psam"}, "sfi")]:
        with pytest.raises(LayoutError) as err:
            by_sfi(**kwargs)
        assert err.value.field == field


def test_ef1a_record_sizes_follow_the_cardlan_index() -> None:
    assert [record_size(n) for n in (0x01, 0x02, 0x07, 0x0D, 0x0E)] == [128, 128, 112, 30, 128]
    assert for_1a_record(0x01) is EF1AMetro and for_1a_record(0x02) is EF1ABus
    assert for_1a_record(0x0D) is EF1AOther


# -- the real samples of the reference are among the vectors ---------------------------------------

def _norm(text: str) -> str:
    """Drop whitespace, '|' group marks and parenthesised comments, as the reference writes samples."""
    return re.sub(r"\([^)]*\)|[\s|]", "", text).upper()


REAL_SAMPLES = [
    # (layout, reference file, pieces as written there; '…' marks an elided run), exact match or not
    (EF15, "tunion.md", ["01011000FFFFFFFF 02 01 03105170010170907984 20190806 20401231 0000"], True),
    (EF15, "guangdong.md", ["02205810FFFFFFFF 02 01 03104870395346358827 20240715 20401215 0000"], True),
    (AdfFci, "tunion.md", ["6F 31  84 08 A000000632010105 A5 25  9F08 01 02 9F0C 1E",
                           "01011000FFFFFFFF 02 01 03105170010170907984 20190806 20401231 0000"], True),
    (PpseFci, "tunion.md", ["84 0E 325041592E5359532E4444463031 A5 37 BF0C 34 "
                            "61 19  4F 08 A000000632010106  50 0A 4D4F545F545F43415348 87 01 01 "
                            "61 17  4F 08 A000000632010105  50 08 4D4F545F545F4550 87 01 02"], False),
    (EF18, "tunion.md", ["0079 000000 00000000 09 413106163675 20201228 214511"], True),
    (EF18, "tunion.md", ["005F 000000 00000006 09 413106162370 20201228 214342"], True),
    (EF18, "tunion.md", ["0001 000000 00001C37 02 000001000050 20140825 103100"], True),
    (EF1AMetro, "tunion.md", ["27017D 01 01 00 | 0000000000065292 | 01 | 1000 | 0000 | 01011000FFFFFFFF | "
                              "00…00 | 1000751309000819 | 00…00 | 100075131F081909 | 00…00 | "
                              "20190831175904 | 00…00 | 00000384 | …"], False),
    (EF1ABus, "tunion.md", ['27027D 01 01 00 | 0000000000000126 | 01 | 4530 | 13664530FFFFFFFF | 4530 | '
                            '00FB | 03 | 3030343039393938 ("00409998") | 0000413106163675 | 20201228214511 | '
                            '00000030 | AB | 0000 | 00…00 | 4530 | 0000 | 00 | 00…00 | 00…00 | 00…00 | '
                            '0000000C | 0000 | …'], False),
    (EF1EB, "tunion.md", ["09 | 0000370020095428 | 0000000000000078 | 00000000 | 00000DC4 | "
                          "20201228214511 | 4530 | 13664530FFFFFFFF | …"], False),
]


@pytest.mark.parametrize("cls,source,pieces,exact", REAL_SAMPLES,
                         ids=[f"{c.name}-{i}" for i, (c, *_) in enumerate(REAL_SAMPLES)])
def test_real_sample_of_the_reference_is_a_vector(cls: type[FileLayout], source: str, pieces: list[str],
                                                  exact: bool) -> None:
    reference = _norm((REFERENCE_DIR / source).read_text(encoding="utf-8"))
    for piece in pieces:
        assert _norm(piece) in reference, f"sample not found in {source}: {piece}"
    # Known runs of the sample, in order; elided runs ('00…00', '…') are zeros in the vector.
    runs = [run for piece in pieces for run in re.split(r"(?:00)?…(?:00)?", _norm(piece)) if run]
    matches = []
    for raw, _ in cls.vector_bytes():
        text, pos = raw.hex().upper(), 0
        for run in runs:
            pos = text.find(run, pos)
            if pos < 0 or pos % 2:
                break
            pos += len(run)
        else:
            if not exact or text == "".join(runs):
                matches.append(raw)
    assert matches, f"no {cls.name} vector holds the sample"
    if any("…" in piece for piece in pieces):
        # the elided runs were filled with zeros: bytes outside the known runs are all 00
        text = matches[0].hex().upper()
        for run in runs:
            text = text.replace(run, "", 1)
        assert set(text) <= {"0"}


def test_huada_log_record_is_the_one_of_vectors_json() -> None:
    record = h(vectors()["pboc_load_3des"]["ef18_record_after"])
    assert record in [raw for raw, _ in EF18.vector_bytes()]
    assert EF18.decode(record)["amount"] == int(vectors()["pboc_load_3des"]["new_balance"], 16)


# -- errors: by field and byte, never a traceback --------------------------------------------------

def test_bad_bcd_digit_names_field_and_absolute_byte() -> None:
    raw = bytearray(EF15.vector_bytes()[0][0])
    raw[12] = 0xA1
    with pytest.raises(LayoutError) as err:
        EF15.decode(bytes(raw))
    assert str(err.value) == "EF15.card_no: bad BCD digit 'A' at byte 12"
    assert (err.value.field, err.value.offset, err.value.layout) == ("card_no", 12, "EF15")
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("cls", STRUCT_LAYOUTS, ids=lambda c: c.name)
def test_wrong_length_is_reported_for_the_whole_file(cls: type[StructLayout]) -> None:
    raw, _ = cls.vector_bytes()[0]
    for bad in (raw[:-1], raw + b"\x00"):
        with pytest.raises(LayoutError) as err:
            cls.decode(bad)
        assert str(err.value) == f"{cls.name}: wrong length {len(bad)} bytes, expected {len(raw)}"
        assert err.value.field is None
    with pytest.raises(LayoutError):
        cls.decode(raw.hex())  # text is not bytes


def test_wrong_length_message_of_the_brief() -> None:
    with pytest.raises(LayoutError, match=r"^EF18: wrong length 22 bytes, expected 23$"):
        EF18.decode(bytes(22))


BCD_KINDS = ("bcd", "date", "datetime")
BCD_FIELDS = [pytest.param(cls, name, offset, id=f"{cls.name}.{name}")
              for cls in STRUCT_LAYOUTS
              for name, field, offset in cls.field_specs() if field.kind in BCD_KINDS]


@pytest.mark.parametrize("cls,name,offset", BCD_FIELDS)
def test_every_bcd_field_rejects_a_nibble_above_9_at_its_byte(cls: type[StructLayout], name: str,
                                                               offset: int) -> None:
    raw = bytearray(cls.vector_bytes()[0][0])
    raw[offset + 1] = 0x2B
    with pytest.raises(LayoutError) as err:
        cls.decode(bytes(raw))
    assert err.value.field == name
    assert err.value.offset == offset + 1
    assert str(err.value) == f"{cls.name}.{name}: bad BCD digit 'B' at byte {offset + 1}"


def test_impossible_dates_are_reported_by_field() -> None:
    raw = bytearray(EF15.vector_bytes()[0][0])
    raw[24:28] = h("20401331")
    with pytest.raises(LayoutError, match=r"^EF15\.expiry_date: not a date: 20401331 at byte 24$"):
        EF15.decode(bytes(raw))
    raw = bytearray(EF18.vector_bytes()[0][0])
    raw[16:23] = h("20201228 250000")
    with pytest.raises(LayoutError, match=r"^EF18\.datetime: not a date-time: 20201228250000 at byte 16$"):
        EF18.decode(bytes(raw))


def test_ef1a_layout_refuses_a_record_of_another_number() -> None:
    bus_raw, _ = EF1ABus.vector_bytes()[0]
    with pytest.raises(LayoutError) as err:
        EF1AMetro.decode(bus_raw)
    assert (err.value.field, err.value.offset) == ("record_id", 1)
    assert "record 02 is not record 01 (metro)" in str(err.value)
    fields = dict(EF1AMetro.vectors[0][1], record_id="2702")
    with pytest.raises(LayoutError) as err:
        EF1AMetro.encode(fields)
    assert err.value.field == "record_id"


def test_text_fields_refuse_garbage() -> None:
    raw = bytearray(EF1ABus.vector_bytes()[0][0])
    raw[36] = 0x07  # inside on_bus_no (offset 33..40)
    with pytest.raises(LayoutError) as err:
        EF1ABus.decode(bytes(raw))
    assert (err.value.field, err.value.offset) == ("on_bus_no", 36)
    raw = bytearray(EF16.vector_bytes()[1][0])
    raw[2:4] = b"\xff\xff"  # not GB2312
    with pytest.raises(LayoutError) as err:
        EF16.decode(bytes(raw))
    assert (err.value.field, err.value.offset) == ("name", 2)
    base = dict(EF16.vectors[1][1])
    for value, reason in [("张三 ", "padding"), ("x" * 21, "too long"), ("€", "gb2312"),
                          ("a\tb", "control"), (3, "expected text")]:
        with pytest.raises(LayoutError, match=reason) as err:
            EF16.encode({**base, "name": value})
        assert err.value.field == "name"


@pytest.mark.parametrize("change,field,reason", [
    ({"issuer_id": "01011000FFFFFFFG"}, "issuer_id", "not a hex digit 'G' at character 16"),
    ({"issuer_id": "0101"}, "issuer_id", "expected 16 hex digits, got 4"),
    ({"issuer_id": 0x0101}, "issuer_id", "expected a hex string"),
    ({"card_no": "0310517001017090798"}, "card_no", "expected 20 digits, got 19"),
    ({"card_no": "0310517001017090798A"}, "card_no", "not a decimal digit 'A' at character 20"),
    ({"start_date": "2019-02-30"}, "start_date", "not a date"),
    ({"start_date": "20190806"}, "start_date", "expected 'YYYY-MM-DD' or None"),
    ({"serial8": "0000000000000000"}, "serial8", "disagrees"),
    ({"card_no_printed": "3105170010170907985"}, "card_no_printed", "disagrees"),
    ({"colour": "red"}, "colour", "unknown field"),
])
def test_encode_errors_name_the_field(change: dict, field: str, reason: str) -> None:
    fields = {**EF15.vectors[0][1], **change}
    before = dict(fields)
    with pytest.raises(LayoutError) as err:
        EF15.encode(fields)
    assert err.value.field == field
    assert reason in str(err.value)
    assert str(err.value).startswith(f"EF15.{field}: ")
    assert fields == before  # the caller's dict is left alone


def test_encode_missing_field_and_defaults() -> None:
    fields = dict(EF15.vectors[0][1])
    del fields["card_no"]
    with pytest.raises(LayoutError, match=r"^EF15\.card_no: missing$"):
        EF15.encode(fields)
    # derived fields are optional; reserved ones default
    fields = {k: v for k, v in EF15.vectors[0][1].items() if k not in EF15.derived}
    assert EF15.encode(fields) == EF15.vector_bytes()[0][0]
    raw, full = EF1AMetro.vector_bytes()[0]
    header_and_reserved = ("record_id", "length", "valid_flag", "interop_flag", "lock_flag", "reserved")
    assert EF1AMetro.encode({k: v for k, v in full.items() if k not in header_and_reserved}) == raw
    with pytest.raises(LayoutError):
        EF15.encode([("card_no", "0")])


def test_integer_fields_check_range_and_type() -> None:
    base = dict(EF18.vectors[0][1])
    for value, reason in [(-1, "out of range 0..4294967295"), (1 << 32, "out of range"),
                          (True, "expected an integer"), ("12", "expected an integer")]:
        with pytest.raises(LayoutError, match=reason) as err:
            EF18.encode({**base, "amount": value})
        assert err.value.field == "amount"
    with pytest.raises(LayoutError, match="out of range -2147483648..2147483647"):
        EF1EA.encode({**EF1EA.vectors[0][1], "balance_after": 1 << 31})


def test_values_also_accepted_as_python_objects() -> None:
    raw, fields = EF18.vector_bytes()[0]
    assert EF18.encode({**fields, "datetime": dt.datetime(2020, 12, 28, 21, 45, 11),
                        "terminal_id": h("413106163675")}) == raw
    raw, fields = EF15.vector_bytes()[0]
    assert EF15.encode({**fields, "start_date": dt.date(2019, 8, 6), "issuer_id": "01011000ffffffff"}) == raw


def test_blank_records_encode_to_zeros_with_their_header() -> None:
    metro = EF1AMetro.encode(EF1AMetro.blank())
    assert metro[:6] == h("27017D010100") and not any(metro[6:])
    assert EF1ABus.encode(EF1ABus.blank())[:2] == h("2702")
    assert EF18.encode(EF18.blank()) == bytes(23)
    assert EF15.decode(bytes(30))["start_date"] is None


def test_opaque_ef1a_takes_its_size_from_the_record_number() -> None:
    short = {"record_id": "270D", "length": 27, "valid_flag": "01", "interop_flag": "01",
             "lock_flag": "00", "body": "22" * 24}
    assert len(EF1AOther.encode(short)) == 30
    with pytest.raises(LayoutError) as err:
        EF1AOther.encode({**short, "body": "22" * 122})
    assert err.value.field == "body"
    with pytest.raises(LayoutError, match=r"^EF1A-other: wrong length 128 bytes, expected 30$"):
        EF1AOther.decode(h("270D1B010100") + bytes(122))
    with pytest.raises(LayoutError) as err:
        EF1AOther.encode({**short, "record_id": "27"})
    assert err.value.field == "record_id"
    assert EF1AOther.encode({"record_id": "2707"}) == h("27076D010100") + bytes(106)


# -- FCI errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("cls,hex_text,field,reason", [
    (AdfFci, "7003800100", None, "expected tag 6F"),
    (AdfFci, "6F0C 8408A000000632010105 8800", "6F", "unexpected tag 88"),
    (AdfFci, "6F11 8408A000000632010105 A505 9F08010288 00", None, "length"),
    (AdfFci, "6F0C 8408A000000632010105 A500", "A5", "empty proprietary template"),
    (AdfFci, "6F14 8408A000000632010105 A508 9F080102 88010100", "A5", "unexpected tag 88"),
    (AdfFci, "6F14 8408A000000632010105 A508 9F0C0100 9F080102", "A5", "unexpected tag 9F08"),
    (AdfFci, "6F15 8408A000000632010105 A509 9F080102 9F0C021234", "ef15", "wrong length 2 bytes"),
    (AdfFci, "6F10 8405A000000632 A507 9F080102 9F0C00", "ef15", "wrong length 0 bytes"),
    (AdfFci, "6F06 8401A0 A501 00", "A5", "empty proprietary template"),
    (AdfFci, "6F03 8401A0", "aid", "AID of 1 bytes"),
    (AdfFci, "6F05 8403A000", None, "runs past the end"),
    (PpseFci, "6F0A 840141 A505 BF0C026100", "entries[0]", "expected tag 4F"),
    (PpseFci, "6F0A 840141 A505 BF0C028400", "BF0C", "expected tag 61"),
    (PpseFci, "6F0D 840141 A508 BF0C05 6103 870100", "entries[0]", "expected tag 4F, found 87"),
    (PpseFci, "6F15 840141 A510 BF0C0D 610B 4F05A000000632 87020102", "entries[0].priority", "2 bytes"),
    (PpseFci, "6F13 840141 A50E BF0C0B 6109 4F04A0000006 870101", "entries[0].aid", "AID of 4 bytes"),
    (PpseFci, "6F08 840101 A503 BF0C00", "df_name", "not printable ASCII"),
])
def test_fci_errors_name_the_tag_or_field(cls: type[FileLayout], hex_text: str, field: str | None,
                                          reason: str) -> None:
    with pytest.raises(LayoutError) as err:
        cls.decode(h(hex_text))
    assert err.value.field == field
    assert reason in str(err.value)
    assert "\n" not in str(err.value)


def test_fci_reports_a_bad_ef15_inside_9f0c_by_its_field() -> None:
    raw = bytearray(AdfFci.vector_bytes()[0][0])
    raw[21 + 12] = 0xA1  # EF15 starts after 6F31 8408<aid> A525 9F080102 9F0C1E = 21 bytes
    with pytest.raises(LayoutError) as err:
        AdfFci.decode(bytes(raw))
    assert err.value.field == "ef15.card_no"
    assert str(err.value) == "FCI.ef15.card_no: bad BCD digit 'A' (byte 12 of 9F0C)"
    with pytest.raises(LayoutError) as err:
        AdfFci.encode({**AdfFci.vectors[0][1], "ef15": {**EF15.vectors[0][1], "card_no": "1"}})
    assert err.value.field == "ef15.card_no"


def test_fci_encode_errors() -> None:
    base = AdfFci.vectors[0][1]
    for change, field in [({"aid": "A0"}, "aid"), ({"aid": "XYZ"}, "aid"),
                          ({"app_version": ""}, "app_version"), ({"extra": 1}, "extra"),
                          ({"ef15": "00"}, "ef15")]:
        with pytest.raises(LayoutError) as err:
            AdfFci.encode({**base, **change})
        assert err.value.field == field
    with pytest.raises(LayoutError) as err:
        AdfFci.encode({"aid": base["aid"], "ef15": base["ef15"]})
    assert (err.value.field, err.value.reason) == ("app_version", "missing")
    ppse = PpseFci.vectors[0][1]
    for change, field in [({"entries": "x"}, "entries"), ({"df_name": "ü"}, "df_name"),
                          ({"entries": [{"aid": "A000000632", "priority": 256}]}, "entries[0].priority"),
                          ({"entries": [{"label": "X"}]}, "entries[0].aid"),
                          ({"entries": [{"aid": "A000000632", "kernel": 1}]}, "entries[0].kernel")]:
        with pytest.raises(LayoutError) as err:
            PpseFci.encode({**ppse, **change})
        assert err.value.field == field


# -- hypothesis: random valid field values round-trip ----------------------------------------------

HANZI = "张王李赵刘陈杨黄周吴徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢姜"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


def _text_strategy(field: Text) -> st.SearchStrategy[str]:
    alphabet = PRINTABLE if field.encoding == "ascii" else PRINTABLE + HANZI
    pad = chr(field.pad)
    return (st.text(alphabet, max_size=field.size)
            .map(lambda s: s.rstrip(pad))
            .filter(lambda s: len(s.encode(field.encoding)) <= field.size))


def _iso_dt(moment: dt.datetime) -> str:
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} "
            f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}")


def _field_strategy(field) -> st.SearchStrategy:
    n = field.size
    if field.kind == "hex":
        return st.binary(min_size=n, max_size=n).map(lambda b: b.hex().upper())
    if field.kind == "bcd":
        return st.text("0123456789", min_size=2 * n, max_size=2 * n)
    if field.kind == "date":
        return st.none() | st.dates().map(lambda d: f"{d.year:04d}-{d.month:02d}-{d.day:02d}")
    if field.kind == "datetime":
        return st.none() | st.datetimes().map(_iso_dt)
    if field.kind in ("uint", "amount"):
        bits = 8 * n
        if field.signed:
            return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
        return st.integers(0, (1 << bits) - 1)
    if field.kind == "text":
        return _text_strategy(field)
    raise AssertionError(f"no strategy for field kind {field.kind}")


def _fields_strategy(cls: type[StructLayout], codec=None) -> st.SearchStrategy[dict]:
    specs = {name: _field_strategy(field) for name, field, _ in cls.field_specs(codec)}
    if cls.record_id is not None:  # EF1A metro/bus: byte 1 is the record number
        specs["record_id"] = st.integers(0, 255).map(lambda b: f"{b:02X}{cls.record_id:02X}")
    return st.fixed_dictionaries(specs)


def _check_round_trip(cls: type[FileLayout], fields: dict) -> None:
    raw = cls.encode(fields)
    decoded = cls.decode(raw)
    assert {key: decoded[key] for key in fields} == fields
    assert cls.encode(decoded) == raw
    assert json.loads(json.dumps(decoded)) == decoded


FIXED_STRUCTS = [cls for cls in STRUCT_LAYOUTS if cls is not EF1AOther]


@pytest.mark.parametrize("cls", FIXED_STRUCTS, ids=lambda c: c.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_random_field_values_round_trip(cls: type[StructLayout], data: st.DataObject) -> None:
    fields = data.draw(_fields_strategy(cls))
    _check_round_trip(cls, fields)
    assert len(cls.encode(fields)) == cls.size


@settings(max_examples=60, deadline=None)
@given(data=st.data(), record_no=st.integers(0, 255).filter(lambda n: n not in (1, 2)))
def test_random_opaque_ef1a_records_round_trip(data: st.DataObject, record_no: int) -> None:
    size = record_size(record_no)
    fields = data.draw(_fields_strategy(EF1AOther, EF1AOther.codec_for(raw=bytes([0x27, record_no]))))
    fields["record_id"] = fields["record_id"][:2] + f"{record_no:02X}"
    _check_round_trip(EF1AOther, fields)
    assert len(EF1AOther.encode(fields)) == size


AIDS = st.binary(min_size=5, max_size=16).map(lambda b: b.hex().upper())
LABELS = st.none() | st.text(PRINTABLE, min_size=1, max_size=16)


@settings(max_examples=60, deadline=None)
@given(aid=AIDS, version=st.binary(min_size=1, max_size=4).map(lambda b: b.hex().upper()),
       ef15=_fields_strategy(EF15))
def test_random_adf_fci_round_trips(aid: str, version: str, ef15: dict) -> None:
    fields = {"aid": aid, "app_version": version, "ef15": EF15.decode(EF15.encode(ef15))}
    _check_round_trip(AdfFci, fields)


@settings(max_examples=60, deadline=None)
@given(df_name=st.text(PRINTABLE, min_size=1, max_size=16),
       entries=st.lists(st.fixed_dictionaries({"aid": AIDS, "label": LABELS,
                                               "priority": st.none() | st.integers(0, 255)}), max_size=4))
def test_random_ppse_round_trips(df_name: str, entries: list[dict]) -> None:
    _check_round_trip(PpseFci, {"df_name": df_name, "entries": entries})


def test_public_api_is_exported() -> None:
    for name in layouts.__all__:
        assert hasattr(layouts, name), name
    assert inspect.signature(EF15.decode).parameters.keys() == {"raw"}
    assert inspect.signature(EF15.encode).parameters.keys() == {"fields"}


# -- the layouts as the single definition -------------------------------------------------------------

@pytest.mark.parametrize("cls,index", [c for c in VECTOR_CASES if issubclass(c.values[0], StructLayout)])
def test_the_field_loop_is_the_construct_codec(cls: type[StructLayout], index: int) -> None:
    """decode/encode run the Struct's field adapters in a plain loop: the same as construct's parse/build."""
    raw, _ = cls.vector_bytes()[index]
    codec = cls.codec_for(raw=raw)
    parsed = {k: v for k, v in codec.parse(raw).items() if not k.startswith("_")}
    assert cls._parse_fields(codec, raw) == parsed
    assert codec.build(parsed) == cls._build_fields(codec, parsed) == raw
    assert cls.pack(parsed) == raw


def test_pack_takes_raw_field_bytes_and_names_a_bad_field() -> None:
    raw, fields = EF18.vector_bytes()[3]
    assert EF18.pack({**fields, "terminal_id": h("112233445566"), "datetime": h("20261123081530")}) == raw
    with pytest.raises(LayoutError) as err:
        EF18.pack({**fields, "amount": 1 << 32})
    assert (err.value.field, err.value.offset) == ("amount", None)


def test_names_are_the_layouts_own() -> None:
    from ykt_card.layouts import EF17, EF1EA
    from ykt_card.layouts import names
    assert (names.SFI_PUBLIC, names.SFI_HOLDER, names.SFI_MANAGEMENT, names.SFI_LOG, names.SFI_CAPP,
            names.SFI_HISTORY) == (EF15.sfi, EF16.sfi, EF17.sfi, EF18.sfi, EF1AMetro.sfi, EF1EA.sfi)
    assert names.FILE_NAMES[0x1A] == "EF1A" and EF1EB.sfi == EF1EA.sfi and EF1EB.capacity == EF1EA.capacity == 30
    assert (names.PSAM_MF, names.PSAM_DF_TUNION) == (0x3F00, 0x8011) == (PsamEF16.df, PsamEF17.df)
    assert PpseFci.encode({"df_name": names.PPSE_NAME.decode(), "entries": [e.fields() for e in names.DEFAULT_PPSE]}) \
        == PpseFci.vector_bytes()[0][0]
    assert {role: p1 for p1, role in names.WRITE_KEY_TYPES.items()} == names.WRITE_KEY_TYPE_OF
    assert len(names.WRITE_KEY_TYPE_OF) == len(names.WRITE_KEY_TYPES)


def test_field_bytes_and_the_ef15_factors() -> None:
    raw, fields = EF15.vector_bytes()[0]
    assert EF15.field_bytes(raw, "issuer_id") == EF15.issuer_id_of(raw) == bytes.fromhex(fields["issuer_id"])
    assert EF15.serial8_of(raw) == bytes.fromhex(fields["serial8"])
    assert EF15.card_no_of(raw) == fields["card_no"] and EF15.field_size("card_no") == 10
    bad = raw[:19] + b"\x3A" + raw[20:]                  # a card number that does not decode
    assert EF15.card_no_of(bad).endswith("3A")
    with pytest.raises(LayoutError):
        EF15.field_bytes(raw, "colour")


def test_blank_records_come_from_the_layouts() -> None:
    from ykt_card.layouts import EF17, blank_record
    assert EF16.encode(EF16.blank()) == b"\x00\x00" + b" " * 52 + b"\x00"     # anonymous: 00 then spaces
    assert EF17.encode(EF17.blank()) == bytes(60)
    for record_no, size in ((0x01, 128), (0x02, 128), (0x07, 112), (0x0D, 30), (0x0E, 128)):
        record = blank_record(record_no)
        assert record == bytes((0x27, record_no, size - 3, 0x01, 0x01, 0x00)) + bytes(size - 6)
    with pytest.raises(LayoutError, match="out of range 01..FE"):
        blank_record(0)


def test_adf_fci_encodes_the_bytes_a_card_holds_undecoded() -> None:
    """A card answers SELECT with whatever its EF15 holds, even bytes the EF15 layout refuses."""
    raw, fields = AdfFci.vector_bytes()[0]
    ef15 = EF15.vector_bytes()[0][0]
    assert AdfFci.encode({**fields, "ef15": ef15}) == raw
    bad = ef15[:12] + b"\xA1" + ef15[13:]
    assert AdfFci.encode({**fields, "ef15": bad}) == raw[:21 + 12] + b"\xA1" + raw[21 + 13:]
    with pytest.raises(LayoutError) as err:
        AdfFci.encode({**fields, "ef15": ef15[:29]})
    assert err.value.field == "ef15"


@pytest.mark.parametrize("cls", [c for c in STRUCT_LAYOUTS if c is not EF1AOther], ids=lambda c: c.name)
def test_the_generated_packer_gives_what_pack_gives(cls: type[StructLayout]) -> None:
    for raw, fields in cls.vector_bytes():
        values = [fields[name] if field.kind in ("uint", "amount") else raw[offset:offset + field.size]
                  for name, field, offset in cls.field_specs()]
        assert cls.packer()(*values) == cls.pack({n: v for (n, _, _), v in zip(cls.field_specs(), values)}) == raw
    assert cls.packer() is cls.packer()
