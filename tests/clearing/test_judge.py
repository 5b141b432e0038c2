"""`clearing.judge`: one card's records judged in counter order, as tables of (record -> reasons)."""
from __future__ import annotations

from clearing.judge import BIT, judge_card, reason_names
from clearing.records import FIELDS_OF_TUPLE, KIND_OFFLINE, KIND_ONLINE, STATUS_CODES

CARD = "03104870300000000001"


def rec(n: int, counter: int, before: int | None, amount: int, *, load: bool = False, status: str = "approved",
        after: int | None = None, when: str | None = None) -> tuple:
    """A record tuple (records.FIELDS_OF_TUPLE) with its arrival number appended."""
    kind = KIND_ONLINE if load else KIND_OFFLINE
    if after is None and before is not None and status != "torn":
        after = before + amount if load else before - amount
    fields = dict(card=CARD, kind=kind, counter=counter, status=STATUS_CODES[status], type=2 if load else 6,
                  issuer="02205810FFFFFFFF", amount=amount, balance_before=before, balance_after=after, overdraft=0,
                  terminal="440300000001", seq=None if load else n, datetime=when or f"20261124{n:06d}",
                  key_version=1, algorithm="3des", tac=None if status == "torn" else "00000000", mode=None,
                  city=None, operator=None, transit_line=None, medium=None)
    return tuple(fields[f] for f in FIELDS_OF_TUPLE) + (n,)


def judge(rows: list[tuple], fixed: dict[int, str] | None = None) -> dict[int, list[str]]:
    """Sort like the verifier (kind, counter, arrival), judge, and name the reasons by arrival number."""
    rows = sorted(rows, key=lambda r: (r[1], r[2], r[-1]))
    fx = [BIT[fixed[r[-1]]] if fixed and r[-1] in fixed else 0 for r in rows]
    masks = judge_card(rows, fx)
    return {r[-1]: reason_names(m) for r, m in zip(rows, masks) if m}


def test_a_clean_day_in_any_arrival_order():
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 800, 200), rec(3, 12, 600, 300), rec(4, 3, 300, 5000, load=True),
            rec(5, 13, 5300, 200)]
    assert judge(rows) == {}
    assert judge(list(reversed(rows))) == {}


def test_a_counter_gap_flags_the_record_after_it_and_not_its_balance():
    # counter 11 never reached clearing: 12 is flagged for the gap; its balance is not chained across the gap
    rows = [rec(1, 10, 1000, 200), rec(2, 12, 600, 200), rec(3, 13, 400, 100)]
    assert judge(rows) == {2: ["counter-gap"]}


def test_counters_are_per_kind():
    rows = [rec(1, 10, 1000, 200), rec(2, 4, 800, 1000, load=True), rec(3, 11, 1800, 200), rec(4, 6, 1600, 100, load=True)]
    assert judge(rows) == {4: ["counter-gap"]}


def test_one_record_with_wrong_balances_flags_only_that_record():
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 1500, 200), rec(3, 12, 600, 200)]   # 2 should start at 800
    assert judge(rows) == {2: ["balance-chain"]}


def test_a_jump_in_the_purse_flags_only_the_first_record_after_it():
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 1500, 200), rec(3, 12, 1300, 200)]   # +700 outside any record
    assert judge(rows) == {2: ["balance-chain"]}


def test_balances_that_do_not_add_up_inside_one_record():
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 800, 200, after=650), rec(3, 12, 600, 200)]
    assert judge(rows) == {2: ["balance-chain"]}


def test_loads_and_purchases_interleave_by_balance_whatever_the_clocks_say():
    # The load office's clock is an hour fast: by time the load would come after purchase 3.
    rows = [rec(1, 10, 300, 200, when="20261124080000"),
            rec(2, 7, 100, 5000, load=True, when="20261124100000"),
            rec(3, 11, 5100, 200, when="20261124090000")]
    assert judge(rows) == {}


def test_the_first_valid_record_of_a_counter_is_the_original():
    original, replay = rec(1, 10, 1000, 200), rec(5, 10, 1000, 200)
    assert judge([original, rec(2, 11, 800, 200), replay]) == {5: ["duplicate"]}
    forged = rec(1, 10, 1000, 200)          # arrives first, but its TAC fails: the later valid one is the original
    assert judge([forged, rec(2, 11, 800, 200), rec(5, 10, 1000, 200)], {1: "tac"}) == {1: ["duplicate"]}


def test_a_grey_record_closed_by_its_recovery_and_one_left_open():
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 800, 200, status="torn"), rec(3, 11, 800, 200, status="recovered"),
            rec(4, 12, 600, 200), rec(5, 13, 400, 200, status="torn")]
    assert judge(rows) == {5: ["grey-open"]}


def test_an_open_grey_record_holds_its_counter_and_either_balance():
    # The torn DEBIT did happen (the card's next counter follows): no gap, no chain break.
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 800, 200, status="torn"), rec(3, 12, 600, 200)]
    assert judge(rows) == {2: ["grey-open"]}
    # ... or did not: the purchase redone on the same counter closes the grey record.
    rows = [rec(1, 10, 1000, 200), rec(2, 11, 800, 200, status="torn"), rec(3, 11, 800, 200)]
    assert judge(rows) == {}


def test_a_grey_record_uploaded_twice_is_no_duplicate():
    rows = [rec(1, 10, 1000, 200, status="torn"), rec(7, 10, 1000, 200, status="torn")]
    assert judge(rows) == {1: ["grey-open"], 7: ["grey-open"]}


# -- the column-wise screen: a card it lets through is one judge_card finds nothing wrong with ---------------
from hypothesis import given, settings, strategies as st  # noqa: E402

from clearing.judge import cards_to_judge  # noqa: E402
from clearing.records import AFTER, AMOUNT, BEFORE, CARD, COUNTER, KIND, STATUS  # noqa: E402


@st.composite
def bucket(draw) -> list[tuple]:
    """Several cards' records, mostly plain, with the faults the screen must notice drawn in."""
    rows, n = [], 0
    for c in range(draw(st.integers(1, 6))):
        counter, balance = draw(st.integers(0, 5)), draw(st.integers(0, 3000))
        for _ in range(draw(st.integers(1, 6))):
            n += 1
            fault = draw(st.sampled_from(["none"] * 6 + ["gap", "dup", "chain", "self", "torn", "load", "nobal"]))
            load = fault == "load"
            amount = draw(st.integers(1, 500))
            counter += 2 if fault == "gap" else 0 if fault == "dup" and n > 1 else 1
            before = balance + (7 if fault == "chain" else 0)
            after = (before + amount if load else before - amount) + (1 if fault == "self" else 0)
            r = rec(n, counter, None if fault == "nobal" else before, amount, load=load,
                    status="torn" if fault == "torn" else "approved", after=None if fault == "nobal" else after)
            rows.append((f"0310487030000000000{c}",) + r[1:])
            balance = after
    return sorted(rows, key=lambda r: (r[CARD], r[KIND], r[COUNTER], r[-1]))


@given(bucket())
@settings(max_examples=300, deadline=None)
def test_the_screen_sends_every_card_with_a_reason_to_judge_card(rows):
    cols = list(zip(*rows))
    chosen = cards_to_judge(cols[CARD], cols[KIND], cols[COUNTER], cols[STATUS], cols[AMOUNT], cols[BEFORE],
                            cols[AFTER])
    judged = {i for start, end in chosen for i in range(start, end)}
    starts = [i for i in range(len(rows)) if i == 0 or rows[i][CARD] != rows[i - 1][CARD]]
    for start, end in zip(starts, starts[1:] + [len(rows)]):
        masks = judge_card(rows[start:end], [0] * (end - start))
        if start not in judged:
            assert not any(masks), rows[start:end]          # let through: nothing wrong with it
            assert not judged & set(range(start, end))
        else:
            assert (start, end) in chosen                   # whole cards, never part of one


def test_the_screen_judges_a_card_with_earlier_records_and_lets_plain_cards_through():
    plain = [rec(1, 10, 1000, 200), rec(2, 11, 800, 200)]
    cols = list(zip(*plain))
    args = (cols[CARD], cols[KIND], cols[COUNTER], cols[STATUS], cols[AMOUNT], cols[BEFORE], cols[AFTER])
    assert cards_to_judge(*args) == []
    assert cards_to_judge(*args, new=[True, False]) == [(0, 2)]
    assert cards_to_judge(*args, new=[True, True]) == []
