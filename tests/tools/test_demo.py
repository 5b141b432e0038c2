"""`ykt demo` tells the whole story, and the same options tell it byte for byte."""
import json

from keysets import TEST_KEYSET_DIR, KeySet
from clearing import tac_verifies
from terminal_sim.outcome import Outcome

from .cli import one_line_error, ykt


def test_demo_runs_the_story_and_repeats_exactly(tmp_path):
    runs = []
    for i in range(2):
        out = tmp_path / f"d{i}"
        p = ykt("demo", "--out", out)
        assert p.returncode == 0, p.stderr
        runs.append((p.stdout.replace(str(out), "OUT"), (out / "clearing.jsonl").read_text()))
    assert runs[0] == runs[1]
    text, clearing = runs[0]
    for step in ("Issue a Guangzhou", "Load 50.00 yuan", "Bus, flat fare", "Metro entry", "Metro exit",
                 "leaves the field just after DEBIT", "GET TRANSACTION PROVE", "Clearing upload file"):
        assert step in text
    assert "INITIALIZE FOR CAPP PURCHASE" in text and "PSAM CREDIT FOR PURCHASE" in text
    assert "ISSUER CHECK FAILED" not in text
    records = [Outcome.from_json(line) for line in clearing.splitlines()]
    assert [r.status for r in records] == ["approved"] * 4 + ["recovered"]
    keysets = [KeySet.load(TEST_KEYSET_DIR / f) for f in ("gd-test-3des.toml", "gd-test-sm4.toml")]
    assert all(tac_verifies(r, keysets) for r in records)
    assert json.loads(clearing.splitlines()[-1])["mac2_verified"] is True


def test_demo_refuses_a_folder_with_files(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    assert "not empty" in one_line_error(ykt("demo", "--out", tmp_path))
