"""How long a validator may take for one card, by the mode of its terminal profile.

Why here: the mode (metro gate, bus, load) is the terminal's; the timing model below it knows only frames and
commands. Sources (reference tunion.md 5.6): Shanghai DB31/T 239-2020 gives a purchase terminal ≤ 400 ms for one
IC-card transaction including its record and a load terminal ≤ 1 s; industry articles quote about 300 ms at a
metro gate. No JT/T 978 figure was found; ferry and taxi terminals are purchase terminals (400 ms).
"""
from __future__ import annotations

__all__ = ["BUDGET_MS", "BUDGET_SOURCE", "budget_ms"]

BUDGET_MS: dict[str, int] = {"metro": 300, "bus": 400, "ferry": 400, "taxi": 400, "load": 1000}
"""Milliseconds for one card, by terminal mode (reference tunion.md 5.6)."""

BUDGET_SOURCE = {
    "metro": "metro gate, about 300 ms (industry articles, reference tunion.md 5.6)",
    "bus": "purchase terminal, 400 ms with its record (DB31/T 239-2020, reference tunion.md 5.6)",
    "ferry": "purchase terminal, 400 ms with its record (DB31/T 239-2020, reference tunion.md 5.6)",
    "taxi": "purchase terminal, 400 ms with its record (DB31/T 239-2020, reference tunion.md 5.6)",
    "load": "load terminal, 1 s (DB31/T 239-2020, reference tunion.md 5.6)",
}


def budget_ms(mode: str) -> int:
    """The budget of a terminal mode; an unknown mode is a ValueError naming it."""
    try:
        return BUDGET_MS[mode]
    except KeyError:
        raise ValueError(f"mode {mode!r}: no time budget (known: {', '.join(BUDGET_MS)})") from None
