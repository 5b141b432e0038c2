"""ISO/IEC 14443-3/-4 facts: CRC_A, ATS, timing, pseudo-ATR."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu.iso14443 import (
    Ats,
    check_crc_a,
    crc_a,
    crc_a_value,
    frame_size,
    frame_size_code,
    fwt_us,
    pseudo_atr,
    rats,
    sfgt_us,
    with_crc_a,
)

# --- CRC_A --------------------------------------------------------------------------------------------

# (frame, CRC_A as transmitted): ISO/IEC 14443-3 Annex B examples, and the RATS / HLTA every
# Type A reader sends (E0 80 31 73, 50 00 57 CD).
CRC_VECTORS = [
    ("0000", "A01E"),
    ("1234", "26CF"),
    ("E080", "3173"),
    ("5000", "57CD"),
]


@pytest.mark.parametrize(("frame", "crc"), CRC_VECTORS)
def test_crc_a_known_answers(frame: str, crc: str) -> None:
    assert crc_a(bytes.fromhex(frame)) == bytes.fromhex(crc)
    assert check_crc_a(bytes.fromhex(frame + crc))


def test_crc_a_catalogue_check_value() -> None:
    # CRC-16/ISO-IEC-14443-3-A in the CRC catalogue: check("123456789") = 0xBF05.
    assert crc_a_value(b"123456789") == 0xBF05


@given(st.binary(min_size=1, max_size=64), st.integers(0, 7), st.integers(0, 1 << 16))
def test_crc_a_detects_any_single_bit_flip(frame: bytes, bit: int, pos_seed: int) -> None:
    sent = bytearray(with_crc_a(frame))
    assert check_crc_a(bytes(sent))
    sent[pos_seed % len(sent)] ^= 1 << bit
    assert not check_crc_a(bytes(sent))


# --- ATS ----------------------------------------------------------------------------------------------

# The two real T-Union ATS of reference section 1.1 (Shandong cards, ZB dumps).
ATS_1 = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
ATS_2 = bytes.fromhex("12 78 33 B0 02 4D 54 00 9D 00 42 86 9B 19 82 2C 87 A1")


def test_ats_reference_card_1() -> None:
    ats = Ats.parse(ATS_1)
    assert (ats.fsci, ats.ta, ats.tb, ats.tc) == (8, 0x80, 0x80, 0x02)
    assert ats.historical == bytes.fromhex("4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
    assert ats.fsc == 256
    assert (ats.fwi, ats.sfgi) == (8, 0)
    assert ats.fwt_us == pytest.approx(77_328.6, abs=0.1)  # (4096 / 13.56 MHz) · 2^8
    assert ats.sfgt_us == 0.0
    assert ats.cid_supported and not ats.nad_supported
    assert ats.same_divisor_required
    assert ats.divisors_picc_to_pcd == () and ats.divisors_pcd_to_picc == ()
    assert ats.to_bytes() == ATS_1


def test_ats_reference_card_2() -> None:
    ats = Ats.parse(ATS_2)
    assert (ats.fsci, ats.ta, ats.tb, ats.tc) == (8, 0x33, 0xB0, 0x02)
    assert (ats.fwi, ats.sfgi) == (11, 0)
    assert ats.fwt_us == pytest.approx(618_628.9, abs=0.1)  # (4096 / 13.56 MHz) · 2^11
    assert ats.divisors_picc_to_pcd == (2, 4) and ats.divisors_pcd_to_picc == (2, 4)
    assert not ats.same_divisor_required
    assert ats.to_bytes() == ATS_2


def test_ats_defaults_when_bytes_are_absent() -> None:
    minimal = Ats.parse(b"\x01")
    assert not minimal.has_t0 and minimal.fsc == 32 and minimal.fwi == 4 and minimal.sfgi == 0
    assert minimal.to_bytes() == b"\x01"
    only_t0 = Ats.parse(b"\x02\x05")
    assert only_t0.fsc == 64 and only_t0.tb is None and only_t0.fwt_us == pytest.approx(4_833.0, abs=0.1)
    assert only_t0.to_bytes() == b"\x02\x05"


@pytest.mark.parametrize(("data", "field"), [
    (b"", "TL"),
    (bytes.fromhex("05 78 80"), "TL"),
    (bytes.fromhex("02 88"), "T0"),
    (bytes.fromhex("03 70 80"), "TB(1)"),
])
def test_ats_parse_errors_name_the_field(data: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=f"ATS {field.replace('(', '[(]').replace(')', '[)]')}"):
        Ats.parse(data)


def test_ats_build_refuses_bad_fields() -> None:
    with pytest.raises(ValueError, match="FSCI"):
        Ats(fsci=16)
    with pytest.raises(ValueError, match="TA"):
        Ats(ta=256)
    with pytest.raises(ValueError, match="T0"):
        Ats(has_t0=False, historical=b"\x01")


@given(
    fsci=st.integers(0, 15),
    ta=st.none() | st.integers(0, 255),
    tb=st.none() | st.integers(0, 255),
    tc=st.none() | st.integers(0, 255),
    historical=st.binary(max_size=40),
)
def test_ats_round_trip(fsci: int, ta: int | None, tb: int | None, tc: int | None,
                        historical: bytes) -> None:
    ats = Ats(fsci=fsci, ta=ta, tb=tb, tc=tc, historical=historical)
    assert Ats.parse(ats.to_bytes()) == ats


# --- frame sizes and timing -----------------------------------------------------------------------------

def test_frame_sizes() -> None:
    assert [frame_size(code) for code in range(16)] == [
        16, 24, 32, 40, 48, 64, 96, 128, 256, 512, 1024, 2048, 4096, 4096, 4096, 4096]
    assert frame_size_code(256) == 8 and frame_size_code(300) == 8 and frame_size_code(16) == 0
    with pytest.raises(ValueError, match="frame size"):
        frame_size_code(15)


def test_fwt_and_sfgt() -> None:
    assert fwt_us(0) == pytest.approx(302.065, abs=0.001)  # 256·16 / 13.56 MHz
    assert fwt_us(14) == pytest.approx(4_949_031.3, abs=0.1)  # FWTmax, about 4949 ms
    assert fwt_us(15) == fwt_us(4)  # RFU reads as 4
    assert sfgt_us(0) == 0.0 and sfgt_us(15) == 0.0
    assert sfgt_us(1) == pytest.approx(604.13, abs=0.01)
    with pytest.raises(ValueError, match="FWI"):
        fwt_us(16)


def test_rats() -> None:
    assert rats() == bytes.fromhex("E0 80")
    assert with_crc_a(rats(5, 1)) == bytes.fromhex("E0 51") + crc_a(bytes.fromhex("E0 51"))
    with pytest.raises(ValueError, match="CID"):
        rats(8, 15)


# --- pseudo-ATR (PC/SC Part 3 §3.1.3.2.3) ----------------------------------------------------------------

@pytest.mark.parametrize(("historical", "atr"), [
    # Published examples: ACS AET62 reference manual §4.1.2 (DESFire; ST19XRC8E, a Type B card whose
    # ATQB bytes stand in the historical bytes), and the well-known DESFire EV1 ATR.
    ("06 75 77 81 02 80", "3B 86 80 01 06 75 77 81 02 80 00"),
    ("50 12 23 45 56 12 53 54 4E 33 81 C3", "3B 8C 80 01 50 12 23 45 56 12 53 54 4E 33 81 C3 55"),
    ("80", "3B 81 80 01 80 80"),
    ("", "3B 80 80 01 01"),
])
def test_pseudo_atr_published_examples(historical: str, atr: str) -> None:
    assert pseudo_atr(bytes.fromhex(historical)) == bytes.fromhex(atr)


def test_pseudo_atr_of_the_reference_t_union_card() -> None:
    atr = pseudo_atr(Ats.parse(ATS_1).historical)
    assert atr[:4] == bytes.fromhex("3B 8D 80 01")
    assert atr[4:-1] == Ats.parse(ATS_1).historical
    tck = 0
    for byte in atr[1:]:
        tck ^= byte
    assert tck == 0  # T0..TCK XOR to zero: the ISO 7816-3 check


def test_pseudo_atr_refuses_16_historical_bytes() -> None:
    with pytest.raises(ValueError, match="historical bytes"):
        pseudo_atr(bytes(16))
