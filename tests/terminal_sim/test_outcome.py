"""Outcome: the design.md field contract, its validation, and the stable JSON form."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from pydantic import ValidationError
from hypothesis import strategies as st

from terminal_sim.outcome import FIELDS, Outcome, OutcomeError

# The field list of design.md ("Outcome / clearing record"), in its order, then the transit context.
DESIGN_FIELDS = ("status", "reason", "type", "card_no", "issuer_id", "amount", "balance_before",
                 "balance_after", "overdraft_limit", "card_counter", "terminal_id", "terminal_seq",
                 "datetime", "key_version", "algorithm", "tac", "mac2_verified", "list_version")

# The computed 3DES purchase of vectors.json: card 03105810000000001234, 2.00 yuan, TAC 557DB817.
PURCHASE = dict(status="approved", type="06", card_no="03105810000000001234",
                issuer_id="58105810FFFFFFFF", amount=200, balance_before=1000, balance_after=800,
                overdraft_limit=0, card_counter=7, terminal_id="112233445566", terminal_seq=0x102,
                datetime="20261123081530", key_version=1, algorithm="3des", tac="557DB817",
                mac2_verified=True, list_version="2024112401", mode="bus", city="5810", line="0002")


def make(**changes) -> Outcome:
    """An outcome built from the reference purchase with some fields changed (None removes one)."""
    fields = {**PURCHASE, **changes}
    return Outcome(**{k: v for k, v in fields.items() if v is not None})


def torn(seq: int = 0x102, card_no: str = "03105810000000001234", **changes) -> Outcome:
    return make(status="torn", reason="card left during DEBIT", tac=None, mac2_verified=None,
                terminal_seq=seq, card_no=card_no, **changes)


def test_fields_are_the_design_fields_in_order_then_transit_context():
    assert FIELDS[:len(DESIGN_FIELDS)] == DESIGN_FIELDS
    assert set(FIELDS[len(DESIGN_FIELDS):]) >= {"mode", "line", "station", "entry_station", "entry_time"}
    assert tuple(Outcome.model_fields) == FIELDS


def test_json_keeps_contract_order_and_omits_absent_fields():
    outcome = make(overdraft_limit=None, line=None)
    data = json.loads(outcome.to_json())
    assert list(data) == [name for name in FIELDS if name in PURCHASE and name not in ("overdraft_limit", "line")]
    assert "overdraft_limit" not in data and "reason" not in data
    assert data["amount"] == 200 and data["mac2_verified"] is True


def test_hex_is_upper_case_in_json_whatever_was_given():
    outcome = make(issuer_id="58105810ffffffff", tac="557db817", terminal_id="aabbccddeeff")
    text = outcome.to_json()
    assert '"issuer_id":"58105810FFFFFFFF"' in text and '"tac":"557DB817"' in text
    assert '"terminal_id":"AABBCCDDEEFF"' in text
    assert Outcome.from_json(text) == outcome


def test_json_is_compact_and_keeps_non_ascii_reasons():
    outcome = make(status="declined", reason="黑名单卡 (black list)", tac=None, mac2_verified=None,
                   balance_after=None, balance_before=None, terminal_seq=None)
    text = outcome.to_json()
    assert "黑名单卡" in text and ", " not in text and ": " not in text
    assert Outcome.from_json(text.encode("utf-8")) == outcome


def test_zero_amount_metro_entry_is_approved_with_a_tac():
    entry = make(type="09", amount=0, balance_after=1000, mode="metro", station="0301")
    assert entry.status == "approved" and entry.amount == 0 and entry.tac == "557DB817"


def test_overdrawn_balances_are_negative():
    outcome = make(balance_before=100, amount=300, balance_after=-200, overdraft_limit=500)
    assert json.loads(outcome.to_json())["balance_after"] == -200


def test_a_load_adds_to_the_balance():
    load = make(type="02", mode="load", amount=5000, balance_before=1200, balance_after=6200,
                terminal_seq=None, line=None)
    assert load.balance_after == 6200
    with pytest.raises(ValueError, match=r"^outcome: balance_after: "):
        make(type="02", mode="load", amount=5000, balance_before=1200, balance_after=-3800)


@pytest.mark.parametrize("changes, field", [
    ({"status": "paid"}, "status"),
    ({"type": "05"}, "type"),
    ({"card_no": "3105810000000001234"}, "card_no"),          # 19 digits
    ({"card_no": "0310581000000000123A"}, "card_no"),
    ({"issuer_id": "58105810FFFFFF"}, "issuer_id"),
    ({"amount": -1}, "amount"),
    ({"amount": 1 << 32}, "amount"),
    ({"amount": "200"}, "amount"),
    ({"amount": True}, "amount"),
    ({"card_counter": 0x10000}, "card_counter"),
    ({"overdraft_limit": 1 << 24}, "overdraft_limit"),
    ({"terminal_id": "11223344556"}, "terminal_id"),
    ({"terminal_seq": -1}, "terminal_seq"),
    ({"datetime": "20261323081530"}, "datetime"),            # month 13
    ({"datetime": "2026-11-23 08:15"}, "datetime"),
    ({"key_version": 256}, "key_version"),
    ({"algorithm": "des"}, "algorithm"),
    ({"tac": "557DB8"}, "tac"),
    ({"mac2_verified": 1}, "mac2_verified"),
    ({"list_version": "24112401"}, "list_version"),
    ({"mode": "plane"}, "mode"),
    ({"city": "581"}, "city"),
    ({"station": "301"}, "station"),
    ({"vehicle": "TOO-LONG-9"}, "vehicle"),
    ({"direction": "UP"}, "direction"),
    ({"entry_time": "20260230000000"}, "entry_time"),
    ({"reason": "two\nlines"}, "reason"),
    ({"reason": "  "}, "reason"),
    ({"status": "approved", "tac": None}, "tac"),
    ({"status": "approved", "terminal_seq": None}, "terminal_seq"),
    ({"status": "declined", "reason": None, "tac": None}, "reason"),
    ({"status": "declined", "reason": "black list"}, "tac"),
    ({"status": "torn", "reason": "card left", "tac": "557DB817"}, "tac"),
    ({"status": "torn", "reason": "card left", "tac": None, "card_counter": None}, "card_counter"),
    ({"balance_after": 900}, "balance_after"),
    ({"type": "02"}, "type"),                                 # a load on a bus
])
def test_bad_fields_are_refused_naming_the_field(changes, field):
    with pytest.raises(OutcomeError) as info:
        make(**changes)
    assert str(info.value).startswith(f"outcome: {field}: "), str(info.value)
    assert info.value.field == field and "\n" not in str(info.value)


def test_required_fields_cannot_be_none():
    with pytest.raises(ValueError, match=r"^outcome: terminal_id: required$"):
        Outcome(**{**PURCHASE, "terminal_id": None})


def test_from_json_refuses_unknown_fields_and_non_objects():
    data = json.loads(make().to_json())
    with pytest.raises(ValueError, match=r"^outcome: colour: unknown field$"):
        Outcome.from_json(json.dumps({**data, "colour": "red"}))
    with pytest.raises(OutcomeError, match=r"^clearing\.jsonl: amount: expected an integer, got str '1'$"):
        Outcome.from_json(json.dumps({**data, "amount": "1"}), "clearing.jsonl")
    with pytest.raises(ValueError, match=r"^outcome: expected an object"):
        Outcome.from_json("[1, 2]")
    with pytest.raises(ValueError, match=r"^outcome: not JSON"):
        Outcome.from_json("{")
    data.pop("datetime")
    with pytest.raises(ValueError, match=r"^outcome: datetime: missing$"):
        Outcome.from_json(json.dumps(data))


def test_outcomes_are_frozen_and_replace_checks_the_copy():
    outcome = make()
    with pytest.raises(ValidationError, match="frozen"):
        outcome.amount = 0  # type: ignore[misc]
    assert outcome.replace(amount=100, balance_after=900).to_dict() == {**outcome.to_dict(), "amount": 100,
                                                                        "balance_after": 900}
    assert "overdraft_limit" not in outcome.replace(overdraft_limit=None).to_dict()
    with pytest.raises(OutcomeError, match=r"^outcome: balance_after: 800 is not balance_before 1000 - amount 100$"):
        outcome.replace(amount=100)


def test_money_moved_only_for_approved_recovered_and_failed_with_tac():
    assert make().moved_money
    assert make(status="recovered", mac2_verified=False).moved_money
    assert make(status="failed", reason="MAC2 refused by the PSAM").moved_money
    assert not make(status="failed", reason="PSAM error", tac=None).moved_money
    assert not torn().moved_money


# ---------------------------------------------------------------------------------------------------
# Round trip of the JSON form over generated outcomes of every status.

_hex = lambda n: st.text("0123456789ABCDEFabcdef", min_size=n, max_size=n)  # noqa: E731
_digits = lambda n: st.text("0123456789", min_size=n, max_size=n)  # noqa: E731
_moment = st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2099, 12, 31)).map(
    lambda d: d.strftime("%Y%m%d%H%M%S"))
_u32 = st.integers(0, 0xFFFFFFFF)


@st.composite
def outcomes(draw) -> Outcome:
    status = draw(st.sampled_from(["approved", "declined", "torn", "recovered", "failed"]))
    kind = draw(st.sampled_from(["02", "06", "09"]))
    mode = "load" if kind == "02" else draw(st.sampled_from(["bus", "metro", "ferry", "taxi", None]))
    amount = draw(st.integers(0, 100_000))
    before = draw(st.integers(-50_000, 1_000_000))
    after = before + amount if kind == "02" else before - amount
    opt = lambda strategy: draw(st.one_of(st.none(), strategy))  # noqa: E731
    fields = dict(
        status=status, type=kind, terminal_id=draw(_hex(12)), datetime=draw(_moment),
        reason=draw(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x9FFF,
                                          exclude_characters="\x7f"), min_size=1).filter(str.strip)),
        card_no=draw(_digits(20)), issuer_id=draw(_hex(16)), amount=amount, balance_before=before,
        balance_after=after, overdraft_limit=opt(st.integers(0, 0xFFFFFF)),
        card_counter=draw(st.integers(0, 0xFFFF)), terminal_seq=draw(_u32),
        key_version=draw(st.integers(0, 255)), algorithm=draw(st.sampled_from(["3des", "sm4"])),
        tac=draw(_hex(8)), mac2_verified=opt(st.booleans()), list_version=opt(_digits(10)),
        mode=mode, city=opt(_digits(4)), operator=opt(_hex(4)), line=opt(_hex(4)),
        station=opt(st.sampled_from([2, 4, 16]).flatmap(_hex)),
        vehicle=opt(st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=8)),
        direction=opt(st.sampled_from(["AB", "BA"])), card_type=opt(_hex(2)), full_fare=opt(_u32),
        entry_city=opt(_digits(4)), entry_station=opt(_hex(4)), entry_terminal=opt(_hex(16)),
        entry_time=opt(_moment))
    if status in ("torn", "declined"):
        fields["tac"] = None
    if status == "failed":
        fields["tac"] = opt(_hex(8))
    if status == "approved" and draw(st.booleans()):
        fields["reason"] = None
    return Outcome(**{k: v for k, v in fields.items() if v is not None})


@given(outcomes())
def test_json_round_trip(outcome):
    text = outcome.to_json()
    again = Outcome.from_json(text)
    assert again == outcome
    assert again.to_json() == text
    assert list(json.loads(text)) == [name for name in FIELDS if getattr(outcome, name) is not None]
    for name in ("issuer_id", "terminal_id", "tac", "operator", "line", "station", "card_type",
                 "entry_station", "entry_terminal"):
        value = getattr(outcome, name)
        assert value is None or value == value.upper()


# ---------------------------------------------------------------------------------------------------
# the medium and the QR ride record (mobile.md M4, Q12)

CARD_JSON_BEFORE_Q12 = (
    '{"status":"approved","type":"06","card_no":"03105810000000001234","issuer_id":"58105810FFFFFFFF",'
    '"amount":200,"balance_before":1000,"balance_after":800,"overdraft_limit":0,"card_counter":7,'
    '"terminal_id":"112233445566","terminal_seq":258,"datetime":"20261123081530","key_version":1,'
    '"algorithm":"3des","tac":"557DB817","mac2_verified":true,"list_version":"2024112401","mode":"bus",'
    '"city":"5810","line":"0002"}')
"""The reference purchase as JSON before the QR extension existed: clearing files must not change."""

RIDE = dict(status="approved", amount=200, terminal_id="112233445566", datetime="20261124080010",
            list_version="2024112401", mode="bus", city="5810", line="0002", medium="qr", qr_code="80" * 332,
            account_no="9001000000000000001F", pay_account="TEST000000000001", qr_issuer="F0000001",
            qr_platform="F0000002", qr_gen_time=1795478400, ticket_type="01")


def ride(**changes) -> Outcome:
    fields = {**RIDE, **changes}
    return Outcome(**{k: v for k, v in fields.items() if v is not None})


def test_a_card_record_is_byte_identical_to_before_the_qr_extension():
    assert make().to_json() == CARD_JSON_BEFORE_Q12


def test_the_q12_fields_follow_the_transit_context():
    assert FIELDS[-8:] == ("medium", "qr_code", "account_no", "pay_account", "qr_issuer", "qr_platform",
                           "qr_gen_time", "ticket_type")
    assert FIELDS.index("entry_time") == len(FIELDS) - 9


def test_a_qr_ride_has_no_card_fields_and_an_optional_type():
    out = ride()
    assert out.type is None and out.card_no is None and out.tac is None and out.moved_money
    assert Outcome.from_json(out.to_json()) == out
    assert ride(type="06").type == "06"
    declined = ride(status="declined", reason="replay", account_no=None, pay_account=None, qr_issuer=None,
                    qr_platform=None, qr_gen_time=None, ticket_type=None, qr_code="80")
    assert declined.to_dict()["reason"] == "replay"


@pytest.mark.parametrize("changes, field, reason", [
    ({"tac": "557DB817"}, "tac", "a QR ride record has no card fields (Q12)"),
    ({"card_no": "03105810000000001234"}, "card_no", "a QR ride record has no card fields (Q12)"),
    ({"balance_before": 1000}, "balance_before", "a QR ride record has no card fields (Q12)"),
    ({"terminal_seq": 1}, "terminal_seq", "a QR ride record has no card fields (Q12)"),
    ({"status": "torn", "reason": "x"}, "status", "a QR ride is approved or declined, never torn"),
    ({"account_no": None}, "account_no", "required for an approved QR ride"),
    ({"status": "declined", "reason": None}, "reason", "required for a declined QR ride"),
    ({"qr_code": None}, "qr_code", "required for an approved QR ride"),
    ({"qr_code": "8"}, "qr_code", "expected 2 to 8192 hex digits (whole bytes), got '8'"),
    ({"pay_account": "TEST00000000001"}, "pay_account", "expected 16 printable ASCII characters, got 'TEST00000000001'"),
    ({"qr_issuer": "F000001"}, "qr_issuer", "expected 8 hex digits, got 'F000001'"),
    ({"qr_gen_time": -1}, "qr_gen_time", "-1 out of range 0..4294967295"),
    ({"medium": "paper"}, "medium", "expected one of physical, virtual, qr, got 'paper'"),
    ({"type": "02"}, "type", "a QR code pays a ride, it loads nothing"),
])
def test_bad_qr_records_are_refused_naming_the_field(changes, field, reason):
    with pytest.raises(OutcomeError) as info:
        ride(**changes)
    assert str(info.value) == f"outcome: {field}: {reason}"


def test_card_records_carry_a_medium_but_never_the_qr_fields():
    assert make(medium="virtual").medium == "virtual" and make(medium="physical").to_dict()["medium"] == "physical"
    with pytest.raises(OutcomeError, match=r"^outcome: qr_code: only a QR ride record \(medium qr\) has it$"):
        make(qr_code="80" * 332)
    with pytest.raises(OutcomeError, match=r"^outcome: type: required \(every card outcome has a transaction type\)$"):
        make(type=None)
