"""End to end over NFC, no hardware: `ykt card serve --nfc udp:...` in its own process is an ISO 14443-4
card on nfcpy's udp driver; `ykt card read` and `ykt terminal tap` reach it with `nfc:udp:...` readers and
must agree byte for byte with the same card read or tapped in-process as `image:`."""
from __future__ import annotations

import json
import select
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from keysets import TEST_KEYSET_DIR
from ykt_card.card.image import load_card

from .cli import ROOT, YKT_ARGS, one_line_error, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"
ISSUED = "20261124080000"


def free_udp_port() -> int:
    """A UDP port nobody holds right now: each test serves its card on its own port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(image: Path, port: int, *args: str) -> Iterator[subprocess.Popen]:
    """`ykt card serve IMAGE --nfc udp:localhost:PORT` until the block ends; then SIGTERM, and it must stop
    cleanly (exit 0, 'stopped serving'). Returns once its banner says the card listens."""
    proc = subprocess.Popen([*YKT_ARGS, "card", "serve", str(image), "--nfc", f"udp:localhost:{port}", *args],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        banner = ""
        while "serving card" not in banner:
            if proc.poll() is not None or time.monotonic() > deadline:
                rest = proc.stderr.read() if proc.poll() is not None else ""
                pytest.fail(f"ykt card serve did not start: {banner}{rest}")
            if select.select([proc.stderr], [], [], 0.5)[0]:
                banner += proc.stderr.readline()
        assert f"as an NFC card on udp:localhost:{port}" in banner
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise
    assert proc.returncode == 0, err
    assert "stopped serving card" in err


@pytest.fixture
def parts(tmp_path):
    card, psam = tmp_path / "card.json", tmp_path / "psam.json"
    assert ykt("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-guangzhou", "--balance", "5000",
               "--out", card, "--clock", ISSUED).returncode == 0
    assert ykt("psam", "issue", "--keyset", K3, "--keyset", K4, "--terminal-id", "440300000001",
               "--out", psam).returncode == 0
    return card, psam


def test_card_read_over_nfc_agrees_with_the_image(parts, tmp_path):
    card, _ = parts
    twin = tmp_path / "twin.json"
    shutil.copyfile(card, twin)
    port = free_udp_port()
    with serving(card, port):
        over_nfc = ykt("card", "read", "--reader", f"nfc:udp:localhost:{port}", "--json")
        again = ykt("card", "read", "--reader", f"nfc:udp:localhost:{port}", "--json")  # DESELECT, re-activate
    in_process = ykt("card", "read", "--reader", f"image:{twin}", "--json")
    assert over_nfc.returncode == 0, over_nfc.stderr
    assert in_process.returncode == 0, in_process.stderr
    assert json.loads(over_nfc.stdout) == json.loads(in_process.stdout) == json.loads(again.stdout)
    assert json.loads(over_nfc.stdout)["balance"]["total"] == 5000
    assert card.read_bytes() == twin.read_bytes()  # reading changes nothing


def test_terminal_tap_over_nfc_is_approved_exactly_as_in_process(parts, tmp_path):
    card, psam = parts
    twin_card, twin_psam = tmp_path / "twin-card.json", tmp_path / "twin-psam.json"
    shutil.copyfile(card, twin_card)
    shutil.copyfile(psam, twin_psam)
    common = ["--profile", "bus-flat", "--json", "--seed", "5", "--clock", "20261124081000"]
    port = free_udp_port()
    with serving(card, port, "--seed", "5"):
        tap = ykt("terminal", "tap", "--card", f"nfc:udp:localhost:{port}", "--psam", f"image:{psam}", *common)
    assert tap.returncode == 0, tap.stderr
    outcome = json.loads(tap.stdout)
    assert outcome["status"] == "approved" and outcome["amount"] == 200
    assert outcome["balance_before"] == 5000 and outcome["balance_after"] == 4800 and outcome["mac2_verified"]
    assert load_card(card).purse.balance == 4800  # the serving process saved the purchase
    twin = ykt("terminal", "tap", "--card", f"image:{twin_card}", "--psam", f"image:{twin_psam}", *common)
    assert json.loads(twin.stdout) == outcome
    assert card.read_bytes() == twin_card.read_bytes() and psam.read_bytes() == twin_psam.read_bytes()


def test_no_card_on_the_port_is_a_declined_tap_and_a_one_line_read_error(parts):
    card, psam = parts
    port = free_udp_port()  # nobody serves here
    error = one_line_error(ykt("card", "read", "--reader", f"nfc:udp:localhost:{port}"))
    assert "no ISO 14443-4 Type A card in the field" in error
    tap = ykt("terminal", "tap", "--profile", "bus-flat", "--card", f"nfc:udp:localhost:{port}", "--psam",
              f"image:{psam}", "--json")
    assert tap.returncode == 3, tap.stderr           # declined (tools.errors.EXIT_DECLINED)
    assert json.loads(tap.stdout)["status"] == "declined" and "no card" in json.loads(tap.stdout)["reason"]


def test_serve_options_are_checked(parts):
    card, _ = parts
    assert "--vpcd/--nfc" in one_line_error(ykt("card", "serve", card, "--vpcd", "localhost:35963", "--nfc", "udp"))
    assert "udp driver only" in one_line_error(ykt("card", "serve", card, "--nfc", "usb"))
    assert "port '0'" in one_line_error(ykt("card", "serve", card, "--nfc", "udp:localhost:0"))
    assert "nfc:udp:localhost:x" in one_line_error(ykt("card", "read", "--reader", "nfc:udp:localhost:x"))
    assert "needs an nfcpy device path" in one_line_error(ykt("card", "read", "--reader", "nfc:"))


def test_a_second_card_on_the_same_port_is_refused(parts, tmp_path):
    card, _ = parts
    other = tmp_path / "other.json"
    shutil.copyfile(card, other)
    port = free_udp_port()
    with serving(card, port):
        error = one_line_error(ykt("card", "serve", other, "--nfc", f"udp:localhost:{port}"))
    assert f"UDP port {port} is in use" in error
