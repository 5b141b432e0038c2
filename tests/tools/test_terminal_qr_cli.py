"""`ykt terminal scan` and `ykt terminal run --codes`: QR rides at the validator from the command line."""
from __future__ import annotations

import json
import subprocess

import pytest

from keysets import TEST_KEYSET_DIR

from .cli import YKT_ARGS, ROOT, one_line_error, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"


def code(at: str, seed: int = 1) -> str:
    shown = ykt("qr", "show", "test-account", "--at", at, "--seed", str(seed), "--no-symbol")
    assert shown.returncode == 0, shown.stderr
    return shown.stdout.strip()


def scan(*args: str) -> dict:
    """One scan's outcome; its exit code is the outcome's (tools.errors: approved 0, declined 3)."""
    p = ykt("terminal", "scan", "--profile", "bus-qr", "--json", *args)
    assert p.stderr == "" and p.stdout, p.stderr
    out = json.loads(p.stdout)
    assert p.returncode == {"approved": 0, "declined": 3}[out["status"]], (p.returncode, out)
    return out


def test_a_scan_is_journaled_and_its_replay_refused_by_the_next_process(tmp_path):
    db = tmp_path / "j.db"
    good = code("20261124080000")
    first = scan("--code", good, "--terminal-id", "440300000001", "--journal", str(db), "--clock", "20261124080010")
    assert (first["status"], first["medium"], first["ticket_type"], first["amount"]) == ("approved", "qr", "01", 200)
    assert first["qr_code"] == good and first["terminal_id"] == "440300000001" and "card_no" not in first
    again = scan("--code", good, "--terminal-id", "440300000001", "--journal", str(db), "--clock", "20261124080020")
    assert (again["status"], again["reason"]) == ("declined", "replay")
    near = scan("--code", code("20261124080030", seed=2), "--terminal-id", "440300000001", "--journal", str(db),
                "--clock", "20261124080040")
    assert (near["status"], near["reason"]) == ("declined", "anti_passback")
    out = tmp_path / "clearing.jsonl"
    assert ykt("journal", "export", db, "--format", "jsonl", "--out", out).returncode == 0
    assert [json.loads(line) for line in out.read_text().splitlines()] == [first]


def test_a_scan_reads_the_terminal_id_from_a_psam_and_a_code_from_a_picture(tmp_path):
    psam, png = tmp_path / "psam.json", tmp_path / "code.png"
    assert ykt("psam", "issue", "--keyset", K3, "--keyset", K4, "--terminal-id", "440300000042",
               "--out", psam).returncode == 0
    shown = ykt("qr", "show", "test-account", "--at", "20261124080000", "--seed", "1", "--png", png, "--no-symbol")
    assert shown.returncode == 0
    out = scan("--image", str(png), "--psam", f"image:{psam}", "--clock", "20261124080005", "--amount", "150")
    assert (out["status"], out["terminal_id"], out["amount"]) == ("approved", "440300000042", 150)
    assert out["qr_code"] == shown.stdout.strip()


def test_the_validator_loop_scans_codes_from_a_file_and_from_stdin(tmp_path):
    card, psam, db = tmp_path / "card.json", tmp_path / "psam.json", tmp_path / "j.db"
    assert ykt("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-guangzhou", "--balance", "5000",
               "--out", card, "--clock", "20261124080000").returncode == 0
    assert ykt("psam", "issue", "--keyset", K3, "--keyset", K4, "--terminal-id", "440300000001",
               "--out", psam).returncode == 0
    good = code("20261124080000")
    codes = tmp_path / "codes.txt"
    codes.write_text(f"# scanner log\n{good}\nnot-a-code\n{good}\n", encoding="utf-8")
    base = ["terminal", "run", "--profile", "bus-qr", "--card", f"image:{card}", "--psam", f"image:{psam}",
            "--journal", str(db), "--json", "--clock", "20261124080010"]
    run = ykt(*base, "--codes", codes, "--taps", "3")
    assert run.returncode == 3, run.stderr                     # its worst outcome: the replay, declined
    outs = [json.loads(line) for line in run.stdout.splitlines()]
    assert [(o.get("medium"), o["status"], o.get("reason")) for o in outs] == [
        ("qr", "approved", None), ("qr", "declined", "replay"), ("physical", "approved", None)]
    assert "ykt: codes.txt: line 3: CODE: neither hex nor base64" in run.stderr
    piped = subprocess.run([*YKT_ARGS, *map(str, base), "--codes", "-", "--taps", "1"], input=good + "\n",
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert piped.returncode == 3, piped.stderr
    assert json.loads(piped.stdout)["reason"] == "replay"      # the journal remembers across runs
    flat = [*base[:2], "--profile", "bus-flat", *base[4:]]
    line = one_line_error(ykt(*flat, "--codes", codes, "--taps", "1"))
    assert line.endswith("profile guangzhou-bus-flat: no qr table: this terminal takes no QR code")


@pytest.mark.parametrize("args, message", [
    (("--profile", "bus-qr", "--terminal-id", "440300000001"), "give either --code HEX or --image FILE"),
    (("--profile", "bus-qr", "--code", "80"), "give either --psam R or --terminal-id HEX12"),
    (("--profile", "bus-qr", "--code", "zz", "--terminal-id", "440300000001"),
     "Invalid value for --code: CODE: neither hex nor base64"),
    (("--profile", "bus-flat", "--code", "80", "--terminal-id", "440300000001"),
     "Invalid value for --profile: profile guangzhou-bus-flat: no qr table: this terminal takes no QR code"),
    (("--profile", "metro-entry", "--code", "80", "--terminal-id", "440300000001"),
     "Invalid value for --amount: amount: profile"),
    (("--profile", "bus-qr", "--code", "80", "--terminal-id", "4403"),
     "Invalid value for --terminal-id: must be 6 bytes (12 hex digits), got 4 digits: '4403'"),
])
def test_scan_refusals_are_one_line(args, message):
    assert message in one_line_error(ykt("terminal", "scan", *args))


def test_run_refuses_an_unreadable_codes_file(tmp_path):
    line = one_line_error(ykt("terminal", "run", "--profile", "bus-flat", "--card", "image:x", "--psam", "image:y",
                              "--journal", tmp_path / "j.db", "--codes", tmp_path / "none.txt", "--taps", "1"))
    assert "Invalid value for --codes: cannot read" in line
