"""`ykt clearing verify | settle` and `ykt report stats` as a user runs them."""
from __future__ import annotations

import json
from pathlib import Path

from keysets import KeySet, TEST_KEYSET_DIR
from tests.clearing.generator import Generator

from .cli import one_line_error, ykt

KEYSETS = [KeySet.load(TEST_KEYSET_DIR / f) for f in ("gd-test-3des.toml", "gd-test-sm4.toml")]
FAULTS = {"tac": 2, "duplicate": 2, "counter-gap": 2, "balance-chain": 2, "grey-open": 1, "malformed": 1,
          "unknown-terminal": 1}


def test_verify_settle_and_report(tmp_path):
    day = Generator(KEYSETS, seed=31, cards=24, rides=7, faults=FAULTS, unknown_terminals=True).day_files()
    files = day.write(tmp_path)
    (tmp_path / "terminals.csv").write_text(day.registry_csv())
    store = tmp_path / "store"
    p = ykt("clearing", "verify", *files, "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4", "--terminals",
            tmp_path / "terminals.csv", "--out", store, "--json")
    assert p.returncode == 1, p.stderr                       # records were rejected
    lines = [json.loads(line) for line in p.stdout.splitlines()]
    records, summary = lines[:-1], lines[-1]["summary"]
    assert all(set(r) <= {"file", "line", "verdict", "reasons", "detail"} for r in records)
    got = {(r["file"], r["line"]): set(r["reasons"]) for r in records if r["verdict"] == "rejected"}
    assert got == day.expected
    assert all(r["reasons"] == [] for r in records if r["verdict"] == "accepted")
    assert summary["verdicts"] == {"accepted": len(records) - len(day.expected), "rejected": len(day.expected)}
    assert summary["qr_rides"] == 0 and summary["qr_reasons"] == {}
    assert {k: v for k, v in summary["reasons"].items() if v} == day.planted

    again = ykt("clearing", "verify", *files, "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4", "--out", store)
    assert again.returncode == 1
    assert f"{len(records)} records in {len(files)} file(s) (0 new)" in again.stdout
    assert "tac" in again.stdout and "counter-gap" in again.stdout

    fees = tmp_path / "fees.yaml"
    fees.write_text('rounding: half-up\nacquirers:\n  "*": {bus: "0.006", metro: "0.004", load: "0.002"}\n')
    s = ykt("clearing", "settle", "--day", "2026-11-24", "--fees", fees, "--out", store, "--json")
    assert s.returncode == 0, s.stderr
    result = json.loads(s.stdout)
    accepted = [r for r in day.money if r["status"] != "torn"]
    assert result["reconciliation"]["ok"] and result["reconciliation"]["records"] == len(accepted)
    assert result["reconciliation"]["gross"] == sum(r["amount"] for r in accepted)
    assert (store / "settlement-2026-11-24-payments.csv").is_file()

    out = tmp_path / "return"
    r = ykt("report", "stats", "--month", "2026-11", "--city", "guangzhou", "--store", store, "--terminals",
            tmp_path / "terminals.csv", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "合计 Total" in r.stdout
    assert sorted(f.name for f in out.iterdir()) == ["stats-5810-2026-11-coverage.csv", "stats-5810-2026-11-issuance.csv",
                                                     "stats-5810-2026-11.html", "stats-5810-2026-11.md"]


def test_qr_rides_are_verified_against_the_roots_and_counted_in_the_return(tmp_path):
    """A real bus upload with three QR rides, one with a forged user signature, one replayed at another
    terminal: `verify --qr-roots` names both; the return counts the two accepted rides under QR."""
    from clearing.qr import NO_ROOTS
    from tests.clearing.conftest import KEYSET_PATHS
    from tests.clearing.real_terminal import real_day

    day = real_day(tmp_path, [KeySet.load(p) for p in KEYSET_PATHS], cards=1, qr_rides=3)
    bus = next(p for p in day.files if "upload-bus-flat." in p.name)
    lines = bus.read_text().splitlines(keepends=True)
    forged = json.loads(lines[-3])
    code = bytearray.fromhex(forged["qr_code"])
    code[300] ^= 1
    forged["qr_code"] = code.hex().upper()
    lines[-3] = json.dumps(forged) + "\n"
    bus.write_text("".join(lines))
    copy = dict(json.loads(lines[-2]), terminal_id="440300000201")
    other = tmp_path / "upload-taxi.jsonl"
    other.write_text(json.dumps(copy) + "\n")
    store = tmp_path / "store"
    p = ykt("clearing", "verify", *day.files, other, "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4",
            "--qr-roots", "roots-test", "--out", store, "--json")
    assert p.returncode == 1, p.stderr
    lines_out = [json.loads(line) for line in p.stdout.splitlines()]
    rejected = {(Path(r["file"]).name, r["line"]): r["reasons"] for r in lines_out[:-1] if r["verdict"] == "rejected"}
    assert rejected == {(bus.name, len(lines) - 2): ["user_sig"], (other.name, 1): ["qr-replay"]}
    assert lines_out[-1]["summary"]["qr_rides"] == 4
    assert lines_out[-1]["summary"]["qr_reasons"] == {"user_sig": 1, "qr-replay": 1}
    plain = ykt("clearing", "verify", bus, "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4", "--json")
    assert plain.returncode == 1
    rides = [json.loads(line) for line in plain.stdout.splitlines()[:-1] if '"medium":"qr"' in line]
    assert [(r["reasons"], r["detail"]) for r in rides] == [(["root_unknown"], NO_ROOTS)] * 3
    r = ykt("report", "stats", "--month", "2026-11", "--city", "guangzhou", "--store", store, "--json",
            "--out", tmp_path / "return")
    assert r.returncode == 0, r.stderr
    accepted = [json.loads(line) for line in lines[-2:]]           # the replay's original and the last ride
    assert json.loads(r.stdout)["issuance"]["qr"]["transactions"] == 2
    assert json.loads(r.stdout)["issuance"]["qr"]["amount"] == sum(a["amount"] for a in accepted)


def test_a_clean_upload_exits_zero(tmp_path):
    day = Generator(KEYSETS, seed=32, cards=5, rides=3).day_files()
    p = ykt("clearing", "verify", *day.write(tmp_path, "csv"), "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4")
    assert p.returncode == 0, p.stdout + p.stderr
    assert "0 rejected" in p.stdout


def test_bad_input_is_one_line(tmp_path):
    assert "no such clearing file" in one_line_error(ykt("clearing", "verify", tmp_path / "missing.jsonl",
                                                         "--keyset", "gd-test-3des"))
    (tmp_path / "a.jsonl").write_text("")
    assert "--keyset" in one_line_error(ykt("clearing", "verify", tmp_path / "a.jsonl", "--keyset", "nope"))
    assert "no clearing store" in one_line_error(ykt("clearing", "settle", "--day", "2026-11-24", "--out", tmp_path))
    assert "--day" in one_line_error(ykt("clearing", "settle", "--day", "2026-13-01", "--out", tmp_path))
    assert "--city 'atlantis'" in one_line_error(ykt("report", "stats", "--month", "2026-11", "--city", "atlantis",
                                                     "--out", tmp_path))
    assert "--month" in one_line_error(ykt("report", "stats", "--month", "2026-1", "--city", "5810"))
    (tmp_path / "t.csv").write_text("terminal_id,city\n")
    assert "t.csv: header" in one_line_error(ykt("clearing", "verify", tmp_path / "a.jsonl", "--keyset",
                                                 "gd-test-3des", "--terminals", tmp_path / "t.csv"))
