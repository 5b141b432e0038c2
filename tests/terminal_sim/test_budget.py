"""Every terminal mode has a time budget for one card, from reference 5.6."""
from __future__ import annotations

import pytest

from tests.reference import reference_text
from terminal_sim.budget import BUDGET_MS, BUDGET_SOURCE, budget_ms
from terminal_sim.profile import MODES


def test_every_mode_has_a_budget_and_its_source():
    assert set(BUDGET_MS) == set(MODES) == set(BUDGET_SOURCE)
    assert (budget_ms("metro"), budget_ms("bus"), budget_ms("load")) == (300, 400, 1000)
    assert all("tunion.md 5.6" in source for source in BUDGET_SOURCE.values())


def test_the_reference_states_the_figures():
    text = reference_text("tunion.md")
    assert "**≤ 400 ms**" in text and "~300 ms for gates" in text and "≤ 1 s" in text


def test_an_unknown_mode_is_refused_by_name():
    with pytest.raises(ValueError, match="mode 'tram': no time budget"):
        budget_ms("tram")
