"""`ykt qr …` as a user runs it: the TEST PKI commands rebuild the shipped files, the phone, verify, errors."""
from __future__ import annotations

import json
import re

import pytest

from ykt_qr import TEST_PKI_DIR
from ykt_qr.vectors import REAL_CODE, REAL_ROOT_02

from .cli import one_line_error, ykt

AT = "20261124080000"          # 1795478400


def _secrets() -> set[str]:
    """Every private key of the shipped TEST PKI (a leak of a key in any output fails the test)."""
    found = set()
    for path in TEST_PKI_DIR.glob("*.toml"):
        found |= set(re.findall(r'^private_key = "([0-9A-F]{64})"', path.read_text(), flags=re.MULTILINE))
    assert len(found) == 3
    return found


def _clean(*texts: str) -> None:
    for secret in _secrets():
        for text in texts:
            assert secret not in text.upper()


def test_the_shipped_pki_is_what_the_commands_make_with_its_seeds(tmp_path):
    """The README's recipe, byte for byte: a seed repeats the root, the issuer and the account."""
    steps = [
        ("qr", "ca", "init", "--index", "F0", "--expiry", "1249", "--seed", "1", "--out", tmp_path / "test-root-f0.toml",
         "--roots", tmp_path / "roots-test.json"),
        ("qr", "issuer", "add", "--ca", tmp_path / "test-root-f0.toml", "--code", "F0000001", "--platform", "F0000002",
         "--cert-expiry", "1239", "--serial", "000001", "--seed", "2", "--out", tmp_path / "test-issuer.toml"),
        ("qr", "authorise", "--issuer", tmp_path / "test-issuer.toml", "--account", "TEST000000000001",
         "--account-no", "9001000000000000001", "--until", "20391231235959", "--at", "20260101000000", "--seed", "3",
         "--out", tmp_path / "test-account.toml"),
    ]
    outputs = []
    for step in steps:
        p = ykt(*step)
        assert p.returncode == 0, p.stderr
        outputs.append(p.stdout + p.stderr)
    for name in ("test-root-f0.toml", "test-issuer.toml", "test-account.toml", "roots-test.json"):
        assert (tmp_path / name).read_text() == (TEST_PKI_DIR / name).read_text(), name
    assert outputs[0].startswith("TEST root F0, expires 12/2049, key ")
    _clean(*outputs)


def test_show_then_verify_from_the_picture_and_at_a_terminal(tmp_path):
    png, svg, seen = tmp_path / "code.png", tmp_path / "code.svg", tmp_path / "seen.json"
    shown = ykt("qr", "show", "test-account", "--at", AT, "--seed", "4", "--png", png, "--svg", svg, "--json")
    assert shown.returncode == 0, shown.stderr
    doc = json.loads(shown.stdout)
    assert (doc["length"], doc["gen_time"]) == (332, 1795478400) and png.is_file() and svg.is_file()
    again = ykt("qr", "show", "test-account", "--at", AT, "--seed", "4", "--no-symbol")
    assert again.stdout.strip() == doc["code"]
    _clean(shown.stdout, again.stdout)

    from_picture = ykt("qr", "verify", "--image", png, "--roots", "roots-test", "--at", "1795478410", "--json")
    assert from_picture.returncode == 0, from_picture.stderr
    verdict = json.loads(from_picture.stdout)
    assert (verdict["accepted"], verdict["reason"]) == (True, None)
    assert [c["result"] for c in verdict["checks"]][-4:] == ["skipped"] * 4

    def at_terminal(at: str):
        return ykt("qr", "verify", doc["code"], "--roots", "roots-test", "--at", at, "--profile", "bus-qr",
                   "--replay", seen, "--json")
    first, second = at_terminal("20261124080010"), at_terminal("20261124080020")
    assert first.returncode == 0 and json.loads(first.stdout)["ticket_type"] == "01"
    assert second.returncode == 3                                   # refused, as the validator declines it
    assert (json.loads(second.stdout)["accepted"], json.loads(second.stdout)["reason"]) == (False, "replay")


def test_over_limit_with_the_profile_fare_or_an_amount(tmp_path):
    account = tmp_path / "a.toml"
    assert ykt("qr", "authorise", "--issuer", "test-issuer", "--account", "LIMIT00000000001", "--account-no", "1",
               "--limit", "150", "--at", AT, "--seed", "5", "--out", account).returncode == 0
    code = ykt("qr", "show", account, "--at", AT, "--seed", "6", "--no-symbol").stdout.strip()
    p = ykt("qr", "verify", code, "--roots", "roots-test", "--at", "20261124080005", "--profile", "bus-qr")
    assert p.returncode == 3
    assert "over_limit" in p.stdout and "fare 200 fen above the code's limit 150 fen" in p.stdout
    assert p.stdout.rstrip().endswith("REFUSED: over_limit")
    ok = ykt("qr", "verify", code, "--roots", "roots-test", "--at", "20261124080005", "--profile", "bus-qr",
             "--amount", "150")
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("ACCEPTED (ticket type 01)")


@pytest.mark.parametrize("at, reason", [("20200623141820", "root_unknown"), (None, "cert_expired")])
def test_the_real_sample_ends_as_q14_says(tmp_path, at, reason):
    roots = tmp_path / "roots.json"
    roots.write_text(json.dumps({"02": REAL_ROOT_02.hex().upper()}))
    p = ykt("qr", "verify", REAL_CODE.hex(), "--roots", roots, "--json", *(["--at", at] if at else []))
    assert p.returncode == 3
    assert json.loads(p.stdout)["reason"] == reason


@pytest.mark.parametrize("args, message", [
    (("qr", "verify", "--roots", "roots-test"), "qr verify: give either CODE_HEX or --image FILE"),
    (("qr", "verify", "80", "--roots", "roots-test", "--at", "2026-11-24"),
     "qr verify: Invalid value for --at: time '2026-11-24': expected Unix seconds or YYYYMMDDhhmmss (China time)"),
    (("qr", "verify", "80", "--roots", "roots-test", "--replay", "x.json"),
     "Invalid value for --replay: remembering codes is part of checks 11-12: give --profile too"),
    (("qr", "verify", "80", "--roots", "roots-test", "--profile", "bus-flat"),
     "Invalid value for --profile: bus-flat.yaml has no qr table: this terminal takes no QR code"),
    (("qr", "verify", "80", "--roots", "nothing-here.json"), "nothing-here.json: no such root store file"),
    (("qr", "verify", "--image", "nothing.png", "--roots", "roots-test"),
     "Invalid value for --image: nothing.png: no such image file"),
    (("qr", "authorise", "--issuer", "test-issuer", "--account", "SHORT", "--account-no", "1", "--out", "x.toml"),
     "Invalid value for --account: must be 16 printable ASCII characters, got 5"),
    (("qr", "authorise", "--issuer", "test-issuer", "--account", "A" * 16, "--account-no", "1", "--custom", "00" * 33,
      "--out", "x.toml"), "Invalid value for --custom: at most 32 bytes, got 33"),
    (("qr", "ca", "init", "--index", "02", "--out", "x.toml"),
     "Invalid value for --index: root index 02: TEST roots use F0..FF (Q13)"),
    (("qr", "ca", "init", "--expiry", "1349", "--out", "x.toml"),
     "Invalid value for --expiry: 1349 is not a BCD MMYY date"),
    (("qr", "issuer", "add", "--ca", "test-issuer", "--out", "x.toml"), "test-issuer.toml: kind: must be 'qr-root', got 'qr-issuer': not a QR root CA file"),
    (("qr", "show", "test-root-f0"), "test-root-f0.toml: kind: must be 'qr-account', got 'qr-root': not a QR account file"),
])
def test_errors_are_one_line_naming_the_option_or_file(tmp_path, args, message):
    line = one_line_error(ykt(*args, cwd=tmp_path))
    assert line.endswith(message), line
    _clean(line)


def test_verify_takes_the_root_store_of_the_profile(tmp_path):
    shown = ykt("qr", "show", "test-account", "--at", "20261124080000", "--seed", "1", "--no-symbol")
    p = ykt("qr", "verify", shown.stdout.strip(), "--at", "20261124080010", "--profile", "bus-qr", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["accepted"] is True
    line = one_line_error(ykt("qr", "verify", shown.stdout.strip()))
    assert line == ("ykt: error: qr verify: Invalid value for --roots: give the root store, or a --profile whose qr "
                    "table names one (qr.roots)")
