"""BER-TLV: the reference PPSE and FCI (tunion.md §1.2) as vectors, exact errors, random trees."""
from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.tlv import (TAG_NAMES, Tlv, TlvError, build, dump, encode_length, find, is_constructed,
                      parse, parse_one, tag_bytes)

H = bytes.fromhex

AID_EP = H("A000000632010105")
AID_CASH = H("A000000632010106")
EF15_BEIJING = H("01011000FFFFFFFF" "02" "01" "03105170010170907984" "20190806" "20401231" "0000")

# tunion.md §1.2, byte for byte (the reference's "6F LL" is 49: 16 bytes of 84 + 57 of A5)
PPSE = H(
    "6F49"
    "840E325041592E5359532E4444463031"
    "A537" "BF0C34"
    "6119" "4F08A000000632010106" "500A4D4F545F545F43415348" "870101"
    "6117" "4F08A000000632010105" "50084D4F545F545F4550" "870102"
)
FCI_EP = H("6F31" "8408A000000632010105" "A525" "9F080102" "9F0C1E") + EF15_BEIJING

PPSE_DUMP = """\
6F 49  FCI template
  84 0E  DF name: 325041592E5359532E4444463031 "2PAY.SYS.DDF01"
  A5 37  FCI proprietary template
    BF0C 34  FCI issuer discretionary data
      61 19  application template
        4F 08  application identifier (AID): A000000632010106
        50 0A  application label: 4D4F545F545F43415348 "MOT_T_CASH"
        87 01  application priority indicator: 01
      61 17  application template
        4F 08  application identifier (AID): A000000632010105
        50 08  application label: 4D4F545F545F4550 "MOT_T_EP"
        87 01  application priority indicator: 02"""

FCI_DUMP = """\
6F 31  FCI template
  84 08  DF name: A000000632010105
  A5 25  FCI proprietary template
    9F08 01  application version number: 02
    9F0C 1E  issuer FCI discretionary data: 01011000FFFFFFFF02010310517001017090798420190806204012310000"""


def test_ppse_builds_from_parts_to_the_reference_bytes():
    entry = lambda aid, label, prio: build(0x61, [build(0x4F, aid), build(0x50, label),  # noqa: E731
                                                  build(0x87, bytes([prio]))])
    built = build(0x6F, [build(0x84, b"2PAY.SYS.DDF01"),
                         build(0xA5, [build(0xBF0C, [entry(AID_CASH, b"MOT_T_CASH", 1),
                                                     entry(AID_EP, b"MOT_T_EP", 2)])])])
    assert built == PPSE


def test_ppse_parses_into_the_directory():
    fci = parse_one(PPSE)
    assert fci.tag == 0x6F and fci.constructed
    assert fci.find(0x84).value == b"2PAY.SYS.DDF01"
    entries = fci.find(0xBF0C).children
    assert [(e.find(0x4F).value, e.find(0x50).value, e.find(0x87).value) for e in entries] == [
        (AID_CASH, b"MOT_T_CASH", b"\x01"), (AID_EP, b"MOT_T_EP", b"\x02")]
    assert [t.value for t in fci.find_all(0x4F)] == [AID_CASH, AID_EP]
    assert fci.encode() == PPSE


def test_select_aid_fci_parses():
    fci = parse_one(FCI_EP)
    assert fci.find(0x84).value == AID_EP
    assert fci.find(0x9F08).value == b"\x02"
    assert fci.find(0x9F0C).value == EF15_BEIJING
    assert find(parse(FCI_EP), 0x9F0C) == fci.find(0x9F0C)
    assert fci.find(0x50) is None
    assert bytes(fci) == FCI_EP


def test_reference_dumps_are_legible():
    assert dump(PPSE) == PPSE_DUMP
    assert dump(FCI_EP) == FCI_DUMP
    assert dump(parse(PPSE)) == PPSE_DUMP
    assert dump(parse_one(FCI_EP)) == FCI_DUMP


def test_dump_names_table_is_replaceable():
    assert dump(FCI_EP, names={}).splitlines()[:2] == ["6F 31", "  84 08: A000000632010105"]
    custom = dump(H("DF6102ABCD"), names={**TAG_NAMES, 0xDF61: "city data"})
    assert custom == "DF61 02  city data: ABCD"
    assert dump(H("5F2D027A68")) == '5F2D 02  language preference: 7A68 "zh"'
    assert dump(H("9F0800")) == "9F08 00  application version number:"
    assert dump(build(0x70, [build(0x5A, bytes(200))])).splitlines()[0] == "70 81 CB  record template"


def test_names_cover_the_reference_tags():
    for tag in (0x6F, 0x84, 0xA5, 0xBF0C, 0x61, 0x4F, 0x50, 0x87, 0x9F08, 0x9F0C, 0x88, 0x5F2D,
                0x9F11, 0x9F12):
        assert TAG_NAMES[tag]


def test_padding_is_skipped_and_long_forms_accepted():
    assert parse(H("00 840100 FF FF".replace(" ", ""))) == [Tlv(0x84, b"\x00")]
    assert parse(H("5A8105") + bytes(5)) == [Tlv(0x5A, bytes(5))]  # non-minimal length is legal BER
    assert parse(H("5A820100") + bytes(256))[0].value == bytes(256)
    assert parse(H("5A83000001AA")) == [Tlv(0x5A, b"\xAA")]
    assert parse(b"") == []


def test_lengths_encode_minimally():
    assert [encode_length(n).hex().upper() for n in (0, 127, 128, 255, 256, 65535, 65536)] == [
        "00", "7F", "8180", "81FF", "820100", "82FFFF", "83010000"]
    with pytest.raises(TlvError, match=r"^length 16777216 out of range 0..16777215$"):
        encode_length(1 << 24)


def test_tlv_repr_is_hex():
    assert repr(parse_one(H("A5039F0800"))) == "Tlv(0xA5, children=[Tlv(0x9F08, bytes.fromhex(''))])"


def test_constructed_tlv_from_value_gets_children_and_vice_versa():
    from_value = Tlv(0xA5, H("9F080102"))
    from_children = Tlv(0xA5, children=[Tlv(0x9F08, b"\x02")])
    assert from_value == from_children
    assert from_value.children == [Tlv(0x9F08, b"\x02")]
    assert from_children.value == H("9F080102")
    assert is_constructed(0xA5) and not is_constructed(0x84) and is_constructed(0xBF0C)


# -- malformed input: offset and reason --------------------------------------------------------------
PARSE_ERRORS = [
    ("84", 1, "tag 84: length missing at end of the data"),
    ("840E3250", 1, "tag 84: length 14 runs past the end of the data (2 bytes left)"),
    ("6F058408A0000006", 3, "tag 84: length 8 runs past the end of tag 6F (3 bytes left)"),
    ("9F", 0, "tag 9F truncated: subsequent tag byte missing at end of the data"),
    ("6F029F81", 2, "tag 9F81 truncated: subsequent tag byte missing at end of tag 6F"),
    ("9F800100", 0, "tag 9F80: first subsequent byte 80 has only leading zero bits"),
    ("9F81810100", 0, "tag 9F818101 longer than 3 bytes"),
    ("6F80", 1, "tag 6F: indefinite length (80) not allowed"),
    ("5A840000000100", 1, "tag 5A: length field 84 not supported (81..83 only)"),
    ("5A8201", 1, "tag 5A: length field 82 needs 2 more bytes, 1 left in the data"),
    ("840101 8402", 4, "tag 84: length 2 runs past the end of the data (0 bytes left)"),
]


@pytest.mark.parametrize("data, offset, reason", PARSE_ERRORS)
def test_parse_errors_give_offset_and_reason(data, offset, reason):
    with pytest.raises(TlvError) as err:
        parse(H(data.replace(" ", "")))
    assert (err.value.offset, err.value.reason) == (offset, reason)
    assert str(err.value) == f"offset {offset}: {reason}"
    assert isinstance(err.value, ValueError)


def test_nesting_depth_is_bounded():
    data = b"\x84\x00"
    for _ in range(40):
        data = bytes([0xA1, len(data)]) + data
    with pytest.raises(TlvError, match=r"^offset 66: nesting deeper than 32 levels$"):
        parse(data)


def test_parse_one_wants_exactly_one():
    with pytest.raises(TlvError, match=r"^offset 0: expected exactly one data object, found 2$"):
        parse_one(H("84008400"))


def test_parse_refuses_non_bytes():
    with pytest.raises(TypeError, match="BER-TLV data is bytes, not str"):
        parse("6F00")  # type: ignore[arg-type]


TAG_ERRORS = [
    (0, "tag 0 is not a positive int"),
    (0x1F, "tag 1F: low 5 bits 1F announce more tag bytes"),
    (0x9F, "tag 9F: low 5 bits 1F announce more tag bytes"),
    (0x0108, "tag 0108: first byte low 5 bits must be 1F for a multi-byte tag"),
    (0x9F8001, "tag 9F8001: first subsequent byte 80 has only leading zero bits"),
    (0x9F0101, "tag 9F0101: byte 01 ends the tag early (bit 8 clear)"),
    (0x9F81, "tag 9F81: last byte 81 has bit 8 set (tag continues)"),
    (0x9F818101, "tag 9F818101 longer than 3 bytes"),
    (0xFF01, "tag FF01: first byte FF is padding, not a tag"),
]


@pytest.mark.parametrize("tag, message", TAG_ERRORS)
def test_bad_tags_are_refused(tag, message):
    with pytest.raises(TlvError, match=f"^{re.escape(message)}$"):
        tag_bytes(tag)
    with pytest.raises(TlvError, match=f"^{re.escape(message)}$"):
        build(tag, b"")


def test_build_errors():
    with pytest.raises(TlvError, match=r"^tag 84 is primitive: it cannot hold children$"):
        build(0x84, [Tlv(0x4F, b"")])
    with pytest.raises(TlvError, match=r"^tag 84 is primitive: it cannot hold children$"):
        Tlv(0x84, children=[])
    with pytest.raises(TlvError, match=re.escape(
            "tag A5 is constructed but its value is not BER-TLV (offset 0: tag 9F truncated: "
            "subsequent tag byte missing at end of the data)")):
        build(0xA5, b"\x9F")
    with pytest.raises(TlvError, match=r"^tag A5: child 'x' is neither a Tlv nor encoded bytes$"):
        build(0xA5, ["x"])  # type: ignore[list-item]
    with pytest.raises(TlvError, match=r"^tag 84: value must be bytes, not str$"):
        Tlv(0x84, "AA")  # type: ignore[arg-type]


# -- random trees ------------------------------------------------------------------------------------
def tags(constructed: bool) -> st.SearchStrategy[int]:
    flag = 0x20 if constructed else 0x00
    cls = st.integers(0, 3).map(lambda c: (c << 6) | flag)
    single = st.tuples(cls, st.integers(0, 30)).map(lambda t: t[0] | t[1]).filter(lambda b: b != 0)
    two = st.tuples(cls, st.integers(0, 0x7F)).map(lambda t: ((t[0] | 0x1F) << 8) | t[1])
    three = st.tuples(cls, st.integers(0x81, 0xFF), st.integers(0, 0x7F)).map(
        lambda t: ((t[0] | 0x1F) << 16) | (t[1] << 8) | t[2])
    first_byte = lambda t: t.to_bytes((t.bit_length() + 7) // 8, "big")[0]  # noqa: E731
    return st.one_of(single, two, three).filter(lambda t: first_byte(t) != 0xFF)  # FF = padding


values = st.one_of(st.binary(max_size=40), st.tuples(st.integers(128, 300), st.integers(0, 255)).map(
    lambda t: bytes([t[1]]) * t[0]))
leaves = st.builds(Tlv, tags(False), values)
trees = st.recursive(leaves, lambda kids: st.builds(lambda tag, cs: Tlv(tag, children=cs),
                                                     tags(True), st.lists(kids, max_size=4)),
                     max_leaves=20)


@given(trees)
def test_tree_round_trip(tree):
    encoded = tree.encode()
    assert parse(encoded) == [tree]
    assert parse_one(encoded).encode() == encoded
    if tree.children is not None:
        assert build(tree.tag, tree.children) == encoded
    else:
        assert build(tree.tag, tree.value) == encoded


@given(trees)
def test_dump_has_one_line_per_object_and_find_is_depth_first(tree):
    nodes = list(tree.walk())
    assert len(dump(tree).splitlines()) == len(nodes)
    for node in nodes:
        assert tree.find(node.tag) is next(n for n in nodes if n.tag == node.tag)


@given(st.binary(max_size=64))
def test_any_bytes_parse_or_raise_tlv_error(data):
    try:
        tlvs = parse(data)
    except TlvError as err:
        assert err.offset is not None and 0 <= err.offset <= len(data)
    else:
        stripped = b"".join(t.encode() for t in tlvs)
        assert len(stripped) <= len(data)
        assert parse(stripped) == tlvs
