"""`ykt trace timing` on taps recorded in-process, through real pcscd + vpcd and over nfcpy's udp driver: a report
per APDU and phase against the budget, deterministic JSON, an SVG that names every exchange, one-line errors."""
from __future__ import annotations

import datetime as _dt
import json
import xml.etree.ElementTree as ET

import pytest

from apdu.iso14443 import pseudo_atr
from apdu.transport.pcsc.daemon import vpcd_reader_name
from keysets import KeySet
from specs.catalog import card_profile_path
from ykt_card.card.cos import TUnionCardOS
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import ATR as PSAM_ATR
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam

from .cli import one_line_error, ykt
from .test_card_nfc import K3, K4, free_udp_port, parts, serving  # noqa: F401  (parts: the fixture)

TAP = ["--seed", "5", "--clock", "20261124081000"]


def _tap(tmp_path, card: str, psam: str, profile: str = "bus-flat-capp"):
    trace = tmp_path / f"{profile}.jsonl"
    p = ykt("terminal", "tap", "--profile", profile, "--card", card, "--psam", psam, "--trace", trace, "--json", *TAP)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["status"] == "approved"
    return trace


def _timing(*args) -> dict:
    p = ykt("trace", "timing", *args, "--json")
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _check_purchase(report: dict) -> None:
    counted = [a for a in report["apdus"] if a["counted"]]
    phases = [a["phase"] for a in counted]
    for phase in ("select", "initialize", "MAC1", "debit", "MAC2"):
        assert phase in phases, phases
    assert {a["lane"] for a in counted if a["phase"] in ("MAC1", "MAC2")} == {"psam"}
    assert {a["lane"] for a in counted if a["phase"] in ("select", "initialize", "debit")} == {"card"}
    assert report["phases_ms"]["activation"] > 0 and report["total_ms"] > report["phases_ms"]["activation"]
    assert report["total_ms"] == pytest.approx(sum(report["phases_ms"].values()), abs=0.01)


def test_timing_of_an_in_process_tap(parts, tmp_path):
    card, psam = parts
    trace = _tap(tmp_path, f"image:{card}", f"image:{psam}")
    first = ykt("trace", "timing", trace, "--json")
    again = ykt("trace", "timing", trace, "--json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout  # deterministic
    report = json.loads(first.stdout)
    _check_purchase(report)
    assert "update" in [a["phase"] for a in report["apdus"]]  # a CAPP purchase
    assert report["budget_ms"] == 400 and "neither --profile nor --budget" in report["budget_source"]
    assert report["within_budget"] is True
    metro = _timing(trace, "--profile", "metro-entry")
    assert metro["budget_ms"] == 300 and metro["budget_source"].startswith("--profile guangzhou-metro-entry")
    faster = _timing(trace, "--bitrate", "848")
    assert faster["total_ms"] < report["total_ms"] and faster["bitrate_kbps"] == 848


def test_over_budget_says_what_would_bring_it_back(parts, tmp_path):
    card, psam = parts
    trace = _tap(tmp_path, f"image:{card}", f"image:{psam}")
    report = _timing(trace, "--budget", "120")
    assert report["within_budget"] is False
    changes = {w["change"]: w for w in report["what_if"]}
    assert {"212 kbit/s after activation", "simple purchase instead of CAPP", "PSAM link at 115200 bit/s"} <= set(changes)
    assert changes["simple purchase instead of CAPP"]["total_ms"] < report["total_ms"]
    text = ykt("trace", "timing", trace, "--budget", "120")
    assert text.returncode == 0, text.stderr
    assert "OVER the budget of 120 ms (--budget)" in text.stdout
    line = next(ln for ln in text.stdout.splitlines() if "simple purchase instead of CAPP" in ln)
    assert f"{changes['simple purchase instead of CAPP']['total_ms']:.2f} ms" in line


def test_the_svg_parses_and_names_every_exchange(parts, tmp_path):
    card, psam = parts
    trace = _tap(tmp_path, f"image:{card}", f"image:{psam}")
    svg = tmp_path / "tap.svg"
    report = _timing(trace, "--svg", svg, "--budget", "300")
    root = ET.parse(svg).getroot()
    assert root.tag.endswith("svg")
    texts = {"".join(el.itertext()).strip() for el in root.iter() if el.tag.endswith("text")}
    for apdu in (a for a in report["apdus"] if a["counted"]):
        assert f"{apdu['index']} {apdu['name']}" in texts
    assert "budget 300 ms" in texts and "reader (PCD)" in texts and "PSAM (T=0)" in texts
    before = svg.read_bytes()
    _timing(trace, "--svg", svg, "--budget", "300")
    assert svg.read_bytes() == before  # the same report draws the same bytes


@pytest.mark.pcsc
def test_timing_of_a_tap_through_pcscd(vpcd_card, tmp_path):
    keysets = [KeySet.load(K3), KeySet.load(K4)]
    profile = load_card_profile(card_profile_path("gd-foshan"))
    state = issue_card(profile, keysets, profile.card_number(9), _dt.date(2026, 11, 24), balance=5000).state
    vpcd_card(TUnionCardOS(state), slot=0, atr=pseudo_atr(state.ats_historical))
    vpcd_card(PsamOS(issue_psam(keysets, bytes.fromhex("588000000001"))), slot=1, atr=PSAM_ATR)
    trace = _tap(tmp_path, f"pcsc:{vpcd_reader_name(0)}", f"pcsc:{vpcd_reader_name(1)}", "bus-flat")
    _check_purchase(_timing(trace))
    measured = _timing(trace, "--card-timing", "measured", "--psam-timing", "measured")
    assert measured["card_timing"] == "measured" and measured["total_ms"] > 0
    _check_purchase(measured)


def test_timing_of_a_tap_over_nfc_udp(parts, tmp_path):
    card, psam = parts
    port = free_udp_port()
    with serving(card, port, "--seed", "5"):
        trace = _tap(tmp_path, f"nfc:udp:localhost:{port}", f"image:{psam}", "bus-flat")
    report = _timing(trace, "--uid-length", "7")
    _check_purchase(report)
    assert report["uid_length"] == 7


def test_bad_options_are_one_line_errors(parts, tmp_path):
    card, psam = parts
    trace = _tap(tmp_path, f"image:{card}", f"image:{psam}")
    assert "--bitrate" in one_line_error(ykt("trace", "timing", trace, "--bitrate", "100"))
    assert "--card-timing" in one_line_error(ykt("trace", "timing", trace, "--card-timing", "slowest"))
    assert "--psam-timing" in one_line_error(ykt("trace", "timing", trace, "--psam-timing", "nope"))
    assert "--budget" in one_line_error(ykt("trace", "timing", trace, "--budget", "0"))
    assert "--profile" in one_line_error(ykt("trace", "timing", trace, "--profile", "tram"))
    assert "--ats" in one_line_error(ykt("trace", "timing", trace, "--ats", "0578"))
    assert "--uid-length" in one_line_error(ykt("trace", "timing", trace, "--uid-length", "5"))
    assert "no such trace file" in one_line_error(ykt("trace", "timing", tmp_path / "none.jsonl"))
    psam_only = tmp_path / "psam-only.jsonl"
    psam_only.write_text("".join(line + "\n" for line in trace.read_text().splitlines() if "psam.json" in line))
    assert "no card command" in one_line_error(ykt("trace", "timing", psam_only))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"t": 1, "reader": "x", "dir": "R<", "hex": "9000"}\n')
    assert "a response without a command" in one_line_error(ykt("trace", "timing", broken))
    bad_profile = tmp_path / "card.yaml"
    bad_profile.write_text("kind: card\nname: x\n")
    error = one_line_error(ykt("trace", "timing", trace, "--card-timing", bad_profile))
    assert "--card-timing" in error and "card.yaml" in error
