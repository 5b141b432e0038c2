"""`clearing.records`: the fast reader accepts what `Outcome` accepts (with its two stated differences)."""
from __future__ import annotations

import csv
import io
import json
import re

import pytest
from hypothesis import given, settings, strategies as st

from clearing import records
from clearing.qr import QrRide
from clearing.records import (MEDIUM, ClearingRecord, CsvReader, JsonReader, Malformed, QrRideLine,
                              card_of_json_line)
from terminal_sim.outcome import FIELDS, Outcome
from tests.terminal_sim.test_outcome import RIDE

GOOD = {"status": "approved", "type": "09", "card_no": "03104870300000000001", "issuer_id": "02205810FFFFFFFF",
        "amount": 500, "balance_before": 4800, "balance_after": 4300, "overdraft_limit": 0, "card_counter": 2,
        "terminal_id": "440300000001", "terminal_seq": 3, "datetime": "20261124085104", "key_version": 1,
        "algorithm": "3des", "tac": "14CBF2C8", "mac2_verified": True, "list_version": "2024112401", "mode": "metro",
        "city": "5810", "operator": "0101", "line": "0003", "station": "0306", "card_type": "01", "full_fare": 500,
        "entry_city": "5810", "entry_station": "0301", "entry_terminal": "440300000001",
        "entry_time": "20261124082603"}


def test_the_reader_knows_exactly_the_outcome_fields():
    assert set(ClearingRecord.__struct_fields__) == set(FIELDS)


def _csv_line(d: dict) -> tuple[bytes, bytes]:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FIELDS)
    w.writerow(["" if d.get(k) is None else ("true" if d[k] is True else "false" if d[k] is False else d[k])
                for k in FIELDS])
    header, row = buf.getvalue().encode().splitlines()
    return header, row


def test_json_and_csv_give_the_same_record():
    header, row = _csv_line(GOOD)
    from_json = JsonReader().parse(json.dumps(GOOD).encode())
    assert CsvReader(header).parse(row) == from_json
    assert from_json[:7] == ("03104870300000000001", 1, 2, 0, 9, "02205810FFFFFFFF", 500)
    assert card_of_json_line(json.dumps(GOOD).encode()) == b"03104870300000000001"


def test_lower_case_hex_is_accepted_and_kept_upper_case():
    d = dict(GOOD, issuer_id="02205810ffffffff", tac="14cbf2c8", terminal_id="44030000000a")
    p = JsonReader().parse(json.dumps(d).encode())
    assert p[5] == "02205810FFFFFFFF" and p[10] == "44030000000A" and p[15] == "14CBF2C8"


def test_the_balance_rule_is_left_to_the_balance_chain():
    d = dict(GOOD, balance_after=4000)
    with pytest.raises(ValueError, match="balance_after"):
        Outcome.from_dict(d)
    assert JsonReader().parse(json.dumps(d).encode())[8] == 4000


@pytest.mark.parametrize("status,extra,reason", [
    ("declined", {"reason": "black list", "tac": None}, "declined outcome moved no money"),
    ("failed", {"reason": "PSAM error", "tac": None}, "failed outcome without a TAC"),
    ("failed", {"reason": "PSAM refused MAC2", "algorithm": None}, "algorithm: required to check the TAC"),
])
def test_what_outcome_allows_but_a_clearing_file_does_not_carry(status, extra, reason):
    d = {k: v for k, v in dict(GOOD, status=status, **extra).items() if v is not None}
    Outcome.from_dict(d)
    with pytest.raises(Malformed, match=reason):
        JsonReader().parse(json.dumps(d).encode())


# -- differential: mutations of a good record, judged by Outcome and by the fast reader -----------------

_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2**33, 2**33), st.sampled_from([
    "", " ", "0", "1", "02", "06", "09", "approved", "torn", "recovered", "failed", "declined", "3des", "sm4", "bus",
    "load", "metro", "AB", "XY", "0301", "03g1", "5810", "58100", "1234567890", "20261124085104", "20261324085104",
    "20261124245959", "14CBF2C8", "14cbf2c8", "14CBF2C", "440300000001", "44030000000", "0306", "030", "A10002",
    "A|B", "A B", "卡", "a\nb", "02205810FFFFFFFF", "03104870300000000001", "0310487030000000000", "physical",
    "virtual", "qr", "F0000001", "F000000", "TEST000000000001", "TEST00000000001", "9001000000000000001F",
    "80" * 332, "8", "0g"]))


def _outcome_accepts(d: dict) -> bool:
    try:
        o = Outcome.from_dict(d)
    except (ValueError, TypeError):
        return False
    # the clearing file's own rules (records module docstring)
    if o.status == "declined" or (o.status == "failed" and o.tac is None):
        return False
    if o.status == "failed" and any(getattr(o, f) is None for f in ("card_no", "issuer_id", "amount", "balance_before",
                                                                    "card_counter", "key_version", "algorithm")):
        return False
    return not (o.status != "torn" and o.type != "02" and o.terminal_seq is None)


@settings(max_examples=400)
@given(st.dictionaries(st.sampled_from(FIELDS + ("colour",)), _VALUES, max_size=4),
       st.sets(st.sampled_from(FIELDS), max_size=3))
def test_the_reader_accepts_exactly_what_outcome_accepts(changes, removed):
    d = {k: v for k, v in dict(GOOD, **changes).items() if k not in removed}
    # keep the balance rule true where Outcome checks it (it is the chain's business here, tested above)
    if isinstance(d.get("balance_before"), int) and isinstance(d.get("amount"), int) \
            and not isinstance(d.get("balance_before"), bool) and not isinstance(d.get("amount"), bool) \
            and "balance_after" in d and d.get("status") in ("approved", "recovered"):
        d["balance_after"] = d["balance_before"] + (d["amount"] if d.get("type") == "02" else -d["amount"])
        if not -2**31 <= d["balance_after"] < 2**31:
            d["balance_after"] = 0
    expected = _outcome_accepts(d)
    try:
        JsonReader().parse(json.dumps(d, ensure_ascii=False).encode())
        accepted = True
    except Malformed:
        accepted = False
    assert accepted == expected, d


# -- QR rides (mobile.md Q12): checked for their form like Outcome checks it, then handed to clearing.qr ---

def _reader_says(d: dict) -> str:
    try:
        JsonReader().parse(json.dumps(d, ensure_ascii=False).encode())
    except Malformed:
        return "malformed"
    except QrRideLine:
        return "qr ride"
    return "accepted"


def test_a_qr_ride_goes_to_the_qr_checks_in_both_formats_and_a_card_record_keeps_its_medium():
    header, row = _csv_line(RIDE)
    expected = QrRide(RIDE["qr_code"], RIDE["terminal_id"], RIDE["datetime"], RIDE["amount"], RIDE["qr_issuer"],
                      RIDE["qr_platform"], RIDE.get("city"), RIDE["account_no"], RIDE["pay_account"],
                      RIDE["qr_gen_time"])
    with pytest.raises(QrRideLine) as csv_ride:
        CsvReader(header).parse(row)
    with pytest.raises(QrRideLine) as json_ride:
        JsonReader().parse(json.dumps(RIDE).encode())
    assert csv_ride.value.ride == json_ride.value.ride == expected
    assert JsonReader().parse(json.dumps(dict(GOOD, medium="virtual")).encode())[MEDIUM] == "virtual"
    assert JsonReader().parse(json.dumps(dict(GOOD, medium="physical")).encode())[MEDIUM] is None
    assert JsonReader().parse(json.dumps(GOOD).encode())[MEDIUM] is None


@pytest.mark.parametrize("changes, reason", [
    ({"status": "declined", "reason": "replay", "amount": None}, "declined outcome moved no money"),
    ({"card_no": "03104870300000000001"}, "card_no: a QR ride record has no card fields"),
    ({"tac": "14CBF2C8"}, "tac: a QR ride record has no card fields"),
    ({"account_no": None}, "account_no: required for an approved QR ride"),
    ({"type": "02"}, "type: a QR code pays a ride, it loads nothing"),
    ({"qr_issuer": "F000000"}, "qr_issuer: 'F000000' does not match"),
    ({"medium": None}, "only a QR ride record \\(medium qr\\) has it"),
])
def test_a_malformed_qr_ride_is_refused_naming_the_field(changes, reason):
    d = {k: v for k, v in dict(RIDE, **changes).items() if v is not None}
    with pytest.raises(Malformed, match=reason):
        JsonReader().parse(json.dumps(d).encode())


@settings(max_examples=300)
@given(st.dictionaries(st.sampled_from(FIELDS + ("colour",)), _VALUES, max_size=3),
       st.sets(st.sampled_from(tuple(RIDE)), max_size=2))
def test_the_reader_judges_a_qr_ride_as_outcome_does(changes, removed):
    d = {k: v for k, v in dict(RIDE, **changes).items() if k not in removed}
    try:
        o = Outcome.from_dict(d)
        expected = "qr ride" if o.status == "approved" else "malformed"      # a declined ride is not cleared
    except (ValueError, TypeError):
        expected = "malformed"
    assert _reader_says(d) == expected, d


_TEXT_CHARS = st.sampled_from("0123456789ABCDEFabcdefGgZz!~ \x1f\x1e\x7f\u00e9\u0663")


_TEXT_OF_GOOD = {name: GOOD.get(name) for name, _ in records._TEXT} | {"vehicle": "B00012"}


@settings(max_examples=400)
@given(st.dictionaries(st.sampled_from([name for name, _ in records._TEXT]),
                       st.one_of(st.none(), st.text(_TEXT_CHARS, max_size=22),
                                 st.sampled_from(["440300000001", "20261124085104", "0310487030000000000A",
                                                  "0a", "aBcD", "12AB", "0000000000"])), max_size=3))
def test_the_shape_of_the_text_fields_decides_as_each_field_pattern(changes):
    """`_text_verdict` (cached by shape) says what each present field's own pattern says, twice over."""
    fields = dict(_TEXT_OF_GOOD, **changes)
    for required in ("terminal_id", "datetime"):
        fields[required] = fields[required] or GOOD[required]
    record = ClearingRecord(status="approved", type="06", **fields)
    present = {name: v for name, v in fields.items() if v is not None}
    if not all(records._FIELD_RE[n].fullmatch(v) for n, v in present.items()):
        want = None
    else:
        upper = {n: re.compile(p.replace(records._H, "[0-9A-F]"), re.ASCII) for n, p in records._TEXT}
        want = not all(upper[n].fullmatch(v) for n, v in present.items())
    assert records._text_verdict(record) is want
    assert records._text_verdict(record) is want


@given(st.lists(st.sampled_from([b'"card_no"', b':', b' ', b'"', b'03104870300000000001', b'0310487030000000000',
                                 b'x', b'{', b'}', b',', b'"card_no":"03104870300000000001"']), max_size=8))
def test_the_partition_router_finds_the_card_the_pattern_finds(parts):
    from clearing.partition import _card_of_json

    line = b"".join(parts)
    assert _card_of_json(line) == card_of_json_line(line)
