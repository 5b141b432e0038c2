"""CommandApdu: the four ISO 7816-4 cases, short and extended, and one exact message per fault."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.command import ApduError, CommandApdu

H = bytes.fromhex

# -- known commands of the reference (tunion.md §2, §4.2) -------------------------------------------
KNOWN = [
    # raw, (cla, ins, p1, p2), data, le, extended, case
    ("0084000004", (0x00, 0x84, 0x00, 0x00), "", 4, False, 2),
    ("00B0950000", (0x00, 0xB0, 0x95, 0x00), "", 256, False, 2),
    ("805C000204", (0x80, 0x5C, 0x00, 0x02), "", 4, False, 2),
    ("00A40400", (0x00, 0xA4, 0x04, 0x00), "", None, False, 1),
    ("00A4000002 8011", (0x00, 0xA4, 0x00, 0x00), "8011", None, False, 3),
    ("8072000004 0641DCD8", (0x80, 0x72, 0x00, 0x00), "0641DCD8", None, False, 3),
    ("00A4040008 A000000632010105 00", (0x00, 0xA4, 0x04, 0x00), "A000000632010105", 256, False, 4),
    ("805000020B 01 00001C37 000001000050 10", (0x80, 0x50, 0x00, 0x02), "0100001C37000001000050",
     16, False, 4),
    # extended forms (ISO 7816-4 §5.1)
    ("00B00000 000000", (0x00, 0xB0, 0x00, 0x00), "", 65536, True, 2),
    ("00B00000 000100", (0x00, 0xB0, 0x00, 0x00), "", 256, True, 2),
    ("00B00000 000101", (0x00, 0xB0, 0x00, 0x00), "", 257, True, 2),
    ("00D60000 000003 AABBCC", (0x00, 0xD6, 0x00, 0x00), "AABBCC", None, True, 3),
    ("80500102 000003 AABBCC 0000", (0x80, 0x50, 0x01, 0x02), "AABBCC", 65536, True, 4),
    ("80500102 000003 AABBCC 000F", (0x80, 0x50, 0x01, 0x02), "AABBCC", 15, True, 4),
]


@pytest.mark.parametrize("raw, header, data, le, extended, case", KNOWN)
def test_known_commands_parse_and_encode(raw, header, data, le, extended, case):
    raw = H(raw.replace(" ", ""))
    cmd = CommandApdu.parse(raw)
    assert (cmd.cla, cmd.ins, cmd.p1, cmd.p2) == header
    assert cmd.data == H(data)
    assert cmd.le == le
    assert cmd.extended is extended
    assert cmd.case == case
    assert cmd.to_bytes() == raw
    assert bytes(cmd) == raw
    assert cmd.hex() == raw.hex().upper()


def test_str_is_short_and_readable():
    cmd = CommandApdu.parse(H("805001020B01000000C81122334455660F"))
    assert str(cmd) == "80 50 01 02 Lc=0B 01000000C8112233445566 Le=0F"
    assert str(CommandApdu(0x00, 0xA4, 0x04, 0x00)) == "00 A4 04 00"
    assert str(CommandApdu(0x00, 0xB0, 0x95, 0x00, le=256)) == "00 B0 95 00 Le=00"
    assert str(CommandApdu(0x00, 0xB0, 0x00, 0x00, le=65536)) == "00 B0 00 00 Le=0000"
    assert str(CommandApdu(0x00, 0xD6, 0, 0, data=b"\x01" * 3, extended=True)) == \
        "00 D6 00 00 Lc=0003 010101"


def test_repr_shows_hex_fields():
    cmd = CommandApdu(0x00, 0xA4, 0x04, 0x00, H("A000000632010105"), 256)
    assert repr(cmd) == ("CommandApdu(cla=0x00, ins=0xA4, p1=0x04, p2=0x00, "
                         "data=bytes.fromhex('A000000632010105'), le=256, extended=False)")
    assert eval(repr(cmd)) == cmd


def test_extended_is_chosen_when_needed_and_dropped_for_case_1():
    assert CommandApdu(0, 0xD6, 0, 0, data=bytes(256)).extended is True
    assert CommandApdu(0, 0xB0, 0, 0, le=257).extended is True
    assert CommandApdu(0, 0xB0, 0, 0, le=256).extended is False
    assert CommandApdu(0, 0xD6, 0, 0, data=bytes(255), le=256).extended is False
    assert CommandApdu(0, 0x84, 0, 0, extended=True).extended is False
    assert CommandApdu(0, 0xB0, 0, 0, le=4, extended=True).to_bytes() == H("00B00000000004")


def test_data_accepts_bytearray_and_memoryview_and_stores_bytes():
    cmd = CommandApdu(0, 0xD6, 0, 0, data=bytearray(b"\x01\x02"))
    assert type(cmd.data) is bytes and cmd.data == b"\x01\x02"
    assert CommandApdu.parse(memoryview(H("0084000008"))).le == 8


# -- malformed raw APDUs: one exact message per class of fault -------------------------------------
MALFORMED = [
    ("", "header", "header too short: 0 bytes, CLA INS P1 P2 need 4"),
    ("00", "header", "header too short: 1 byte, CLA INS P1 P2 need 4"),
    ("00A404", "header", "header too short: 3 bytes, CLA INS P1 P2 need 4"),
    ("805001020B 01000000C811223344", "Lc", "Lc says 11 bytes, 9 follow"),
    ("00A4040002 01", "Lc", "Lc says 2 bytes, 1 follows"),
    ("00D6000002 AABBCCDD", "Le", "trailing bytes: Lc says 2 bytes and Le takes 1, 4 follow"),
    ("00A4040000 01", "Lc",
     "Lc zero in short form: after 00 an extended length needs 2 bytes, 1 follows"),
    ("00D60000 000000 AA", "Lc", "extended Lc is 0000 but 1 more byte follows"),
    ("00D60000 000000 AABB", "Lc", "extended Lc is 0000 but 2 more bytes follow"),
    ("00D60000 00012C" + "00" * 10, "Lc", "extended Lc says 300 bytes, 10 follow"),
    ("00D60000 000003 AABBCC 00", "Le",
     "extended Le mismatch: after an extended Lc, Le takes 2 bytes, 1 follows"),
    ("00D60000 000003 AABBCC 00000000", "Le",
     "trailing bytes: extended Lc says 3 bytes and Le takes 2, 7 follow"),
]


@pytest.mark.parametrize("raw, field, message", MALFORMED)
def test_malformed_apdu_names_the_field(raw, field, message):
    with pytest.raises(ApduError) as err:
        CommandApdu.parse(H(raw.replace(" ", "")))
    assert str(err.value) == message
    assert err.value.field == field


def test_parse_refuses_non_bytes_with_type_error():
    with pytest.raises(TypeError, match="a command APDU is bytes, not str"):
        CommandApdu.parse("00A40400")  # type: ignore[arg-type]


BAD_FIELDS = [
    (dict(cla=256, ins=0, p1=0, p2=0), "CLA", "CLA 256 out of range 0..255"),
    (dict(cla=0, ins=-1, p1=0, p2=0), "INS", "INS -1 out of range 0..255"),
    (dict(cla=0, ins=0, p1=0x100, p2=0), "P1", "P1 256 out of range 0..255"),
    (dict(cla=0, ins=0, p1=0, p2=300), "P2", "P2 300 out of range 0..255"),
    (dict(cla="00", ins=0, p1=0, p2=0), "CLA", "CLA must be an int, not str"),
    (dict(cla=True, ins=0, p1=0, p2=0), "CLA", "CLA must be an int, not bool"),
    (dict(cla=0, ins=0, p1=0, p2=0, data="AA"), "data", "data must be bytes, not str"),
    (dict(cla=0, ins=0, p1=0, p2=0, data=bytes(65536)), "data",
     "data is 65536 bytes, at most 65535 fit in Lc"),
    (dict(cla=0, ins=0, p1=0, p2=0, le=0), "Le", "Le 0 out of range 1..65536"),
    (dict(cla=0, ins=0, p1=0, p2=0, le=65537), "Le", "Le 65537 out of range 1..65536"),
    (dict(cla=0, ins=0, p1=0, p2=0, le="04"), "Le", "Le must be an int or None, not str"),
]


@pytest.mark.parametrize("fields, field, message", BAD_FIELDS)
def test_construction_validates_field_ranges(fields, field, message):
    with pytest.raises(ApduError) as err:
        CommandApdu(**fields)
    assert str(err.value) == message
    assert err.value.field == field


def test_apdu_error_is_a_value_error():
    assert issubclass(ApduError, ValueError)


# -- properties --------------------------------------------------------------------------------------
byte = st.integers(0, 255)
small_data = st.binary(max_size=300)
large_data = st.tuples(st.integers(256, 65535), byte).map(lambda t: bytes([t[1]]) * t[0])
les = st.one_of(st.none(), st.integers(1, 256), st.integers(1, 65536), st.sampled_from([256, 65536]))
commands = st.builds(CommandApdu, byte, byte, byte, byte,
                     st.one_of(small_data, large_data, st.just(b"")), les, st.booleans())


@given(commands)
def test_round_trip_object_bytes_object(cmd):
    raw = cmd.to_bytes()
    assert CommandApdu.parse(raw) == cmd
    assert CommandApdu.parse(raw).to_bytes() == raw


@given(commands)
def test_encoded_length_follows_iso_7816_4(cmd):
    nc = len(cmd.data)
    lc_len = 0 if nc == 0 else (3 if cmd.extended else 1)
    if cmd.le is None:
        le_len = 0
    elif cmd.extended:
        le_len = 2 if nc else 3
    else:
        le_len = 1
    assert len(cmd.to_bytes()) == 4 + lc_len + nc + le_len
    assert cmd.case == (1 + (cmd.le is not None) + 2 * (nc > 0))
    if cmd.case == 1:
        assert cmd.extended is False
    assert cmd.extended or (nc <= 255 and (cmd.le or 0) <= 256)


@given(st.binary(max_size=24))
def test_any_bytes_either_round_trip_exactly_or_raise_apdu_error(raw):
    try:
        cmd = CommandApdu.parse(raw)
    except ApduError as err:
        assert err.field in {"header", "Lc", "Le"}
    else:
        assert cmd.to_bytes() == raw


@given(st.binary(min_size=4, max_size=4), st.integers(1, 255), st.binary(max_size=260))
def test_short_lc_against_any_body(header, lc, body):
    raw = header + bytes([lc]) + body
    if not body:  # header + one byte is case 2: that byte is Le
        assert CommandApdu.parse(raw).le == lc
    elif len(body) in (lc, lc + 1):
        assert CommandApdu.parse(raw).data == body[:lc]
    else:
        with pytest.raises(ApduError):
            CommandApdu.parse(raw)
