"""`ykt terminal` and `ykt journal` on image readers: outcomes, traces of both readers, exact repeats, errors."""
from __future__ import annotations

import json

import pytest

from keysets import TEST_KEYSET_DIR

from .cli import one_line_error, ykt

K3 = TEST_KEYSET_DIR / "gd-test-3des.toml"
K4 = TEST_KEYSET_DIR / "gd-test-sm4.toml"


@pytest.fixture
def parts(tmp_path):
    card, psam = tmp_path / "card.json", tmp_path / "psam.json"
    assert ykt("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-guangzhou", "--balance", "5000",
               "--out", card, "--clock", "20261124080000").returncode == 0
    assert ykt("psam", "issue", "--keyset", K3, "--keyset", K4, "--terminal-id", "440300000001",
               "--out", psam).returncode == 0
    return card, psam


def tap(card, psam, *args, cwd=None):
    p = ykt("terminal", "tap", "--card", f"image:{card}", "--psam", f"image:{psam}", "--json", *map(str, args),
            cwd=cwd)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def test_tap_traces_card_and_psam_and_repeats_exactly(parts, tmp_path):
    card, psam = parts
    runs = []
    for i in range(2):
        run = tmp_path / f"run{i}"
        run.mkdir()
        (run / "card.json").write_bytes(card.read_bytes())
        (run / "psam.json").write_bytes(psam.read_bytes())
        out = tap("card.json", "psam.json", "--profile", "bus-flat", "--seed", "5", "--clock", "20261124081000",
                  "--trace", "t.jsonl", cwd=run)
        runs.append((out, *((run / f).read_text() for f in ("t.jsonl", "card.json", "psam.json"))))
    assert runs[0] == runs[1]                      # outcome, trace and both images byte for byte
    out, trace_text, _, _ = runs[0]
    assert out["status"] == "approved" and out["amount"] == 200 and out["balance_after"] == 4800
    readers = {json.loads(line)["reader"] for line in trace_text.splitlines()}
    assert readers == {"image:card.json", "image:psam.json"}
    shown = ykt("trace", "show", tmp_path / "run0" / "t.jsonl").stdout
    assert "PSAM INIT FOR PURCHASE" in shown and "DEBIT terminal seq 00000001" in shown


def test_load_run_and_export(parts, tmp_path):
    card, psam = parts
    db = tmp_path / "j.db"
    load = ykt("terminal", "load", "--card", f"image:{card}", "--keyset", K3, "--amount", "1000", "--terminal-id",
               "440300009001", "--journal", db, "--json", "--clock", "20261124080500")
    assert load.returncode == 0 and json.loads(load.stdout)["balance_after"] == 6000
    run = ykt("terminal", "run", "--profile", "metro-entry", "--card", f"image:{card}", "--psam", f"image:{psam}",
              "--journal", db, "--taps", "3", "--json", "--clock", "20261124081000")
    assert run.returncode == 0, run.stderr
    outs = [json.loads(line) for line in run.stdout.splitlines()]
    assert [o["status"] for o in outs] == ["approved"] * 3 and all(o["type"] == "09" and o["tac"] for o in outs)
    csv_out = tmp_path / "c.csv"
    assert ykt("journal", "export", db, "--format", "csv", "--out", csv_out).returncode == 0
    lines = csv_out.read_text().splitlines()
    assert lines[0].startswith("status,reason,type,card_no,issuer_id,amount,balance_before,balance_after")
    assert len(lines) == 1 + 1 + 3


def test_bad_options_are_one_line(parts, tmp_path):
    card, psam = parts
    base = ["terminal", "tap", "--card", f"image:{card}", "--psam", f"image:{psam}"]
    assert "no terminal profile named 'tram'" in one_line_error(ykt(*base, "--profile", "tram"))
    assert "holds a psam, not a card" in one_line_error(
        ykt("terminal", "tap", "--profile", "bus-flat", "--card", f"image:{psam}", "--psam", f"image:{psam}"))
    assert "--amount" in one_line_error(ykt(*base, "--profile", "metro-entry", "--amount", "100"))
    assert "--clock" in one_line_error(ykt(*base, "--profile", "bus-flat", "--clock", "2026"))
    assert "--taps" in one_line_error(ykt("terminal", "run", "--profile", "bus-flat", "--card", f"image:{card}",
                                          "--psam", f"image:{psam}", "--journal", tmp_path / "j.db"))
    assert "--terminal-id" in one_line_error(ykt("terminal", "load", "--card", f"image:{card}", "--keyset", K3,
                                                 "--amount", "1", "--terminal-id", "12"))
    broken = tmp_path / "broken.json"
    broken.write_text(card.read_text()[:200])
    assert "truncated or corrupt" in one_line_error(ykt(*base[:2], "--profile", "bus-flat", "--card",
                                                        f"image:{broken}", "--psam", f"image:{psam}"))
    assert "no such journal" in one_line_error(ykt("journal", "export", tmp_path / "none.db", "--out",
                                                   tmp_path / "x.jsonl"))
