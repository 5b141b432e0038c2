"""`ykt conformance` end to end, as a lab runs it: list, run against an image card, reports, rerun."""
from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

from tests.tools.cli import one_line_error, ykt

RUN = ["conformance", "run", "--suite", "card", "--seed", "5", "--clock", "20260301120000"]


def issue(tmp_path, *algorithms: str, name: str = "card.json"):
    path = tmp_path / name
    keysets = [a for alg in algorithms for a in ("--keyset", f"gd-test-{alg}")]
    proc = ykt("card", "issue", *keysets, "--out", str(path), "--clock", "20260101090000")
    assert proc.returncode == 0, proc.stderr
    return path


def test_list_json_gives_id_title_suite_tags_reference():
    proc = ykt("conformance", "list", "--suite", "card", "--json")
    assert proc.returncode == 0, proc.stderr
    cases = json.loads(proc.stdout)
    assert len(cases) >= 60
    for c in cases:
        assert {"id", "title", "suite", "tags", "reference"} <= set(c)
        assert c["suite"] == "card" and c["id"].startswith("TU-CARD-")
    sm4 = json.loads(ykt("conformance", "list", "--json", "--tag", "sm4").stdout)
    assert sm4 and all("sm4" in c["tags"] for c in sm4)
    terminal = json.loads(ykt("conformance", "list", "--suite", "terminal", "--json").stdout)
    assert len(terminal) >= 40 and all(c["suite"] == "terminal" and c["id"].startswith("TU-TERM-") for c in terminal)
    both = json.loads(ykt("conformance", "list", "--json").stdout)
    assert {c["suite"] for c in both} == {"card", "terminal"} and len(both) == len(cases) + len(terminal)


def test_run_writes_three_reports_that_repeat_byte_for_byte(tmp_path):
    fresh = issue(tmp_path, "3des", "sm4", name="fresh.json")
    card = tmp_path / "card.json"
    outputs = []
    for n in (1, 2):
        shutil.copy(fresh, card)
        report = tmp_path / f"r{n}"
        proc = ykt(*RUN, "--dut", f"image:{card}", "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4",
                   "--profile", "reference", "--report", str(report))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 fail, 0 inconclusive" in proc.stdout
        outputs.append({f: (report / f).read_bytes() for f in ("report.json", "junit.xml", "report.html")})
    assert outputs[0] == outputs[1]
    doc = json.loads(outputs[0]["report.json"])
    assert doc["passed"] and doc["suite"] == "card" and doc["suite_version"]
    assert doc["dut"]["card_no"] == "03105810000000000001" and doc["dut"]["answer_to_reset"]
    assert {"python", "platform", "ykt"} <= set(doc["environment"])
    assert doc["run"]["keysets"] == ["gd-test-3des", "gd-test-sm4"] and doc["run"]["seed"] == 5
    case = doc["cases"][0]
    assert case["exchange"][0]["command_text"] and "duration_s" not in case
    suite = ET.fromstring(outputs[0]["junit.xml"])
    assert len(suite.findall("testcase")) == len(doc["cases"]) and suite.get("failures") == "0"
    html = outputs[0]["report.html"].decode()
    assert "Coverage matrix" in html and "TU-CARD-062" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html


def test_a_failing_run_exits_1_names_the_failures_and_rerun_repeats_only_them(tmp_path):
    card = issue(tmp_path, "3des")            # the card has no SM4 key set, the lab claims one
    report = tmp_path / "r"
    proc = ykt(*RUN, "--dut", f"image:{card}", "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4",
               "--tag", "sm4", "--report", str(report))
    assert proc.returncode == 1, proc.stderr
    assert "TU-CARD-041 fail: step 1 (initialize_load): INITIALIZE FOR LOAD under the SM4 key index is refused" \
        in proc.stdout
    suite = ET.fromstring((report / "junit.xml").read_text())
    failures = [tc for tc in suite.findall("testcase") if tc.find("failure") is not None]
    assert failures and "refused" in failures[0].find("failure").get("message")
    failed = sorted(c["id"] for c in json.loads((report / "report.json").read_text())["cases"]
                    if c["verdict"] == "fail")
    again = ykt("conformance", "rerun", str(report))
    assert again.returncode == 1, again.stderr
    rerun = json.loads((report / "rerun" / "report.json").read_text())
    assert sorted(c["id"] for c in rerun["cases"]) == failed


def test_terminal_run_against_ykt_writes_reports_that_repeat(tmp_path):
    outputs = []
    for n in (1, 2):
        report = tmp_path / f"r{n}"
        proc = ykt("conformance", "run", "--suite", "terminal", "--dut", "ykt:bus-flat", "--keyset", "gd-test-3des",
                   "--keyset", "gd-test-sm4", "--seed", "5", "--clock", "20260301120000", "--report", str(report))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "terminal suite:" in proc.stdout and "0 fail, 0 inconclusive" in proc.stdout
        outputs.append({f: (report / f).read_bytes() for f in ("report.json", "junit.xml", "report.html")})
    assert outputs[0] == outputs[1]
    doc = json.loads(outputs[0]["report.json"])
    assert doc["suite"] == "terminal" and doc["dut"]["modes"] == ["bus-flat"] and doc["dut"]["kind"] == "ykt"
    assert "virtual PSAM" in doc["dut"]["psam"]
    assert "TU-TERM-041" in outputs[0]["report.html"].decode()


def test_bad_input_is_one_line(tmp_path):
    line = one_line_error(ykt(*RUN, "--dut", f"image:{tmp_path}/none.json", "--keyset", "gd-test-3des",
                              "--report", str(tmp_path / "r")))
    assert "none.json" in line and "no such image" in line
    line = one_line_error(ykt(*RUN, "--dut", "image:x.json", "--report", str(tmp_path / "r")))
    assert "--keyset" in line
    terminal = ["conformance", "run", "--suite", "terminal", "--keyset", "gd-test-3des", "--report", str(tmp_path / "t")]
    line = one_line_error(ykt(*terminal, "--dut", "command:true"))
    assert "--ics: a command: DUT needs its implementation conformance statement" in line
    line = one_line_error(ykt(*terminal, "--dut", "ykt:no-such-profile"))
    assert "no-such-profile" in line and "no terminal profile" in line
    line = one_line_error(ykt("conformance", "rerun", str(tmp_path)))
    assert "no report here" in line
    line = one_line_error(ykt(*RUN, "--dut", "image:x.json", "--keyset", "gd-test-3des", "--case", "TU-CARD-999",
                              "--report", str(tmp_path / "r")))
    assert "TU-CARD-999: no such case" in line
