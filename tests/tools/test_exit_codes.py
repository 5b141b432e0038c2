"""Exit codes and messages a script can trust (issue 12, part 5): the documented table, an exit code per
outcome, usage and input errors exit 2 everywhere, and the messages the probe found wrong, fixed."""
from __future__ import annotations

import json
import re
from pathlib import Path

from keysets import TEST_KEYSET_DIR
from tools import errors

from tests.storage import tmpfs

from .cli import ROOT, one_line_error, ykt
from .test_card_nfc import free_udp_port

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
CLOCK = ("--clock", "20261124081000")


def issue(tmp_path: Path, balance: int) -> tuple[Path, Path]:
    card, psam = tmp_path / "card.json", tmp_path / "psam.json"
    assert ykt("card", "issue", "--keyset", K3, "--balance", str(balance), "--out", card,
               "--clock", "20261124080000").returncode == 0
    if not psam.exists():
        assert ykt("psam", "issue", "--keyset", K3, "--terminal-id", "440300000001", "--out", psam).returncode == 0
    return card, psam


def test_the_documented_table_is_the_code():
    doc = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", doc, flags=re.M))
    assert {int(code) for code in rows} == {errors.EXIT_OK, errors.EXIT_FAILED, errors.EXIT_BAD_INPUT,
                                            errors.EXIT_DECLINED, errors.EXIT_INCOMPLETE, errors.EXIT_INTERRUPTED}
    assert "declined" in rows[str(errors.EXIT_DECLINED)] and "torn" in rows[str(errors.EXIT_INCOMPLETE)]
    assert "usage or input error" in rows[str(errors.EXIT_BAD_INPUT)]
    assert errors.OUTCOME_EXIT == {"approved": 0, "recovered": 0, "declined": 3, "failed": 4, "torn": 4}
    assert errors.outcome_exit([]) == 0 and errors.outcome_exit(["approved", "declined", "torn"]) == 4
    assert all(str(code) in (errors.__doc__ or "") for code in (0, 1, 2, 3, 4, 130))


def test_approved_exits_0_and_declined_exits_3_with_the_outcome_on_stdout(tmp_path):
    card, psam = issue(tmp_path, balance=200)
    base = ["terminal", "tap", "--profile", "bus-flat", "--card", f"image:{card}", "--psam", f"image:{psam}",
            "--json"]
    approved = ykt(*base, *CLOCK)
    assert approved.returncode == 0 and json.loads(approved.stdout)["status"] == "approved"
    declined = ykt(*base, "--clock", "20261124082000")
    assert declined.returncode == 3 and declined.stderr == ""
    assert json.loads(declined.stdout)["status"] == "declined" and "9401" in json.loads(declined.stdout)["reason"]


def test_run_exits_with_its_worst_outcome(tmp_path):
    card, psam = issue(tmp_path, balance=200)
    run = ykt("terminal", "run", "--profile", "bus-flat", "--card", f"image:{card}", "--psam", f"image:{psam}",
              "--journal", tmp_path / "j.db", "--taps", "2", "--json", *CLOCK)
    assert [json.loads(line)["status"] for line in run.stdout.splitlines()] == ["approved", "declined"]
    assert run.returncode == 3 and run.stderr.strip() == f"2 outcome(s) journaled in {tmp_path / 'j.db'}"


def test_journal_and_terminal_errors_are_input_errors(tmp_path):
    card, psam = issue(tmp_path, balance=500)
    not_journal = tmp_path / "notes.db"
    not_journal.write_text("shopping list\n")
    p = ykt("terminal", "tap", "--profile", "bus-flat", "--card", f"image:{card}", "--psam", f"image:{psam}",
            "--journal", not_journal)
    assert p.returncode == 2
    assert one_line_error(p) == f"ykt: error: {not_journal}: not a ykt journal (not an SQLite database)"
    port = free_udp_port()                               # nobody serves a PSAM here
    p = ykt("terminal", "tap", "--profile", "bus-flat", "--card", f"image:{card}", "--psam",
            f"nfc:udp:localhost:{port}")
    assert p.returncode == 2 and one_line_error(p).startswith("ykt: error: PSAM start-up failed: ")


def test_qr_scans_and_checks_exit_as_transactions_do(tmp_path):
    """A refused code is declined (3) at the validator and at `qr verify`; 1 keeps meaning the command could
    not finish. The scan's journal is checked before its PSAM is asked anything (exit 2 naming it)."""
    code = ykt("qr", "show", "test-account", "--at", "20261124080000", "--seed", "1", "--no-symbol").stdout.strip()
    db = tmp_path / "j.db"
    scan = ["terminal", "scan", "--profile", "bus-qr", "--code", code, "--terminal-id", "440300000001",
            "--journal", db, "--json", "--clock", "20261124080010"]
    first, again = ykt(*scan), ykt(*scan)
    assert (first.returncode, json.loads(first.stdout)["status"]) == (0, "approved")
    assert (again.returncode, json.loads(again.stdout)["reason"], again.stderr) == (3, "replay", "")
    verify = ["qr", "verify", code, "--at", "20261124080010", "--profile", "bus-qr"]
    assert ykt(*verify).returncode == 0
    assert ykt(*verify, "--amount", "999999").returncode == 3                   # over the code's limit: refused
    not_journal = tmp_path / "notes.db"
    not_journal.write_text("shopping list\n")
    port = free_udp_port()                                                       # nobody serves a PSAM here
    p = ykt("terminal", "scan", "--profile", "bus-qr", "--code", code, "--psam", f"nfc:udp:localhost:{port}",
            "--journal", not_journal)
    assert p.returncode == 2
    assert one_line_error(p) == f"ykt: error: {not_journal}: not a ykt journal (not an SQLite database)"


def test_a_top_up_exits_by_what_became_of_the_money():
    from tools.wallet_cmd import TOPUP_EXIT
    assert TOPUP_EXIT == {"loaded": errors.EXIT_OK, "refused": errors.EXIT_DECLINED, "pending": errors.EXIT_INCOMPLETE}


def test_trace_show_on_a_binary_file_names_the_file(tmp_path):
    binary = tmp_path / "capture.pcapng"
    binary.write_bytes(bytes(range(256)) * 4)
    p = ykt("trace", "show", binary)
    assert p.returncode == 2
    assert one_line_error(p) == (f"ykt: error: trace show: Invalid value for FILE: {binary}: not a JSON Lines "
                                 "trace (binary data, not UTF-8 text)")
    assert f"{tmp_path} is a directory, not a trace" in one_line_error(ykt("trace", "show", tmp_path))


def test_an_11_digit_terminal_id_is_a_length_error(tmp_path):
    for args in (["psam", "issue", "--keyset", K3, "--out", tmp_path / "p.json", "--terminal-id", "44030000000"],
                 ["terminal", "load", "--card", "image:x.json", "--keyset", K3, "--amount", "1",
                  "--terminal-id", "44030000000"]):
        line = one_line_error(ykt(*args))
        assert line.endswith("Invalid value for --terminal-id: must be 6 bytes (12 hex digits), got 11 digits: "
                             "'44030000000'"), line
    assert "not hexadecimal: '44030000000G'" in one_line_error(
        ykt("psam", "issue", "--keyset", K3, "--out", tmp_path / "p.json", "--terminal-id", "44030000000G"))
    assert not (tmp_path / "p.json").exists()


def test_an_invalid_clock_names_the_option_and_its_form(tmp_path):
    card, psam = issue(tmp_path, balance=500)
    for value, why in (("2026-11-24", "expected 14 digits"), ("20261399000000", "(month must be in 1..12)"),
                       ("20261124250000", "(hour must be in 0..23)")):
        p = ykt("terminal", "tap", "--profile", "bus-flat", "--card", f"image:{card}", "--psam", f"image:{psam}",
                "--clock", value)
        line = one_line_error(p)
        assert p.returncode == 2 and f"Invalid value for --clock: '{value}' is not a date-time" in line, line
        assert why in line and "YYYYMMDDhhmmss (China time, e.g. 20261124081500)" in line


def test_demo_checks_its_options_before_printing_anything(tmp_path):
    out = tmp_path / "demo"
    p = ykt("demo", "--clock", "20261324000000", "--out", out)
    assert p.returncode == 2 and p.stdout == "" and not out.exists()
    assert "Invalid value for --clock: '20261324000000' is not a date-time (month must be in 1..12)" in \
        one_line_error(p)
    (tmp_path / "file").write_text("x")
    p = ykt("demo", "--out", tmp_path / "file")
    assert p.stdout == "" and f"Invalid value for '--out': Directory '{tmp_path / 'file'}' is a file." in \
        one_line_error(p)


def test_card_issue_into_a_folder_it_cannot_write_names_the_option_and_the_folder(tmp_path):
    with tmpfs(tmp_path / "ro") as fs:
        fs.read_only()
        for out in (fs.point / "card.json", fs.point / "batch" / "cards"):
            p = ykt("card", "issue", "--keyset", K3, "--out", out, *(["--count", "2"] if "batch" in str(out) else []))
            assert p.returncode == 2 and p.stdout == ""
            assert one_line_error(p) == (f"ykt: error: card issue: Invalid value for --out: cannot write into "
                                         f"folder {fs.point}: it is on a read-only file system")
        assert list(fs.point.iterdir()) == []


def test_card_issue_onto_a_full_disk_names_the_option_and_the_folder_and_exits_1(tmp_path):
    with tmpfs(tmp_path / "full", size="256k") as fs:
        filler = fs.fill()
        p = ykt("card", "issue", "--keyset", K3, "--out", fs.point / "card.json")
        assert p.returncode == 1 and p.stdout == ""
        assert one_line_error(p) == (f"ykt: error: --out: cannot write card.json in folder {fs.point}: "
                                     "No space left on device")
        assert sorted(x.name for x in fs.point.iterdir()) == ["filler"]          # no temporary file left
        filler.unlink()


def test_image_reader_on_a_directory_says_it_is_a_directory(tmp_path):
    line = one_line_error(ykt("card", "read", "--reader", f"image:{tmp_path}"))
    assert line == (f"ykt: error: card read: Invalid value for --reader: 'image:{tmp_path}': {tmp_path} is a "
                    "directory, not a card or PSAM image")


def test_an_empty_card_number_is_refused(tmp_path):
    p = ykt("card", "issue", "--keyset", K3, "--card-no", "", "--out", tmp_path / "c.json")
    assert p.returncode == 2 and not (tmp_path / "c.json").exists()
    assert one_line_error(p) == ("ykt: error: card issue: Invalid value for --card-no: empty: give the 20-digit "
                                 "card number, or leave the option out for the profile's first")
