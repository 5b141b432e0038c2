"""Traces: recording, JSON Lines, and pcapng checked by running the real tshark on the output."""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu.iso14443 import Ats, check_crc_a
from apdu.reader import Reader, ReaderError
from apdu.trace import (
    TSHARK_DECODE_AS,
    Exchange,
    IsoDepFramer,
    TracingReader,
    export_pcapng,
    iso14443_frames,
    read_jsonl,
    write_jsonl,
)

ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
SELECT = bytes.fromhex("00 A4 04 00 08 A0 00 00 06 32 01 01 05 00")
FCI = bytes.fromhex("6F 10 84 08 A0 00 00 06 32 01 01 05 A5 04 9F 08 01 02 90 00")
READ_BINARY = bytes.fromhex("00 B0 95 00 1E")
GET_CHALLENGE = bytes.fromhex("00 84 00 00 04")


class TableCard:
    """A Card OS answering from a fixed command -> response table (unknown: 6D00)."""

    def __init__(self, table: dict[bytes, bytes]) -> None:
        self.table = table

    def power_on(self) -> bytes:
        return ATS

    def process(self, capdu: bytes) -> bytes:
        return self.table.get(capdu, b"\x6D\x00")

    def power_off(self) -> None:
        pass


class DirectReader:
    """The smallest Reader over a Card OS, so these tests need nothing but this module."""

    name = "direct"

    def __init__(self, card: TableCard) -> None:
        self.card = card
        self.connected = False

    def connect(self) -> bytes:
        self.connected = True
        return self.card.power_on()

    def transmit(self, capdu: bytes) -> bytes:
        if not self.connected:
            raise ReaderError("not connected")
        return self.card.process(capdu)

    def disconnect(self) -> None:
        self.connected = False

    def card_present(self) -> bool:
        return True


def fake_clock(start: float = 1_700_000_000.0, step: float = 0.000125) -> Iterator[float]:
    t = start
    while True:
        yield t
        t = round(t + step, 6)


def traced_session(tmp_path: Path | None = None) -> TracingReader:
    card = TableCard({SELECT: FCI, READ_BINARY: bytes(range(30)) + b"\x90\x00",
                      GET_CHALLENGE: bytes.fromhex("1A 2B 3C 4D 90 00")})
    clock = fake_clock()
    reader = TracingReader(DirectReader(card), clock=lambda: next(clock),
                           jsonl=None if tmp_path is None else tmp_path / "live.jsonl")
    assert isinstance(reader, Reader)
    reader.connect()
    for capdu in (SELECT, READ_BINARY, GET_CHALLENGE):
        reader.transmit(capdu)
    return reader


# --- recording and JSON Lines ---------------------------------------------------------------------------

def test_tracing_reader_records_every_exchange_in_order() -> None:
    reader = traced_session()
    assert [(e.direction, e.data) for e in reader.exchanges] == [
        ("C", SELECT), ("R", FCI),
        ("C", READ_BINARY), ("R", bytes(range(30)) + b"\x90\x00"),
        ("C", GET_CHALLENGE), ("R", bytes.fromhex("1A 2B 3C 4D 90 00")),
    ]
    assert [e.t for e in reader.exchanges] == [1_700_000_000.0 + i * 0.000125 for i in range(6)]
    assert {e.reader for e in reader.exchanges} == {"direct"}


def test_jsonl_schema_is_exact(tmp_path: Path) -> None:
    reader = traced_session()
    reader.write_jsonl(tmp_path / "trace.jsonl")
    lines = (tmp_path / "trace.jsonl").read_text().splitlines()
    assert lines[0] == ('{"t": 1700000000.0, "reader": "direct", "dir": "C>", '
                        '"hex": "00A4040008A00000063201010500"}')
    assert lines[1] == ('{"t": 1700000000.000125, "reader": "direct", "dir": "R<", '
                        '"hex": "6F108408A00000063201010' '5A5049F0801029000"}')
    assert [list(json.loads(line)) for line in lines] == [["t", "reader", "dir", "hex"]] * 6


def test_jsonl_round_trip_and_repeatability(tmp_path: Path) -> None:
    first, second = traced_session(), traced_session()
    first.write_jsonl(tmp_path / "a.jsonl")
    second.write_jsonl(tmp_path / "b.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    assert read_jsonl(tmp_path / "a.jsonl") == first.exchanges


def test_streaming_sink_matches_the_final_file(tmp_path: Path) -> None:
    reader = traced_session(tmp_path)
    live = (tmp_path / "live.jsonl").read_text()  # written and flushed as it happened
    reader.close()
    write_jsonl(reader.exchanges, tmp_path / "final.jsonl")
    assert live == (tmp_path / "final.jsonl").read_text()
    assert len(live.splitlines()) == 6


@pytest.mark.parametrize(("line", "message"), [
    ('{"t": 1, "reader": "r", "dir": "C>"}', "field 'hex': missing"),
    ('{"t": "x", "reader": "r", "dir": "C>", "hex": "00"}', "field 't'"),
    ('{"t": 1, "reader": "r", "dir": "X", "hex": "00"}', "field 'dir'"),
    ('{"t": 1, "reader": "r", "dir": "R<", "hex": "0G"}', "field 'hex'"),
    ('[1, 2]', "record: not a JSON object"),
    ('{"t": 1,', "not JSON"),
])
def test_read_jsonl_names_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    good = Exchange("C", 1.0, b"\x00", "r").to_json()
    path.write_text(good + "\n\n" + line + "\n")
    with pytest.raises(ValueError, match="line 3: " + message.replace("(", r"\(")):
        read_jsonl(path)


def test_exchange_refuses_unknown_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        Exchange("X", 0.0, b"")  # type: ignore[arg-type]


# --- pcapng through tshark ---------------------------------------------------------------------------------

TSHARK_FIELDS = ["frame.number", "frame.time_epoch", "iso14443.event", "iso14443.pcb",
                 "iso14443.block_number", "iso14443.crc.status", "iso7816.apdu.cla",
                 "iso7816.apdu.ins", "iso7816.apdu.p1", "iso7816.apdu.p2", "iso7816.apdu.body",
                 "iso7816.apdu.sw1", "iso7816.apdu.sw2", "iso14443.apdu_reassembled.length"]


def tshark() -> str:
    path = shutil.which("tshark")
    if path is None:
        pytest.fail("tshark is required for the trace tests: apt-get install tshark")
    return path


def tshark_fields(capture: Path) -> list[dict[str, str]]:
    command = [tshark(), "-r", str(capture), *TSHARK_DECODE_AS, "-T", "fields", "-E", "separator=\t"]
    for field in TSHARK_FIELDS:
        command += ["-e", field]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return [dict(zip(TSHARK_FIELDS, line.split("\t"))) for line in result.stdout.splitlines()]


def tshark_verbose(capture: Path) -> str:
    result = subprocess.run([tshark(), "-r", str(capture), "-V", *TSHARK_DECODE_AS],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout


def test_pcapng_dissects_to_iso7816_apdus(tmp_path: Path) -> None:
    reader = traced_session()
    capture = tmp_path / "trace.pcapng"
    assert export_pcapng(reader.exchanges, capture, ats=ATS) == 8
    rows = tshark_fields(capture)
    assert len(rows) == 8
    events = [row["iso14443.event"] for row in rows]
    assert events == ["0xfe", "0xff"] * 4  # PCD→PICC, PICC→PCD: RATS/ATS, then 3 APDU pairs
    assert [row["iso14443.crc.status"] for row in rows] == ["1"] * 8  # 1 = Good: CRC_A verified
    select, fci, read, data, challenge, random = rows[2:]
    assert (select["iso7816.apdu.cla"], select["iso7816.apdu.ins"], select["iso7816.apdu.p1"]) == (
        "0x00", "0xa4", "0x04")
    assert select["iso7816.apdu.body"] == "a000000632010105"
    assert (fci["iso7816.apdu.sw1"], fci["iso7816.apdu.sw2"]) == ("0x90", "0x00")
    assert read["iso7816.apdu.ins"] == "0xb0" and read["iso7816.apdu.p1"] == "0x95"
    assert data["iso7816.apdu.body"] == bytes(range(30)).hex()
    assert challenge["iso7816.apdu.ins"] == "0x84"
    assert (random["iso7816.apdu.sw1"], random["iso7816.apdu.sw2"]) == ("0x90", "0x00")
    # I-blocks with alternating block numbers, the answer carrying the command's number.
    assert [row["iso14443.pcb"] for row in rows[2:]] == ["0x02", "0x02", "0x03", "0x03", "0x02", "0x02"]
    # Timestamps survive to the microsecond.
    assert [round(float(row["frame.time_epoch"]), 6) for row in rows[2:]] == [
        e.t for e in reader.exchanges]


def test_pcapng_verbose_text_shows_the_apdus(tmp_path: Path) -> None:
    capture = tmp_path / "trace.pcapng"
    export_pcapng(traced_session().exchanges, capture, ats=ATS)
    text = tshark_verbose(capture)
    assert "Event: Data transfer PCD -> PICC (0xfe)" in text
    assert "Event: Data transfer PICC -> PCD (0xff)" in text
    assert "ISO 7816 Command APDU" in text and "ISO 7816 Response APDU" in text
    assert "Instruction: Select file (0xa4)" in text
    assert "Status Word SW1: Normal processing (0x90)" in text
    assert "Historical bytes: 4d54009d0040869b19705d1401" in text
    assert "[CRC Status: Bad]" not in text


def test_pcapng_chains_long_responses_and_wireshark_reassembles_them(tmp_path: Path) -> None:
    long_answer = bytes(i % 251 for i in range(256)) + b"\x90\x00"
    exchanges = [Exchange("C", 10.0, bytes.fromhex("00 B0 00 00 00"), "r"),
                 Exchange("R", 10.002, long_answer, "r"),
                 Exchange("C", 10.003, GET_CHALLENGE, "r"),
                 Exchange("R", 10.004, bytes.fromhex("01 02 03 04 90 00"), "r")]
    capture = tmp_path / "long.pcapng"
    assert export_pcapng(exchanges, capture, ats=ATS) == 2 + 1 + 3 + 2
    rows = tshark_fields(capture)
    assert [row["iso14443.pcb"] for row in rows[2:]] == [
        "0x02",  # I(0) READ BINARY
        "0x12",  # PICC: I(0) with chaining, 253 bytes
        "0xa3",  # PCD: R(ACK) 1
        "0x03",  # PICC: I(1), the last 5 bytes
        "0x02",  # I(0) GET CHALLENGE
        "0x02",
    ]
    reassembled = rows[5]
    assert reassembled["iso14443.apdu_reassembled.length"] == str(len(long_answer))
    assert reassembled["iso7816.apdu.body"] == long_answer[:-2].hex()
    assert (reassembled["iso7816.apdu.sw1"], reassembled["iso7816.apdu.sw2"]) == ("0x90", "0x00")
    assert rows[6]["iso7816.apdu.ins"] == "0x84"
    assert all(row["iso14443.crc.status"] == "1" for row in rows)


def test_pcapng_without_ats_still_dissects(tmp_path: Path) -> None:
    capture = tmp_path / "bare.pcapng"
    export_pcapng(traced_session().exchanges, capture)
    rows = tshark_fields(capture)
    assert [row["iso7816.apdu.ins"] for row in rows[::2]] == ["0xa4", "0xb0", "0x84"]
    # Without RATS/ATS Wireshark cannot know the card is Type A, so it leaves CRC_A unverified (2).
    assert {row["iso14443.crc.status"] for row in rows} == {"2"}


def test_pcapng_refuses_negative_times_and_writes_nothing(tmp_path: Path) -> None:
    capture = tmp_path / "never.pcapng"
    with pytest.raises(ValueError, match="exchange time: -1.0 is negative"):
        export_pcapng([Exchange("C", -1.0, GET_CHALLENGE)], capture)
    assert not capture.exists()


def test_frames_carry_a_valid_crc_a() -> None:
    frames = iso14443_frames(traced_session().exchanges, ats=ATS)
    assert frames[0][2] == bytes.fromhex("E0 80 31 73")  # RATS with FSD 256
    assert frames[1][2][:-2] == Ats.parse(ATS).to_bytes()
    assert all(check_crc_a(frame) for _, _, frame in frames)


# --- rebuilding the frames of an APDU log (the ISO-DEP engines over a perfect link) -----------------------


def framed(frames: list[tuple[bool, bytes]]) -> list[tuple[bool, str]]:
    assert all(check_crc_a(frame) for _, frame in frames)
    return [(to_card, frame[:-2].hex().upper()) for to_card, frame in frames]


def test_framer_alternates_block_numbers() -> None:
    framer = IsoDepFramer()
    frames = []
    for capdu, rapdu in [("00A40400", "9000"), ("805C000204", "000003E89000"), ("0084000008", "6D00")]:
        frames += framer.command(bytes.fromhex(capdu)) + framer.response(bytes.fromhex(rapdu))
    assert framed(frames) == [
        (True, "0200A40400"), (False, "029000"),
        (True, "03805C000204"), (False, "03000003E89000"),
        (True, "020084000008"), (False, "026D00"),
    ]


def test_framer_chains_commands_and_responses() -> None:
    # FSC = FSD = 16: at most 13 INF bytes per block (PCB + CRC_A take 3).
    framer = IsoDepFramer(Ats(fsci=0), fsd=16)
    capdu = bytes(range(20))
    rapdu = bytes(range(100, 130)) + b"\x90\x00"
    frames = framer.command(capdu) + framer.response(rapdu) + framer.command(b"\x00\xB0\x00\x00\x00")
    assert framed(frames) == [
        (True, "12" + capdu[:13].hex().upper()),  # I(0) chaining
        (False, "A2"),  # PICC: R(ACK) 0
        (True, "03" + capdu[13:].hex().upper()),  # I(1) last
        (False, "13" + rapdu[:13].hex().upper()),  # PICC: I(1) chaining
        (True, "A2"),  # PCD: R(ACK) 0
        (False, "12" + rapdu[13:26].hex().upper()),  # PICC: I(0) chaining
        (True, "A3"),  # PCD: R(ACK) 1
        (False, "03" + rapdu[26:].hex().upper()),  # PICC: I(1) last
        (True, "0200B0000000"),  # next command: I(0)
    ]


def test_framer_starts_a_new_activation_after_a_command_left_unanswered() -> None:
    framer = IsoDepFramer()
    frames = framer.command(bytes.fromhex("00A40400")) + framer.response(bytes.fromhex("9000"))
    frames += framer.command(bytes.fromhex("805400000F"))  # the card left during this command
    frames += framer.command(bytes.fromhex("00A40400")) + framer.response(bytes.fromhex("9000"))
    assert framed(frames) == [(True, "0200A40400"), (False, "029000"), (True, "03805400000F"),
                              (True, "0200A40400"), (False, "029000")]  # block numbers from their start


def test_a_response_without_its_command_is_refused() -> None:
    exchanges = [Exchange("R", 5.0, bytes.fromhex("9000"), "r")]
    with pytest.raises(ValueError, match=r"exchange 1 \(R< at t=5.0\): a response without a command before it"):
        iso14443_frames(exchanges)
