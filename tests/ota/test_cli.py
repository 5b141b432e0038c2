"""`ykt host serve|orders` and `ykt wallet topup|sync` as a user runs them: the host in its own process,
the wallet on a card image, refusals as one line, exit status 0 only when the money is on the card."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from keysets import TEST_KEYSET_DIR

from tests.tools.cli import one_line_error, ykt

from .helpers import HostProcess, free_port

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"
WALLETS = Path(__file__).resolve().parents[2] / "ota" / "test" / "wallets-test.toml"


def issue_card_image(tmp: Path, name: str = "card.json", balance: int = 5000) -> Path:
    card = tmp / name
    issued = ykt("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-guangzhou", "--balance",
                 str(balance), "--out", card, "--clock", "20261124080000")
    assert issued.returncode == 0, issued.stderr
    return card


@pytest.fixture
def host(tmp_path):
    h = HostProcess.start(tmp_path / "host.db", 0, "--max-balance", "20000")
    yield h
    h.stop()


def topup(card: Path, url: str, amount: int, *extra: str):
    return ykt("wallet", "topup", "--card", f"image:{card}", "--host", url, "--amount", str(amount), "--account",
               "wallet-0001", *extra)


def test_topup_then_orders(host, tmp_path):
    card = issue_card_image(tmp_path)
    p = topup(card, host.url, 1000, "--json")
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["status"], out["balance_before"], out["balance_after"], out["order"]) == ("loaded", 5000, 6000,
                                                                                         "000000000001")
    human = topup(card, host.url, 500)
    assert human.returncode == 0 and human.stdout.startswith("LOADED 5.00 yuan card 3104870300000000001 balance 65.00 ")
    orders = ykt("host", "orders", "--journal", tmp_path / "host.db", "--json")
    rows = [json.loads(line) for line in orders.stdout.splitlines()]
    assert [(r["order"], r["state"], r["counter"], r["amount"]) for r in rows] == [
        ("000000000001", "confirmed", 0, 1000), ("000000000002", "confirmed", 1, 500)]
    assert "mac2" in rows[0] and "request" not in rows[0]
    listing = ykt("host", "orders", "--journal", tmp_path / "host.db", "--card", "03104870300000000001")
    assert listing.stdout.splitlines()[0].startswith("000000000001 CONFIRMED card 03104870300000000001 counter 0 ")
    synced = ykt("wallet", "sync", "--card", f"image:{card}", "--host", host.url, "--account", "wallet-0001")
    assert synced.returncode == 0 and synced.stdout == "card 3104870300000000001: no pending order\n"


def test_a_load_above_the_host_s_card_limit_and_bad_credentials_are_refused(host, tmp_path):
    card = issue_card_image(tmp_path)
    over = topup(card, host.url, 16000)
    assert over.returncode == 3          # a declined load: nothing loaded
    assert over.stdout.strip() == ("REFUSED 160.00 yuan card 3104870300000000001 (host refused (422): amount 16000: "
                                   "balance 5000 + 16000 would exceed the card's maximum balance 20000: nothing "
                                   "loaded)")
    forged = tmp_path / "forged.toml"
    forged.write_text(WALLETS.read_text(encoding="utf-8").replace(
        "73E1C17FDD9FE1D56B1B8CE28274B820E0CD64564C5D6E38BDA3D03181BEC85C", "11" * 32), encoding="utf-8")
    bad = topup(card, host.url, 100, "--credentials", forged, "--json")
    assert bad.returncode == 3
    out = json.loads(bad.stdout)
    assert out["status"] == "refused" and out["reason"] == (
        "host refused (401): authentication failed: unknown account or bad signature: nothing loaded")
    assert out["settled"] == []
    unsynced = ykt("wallet", "sync", "--card", f"image:{card}", "--host", host.url, "--account", "wallet-0001",
                   "--credentials", forged)
    assert unsynced.returncode == 1 and unsynced.stdout == (
        "NOT SYNCED (pending orders unknown: host refused (401): authentication failed: unknown account or bad "
        "signature)\n")
    assert "11" * 32 not in bad.stdout + bad.stderr
    line = one_line_error(ykt("wallet", "topup", "--card", f"image:{card}", "--host", host.url, "--amount", "100",
                              "--account", "wallet-0042"))
    assert line.endswith("wallets-test.toml: accounts: no account 'wallet-0042'")
    assert ykt("host", "orders", "--journal", tmp_path / "host.db").stdout == "no order\n"


def test_an_unreachable_host_refuses_after_its_retries(tmp_path):
    card = issue_card_image(tmp_path)
    p = topup(card, f"http://127.0.0.1:{free_port()}", 100, "--retries", "1", "--timeout", "1")
    assert p.returncode == 3 and "no answer after 2 attempt(s)" in p.stdout and "nothing loaded now" in p.stdout


@pytest.mark.parametrize("args, message", [
    (("host", "serve", "--keyset", "gd-test-3des", "--credentials", "nothing.toml"),
     "nothing.toml: no such credential file"),
    (("host", "serve"), "Missing option '--keyset'"),
    (("host", "orders", "--journal", "none.db"), "Invalid value for --journal: no such host journal 'none.db'"),
    (("wallet", "topup", "--card", "image:x.json", "--host", "ftp://h", "--amount", "1", "--account", "wallet-0001"),
     "Invalid value for --host: host URL 'ftp://h': expected http://HOST:PORT"),
    (("wallet", "topup", "--card", "image:x.json", "--host", "http://h:1", "--amount", "1", "--account",
      "wallet-0001", "--aid", "A000"), "Invalid value for --aid: an AID is 5 to 16 bytes, got 2"),
    (("wallet", "topup", "--card", "image:x.json", "--host", "http://h:1", "--amount", "0", "--account",
      "wallet-0001"), "Invalid value for '--amount'"),
])
def test_refusals_are_one_line(tmp_path, args, message):
    assert message in one_line_error(ykt(*args, cwd=tmp_path))


def test_a_busy_port_is_refused_in_one_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        line = one_line_error(ykt("host", "serve", "--keyset", "gd-test-3des", "--port", str(port), "--journal",
                                  tmp_path / "h.db"))
    assert line.startswith(f"ykt: error: host serve: Invalid value for --port: cannot listen on 127.0.0.1:{port}: ")
