"""ISO/IEC 14443-4 block protocol: the codec, then the PCD and PICC engines rule by rule as exact frame tables.

A PCD table row is (what the PICC sent, or None when nothing valid came within FWT; what the PCD does).
A PICC table row is (what the PCD sent; what the PICC does). "send XX" = the frame to send, "deliver XX" =
a whole APDU, "silent" = no answer. Frames are written without CRC_A unless the test says otherwise.
The two engines meeting through a lossy channel are in test_air.py.
"""
from __future__ import annotations

import pytest

from apdu.iso14443 import Ats, check_crc_a, fwt_us, with_crc_a
from apdu.isodep import (
    Block,
    BlockType,
    Deliver,
    Deselected,
    IsoDepError,
    Pcb,
    PcdEngine,
    PiccEngine,
    RetryLimitExceeded,
    SCommand,
    Send,
    i_block,
    r_block,
    s_deselect,
    s_wtx,
)
from apdu.reader import ReaderError

#: ATS of a real transit card: FSCI 8 (256), TA 80, TB 80 (FWI 8), TC 02 (CID supported).
CARD_ATS = Ats.parse(bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01"))
#: FSCI 0: the card takes frames of 16 bytes at most (13 INF bytes), so commands arrive chained.
SMALL_FSC_ATS = Ats.parse(bytes.fromhex("05 70 80 80 02"))
#: FSCI 2 (32 bytes), no TA(1), TC(1) 02.
NO_TA_ATS = Ats.parse(bytes.fromhex("06 62 80 02 41 42"))


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def show(step: Send | Deliver | Deselected | None) -> str:
    if step is None:
        return "silent"
    if isinstance(step, Send):
        return f"send {step.frame.hex().upper()}"
    if isinstance(step, Deliver):
        return f"deliver {step.apdu.hex().upper()}"
    return "deselected" if step.acknowledged else "gave-up"


def expect(text: str) -> str:
    verb, _, frame = text.partition(" ")
    return f"{verb} {h(frame).hex().upper()}" if frame else verb


def pcd_table(pcd: PcdEngine, rows: list[tuple[str | None, str]]) -> None:
    for received, expected in rows:
        step = pcd.receive(None if received is None else h(received))
        assert show(step) == expect(expected), f"PCD given {received}"


def picc_table(picc: PiccEngine, rows: list[tuple[str, str]]) -> None:
    for received, expected in rows:
        step = picc.receive(h(received))
        assert show(step) == expect(expected), f"PICC given {received}"


def deliver_and_respond(picc: PiccEngine, frame: str, rapdu: str) -> str:
    step = picc.receive(h(frame))
    assert isinstance(step, Deliver)
    return picc.respond(h(rapdu)).hex().upper()


# --- PCB and blocks -----------------------------------------------------------------------------------

PCB_TABLE = [
    (0x02, Pcb(BlockType.I, block_number=0)),
    (0x03, Pcb(BlockType.I, block_number=1)),
    (0x12, Pcb(BlockType.I, block_number=0, chaining=True)),
    (0x0B, Pcb(BlockType.I, block_number=1, cid_following=True)),
    (0x06, Pcb(BlockType.I, block_number=0, nad_following=True)),
    (0xA2, Pcb(BlockType.R, block_number=0)),
    (0xA3, Pcb(BlockType.R, block_number=1)),
    (0xB2, Pcb(BlockType.R, block_number=0, nak=True)),
    (0xC2, Pcb(BlockType.S, s_command=SCommand.DESELECT)),
    (0xF2, Pcb(BlockType.S, s_command=SCommand.WTX)),
    (0xFA, Pcb(BlockType.S, s_command=SCommand.WTX, cid_following=True)),
    (0xE2, Pcb(BlockType.S, s_command=SCommand.PARAMETERS)),
]


@pytest.mark.parametrize(("byte", "pcb"), PCB_TABLE)
def test_pcb_coding(byte: int, pcb: Pcb) -> None:
    assert Pcb.parse(byte) == pcb
    assert pcb.to_byte() == byte


@pytest.mark.parametrize("byte", [0x00, 0x01, 0x22, 0x42, 0x80, 0xA0, 0xA6, 0xC3, 0xD2, 0xE0])
def test_pcb_rejects_invalid_codings(byte: int) -> None:
    with pytest.raises(ValueError, match="PCB"):
        Pcb.parse(byte)


def test_pcb_names() -> None:
    assert [Pcb.parse(b).describe() for b in (0x12, 0x03, 0xB2, 0xA3, 0xF2, 0xC2)] == [
        "I(0, chaining)", "I(1)", "R(NAK, 0)", "R(ACK, 1)", "S(WTX)", "S(DESELECT)"]


def test_block_builders() -> None:
    assert i_block(bytes.fromhex("00A4"), 1) == bytes.fromhex("03 00 A4")
    assert i_block(b"\x01", 0, chaining=True) == bytes.fromhex("12 01")
    assert r_block(1) == b"\xA3" and r_block(0, nak=True) == b"\xB2"
    assert s_deselect() == b"\xC2"
    assert s_wtx(59) == bytes.fromhex("F2 3B")
    with pytest.raises(ValueError, match="WTXM"):
        s_wtx(60)


def test_block_parse_with_cid_and_nad() -> None:
    block = Block.parse(bytes.fromhex("0F 05 21 00 B0 95 00 00"))
    assert block.pcb == Pcb(BlockType.I, block_number=1, cid_following=True, nad_following=True)
    assert (block.cid, block.nad, block.inf) == (5, 0x21, bytes.fromhex("00 B0 95 00 00"))
    assert block.to_bytes() == bytes.fromhex("0F 05 21 00 B0 95 00 00")
    with pytest.raises(ValueError, match="R-block carries"):
        Block.parse(bytes.fromhex("A2 00"))
    with pytest.raises(ValueError, match="WTX"):
        Block.parse(b"\xF2")


# --- the PCD: numbering (rules A, B) and chaining (rules 2, 7) -------------------------------------------


def test_pcd_numbers_from_0_and_toggles_on_each_answer() -> None:
    pcd = PcdEngine()
    assert pcd.send(h("00 A4 04 00")) == h("02 00 A4 04 00")  # rule A: block number 0
    pcd_table(pcd, [("02 90 00", "deliver 90 00")])  # rule B: the I-block carries our number: toggle
    assert pcd.send(h("00 84 00 00 08")) == h("03 00 84 00 00 08")
    pcd_table(pcd, [("03 01 02 03 04 05 06 07 08 90 00", "deliver 01 02 03 04 05 06 07 08 90 00")])
    assert pcd.idle and pcd.number == 0


def test_pcd_chains_a_command_longer_than_fsc() -> None:
    pcd = PcdEngine.for_card(SMALL_FSC_ATS)  # FSC 16: 13 INF bytes per block
    capdu = bytes(range(30))
    assert pcd.send(capdu) == h("12") + capdu[:13]  # I(0, chaining)
    pcd_table(pcd, [
        ("A2", "send 13" + capdu[13:26].hex()),  # rule 7: R(ACK, 0) -> next part, I(1, chaining)
        ("A3", "send 02" + capdu[26:].hex()),  # R(ACK, 1) -> last part, I(0)
        ("02 90 00", "deliver 90 00"),
    ])


def test_pcd_acknowledges_a_chained_response_by_fsd() -> None:
    pcd = PcdEngine(fsd=16)
    assert pcd.send(h("00 B0 00 00 14")) == h("02 00 B0 00 00 14")
    pcd_table(pcd, [
        ("12 00 01 02 03 04 05 06 07 08 09 0A 0B 0C", "send A3"),  # rule 2: R(ACK) with the toggled number
        ("03 0D 0E 0F 10 11 12 13 90 00", "deliver 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 90 00"),
    ])
    assert pcd.number == 0


def test_pcd_with_a_cid_sends_and_expects_it() -> None:
    pcd = PcdEngine.for_card(CARD_ATS, cid=3)  # TC(1) b2: the card supports CIDs
    assert pcd.send(h("00 A4")) == h("0A 03 00 A4")
    pcd_table(pcd, [
        ("0A 04 90 00", "send BA 03"),  # another card's CID: not for us, R(NAK)
        ("02 90 00", "send BA 03"),  # no CID at all: not for us either
        ("0A 43 90 00", "deliver 90 00"),  # b8..b7 of the CID byte carry the power level, not the CID
    ])
    assert PcdEngine.for_card(Ats(fsci=8), cid=3).send(b"\x00") == h("02 00")  # no CID support


# --- the PCD: recovery (rules 4, 5, 6, 8), the retry limit, S(WTX) ------------------------------------------


def test_pcd_rule_4_nak_after_timeout_then_rule_6_resends_the_lost_command() -> None:
    pcd = PcdEngine()
    pcd.send(h("80 54 01 00 0F"))  # I(0): lost on the way to the card
    pcd_table(pcd, [
        (None, "send B2"),  # rule 4: R(NAK, 0)
        ("A3", "send 02 80 54 01 00 0F"),  # the PICC is still at 1 (rule 12): rule 6, the I-block again
        ("02 90 00", "deliver 90 00"),
    ])


def test_pcd_rule_4_nak_gets_the_lost_answer_without_resending_the_command() -> None:
    pcd = PcdEngine()
    pcd.send(h("80 54 01 00 0F"))
    pcd_table(pcd, [
        (None, "send B2"),  # the answer was lost: R(NAK, 0)
        ("02 12 34 90 00", "deliver 12 34 90 00"),  # the PICC sent its last block again (rule 11)
    ])


def test_pcd_rule_4_for_invalid_blocks_and_protocol_errors() -> None:
    pcd = PcdEngine(crc=True)
    assert pcd.send(h("00 A4")) == with_crc_a(h("02 00 A4"))
    damaged = bytearray(with_crc_a(h("02 90 00")))
    damaged[1] ^= 0x10
    for answer in (bytes(damaged), with_crc_a(h("B3"))):  # a wrong CRC_A; an R(NAK), which a PICC never sends
        step = pcd.receive(answer)
        assert isinstance(step, Send) and step.frame == with_crc_a(h("B2")) and check_crc_a(step.frame)
    assert pcd.receive(with_crc_a(h("02 90 00"))) == Deliver(h("90 00"))
    pcd = PcdEngine()
    pcd.send(h("00 A4"))
    pcd_table(pcd, [("03 90 00", "send B2"), ("A2", "send B2"), ("02 90 00", "deliver 90 00")])  # wrong number;
    # an R(ACK) with our number for an I-block that did not chain


def test_pcd_rule_5_acks_again_while_the_card_chains() -> None:
    pcd = PcdEngine(fsd=16)
    pcd.send(h("00 B0 00 00 14"))
    pcd_table(pcd, [
        ("12 00 01 02 03 04 05 06 07 08 09 0A 0B 0C", "send A3"),
        (None, "send A3"),  # rule 5: R(ACK), not R(NAK), during the card's chain
        ("03 0D 0E 0F 10 11 12 13 90 00", "deliver 00 01 02 03 04 05 06 07 08 09 0A 0B 0C 0D 0E 0F 10 11 12 13 90 00"),
    ])


def test_pcd_rule_6_inside_its_own_chain() -> None:
    pcd = PcdEngine(fsc=16)
    capdu = bytes(range(20))
    pcd.send(capdu)
    pcd_table(pcd, [
        ("A2", "send 03" + capdu[13:].hex()),  # rule 7
        (None, "send B3"),  # the last part was lost: R(NAK, 1)
        ("A2", "send 03" + capdu[13:].hex()),  # the PICC acknowledged only the first part: rule 6
        ("03 90 00", "deliver 90 00"),
    ])


@pytest.mark.parametrize(("rows", "last", "rule"), [
    ([(None, "send B2"), (None, "send B2")], None, 4),  # a third reception in a row brings nothing
    ([("A3", "send 02 00 A4"), ("A3", "send 02 00 A4")], "A3", 6),  # the card asks a third time for the I-block
    ([(None, "send B2"), ("A3", "send 02 00 A4"), (None, "send B2"), ("A3", "send 02 00 A4"),
      (None, "send B2")], "A3", 6),  # the R(ACK)s show the card is there: rule 6's count ends it
])
def test_pcd_gives_up_after_the_retry_limit(rows: list[tuple[str | None, str]], last: str | None,
                                            rule: int) -> None:
    pcd = PcdEngine()
    pcd.send(h("00 A4"))
    pcd_table(pcd, rows)
    with pytest.raises(RetryLimitExceeded) as failure:
        pcd.receive(None if last is None else h(last))
    assert isinstance(failure.value, ReaderError)
    assert failure.value.rule == rule and failure.value.retries == 2
    assert f"after 2 retransmissions by ISO/IEC 14443-4 rule {rule}" in str(failure.value)
    with pytest.raises(IsoDepError, match="failed"):
        pcd.send(h("00 A4"))


def test_pcd_retry_limit_is_its_own_and_progress_resets_it() -> None:
    pcd = PcdEngine(fsd=16, max_retries=1)
    pcd.send(h("00 B0 00 00 14"))
    pcd_table(pcd, [
        (None, "send B2"),
        ("12 00 01 02 03 04 05 06 07 08 09 0A 0B 0C", "send A3"),  # progress: the count starts again
        (None, "send A3"),
    ])
    with pytest.raises(RetryLimitExceeded, match=r"no block within the frame waiting time, still after 1 "
                                                 r"retransmissions by ISO/IEC 14443-4 rule 5 \(R\(ACK\)"):
        pcd.receive(None)
    with pytest.raises(RetryLimitExceeded, match="rule 4"):
        zero = PcdEngine(max_retries=0)
        zero.send(b"\x00")
        zero.receive(None)


def test_pcd_answers_wtx_and_waits_longer_once() -> None:
    pcd = PcdEngine.for_card(CARD_ATS)  # FWI 8: FWT 77.3 ms
    pcd.send(h("80 54 01 00 0F"))
    assert pcd.wait_us == fwt_us(8)
    pcd_table(pcd, [("F2 05", "send F2 05")])  # rule 3: S(WTX) response with the same WTXM
    assert pcd.wait_us == 5 * fwt_us(8)  # FWT x WTXM, for this answer only
    pcd_table(pcd, [
        ("F2 C5", "send F2 05"),  # b8..b7 are the power level indication: WTXM is still 5
        (None, "send B2"),  # no answer even then: rule 4
    ])
    assert pcd.wait_us == fwt_us(8)
    pcd_table(pcd, [("F2 00", "send B2"), ("02 90 00", "deliver 90 00")])  # WTXM 0 is invalid


def test_pcd_wtx_whose_answer_keeps_getting_lost_ends_at_the_limit() -> None:
    pcd = PcdEngine()
    pcd.send(h("00 A4"))
    pcd_table(pcd, [
        ("F2 01", "send F2 01"),
        (None, "send B2"),  # our S(WTX) response was lost; the PICC asks again (rule 11)
        ("F2 01", "send F2 01"),  # a repeat, not a new request: counted
        (None, "send B2"),
        ("F2 01", "send F2 01"),
        (None, "send B2"),
    ])
    with pytest.raises(RetryLimitExceeded, match="S\\(WTX\\) asked again: our answers to it were lost, still after 2 "
                                                 "retransmissions by ISO/IEC 14443-4 rule 4"):
        pcd.receive(h("F2 01"))


def test_pcd_deselect_and_rule_8() -> None:
    pcd = PcdEngine()
    assert pcd.deselect() == h("C2")
    pcd_table(pcd, [("02 90 00", "send C2"), ("C2", "deselected")])
    pcd = PcdEngine()
    pcd.deselect()
    pcd_table(pcd, [(None, "send C2"), (None, "send C2"), (None, "gave-up")])  # rule 8: the PICC is ignored
    with pytest.raises(IsoDepError, match="no exchange in progress"):
        pcd.receive(h("C2"))


def test_pcd_refuses_misuse() -> None:
    pcd = PcdEngine()
    with pytest.raises(IsoDepError, match="no exchange in progress"):
        pcd.receive(h("02 90 00"))
    pcd.send(h("00"))
    with pytest.raises(IsoDepError, match="cannot send a command while the link is sending"):
        pcd.send(h("00"))
    for kwargs, message in (({"fsc": 15}, "FSC 15"), ({"cid": 15}, "CID: 15"), ({"max_retries": -1}, "negative")):
        with pytest.raises(ValueError, match=message):
            PcdEngine(**kwargs)


# --- the PICC ------------------------------------------------------------------------------------------------


def test_picc_numbers_from_1_and_toggles_on_each_i_block() -> None:
    picc = PiccEngine(CARD_ATS)
    assert deliver_and_respond(picc, "02 00 A4", "90 00") == "029000"  # rules C, D, 10
    assert deliver_and_respond(picc, "03 00 B0", "6A 82") == "036A82"
    assert deliver_and_respond(picc, "02 00 84", "01 02 90 00") == "0201029000"


def test_picc_rules_11_and_12() -> None:
    picc = PiccEngine(CARD_ATS)
    picc_table(picc, [
        ("B3", "send A3"),  # R(NAK) with our number before we sent anything: nothing to repeat, R(ACK)
        ("B2", "send A3"),  # rule 12: R(NAK) with the other number -> R(ACK) (also nfcpy's presence check)
        ("02 80 54 01 00 0F", "deliver 80 54 01 00 0F"),
    ])
    assert picc.respond(h("12 34 90 00")) == h("02 12 34 90 00")
    picc_table(picc, [
        ("B2", "send 02 12 34 90 00"),  # rule 11: R(NAK) with our number: the answer was lost, send it again
        ("A2", "send 02 12 34 90 00"),  # rule 11 for R(ACK) with our number as well
        ("B3", "send A2"),  # rule 12: the PCD's next I-block was lost
        ("A3", "silent"),  # R(ACK) with the other number, but we are not chaining: ignored
    ])


def test_picc_rule_2_and_its_fsc() -> None:
    picc = PiccEngine(SMALL_FSC_ATS)
    capdu = h("00 01 00 00 0F") + bytes(range(15))  # 20 bytes: 13 + 7
    picc_table(picc, [
        ("12" + capdu[:13].hex(), "send A2"),  # rule 2: R(ACK) with the toggled number
        ("B2", "send A2"),  # rule 11: the R(ACK) was lost
        ("03" + capdu[13:].hex(), "deliver " + capdu.hex()),
    ])
    assert picc.respond(h("90 00")) == h("03 90 00")
    picc_table(picc, [("02" + "00" * 14, "silent")])  # 15 bytes + CRC_A > FSC 16: a PICC stays silent


def test_picc_rule_13_and_e_chain_a_response_by_fsd() -> None:
    picc = PiccEngine(CARD_ATS, fsd=16)  # RATS FSDI 0
    response = bytes(range(20)) + h("90 00")  # 22 bytes: 13 + 9
    assert deliver_and_respond(picc, "02 00 B0 00 00 14", response.hex()) == "12" + response[:13].hex().upper()
    picc_table(picc, [
        ("A2", "send 12" + response[:13].hex()),  # R(ACK) with our number: rule 11, again
        ("B2", "send 12" + response[:13].hex()),  # R(NAK) with our number: rule 11
        ("A3", "send 03" + response[13:].hex()),  # rules E and 13: toggle, next part
        ("A3", "send 03" + response[13:].hex()),  # rule 11 on the last part
        ("A2", "silent"),  # the chain is over
    ])
    assert deliver_and_respond(picc, "02 00 A4", "90 00") == "029000"


def test_picc_i_block_during_its_chain_abandons_the_response() -> None:
    picc = PiccEngine(CARD_ATS, fsd=16)
    deliver_and_respond(picc, "02 00 B0 00 00 14", (bytes(20) + h("90 00")).hex())
    assert deliver_and_respond(picc, "03 00 A4", "90 00") == "039000"


def test_picc_rule_9_wtx_while_processing() -> None:
    picc = PiccEngine(CARD_ATS)
    picc_table(picc, [("02 80 54 01 00 0F", "deliver 80 54 01 00 0F")])
    assert picc.processing and not picc.awaiting_wtx
    picc_table(picc, [("B2", "silent")])  # processing: a card does not listen
    assert picc.wtx_request(3) == h("F2 03") and picc.awaiting_wtx
    with pytest.raises(IsoDepError, match="the PCD has not answered our S\\(WTX\\)"):
        picc.respond(h("90 00"))
    picc_table(picc, [
        ("B2", "send F2 03"),  # rule 11: our S(WTX) was lost, the PCD asks for it
        ("F2 04", "silent"),  # not our WTXM: still waiting
        ("F2 03", "silent"),  # granted
    ])
    assert picc.processing and not picc.awaiting_wtx
    assert picc.respond(h("90 00")) == h("02 90 00")
    picc_table(picc, [("F2 03", "silent")])  # a stray S(WTX) response
    with pytest.raises(IsoDepError, match="only sent while a command is processed"):
        picc.wtx_request(3)


def test_picc_ignores_invalid_blocks() -> None:
    picc = PiccEngine(CARD_ATS, crc=True)
    damaged = bytearray(with_crc_a(h("02 00 A4")))
    damaged[2] ^= 0x01
    for frame in (bytes(damaged), with_crc_a(h("00")), with_crc_a(h("06 00 00 A4")), h("02")):  # CRC; PCB; NAD; short
        assert picc.receive(frame) is None
    assert picc.receive(with_crc_a(h("02 00 A4"))) == Deliver(h("00 A4"))
    assert picc.respond(h("90 00")) == with_crc_a(h("02 90 00"))
    with pytest.raises(IsoDepError, match="no command was delivered"):
        picc.respond(h("90 00"))


def test_picc_cid_and_pps() -> None:
    picc = PiccEngine(CARD_ATS, cid=1)  # TC(1) b2: CIDs
    picc_table(picc, [
        ("D1 11 00", "send D1"),  # PPS at 106 kbit/s, right after the ATS
        ("0A 02 00 01 00 00", "silent"),  # another card's CID
        ("02 00 01 00 00", "silent"),  # no CID = CID 0: not us
        ("0A 01 00 01 00 00 01 55", "deliver 00 01 00 00 01 55"),
    ])
    assert picc.respond(h("55 90 00")) == h("0A 01 55 90 00")  # our CID is echoed
    picc_table(picc, [("CA 01", "send CA 01")])  # S(DESELECT) with CID
    assert PiccEngine(NO_TA_ATS, cid=0).cid == 0
    plain = PiccEngine(Ats.parse(h("05 78 80 80 00")))  # no CID support
    picc_table(plain, [("0A 00 00 01 00 00", "silent"), ("D0 11 02", "silent"),  # PPS to 212 kbit/s: refused
                       ("02 00 01 00 00", "deliver 00 01 00 00")])
    assert plain.respond(h("90 00")) == h("02 90 00")
    picc_table(plain, [("D0 11 00", "silent")])  # PPS only before the first block


def test_picc_deselect_halts_it() -> None:
    picc = PiccEngine(CARD_ATS)
    deliver_and_respond(picc, "02 00 A4", "90 00")
    picc_table(picc, [("C2", "send C2")])
    assert picc.deselected
    picc_table(picc, [("C2", "silent"), ("03 00 A4", "silent"), ("B2", "silent")])  # HALT: nothing until reactivated
