"""The validator's QR path as exchange tables: scans at a gate, each with its journaled outcome.

Codes come from the independent implementation (tests/ykt_qr/independent.py, sharing no code with
ykt_qr), some with planted defects; the terminal is the shipped bus-qr profile with its root store
pointed at the independent TEST root. Each case is the scans one terminal sees in order (code, time,
fare) and the outcome each must give: ``approved`` with the Q12 clearing-record extension, or
``declined`` with the first failing check's token (Q11). The journal must hold exactly those outcomes
(a debounced repeat is returned but never journaled, Q10), no APDU may reach the card, and the PSAM is
asked nothing after its start-up. The cases are the QR list of issue 10 part 5.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from specs.catalog import terminal_profile_path
from terminal_sim.export import clearing_entries
from terminal_sim.journal import Journal, MemoryJournal
from terminal_sim.outcome import CARD_ONLY_FIELDS, Outcome
from terminal_sim.profile import TerminalProfile, parse_terminal_profile
from terminal_sim.qr import IGNORED, QrGate, ride
from terminal_sim.transaction import Device
from terminal_sim.validator import Validator
from ykt_card.clock import CHINA_TZ, SimulatedClock

from tests.terminal_sim.test_flows import World, make_world
from tests.ykt_qr import independent as ind
from tests.ykt_qr.conftest import ISSUER, T0
from tests.ykt_qr.test_verify import CODES
from tests.ykt_qr.conftest import World as QrWorld


# ---------------------------------------------------------------------------------------------------
# the terminal: bus-qr trusting the independent root

@pytest.fixture(scope="module")
def qr_world() -> QrWorld:
    root, issuer, user = ind.Key(0x1F2E3D4C5B6A79881726354453627180), ind.Key(0xA5A5), ind.Key(0x5EED5EED)
    record = ind.root_record(root, 0xF0)
    return QrWorld(root, issuer, user, record, ind.certificate(root, 0xF0, issuer, ISSUER))


@pytest.fixture(scope="module")
def codes(qr_world) -> dict[str, bytes]:
    return {name: build(qr_world) for name, build in CODES.items()}


def qr_profile(roots: Path, **qr_changes: object) -> TerminalProfile:
    """bus-qr with its root store (and other qr fields) replaced."""
    path = terminal_profile_path("bus-qr")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    doc["qr"] = {**doc["qr"], "roots": str(roots) if isinstance(roots, Path) else roots, **qr_changes}
    return parse_terminal_profile(yaml.safe_dump(doc), source="bus-qr*.yaml", base=path.parent)


@pytest.fixture
def roots(tmp_path, qr_world) -> Path:
    path = tmp_path / "roots.json"
    path.write_text(json.dumps({"F0": qr_world.record.hex().upper()}), encoding="utf-8")
    return path


def at(offset: int) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(T0 + offset, CHINA_TZ)


def gate(w: World, profile: TerminalProfile, journal, offset: int = 10) -> tuple[Validator, SimulatedClock]:
    """A started validator whose clock stands still at T0 + offset until the test moves it."""
    clock = SimulatedClock(at(offset), step=0)
    v = Validator(profile, w.psam_reader, w.card_reader, journal=journal, clock=clock)
    v.start()
    w.log.clear()
    return v, clock


# ---------------------------------------------------------------------------------------------------
# the exchange tables

@dataclass(frozen=True)
class Scan:
    code: str
    at: int                       # seconds after the code's generation time T0
    status: str
    reason: str | None = None
    amount: int | None = None     # None: the profile's flat fare (200)


CASES: dict[str, tuple[Scan, ...]] = {
    "a good interoperable code rides, ticket type 01": (Scan("good", 10, "approved"),),
    "a local (81) code of a local issuer rides": (Scan("good, local (81)", 10, "approved"),),
    "a fare equal to the code's limit rides": (Scan("good, fare limit 150", 10, "approved", amount=150),),
    "forged certificate": (Scan("forged certificate", 10, "declined", "cert_sig"),),
    "forged issuer signature": (Scan("forged issuer signature", 10, "declined", "issuer_sig"),),
    "forged user signature": (Scan("forged user signature", 10, "declined", "user_sig"),),
    "wrong user-ID mode": (Scan("Shanghai user IDs", 10, "declined", "cert_sig"),),
    "unknown root": (Scan("certificate of root F1", 10, "declined", "root_unknown"),),
    "expired certificate": (Scan("certificate expired 10/2026", 10, "declined", "cert_expired"),),
    "expired authorisation": (Scan("authorisation expired 5 s ago", 10, "declined", "auth_expired"),),
    "stale code": (Scan("good", 61, "declined", "time_window"),),
    "code from the future beyond the skew": (Scan("good", -21, "declined", "time_window"),),
    "replay": (Scan("good", 10, "approved"), Scan("good", 15, "declined", "replay")),
    "anti-pass-back": (Scan("good", 10, "approved"),
                       Scan("same account, new code at +30 s", 40, "declined", "anti_passback")),
    "anti-pass-back over after 60 s": (Scan("good", 10, "approved"),
                                       Scan("same account, new code at +61 s", 71, "approved")),
    "the same account within 2 s is ignored, not journaled": (
        Scan("good", 10, "approved"), Scan("same account, new code at +1 s", 11, "declined", IGNORED)),
    "wrong length": (Scan("one byte short", 10, "declined", "length"),),
    "custom domain over 32": (Scan("L byte 33, 362 bytes", 10, "declined", "custom_len"),),
    "unaccepted account type": (Scan("account type DD", 10, "declined", "account_type"),),
    "fare above the code's limit": (Scan("good, fare limit 150", 10, "declined", "over_limit"),),
    "issuer not on the white list": (Scan("issuer F0000009", 10, "declined", "not_accepted"),),
    "a refused code is not remembered": (Scan("good, fare limit 150", 10, "declined", "over_limit"),
                                         Scan("good, fare limit 150", 12, "approved", amount=100)),
}


def q12(code: bytes) -> dict[str, object]:
    """The Q12 fields of a well-formed code, read by the offsets of mobile.md §1.1 (not by ykt_qr)."""
    custom = code[197]
    return {"account_no": code[136:146].hex().upper(), "pay_account": code[120:136].decode("ascii"),
            "qr_issuer": code[146:150].hex().upper(), "qr_platform": code[150:154].hex().upper(),
            "qr_gen_time": int.from_bytes(code[263 + custom:267 + custom], "big")}


@pytest.mark.parametrize("name", list(CASES))
def test_scan_exchange(name, codes, roots, tmp_path):
    w = make_world()
    with Journal(tmp_path / "journal.db") as journal:
        v, clock = gate(w, qr_profile(roots), journal)
        seen: list[Outcome] = []
        for n, scan in enumerate(CASES[name]):
            clock.advance((at(scan.at) - clock.peek()).total_seconds())
            code = codes[scan.code]
            out = v.scan(code, amount=scan.amount)
            assert (n, out.status, out.reason) == (n, scan.status, scan.reason)
            assert out.medium == "qr" and out.qr_code == code.hex().upper()
            assert out.amount == (scan.amount if scan.amount is not None else 200)
            assert out.datetime == at(scan.at).strftime("%Y%m%d%H%M%S") and out.terminal_id == "000000012345"
            assert (out.mode, out.line, out.vehicle) == ("bus", "0002", "A10002")
            assert all(getattr(out, f) is None for f in CARD_ONLY_FIELDS) and out.type is None and out.tac is None
            if scan.status == "approved":
                assert {k: getattr(out, k) for k in q12(code)} == q12(code) and out.ticket_type == "01"
            if scan.reason != IGNORED:
                seen.append(out)
        assert w.log == []                                      # no APDU to the card, none to the PSAM
        assert [e.outcome for e in journal.all()] == seen
        assert [e.outcome for e in clearing_entries(journal)] == [o for o in seen if o.status == "approved"]


def test_a_qr_record_is_the_q12_extension_after_the_transit_context(codes, roots, tmp_path):
    w = make_world()
    v, _ = gate(w, qr_profile(roots), MemoryJournal())
    out = v.scan(codes["good"])
    assert list(json.loads(out.to_json())) == [
        "status", "amount", "terminal_id", "datetime", "list_version", "mode", "city", "operator", "line",
        "vehicle", "medium", "qr_code", "account_no", "pay_account", "qr_issuer", "qr_platform", "qr_gen_time",
        "ticket_type"]
    assert Outcome.from_json(out.to_json()) == out


def test_replay_and_anti_pass_back_survive_a_restart(codes, roots, tmp_path):
    path = tmp_path / "journal.db"
    w = make_world()
    with Journal(path) as journal:
        v, _ = gate(w, qr_profile(roots), journal)
        assert v.scan(codes["good"]).status == "approved"
    with Journal(path) as journal:                               # a new process, the same file
        v, clock = gate(make_world(), qr_profile(roots), journal, offset=20)
        assert v.scan(codes["good"]).reason == "replay"
        clock.advance(20)
        assert v.scan(codes["same account, new code at +30 s"]).reason == "anti_passback"
        row = journal._db.execute("SELECT account, at, keep_until, record_id FROM qr_seen").fetchall()
    code = codes["good"]
    account = (code[146:154] + code[136:146]).hex().upper()
    assert row == [(account, T0 + 10, T0 + 60 + 20, 1)]        # kept for validity + 20 s (Q10)


def test_a_terminal_without_a_root_store_or_a_qr_table_takes_no_code(codes, roots):
    w = make_world()
    path = terminal_profile_path("bus-qr")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    del doc["qr"]["roots"]
    no_roots = parse_terminal_profile(yaml.safe_dump(doc), source="b.yaml", base=path.parent)
    with pytest.raises(ValueError, match=r"^profile guangzhou-bus-qr: qr\.roots: missing"):
        w.validator(no_roots).scan(codes["good"])
    with pytest.raises(ValueError, match=r"^profile guangzhou-bus-flat: no qr table: this terminal takes no QR code$"):
        w.validator("bus-flat").scan(codes["good"])
    with pytest.raises(ValueError, match=r"^code: 0 bytes"):
        w.validator(qr_profile(roots)).scan(b"")


def test_a_code_accepted_meanwhile_by_another_writer_is_a_replay(codes, roots, tmp_path):
    """Two writers of one journal: B verified the code before A's ride committed; B's commit is refused
    inside its transaction and B's ride is declined as a replay."""
    path = tmp_path / "journal.db"
    w = make_world()
    profile = qr_profile(roots)
    with Journal(path) as first, Journal(path) as second:
        a, _ = gate(w, profile, first)
        assert a.scan(codes["good"]).status == "approved"
        b = Device(profile, bytes.fromhex("000000012346"), second)
        blind = QrGate(profile, MemoryJournal())                # B's checks ran before A committed
        out = ride(b, blind, codes["good"], at(11), 200)
        assert (out.status, out.reason, out.terminal_id) == ("declined", "replay", "000000012346")
        assert [e.outcome.status for e in first.all()] == ["approved", "declined"]
        assert second.code_seen(hashlib.sha256(codes["good"]).digest(), T0 + 11)


def test_the_validator_loop_serves_codes_and_cards(codes, roots, tmp_path):
    from terminal_sim.links import TappingReader
    from terminal_sim.scanner import CodeList

    w = make_world()
    clock = SimulatedClock(at(10), step=0)
    with Journal(tmp_path / "journal.db") as journal:
        v = Validator(qr_profile(roots), w.psam_reader, TappingReader(w.card_reader, taps_left=1), journal=journal,
                      clock=clock)
        outcomes: list[Outcome] = []
        count = v.run(taps=4, idle_timeout=1.0, on_outcome=outcomes.append, poll_interval=0,
                      scanner=CodeList([codes["good"], codes["good"], codes["forged user signature"]]))
        assert count == 4
        assert [(o.medium, o.status, o.reason) for o in outcomes] == [
            ("qr", "approved", None), ("qr", "declined", "replay"), ("qr", "declined", "user_sig"),
            ("physical", "approved", None)]                      # codes first, then the card once (M4)
        assert outcomes[3].card_no == "03105810000000001234" and outcomes[3].amount == 200
        assert [e.outcome.status for e in journal.all()] == ["approved", "declined", "declined", "torn", "approved"]
        assert journal.pending() == []                           # the card's grey record settled by its DEBIT


def test_a_line_scanner_hands_over_hex_and_base64_codes_and_reports_bad_lines():
    import base64
    import io

    from terminal_sim.scanner import LineScanner

    errors: list[str] = []
    text = "# the scanner's log\n\n8001AB\n" + base64.b64encode(b"\x81\x02").decode() + "\nnot a code!\n  80 02  \n"
    scanner = LineScanner(io.StringIO(text), on_error=errors.append, name="ttyUSB0")
    assert scanner.wait_done(5)
    got = []
    while (code := scanner.poll()) is not None:
        got.append(code)
    assert got == [bytes.fromhex("8001AB"), b"\x81\x02", b"\x80\x02"]
    assert errors == ["ttyUSB0: line 5: CODE: neither hex nor base64"] and scanner.done


@pytest.mark.parametrize("roots, message", [
    ("roots-nowhere", "bus-qr*.yaml: qr.roots: no shipped root store named 'roots-nowhere' (known: roots-test)"),
    ("/nonexistent/roots.json", "bus-qr*.yaml: qr.roots: no such file '/nonexistent/roots.json'"),
    (7, "bus-qr*.yaml: qr.roots: expected a root store file or name, got int 7"),
])
def test_the_root_store_of_a_profile_is_checked_when_it_loads(roots, message):
    with pytest.raises(ValueError) as info:
        qr_profile(roots)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_a_root_store_that_does_not_load_refuses_the_profile(tmp_path):
    bad = tmp_path / "roots.json"
    bad.write_text('{"F0": "00"}', encoding="utf-8")
    with pytest.raises(ValueError, match=r"^bus-qr\*\.yaml: qr\.roots: .*roots\.json: F0: "):
        qr_profile(bad)
