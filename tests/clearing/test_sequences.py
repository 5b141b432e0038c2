"""`clearing.sequences`: one bit per PSAM sequence finds the pairs seen twice, in a worker and between them."""
from __future__ import annotations

from hypothesis import given, strategies as st

from clearing.sequences import MAX_SPAN, SeqBits, collisions, merge


@given(st.lists(st.integers(0, 2**32 - 1) | st.integers(1000, 1200), max_size=60))
def test_add_reports_exactly_the_repeats(seqs):
    bits, seen = SeqBits(), set()
    for s in seqs:
        assert bits.add(s) == (s in seen)
        seen.add(s)
    assert sorted(bits.sequences()) == sorted(seen)
    assert len(bits.bits) <= MAX_SPAN // 8 + 1024          # a far sequence goes to the overflow set


@given(st.lists(st.tuples(st.sampled_from(["A", "B"]), st.integers(0, 5000) | st.integers(0, 2**32 - 1)),
                max_size=40), st.integers(2, 3), st.randoms())
def test_collisions_and_merge_between_maps(pairs, parts, rnd):
    maps = [dict() for _ in range(parts)]
    where: dict[tuple[str, int], set[int]] = {}
    for terminal, seq in pairs:
        i = rnd.randrange(parts)
        if (terminal, seq) in where and i in where[(terminal, seq)]:
            continue
        maps[i].setdefault(terminal, SeqBits()).add(seq)
        where.setdefault((terminal, seq), set()).add(i)
    assert collisions(maps) == {k for k, v in where.items() if len(v) > 1}
    merged: dict[str, SeqBits] = {}
    for m in maps:
        merge(merged, m)
    assert {(t, s) for t, b in merged.items() for s in b.sequences()} == set(where)
