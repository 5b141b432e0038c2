"""`clearing.settle`: gross, fees and net reconcile to the accepted records to the fen, on generated days."""
from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings, strategies as st

from clearing.settle import FeeSchedule, FeeScheduleError, MoneyRecord, settle
from clearing.store import Store
from clearing.verify import verify

from .generator import Generator

ISSUERS = ["02205810FFFFFFFF", "02215840FFFFFFFF", "02775880FFFFFFFF"]
ACQUIRERS = ["03015810", "01015840", "02205810", "05015880", None]
MODES = ["bus", "metro", "ferry", "taxi", None]

records = st.lists(st.builds(
    lambda issuer, acquirer, mode, load, amount, t: MoneyRecord(issuer, acquirer, f"4403{t:08d}",
                                                                 "load" if load else mode, 2 if load else 6, amount),
    st.sampled_from(ISSUERS), st.sampled_from(ACQUIRERS), st.sampled_from(MODES), st.booleans(),
    st.integers(0, 100_000), st.integers(0, 5)), max_size=60)
rates = st.decimals(min_value=0, max_value=Decimal("0.2"), places=5)
schedules = st.builds(
    lambda table, default, rounding: FeeSchedule({a: {m: r for m, r in modes.items()} for a, modes in table.items()},
                                                 default, rounding),
    st.dictionaries(st.sampled_from(["03015810", "01015840", "02205810", "*"]),
                    st.dictionaries(st.sampled_from(["bus", "metro", "ferry", "taxi", "load", "other"]), rates)),
    rates, st.sampled_from(["half-up", "half-even", "down"]))


@settings(max_examples=200)
@given(records, schedules)
def test_a_generated_day_reconciles_to_the_fen(recs, fees):
    s = settle("20261124", recs, fees)
    check = s.reconcile()
    assert check["ok"], check
    assert check["gross"] == sum(r.amount for r in recs) and check["records"] == len(recs)
    for line in s.lines:
        exact = Decimal(line.gross) * line.rate
        assert abs(line.fee - exact) < 1 or (fees.rounding == "down" and 0 <= exact - line.fee < 1)
    # every payment leaves each party where the transfers (one per direction) leave it
    assert s.positions(s.payments()) == s.positions((a, b, n) for a, b, _, _, n in s.transfers())
    assert len({tuple(sorted((a, b))) for a, b, _ in s.payments()}) == len(s.payments())    # one per pair


def test_purchases_flow_to_the_acquirer_and_loads_to_the_issuer():
    fees = FeeSchedule({"03015810": {"bus": Decimal("0.006")}, "*": {"load": Decimal("0.01")}}, Decimal(0), "half-up")
    recs = [MoneyRecord("02215840FFFFFFFF", "03015810", "440300000001", "bus", 6, 250)] * 3 + \
           [MoneyRecord("02215840FFFFFFFF", "03015810", "440300009001", "load", 2, 5000),
            MoneyRecord("02205810FFFFFFFF", "02205810", "440300009002", "load", 2, 1000)]
    s = settle("20261124", recs, fees)
    lines = {(l.payer, l.payee, l.mode): (l.gross, l.fee, l.net, l.on_us) for l in s.lines}
    assert lines == {("02215840", "03015810", "bus"): (750, 5, 745, False),      # 4.5 fen rounds half up to 5
                     ("03015810", "02215840", "load"): (5000, 50, 4950, False),
                     ("02205810", "02205810", "load"): (1000, 10, 990, True)}
    assert s.transfers() == [("02215840", "03015810", 750, 5, 745), ("03015810", "02215840", 5000, 50, 4950)]
    assert s.payments() == [("03015810", "02215840", 4205)]
    assert s.reconcile()["ok"]


@pytest.mark.parametrize("rounding,fee", [("half-up", 5), ("half-even", 4), ("down", 4)])
def test_the_rounding_rule_is_applied_once_per_line(rounding, fee):
    recs = [MoneyRecord("02215840FFFFFFFF", "03015810", "440300000001", "bus", 6, 750)]
    s = settle("20261124", recs, FeeSchedule({"*": {"bus": Decimal("0.006")}}, Decimal(0), rounding))
    assert [l.fee for l in s.lines] == [fee]


def test_a_day_from_the_store_reconciles_to_the_accepted_records(tmp_path, keysets, keyset_paths):
    day = Generator(keysets, seed=21, cards=30, rides=8,
                    faults={"tac": 3, "duplicate": 3, "counter-gap": 2, "balance-chain": 2, "grey-open": 2}).day_files()
    verify(day.write(tmp_path), keyset_paths, out=tmp_path / "store")
    with Store(tmp_path / "store", create=False) as store:
        recs = [MoneyRecord(*r[:6]) for r in store.money_records("20261124")]
    fees = FeeSchedule({"*": {"bus": Decimal("0.006"), "metro": Decimal("0.004")}}, Decimal("0.002"), "half-up")
    s = settle("20261124", recs, fees)
    accepted = [r for r in day.money if r["status"] != "torn"]
    assert s.records == len(accepted) and s.amount == sum(r["amount"] for r in accepted)
    assert s.reconcile()["ok"]
    want_fee = 0
    for line in s.lines:
        want_fee += int((Decimal(line.gross) * line.rate).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    assert sum(l.fee for l in s.lines) == want_fee
    paths = s.write(tmp_path)
    again = [p.read_bytes() for p in s.write(tmp_path)]
    assert [p.read_bytes() for p in paths] == again


def test_fee_schedule_file(tmp_path):
    path = tmp_path / "fees.yaml"
    path.write_text('rounding: half-even\ndefault: "0.001"\nacquirers:\n  "03015810": {bus: "0.006", metro: 0.004}\n'
                    '  "*": {load: "0.002"}\n')
    fees = FeeSchedule.load(path)
    assert fees.rate("03015810", "bus") == Decimal("0.006") and fees.rate("03015810", "metro") == Decimal("0.004")
    assert fees.rate("01015840", "load") == Decimal("0.002") and fees.rate("01015840", "bus") == Decimal("0.001")
    assert fees.rounding == "half-even"


@pytest.mark.parametrize("text,message", [
    ('acquirers:\n  "03015810": {bus: "1.5"}\n', r"fees.yaml: acquirers: 03015810.bus: 1.5 must be at least 0"),
    ('acquirers:\n  "0301": {bus: "0.1"}\n', r"fees.yaml: acquirers: acquirer '0301': expected operator and city"),
    ('acquirers:\n  "03015810": {plane: "0.1"}\n', r"fees.yaml: acquirers.03015810.plane"),
    ('rounding: up\n', r"fees.yaml: rounding"),
    ('default: "abc"\n', r"fees.yaml: default: .*'abc' is not a number"),
])
def test_a_bad_fee_schedule_is_refused_naming_the_field(tmp_path, text, message):
    path = tmp_path / "fees.yaml"
    path.write_text(text)
    with pytest.raises(FeeScheduleError, match=message):
        FeeSchedule.load(path)
