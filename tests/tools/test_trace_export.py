"""`ykt trace export` writes the same capture, byte for byte, since the frames are rebuilt by the ISO-DEP engines.

The known answer was written by the exporter before it ran the engines (its own block-numbering framer);
tshark checks of the same captures are in tests/apdu/test_trace.py and test_cli_basics.py.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

from apdu.trace import Exchange, write_jsonl

from .cli import one_line_error, ykt

TRACE = [
    Exchange("C", 1764000000.125, bytes.fromhex("00A404000AA0000006320101050000"), "nfc:udp"),
    Exchange("R", 1764000000.127, bytes(i % 251 for i in range(300)) + b"\x90\x00", "nfc:udp"),  # chains
    Exchange("C", 1764000000.130, bytes(range(256)) + bytes(range(10)), "nfc:udp"),  # chains
    Exchange("R", 1764000000.131, bytes.fromhex("6A82"), "nfc:udp"),
]
CAPTURE_SHA256 = "23514f488275e967cdbbb50cc4bff5961da9af7983139eba5d058a6aa3151406"


def test_export_is_byte_for_byte_the_known_capture(tmp_path: Path) -> None:
    trace, capture = tmp_path / "t.jsonl", tmp_path / "t.pcapng"
    write_jsonl(TRACE, trace)
    out = ykt("trace", "export", trace, "--pcapng", capture)
    assert out.returncode == 0 and out.stdout.startswith(f"wrote 8 packets to {capture}")
    data = capture.read_bytes()
    assert len(data) == 1000 and hashlib.sha256(data).hexdigest() == CAPTURE_SHA256
    assert b"ykt apdu.trace" in data  # the writer named in the section header


def test_export_refuses_a_response_without_its_command(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    write_jsonl(TRACE[1:], trace)
    assert "exchange 1 (R< at t=1764000000.127): a response without a command before it" in one_line_error(
        ykt("trace", "export", trace, "--pcapng", tmp_path / "t.pcapng"))
