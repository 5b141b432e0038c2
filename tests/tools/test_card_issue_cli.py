"""`ykt card issue`, `ykt card blank` and `ykt card personalise` as a user runs them: subprocesses, exit codes,
one-line errors, files on disk; the script round trip through an image reader and through pcscd + vpcd.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import TEST_KEYSET_DIR, KeySet
from ykt_card.card.image import card_to_doc, load_card

YKT = [sys.executable, "-m", "tools.cli"]
K3 = str(TEST_KEYSET_DIR / "gd-test-3des.toml")
K4 = str(TEST_KEYSET_DIR / "gd-test-sm4.toml")
ROOT = Path(__file__).resolve().parents[2]
CLOCK = ["--clock", "20261124090000"]


def ykt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*YKT, *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def ok(*args: str) -> str:
    r = ykt(*args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def refused(code: int, *args: str) -> str:
    """Run, expect exit `code` and exactly one line on stderr, return that line."""
    r = ykt(*args)
    assert r.returncode == code, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ykt: error: "), r.stderr
    return lines[0]


def comparable(path: Path) -> dict:
    """The image minus what a scripted card legitimately holds differently (see tests/ykt_card/test_script.py)."""
    doc = card_to_doc(load_card(path))
    for ks in doc["key_sets"].values():
        del ks["name"], ks["source"]
    del doc["transport_key"]
    return doc


# -- issue --------------------------------------------------------------------------------------------

def test_issue_reference_card_and_registry(tmp_path):
    reg = tmp_path / "registry.jsonl"
    out = ok("card", "issue", "--keyset", K3, "--keyset", K4, "--out", str(tmp_path / "a.json"),
             "--registry", str(reg), *CLOCK, "--json")
    line = json.loads(out)
    assert line["card_no"] == "03105810000000000001" and line["image"] == str(tmp_path / "a.json")
    st = load_card(tmp_path / "a.json")
    assert st.files[0x1A].records[1][:6] == bytes.fromhex("27017D010100")
    assert st.files[0x1A].records[2][:6] == bytes.fromhex("27027D010100")
    assert st.files[0x17].data[8:10] == b"\x00\x01"
    ok("card", "issue", "--keyset", K3, "--profile", "gd-dongguan", "--algorithm", "3des",
       "--out", str(tmp_path / "b.json"), "--registry", str(reg), *CLOCK)
    lines = [json.loads(x) for x in reg.read_text().splitlines()]
    assert [x["card_no"] for x in lines] == ["03105810000000000001", "03104870200000000001"]
    for x in lines:
        assert {"card_no", "issuer_id", "city", "medium", "card_type", "issued_on", "price", "profile"} <= set(x)
    assert lines[1]["issuer_id"] == "01616020FFFFFFFF" and lines[1]["city"] == "6020"
    assert lines[1]["issued_on"] == "2026-11-24" and lines[1]["profile"] == "gd-dongguan"
    assert list(load_card(tmp_path / "b.json").key_sets) == [1]


def test_phone_cards_register_medium_virtual_and_their_aid(tmp_path):
    """M3: `--profile …-virtual` registers medium virtual and the extended AID; the image selects by it."""
    reg = tmp_path / "registry.jsonl"
    ok("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-guangzhou-virtual", "--out",
       str(tmp_path / "phone.json"), "--registry", str(reg), *CLOCK)
    ok("card", "issue", "--keyset", K3, "--profile", "generic-virtual", "--out", str(tmp_path / "generic.json"),
       "--registry", str(reg), *CLOCK)
    ok("card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--out", str(tmp_path / "plastic.json"),
       "--registry", str(reg), *CLOCK)
    lines = [json.loads(x) for x in reg.read_text().splitlines()]
    assert [(x["profile"], x["medium"], x["aid"]) for x in lines] == [
        ("gd-guangzhou-virtual", "virtual", "A0000006320101055800022058100000"),
        ("generic-virtual", "virtual", "A00000063201010558105810FFFFFFFF"),
        ("gd-guangzhou", "physical", "A000000632010105")]
    assert lines[0]["card_no"] == "03104870300000000001" and lines[0]["issuer_id"] == "02205810FFFFFFFF"
    phone = card_to_doc(load_card(tmp_path / "phone.json"))["application"]
    assert phone["aid"] == "A0000006320101055800022058100000"
    assert phone["ppse"] == [{"aid": "A0000006320101055800022058100000", "label": "MOT_T_EP", "priority": 1}]


def test_batch_into_a_folder_with_scripts(tmp_path):
    out, scripts, reg = tmp_path / "cards", tmp_path / "scripts", tmp_path / "reg.jsonl"
    ok("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-guangzhou", "--card-no",
       "03104870300000000099", "--count", "3", "--out", str(out), "--script", str(scripts), "--registry", str(reg),
       *CLOCK)
    numbers = ["03104870300000000099", "03104870300000000100", "03104870300000000101"]
    assert sorted(p.name for p in out.iterdir()) == [f"{n}.json" for n in numbers]
    assert sorted(p.name for p in scripts.iterdir()) == [f"{n}.jsonl" for n in numbers]
    assert [json.loads(x)["card_no"] for x in reg.read_text().splitlines()] == numbers
    assert [load_card(out / f"{n}.json").card_no for n in numbers] == numbers
    again = refused(2, "card", "issue", "--keyset", K3, "--profile", "gd-guangzhou", "--card-no", numbers[0],
                    "--count", "2", "--out", str(out))
    assert "already exists; refusing to overwrite it" in again


def test_card_keys_match_ykt_keys_derive(tmp_path):
    ok("card", "issue", "--keyset", K3, "--keyset", K4, "--profile", "gd-shenzhen", "--out",
       str(tmp_path / "c.json"), *CLOCK)
    st = load_card(tmp_path / "c.json")
    for index, ks in ((1, K3), (2, K4)):
        derived = json.loads(ok("keys", "derive", ks, "--issuer", st.issuer_id.hex(), "--serial", st.serial8.hex(),
                                "--json"))
        assert derived["issuer_id"] == "02215840FFFFFFFF"
        card = {r: e["kcv"] for r, e in derived["card_keys"].items()}
        assert card == {r: e.kcv for r, e in st.key_sets[index].keys.items()}
        masters = {r: e.kcv for r, e in KeySet.load(ks).keys.items()}
        assert all(card[r] != masters[r] for r in card)


def test_algorithm_keeps_one_slot(tmp_path):
    ok("card", "issue", "--keyset", K3, "--keyset", K4, "--algorithm", "sm4", "--out", str(tmp_path / "s.json"))
    st = load_card(tmp_path / "s.json")
    assert list(st.key_sets) == [2] and st.key_sets[2].algorithm.value == "sm4"


# -- refusals: exit 2, one line, nothing written ----------------------------------------------------------

def test_balance_above_the_maximum_is_refused(tmp_path):
    line = refused(2, "card", "issue", "--keyset", K3, "--balance", "100001", "--out", str(tmp_path / "x.json"))
    assert "--balance 100001: must be 0..100000 fen" in line
    assert not (tmp_path / "x.json").exists()
    ok("card", "issue", "--keyset", K3, "--balance", "100000", "--out", str(tmp_path / "y.json"))
    assert load_card(tmp_path / "y.json").purse.balance == 100000


def test_non_test_key_set_is_refused(tmp_path):
    text = Path(K3).read_text().replace("test_only = true", "test_only = false").replace(
        'name = "GD-TEST-3DES (test keys, not for production)"', 'name = "GD 3DES"')
    prod = tmp_path / "prod.toml"
    prod.write_text(text)
    line = refused(2, "card", "issue", "--keyset", str(prod), "--out", str(tmp_path / "x.json"))
    assert "prod.toml: GD 3DES is not marked test_only" in line
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("field,value,reason", [
    ("city", "58A0", "city: must be 4 decimal digits"),
    ("org_code", "02", "org_code: must be 4 hex digits"),
    ("colour", "red", "colour: unknown field"),
    ("max_balance", "-5", "max_balance: must be an integer"),
    ("capp_records", "[1, 40]", "capp_records: record ID 40 outside 1..18"),
])
def test_bad_profile_field_is_refused_by_name(tmp_path, field, value, reason):
    src = (ROOT / "specs" / "profiles" / "cards" / "reference.yaml").read_text().splitlines()
    lines = [x for x in src if not x.startswith(f"{field}:")] + [f"{field}: {value}"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("\n".join(lines) + "\n")
    line = refused(2, "card", "issue", "--keyset", K3, "--profile", str(bad), "--out", str(tmp_path / "x.json"))
    assert f"{bad}: {reason}" in line
    assert not (tmp_path / "x.json").exists()


def test_other_bad_inputs_are_one_line(tmp_path):
    assert "no card profile named 'atlantis'" in refused(2, "card", "issue", "--keyset", K3, "--profile", "atlantis",
                                                         "--out", str(tmp_path / "x.json"))
    assert "numbers start with 031048704" in refused(2, "card", "issue", "--keyset", K3, "--profile", "gd-shenzhen",
                                                     "--card-no", "03105810000000000001", "--out",
                                                     str(tmp_path / "x.json"))
    assert "--balance" in refused(2, "card", "issue", "--keyset", K3, "--balance", "100", "--script",
                                  str(tmp_path / "x.jsonl"), "--out", str(tmp_path / "x.json"))
    assert not any(tmp_path.iterdir())


# -- the script round trip ----------------------------------------------------------------------------

@pytest.mark.parametrize("algorithm", ["3des", "sm4", None], ids=["3des-only", "sm4-only", "dual"])
def test_blank_plus_script_equals_direct_issue(tmp_path, algorithm):
    alg = ["--algorithm", algorithm] if algorithm else []
    keys = ["--keyset", K3, "--keyset", K4]
    ok("card", "issue", *keys, *alg, "--profile", "gd-zhuhai", "--out", str(tmp_path / "direct.json"),
       "--script", str(tmp_path / "card.jsonl"), *CLOCK)
    blank = json.loads(ok("card", "blank", *keys, *alg, "--profile", "gd-zhuhai", "--out",
                          str(tmp_path / "blank.json"), "--json"))
    assert blank["transport_key"]["algorithm"] == (algorithm or "3des")
    assert "value" not in json.dumps(blank)
    run = json.loads(ok("card", "personalise", "--script", str(tmp_path / "card.jsonl"), "--reader",
                        f"image:{tmp_path / 'blank.json'}", *keys, "--seed", "4", "--json",
                        "--trace", str(tmp_path / "trace.jsonl")))
    assert run["steps"] == len((tmp_path / "card.jsonl").read_text().splitlines()) - 1
    assert comparable(tmp_path / "blank.json") == comparable(tmp_path / "direct.json")
    trace = [json.loads(x) for x in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert len(trace) == 2 * run["steps"]


def test_personalise_refusals_change_nothing(tmp_path):
    ok("card", "issue", "--keyset", K3, "--keyset", K4, "--out", str(tmp_path / "direct.json"),
       "--script", str(tmp_path / "card.jsonl"))
    ok("card", "blank", "--keyset", K3, "--keyset", K4, "--out", str(tmp_path / "blank.json"))
    blank = (tmp_path / "blank.json").read_bytes()
    reader = f"image:{tmp_path / 'blank.json'}"
    line = refused(2, "card", "personalise", "--script", str(tmp_path / "card.jsonl"), "--reader", reader,
                   "--keyset", K4)
    assert "script key 'transport' (3des card_master" in line
    assert (tmp_path / "blank.json").read_bytes() == blank
    ok("card", "personalise", "--script", str(tmp_path / "card.jsonl"), "--reader", reader, "--keyset", K3,
       "--keyset", K4)
    done = (tmp_path / "blank.json").read_bytes()
    line = refused(1, "card", "personalise", "--script", str(tmp_path / "card.jsonl"), "--reader", reader,
                   "--keyset", K3, "--keyset", K4)
    assert "step 3 (WRITE KEY tac 01" in line and "card answered 6988" in line
    assert (tmp_path / "blank.json").read_bytes() == done
    broken = tmp_path / "broken.jsonl"
    broken.write_text((tmp_path / "card.jsonl").read_text().replace('"step":3,', '"step":4,', 1))
    line = refused(2, "card", "personalise", "--script", str(broken), "--reader", reader, "--keyset", K3)
    assert f"{broken}: line 4: step: must be 3" in line


@pytest.mark.pcsc
def test_personalise_a_blank_card_served_through_pcscd(tmp_path, pcscd):
    keys = ["--keyset", K3, "--keyset", K4]
    ok("card", "issue", *keys, "--profile", "gd-jieyang", "--out", str(tmp_path / "direct.json"),
       "--script", str(tmp_path / "card.jsonl"), *CLOCK)
    ok("card", "blank", *keys, "--profile", "gd-jieyang", "--out", str(tmp_path / "blank.json"))
    proc = subprocess.Popen([*YKT, "card", "serve", str(tmp_path / "blank.json"), "--vpcd", "localhost:35963",
                             "--seed", "3"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pcscd.wait_card(vpcd_reader_name(0), present=True, timeout=15)
        ok("card", "personalise", "--script", str(tmp_path / "card.jsonl"), "--reader",
           f"pcsc:{vpcd_reader_name(0)}", *keys)
        read = json.loads(ok("card", "read", "--reader", f"pcsc:{vpcd_reader_name(0)}", "--json"))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        pcscd.wait_card(vpcd_reader_name(0), present=False, timeout=15)
    assert proc.returncode == 0
    assert comparable(tmp_path / "blank.json") == comparable(tmp_path / "direct.json")
    assert "03104871900000000001" in json.dumps(read)


def test_a_batch_streams_cards_and_registry_lines_and_never_overwrites(tmp_path):
    from .cli import ykt as run
    reg = tmp_path / "reg.jsonl"
    out = tmp_path / "batch"
    p = run("card", "issue", "--keyset", K3, "--count", "3", "--out", out, "--registry", reg)
    assert p.returncode == 0 and p.stderr == ""           # no progress noise when stderr is not a terminal
    assert len(p.stdout.splitlines()) == 3 and len(reg.read_text().splitlines()) == 3
    again = run("card", "issue", "--keyset", K3, "--count", "3", "--out", out, "--registry", reg)
    assert again.returncode != 0 and "refusing to overwrite" in again.stderr
    assert len(reg.read_text().splitlines()) == 3          # nothing appended for a refused batch
    single = out / "03105810000000000001.json"
    assert run("card", "issue", "--keyset", K3, "--out", single).returncode != 0


def test_ykt_without_a_command_shows_help():
    from .cli import ykt as run
    p = run()
    assert p.returncode == 0 and p.stdout.startswith("Usage: ykt")
