"""Card and PSAM timing profiles, and a T-Union tap laid on the timeline: phases, the PSAM's lane, the algorithm
from INITIALIZE, CAPP records committed with DEBIT, S(WTX) from a slow profile, `measured`, what-ifs."""
from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from apdu.trace import Exchange
from specs.catalog import find
from ykt_card.timing.profile import (MEASURED, TimingProfileError, load_card_timing, load_psam_timing)
from ykt_card.timing.tap import TapSettings, algorithm_of, model_tap, pairs_of, what_if

CARD, PSAM = "Virtual PCD 00 00", "Virtual PCD 00 01"
TYPICAL = load_card_timing(find("card-timing", "typical"))
FAST = load_card_timing(find("card-timing", "fast"))
PSAM_TYPICAL = load_psam_timing(find("psam-timing", "typical"))

# (reader, command, response) of a CAPP purchase with SM4 (INITIALIZE answers algorithm 04)
TAP = [
    (PSAM, "00A40000023F00", "9000"),                                   # PSAM start-up: not counted
    (CARD, "00A4040008A00000063201010500", "6F0A8408A0000006320101059000"),
    (CARD, "00B0950000", "00" * 30 + "9000"),
    (CARD, "805003020B02000000C84403000000010F", "00001388000000000001049BB049D69000"),
    (PSAM, "80700000249BB049D60000000000C809202611240810000104487030000000000102205810FFFFFFFF08", "6108"),
    (PSAM, "00C0000008", "00000001B31355E59000"),
    (CARD, "80DC00F030" + "00" * 48, "9000"),
    (CARD, "805401000F0000000120261124081000B31355E508", "54F4D2CDB476E0C49000"),
    (PSAM, "8072000004B476E0C4", "9000"),
]


def trace(steps=TAP, gap=0.002, window=0.010) -> list[Exchange]:
    """Each command `window` s before its response, `gap` s of host time between exchanges."""
    out, t = [], 100.0
    for reader, c, r in steps:
        out.append(Exchange("C", t, bytes.fromhex(c), reader))
        t += window
        out.append(Exchange("R", t, bytes.fromhex(r), reader))
        t += gap
    return out


def test_shipped_profiles_state_their_sources_and_price_eeprom_by_page():
    assert {"fast", "typical"} <= {p.stem for p in find("card-timing", "typical").parent.glob("*.yaml")}
    for profile in (TYPICAL, FAST, PSAM_TYPICAL):
        assert "assumptions of this project" in profile.source.lower()
    # DEBIT, SM4: 17500 µs + 40 bytes in one 64-byte page (3000 µs) + 40 × 10 µs
    assert TYPICAL.card_us(0x80, 0x54, "sm4") == 17500 + 3000 + 400
    # 48 CAPP bytes more: 88 bytes, two pages
    assert TYPICAL.card_us(0x80, 0x54, "3des", 48) == 14000 + 6000 + 880
    assert TYPICAL.card_us(0x00, 0xCA, "3des") == TYPICAL.default_us
    assert PSAM_TYPICAL.t0.baud == pytest.approx(9600)


def test_a_profile_is_refused_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        kind: card
        name: bad
        source: here
        default_us: 1000
        eeprom: {page_bytes: 64, per_page_us: 1000, per_byte_us: 1}
        commands:
          - {cla: "00", ins: "A4", name: SELECT, us: 100}
          - {cla: "00", ins: "A4", name: SELECT again, us: 100}
        """))
    with pytest.raises(TimingProfileError, match=r"bad.yaml: commands.1.ins: CLA 00 INS A4 is listed twice"):
        load_card_timing(bad)
    bad.write_text(bad.read_text().replace("default_us: 1000", "default_us: -1"))
    with pytest.raises(TimingProfileError, match=r"bad.yaml: default_us: -1 out of range"):
        load_card_timing(bad)


def test_phases_lanes_and_algorithm_of_a_capp_purchase():
    report = model_tap(trace(), TapSettings(TYPICAL, PSAM_TYPICAL))
    assert report.algorithm == "sm4" and report.algorithm_source == "INITIALIZE answer"
    rows = [(a.index, a.lane, a.phase, a.counted) for a in report.apdus]
    assert rows == [(1, "psam", "other", False), (2, "card", "select", True), (3, "card", "read", True),
                    (4, "card", "initialize", True), (5, "psam", "MAC1", True), (6, "psam", "MAC1", True),
                    (7, "card", "update", True), (8, "card", "debit", True), (9, "psam", "MAC2", True)]
    # host gaps: 2 ms before every counted APDU but the first (the start-up's gap is not the tap's)
    assert [a.host_us for a in report.apdus[1:]] == pytest.approx([0.0] + [2000.0] * 7)
    debit = report.apdus[7]
    assert debit.process_us == TYPICAL.card_us(0x80, 0x54, "sm4", 48)  # the cached record commits with DEBIT
    mac1 = report.apdus[4]
    assert mac1.process_us == 19000 and mac1.link_us == pytest.approx(PSAM_TYPICAL.t0.exchange_us(
        bytes.fromhex(TAP[4][1]), bytes.fromhex(TAP[4][2])))
    assert sum(report.phases.values()) == pytest.approx(report.total_us)
    assert sum(report.lanes.values()) == pytest.approx(report.total_us)
    assert report.phases["host"] == pytest.approx(14000)


def test_algorithm_defaults_to_3des_without_initialize():
    report = model_tap(trace(TAP[:3]), TapSettings(TYPICAL, PSAM_TYPICAL))
    assert algorithm_of(pairs_of(trace(TAP[:3]))) is None
    assert (report.algorithm, report.algorithm_source) == ("3des", "assumed (no INITIALIZE)")


def test_a_profile_slower_than_fwt_makes_the_card_ask_for_wtx():
    """The reference card's FWI 8 gives FWT 77.3 ms: a DEBIT of 100 ms needs S(WTX)."""
    slow = TYPICAL.model_copy(update={"commands": [c.model_copy(update={"us": 100_000}) if c.ins == "54" else c
                                                    for c in TYPICAL.commands]})
    report = model_tap(trace(), TapSettings(slow, PSAM_TYPICAL))
    assert [a.wtx for a in report.apdus if a.phase == "debit"] == [1]
    assert any(s.label.startswith("S(WTX") for s in report.segments)
    assert not any(a.wtx for a in model_tap(trace(), TapSettings(TYPICAL, PSAM_TYPICAL)).apdus)


def test_measured_takes_the_trace_window_less_the_link():
    report = model_tap(trace(window=0.030), TapSettings(MEASURED, MEASURED))
    select = report.apdus[1]
    assert select.process_us + select.link_us == pytest.approx(30_000, abs=1)
    assert report.apdus[4].process_us == pytest.approx(30_000)  # the PSAM: its whole window
    assert report.card_timing == report.psam_timing == "measured"


def test_what_if_is_computed_from_the_model():
    settings = TapSettings(TYPICAL, PSAM_TYPICAL)
    base = model_tap(trace(), settings).total_us
    options = {w.change: w for w in what_if(trace(), settings, budget_us=base - 1)}
    faster = options["424 kbit/s after activation"]
    assert faster.total_us == pytest.approx(model_tap(trace(), replace(settings, kbps=424)).total_us)
    assert "does not offer 424 kbit/s" in faster.note  # TA(1) 80: 106 kbit/s only
    simple = options["simple purchase instead of CAPP"]
    assert simple.total_us == pytest.approx(model_tap(trace([s for s in TAP if not s[1].startswith("80DC")]),
                                                      settings).total_us)
    assert simple.total_us < base
    reads = [w for w in options.values() if "read(s) fewer" in w.change]
    assert len(reads) == 1 and reads[0].total_us < base and "READ BINARY EF15" in reads[0].note
    assert options["PSAM link at 115200 bit/s"].fits


def test_a_response_without_command_is_refused():
    with pytest.raises(ValueError, match="exchange 1 .*a response without a command"):
        model_tap([Exchange("R", 1.0, b"\x90\x00", CARD)], TapSettings(TYPICAL, PSAM_TYPICAL))
