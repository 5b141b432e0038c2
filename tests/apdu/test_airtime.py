"""The air-time model against hand computations from ISO/IEC 14443-3 (frames, FDT, activation), chaining by FSC,
S(WTX) beyond FWT, and the T=0 link of ISO/IEC 7816-3."""
from __future__ import annotations

import pytest

from apdu.airtime import (AirModel, Timeline, etu_us, fdt_pcd_to_picc_us, pcd_frame, picc_frame, short_frame)
from apdu.iso14443 import Ats, with_crc_a
from apdu.t0time import T0Link

FC = 13_560_000
REFERENCE_ATS = Ats.parse(bytes.fromhex("12788080024D54009D0040869B19705D1401"))


def cycles(us: float) -> float:
    """µs back to carrier cycles, the unit the standard counts in."""
    return us * FC / 1e6


def test_reqa_is_a_short_frame_of_ten_bit_periods():
    """REQA = 26 sent as 7 bits (short frame, 14443-3 §6.2.3.1): SOF 1 + 7 data bits + EOF 2 (logic 0 then
    sequence Y) = 10 bit periods of 128/fc = 1280/fc = 94.395 µs. Its last bit, b7 of 0100110, is 0, so the PICC
    answers no sooner than FDT = (9·128 + 20)/fc = 1172/fc = 86.431 µs (§6.2.1.1)."""
    reqa = short_frame(0x26)
    assert reqa.bit_periods == 10
    assert cycles(reqa.duration_us) == pytest.approx(1280)
    assert reqa.last_bit == 0
    assert cycles(fdt_pcd_to_picc_us(reqa.last_bit)) == pytest.approx(1172)
    assert short_frame(0x52).last_bit == 1  # WUPA 1010010: b7 = 1, FDT = 1236/fc
    assert cycles(fdt_pcd_to_picc_us(short_frame(0x52).last_bit)) == pytest.approx(1236)


def test_standard_frames_cost_nine_bits_per_byte_plus_sof_and_eof():
    """ATQA 04 00 from the PICC: SOF 1 + 2 × (8 + parity) + EOF 1 (sequence F) = 20 bit periods = 2560/fc.
    SELECT CL1 for UID 01 02 03 04 from the PCD: 93 70 01 02 03 04 BCC 04 + CRC_A = 9 bytes:
    SOF 1 + 9 × 9 + EOF 2 = 84 bit periods = 10752/fc = 792.920 µs.
    SELECT AID A000000632010105 as an I-block: PCB 02 + 13 APDU bytes + CRC_A = 16 bytes: 1 + 144 + 2 = 147 bit
    periods: 18816/fc at 106 kbit/s (1387.6 µs), 147 × 32/fc = 4704/fc at 424 kbit/s (346.9 µs)."""
    atqa = picc_frame(b"\x04\x00")
    assert atqa.bit_periods == 20 and cycles(atqa.duration_us) == pytest.approx(2560)
    select = pcd_frame(with_crc_a(bytes.fromhex("93 70 01 02 03 04 04")))
    assert len(select.data) == 9 and select.bit_periods == 84
    assert select.duration_us == pytest.approx(792.920, abs=1e-3)
    block = with_crc_a(b"\x02" + bytes.fromhex("00A4040008A000000632010105"))
    assert pcd_frame(block).bit_periods == 147
    assert cycles(pcd_frame(block).duration_us) == pytest.approx(18816)
    assert cycles(pcd_frame(block, 424).duration_us) == pytest.approx(4704)
    assert cycles(etu_us(212)) == pytest.approx(64) and cycles(etu_us(848)) == pytest.approx(16)


def test_fdt_follows_the_parity_of_the_last_byte():
    """The last bit of a standard frame is the odd parity bit of its last byte: 00 has no 1s, parity 1, FDT
    1236/fc; 01 has one, parity 0, FDT 1172/fc (14443-3 §6.2.1.1, n = 9)."""
    assert pcd_frame(b"\x00").last_bit == 1 and pcd_frame(b"\x01").last_bit == 0
    assert cycles(fdt_pcd_to_picc_us(1)) == pytest.approx(9 * 128 + 84)


def test_bad_bit_rate_and_uid_length_are_refused():
    with pytest.raises(ValueError, match="bit rate: 100 kbit/s"):
        pcd_frame(b"\x00", 100)
    with pytest.raises(ValueError, match="UID length: 5 bytes"):
        AirModel(REFERENCE_ATS, uid_length=5)


def _expected_activation_cycles(frames: list[tuple[str, bytes, bool]]) -> float:
    """The same sum done independently: per frame SOF + 9 per byte (7 for the short frame) + EOF (2 PCD, 1 PICC),
    × 128; after a PCD frame the FDT of its last bit; after a PICC frame 1172."""
    total = 0.0
    for sender, data, short in frames:
        if sender == "PCD":
            total += (1 + (7 if short else 9 * len(data)) + 2) * 128
            last = (data[0] >> 6) & 1 if short else 1 - bin(data[-1]).count("1") % 2
            total += 9 * 128 + (84 if last else 20)
        else:
            total += (1 + 9 * len(data) + 1) * 128 + 1172
    return total


@pytest.mark.parametrize("uid_length, levels", [(4, 1), (7, 2)])
def test_activation_has_one_cascade_level_per_uid_size(uid_length, levels):
    t = Timeline()
    AirModel(REFERENCE_ATS, uid_length=uid_length).activation(t)
    labels = [s.label for s in t.segments if s.frame is not None]
    expected = ["REQA", "ATQA"]
    for level in range(1, levels + 1):
        expected += [f"ANTICOLLISION CL{level}", f"UID CL{level}", f"SELECT CL{level}", "SAK"]
    assert labels == expected + ["RATS", "ATS"]
    frames = [(s.frame.sender, s.frame.data, s.frame.short) for s in t.segments if s.frame is not None]
    assert cycles(t.cursor) == pytest.approx(_expected_activation_cycles(frames))
    uid_frames = [data for sender, data, _ in frames if sender == "PICC" and len(data) == 5]
    assert len(uid_frames) == levels
    if levels == 2:
        assert uid_frames[0][0] == 0x88  # the cascade tag opens the first level of a double-size UID


def test_pps_at_a_higher_bit_rate():
    t = Timeline()
    AirModel(REFERENCE_ATS, kbps=424).activation(t)
    labels = [s.label for s in t.segments if s.frame is not None]
    assert labels[-2:] == ["PPS", "PPS response"]
    pps = [s.frame for s in t.segments if s.label == "PPS"][0]
    assert pps.data[:3] == bytes([0xD0, 0x11, 0x0A]) and pps.kbps == 106  # DSI = DRI = 2 (fc/32)


def test_chaining_splits_by_fsc_and_each_part_is_acknowledged():
    """FSCI 0: FSC 16 bytes, so 13 INF bytes per I-block (PCB + INF + CRC_A): a 40-byte command goes as 13, 13, 13
    and 1 bytes, the first three chained (PCB 12/13) and each answered R(ACK) (PCB A2/A3)."""
    ats = Ats(fsci=0, tb=0x80)
    model = AirModel(ats)
    t = Timeline()
    capdu = bytes([0x00, 0xD6, 0x00, 0x00, 35]) + bytes(35)
    model.exchange(t, capdu, b"\x90\x00", 0.0, "UPDATE")
    frames = [s.frame for s in t.segments if s.frame is not None]
    pcbs = [f.data[0] for f in frames]
    assert pcbs == [0x12, 0xA2, 0x13, 0xA3, 0x12, 0xA2, 0x03, 0x03]
    assert [len(f.data) for f in frames if f.sender == "PCD"] == [16, 16, 16, 4]
    assert [f.sender for f in frames] == ["PCD", "PICC"] * 4


def test_wtx_appears_when_the_card_needs_longer_than_fwt():
    """FWI 4: FWT = 256·16/fc · 2^4 = 4.833 ms. A card working 1 ms answers within FWT; one working 20 ms asks
    for S(WTX) (WTXM = ceil(20 / 4.833) = 5) and the reader answers it before the response comes."""
    ats = Ats(fsci=8, tb=0x40)
    assert ats.fwt_us == pytest.approx(4833.0, abs=1)
    quick, slow = Timeline(), Timeline()
    assert AirModel(ats).exchange(quick, b"\x80\x54\x01\x00\x00", b"\x90\x00", 1000.0, "DEBIT") == 0
    assert AirModel(ats).exchange(slow, b"\x80\x54\x01\x00\x00", b"\x90\x00", 20000.0, "DEBIT") == 1
    wtx = [s for s in slow.segments if s.label.startswith("S(WTX")]
    assert [(s.lane, s.frame.data[:2]) for s in wtx] == [("card", b"\xF2\x05"), ("reader", b"\xF2\x05")]
    assert slow.cursor > quick.cursor + 19000


def test_deselect_is_one_round():
    t = Timeline()
    AirModel(REFERENCE_ATS).deselect(t)
    assert [(s.lane, s.frame.data[0]) for s in t.segments if s.frame is not None] == [("reader", 0xC2), ("card", 0xC2)]


def test_t0_link_counts_characters_procedure_bytes_and_turnarounds():
    """9600 bit/s (3.5712 MHz, F 372, D 1): one etu = 104.17 µs. PSAM CREDIT FOR PURCHASE 80 72 00 00 04 + 4
    bytes, answered 90 00 (case 3): header 5 + INS procedure byte 1 + data 4 + SW 2 = 12 characters of 12 etu,
    and three changes of direction, 4 etu each beyond a character (16 etu apart): 156 etu = 16.25 ms.
    Case 4 (data both ways) adds GET RESPONSE: 5 + 1 + data + 2 more characters and two more turnarounds."""
    link = T0Link()
    assert link.baud == pytest.approx(9600)
    assert link.exchange_us(bytes.fromhex("8072000004B476E0C4"), b"\x90\x00") == pytest.approx(16250)
    case4 = link.exchange_us(bytes.fromhex("80FA050008") + bytes(8), bytes(8) + b"\x90\x00")
    assert case4 == pytest.approx(((5 + 1 + 8 + 2) + (5 + 1 + 8 + 2)) * 12 * 1e6 / 9600 + 5 * 4 * 1e6 / 9600)
