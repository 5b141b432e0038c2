"""The order-dependent checks of one card: duplicates, grey records, counter gaps, the balance chain.

The verifier hands this module all records of one card (from every file and every earlier run), sorted by
counter kind, counter and arrival, so the verdicts do not depend on the order of files or lines. Pure
functions on record tuples (`records.FIELDS_OF_TUPLE`), no I/O: the rules can be read and tested here alone.

The rules (reason codes in `REASONS`):

* **duplicate** — records with the same card, counter kind and counter: the first one in arrival order
  whose TAC verifies is the original (if none verifies, the first one stands in for the chain); every
  other money record of that counter is a duplicate. Grey (torn) records take no part.
* **grey-open** — a torn record is closed when a money record has its card, kind and counter (the
  recovered purchase, or the purchase the terminal redid because DEBIT never happened); otherwise it is
  reported open. An open grey record still holds its counter in the chain, so the record after it is no
  gap (if the card's next counter follows, the torn DEBIT did happen and the money moved without a TAC).
* **counter-gap** — per card and kind, a counter more than one above the previous one: flagged on the
  record after the gap. Its balance is not chained to the record before the gap, since the missing
  records explain the difference.
* **balance-chain** — loads and purchases of a card interleave; they are merged into one sequence, at each
  step taking the kind whose next record continues the balance (by date-time when both or neither do).
  A record is flagged when its balance before differs from the previous balance after, or when its own
  balances do not differ by its amount. After a flagged record the chain may continue from that record's
  balance after (the balance jumped) or from what it should have been (one record's balances were wrong),
  so one fault flags one record.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .records import AFTER, AMOUNT, BEFORE, COUNTER, DATETIME, FIELDS_OF_TUPLE, KIND, KIND_ONLINE, STATUS, TORN

__all__ = ["REASONS", "BIT", "N", "judge_card", "cards_to_judge", "reason_names", "mask_of"]

REASONS = ("tac", "duplicate", "counter-gap", "balance-chain", "grey-open", "unknown-terminal", "malformed")
BIT = {name: 1 << i for i, name in enumerate(REASONS)}
TAC, DUPLICATE, GAP, CHAIN, GREY_OPEN = (BIT[n] for n in REASONS[:5])
JUDGED = DUPLICATE | GAP | CHAIN | GREY_OPEN      # the bits this module decides (the others come with the record)


def reason_names(mask: int) -> list[str]:
    """The short codes of a reasons mask, in `REASONS` order."""
    return [name for i, name in enumerate(REASONS) if mask & (1 << i)]


def mask_of(names: Sequence[str]) -> int:
    mask = 0
    for name in names:
        mask |= BIT[name]
    return mask


# A row is a record tuple (records.FIELDS_OF_TUPLE) followed by the verifier's columns; judge_card reads
# these positions and takes the fixed reasons (tac, unknown-terminal) beside the rows.
N = len(FIELDS_OF_TUPLE)          # the arrival number follows the record's fields


def _elements(rows: Sequence[Sequence], fixed: Sequence[int], masks: list[int]) -> tuple[list[int], list[int]]:
    """Group by (kind, counter): mark duplicates and open grey records; one chain element per counter."""
    chains: tuple[list[int], list[int]] = ([], [])
    i, total = 0, len(rows)
    while i < total:
        kind, counter = rows[i][KIND], rows[i][COUNTER]
        j = i + 1
        while j < total and rows[j][COUNTER] == counter and rows[j][KIND] == kind:
            j += 1
        if j == i + 1:                                   # the common case: one record per counter
            if rows[i][STATUS] == TORN:
                masks[i] |= GREY_OPEN
            chains[kind].append(i)
            i = j
            continue
        money = [k for k in range(i, j) if rows[k][STATUS] != TORN]
        if money:
            valid = [k for k in money if not fixed[k] & TAC]
            original = valid[0] if valid else money[0]
            for k in money:
                if k != original:
                    masks[k] |= DUPLICATE
            chains[kind].append(original)
        else:
            for k in range(i, j):
                masks[k] |= GREY_OPEN
            chains[kind].append(i)
        i = j
    return chains


def judge_card(rows: Sequence[Sequence], fixed: Sequence[int]) -> list[int]:
    """The judged reason bits of each record of one card.

    `rows` are record tuples sorted by kind, counter and arrival number (`N`); `fixed` their reason bits
    known beforehand (a failed TAC matters to who is the original of a duplicate).
    """
    masks = [0] * len(rows)
    loads, purchases = _elements(rows, fixed, masks)
    after_gap = set()
    for chain in (loads, purchases):
        for prev, cur in zip(chain, chain[1:]):
            if rows[cur][COUNTER] > rows[prev][COUNTER] + 1:
                masks[cur] |= GAP
                after_gap.add(cur)
    _balance_chain(rows, loads, purchases, after_gap, masks)
    return masks


def _balance_chain(rows: Sequence[Sequence], loads: list[int], purchases: list[int], after_gap: set[int],
                   masks: list[int]) -> None:
    acceptable: set[int] | None = None
    if not loads:                                        # the common case: purchases only, in counter order
        for k in purchases:
            acceptable = _step(rows[k], k, acceptable, k in after_gap, masks)
        return
    li = pi = 0
    while li < len(loads) or pi < len(purchases):
        if li == len(loads):
            k = purchases[pi]; pi += 1
        elif pi == len(purchases):
            k = loads[li]; li += 1
        else:
            load, purchase = rows[loads[li]], rows[purchases[pi]]
            fits_load = acceptable is not None and load[BEFORE] in acceptable
            fits_purchase = acceptable is not None and purchase[BEFORE] in acceptable
            if fits_load != fits_purchase:
                take_load = fits_load
            else:
                take_load = (load[DATETIME], 0) <= (purchase[DATETIME], 1)
            if take_load:
                k = loads[li]; li += 1
            else:
                k = purchases[pi]; pi += 1
        acceptable = _step(rows[k], k, acceptable, k in after_gap, masks)


def _step(row: Sequence, k: int, acceptable: set[int] | None, after_gap: bool, masks: list[int]) -> set[int] | None:
    """Check one chain element; return the balances the next element may start from."""
    before = row[BEFORE]
    if before is None:                                   # a grey record that did not say: the chain restarts
        return None
    delta = row[AMOUNT] if row[KIND] == KIND_ONLINE else -row[AMOUNT]
    implied = before + delta
    if row[STATUS] == TORN:                              # open grey: the DEBIT may or may not have happened
        return {before, implied}
    after = row[AFTER] if row[AFTER] is not None else implied
    broken = after != implied or (acceptable is not None and not after_gap and before not in acceptable)
    if not broken:
        return {after}
    masks[k] |= CHAIN
    nxt = {after, implied}
    if acceptable is not None and not after_gap:
        nxt |= {a + delta for a in acceptable}
    return nxt


def cards_to_judge(card: Sequence[str], kind: Sequence[int], counter: Sequence[int], status: Sequence[int],
                   amount: Sequence[int | None], before: Sequence[int | None], after: Sequence[int | None],
                   new: Sequence[bool] | None = None) -> list[tuple[int, int]]:
    """The row ranges ``(start, end)`` of the cards `judge_card` must see; every other card's records get no
    judged reason, so a bucket of millions of plain cards is screened column-wise instead of card by card.

    The columns are those of rows sorted by card, kind, counter and arrival. A card is plain when all its
    records are new (`new`; a card with earlier records is judged, its stored verdicts may change), of one
    kind, no grey record among them, each one's balances differ by its amount, and each record continues
    the one before: the next counter, its balance before the previous balance after. For such a card
    `judge_card` finds one record per counter (no duplicate, no open grey record), no gap, and a chain that
    never breaks: no reason at all (``tests/clearing/test_judge.py`` checks the two agree).
    """
    total = len(card)
    if total == 0:
        return []
    try:
        kinds = np.array(kind, dtype=np.int64)
        counters = np.array(counter, dtype=np.int64)
        states = np.array(status, dtype=np.int64)
    except (TypeError, ValueError):                  # not integers throughout: judge every card
        cards = np.array(card, dtype=object)
        starts = np.flatnonzero(np.concatenate(([True], cards[1:] != cards[:-1])))
        return list(zip(starts.tolist(), starts[1:].tolist() + [total]))
    # Balances as float64: None becomes NaN (no balance, never plain); integers below 2**53 stay exact.
    amounts = np.array(amount, dtype=np.float64)
    befores = np.array(before, dtype=np.float64)
    afters = np.array(after, dtype=np.float64)
    cards = np.array(card, dtype=object)
    start = np.empty(total, dtype=bool)
    start[0] = True
    start[1:] = cards[1:] != cards[:-1]
    delta = np.where(kinds == KIND_ONLINE, amounts, -amounts)
    bad = (states == TORN) | ~(afters == befores + delta)          # NaN compares unequal: not plain
    if new is not None:
        bad |= ~np.array(new, dtype=bool)
    link = (kinds[1:] == kinds[:-1]) & (counters[1:] == counters[:-1] + 1) & (befores[1:] == afters[:-1])
    bad[1:] |= ~start[1:] & ~link
    starts = np.flatnonzero(start)
    flagged = np.logical_or.reduceat(bad, starts)
    ends = np.append(starts[1:], total)
    return list(zip(starts[flagged].tolist(), ends[flagged].tolist()))
