"""The coverage matrix: each command of the reference × each condition, with the cases that cover it.

A case says which cells it fills (`covers: [debit/wrong_mac, ...]`); an empty cell is a gap the report
shows. Cells list the case IDs with their verdicts in this run.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .results import CaseResult

__all__ = ["matrix"]


def matrix(commands: Mapping[str, str], conditions: Mapping[str, str],
           results: Iterable[CaseResult]) -> dict[str, Any]:
    """{"commands": [...], "conditions": [...], "cells": {command: {condition: [{id, verdict}]}}, "gaps": n}."""
    cells: dict[str, dict[str, list[dict[str, str]]]] = {c: {k: [] for k in conditions} for c in commands}
    for r in results:
        for cell in r.covers:
            command, _, condition = cell.partition("/")
            if command in cells and condition in cells[command]:
                cells[command][condition].append({"id": r.case_id, "verdict": r.verdict})
    gaps = sum(1 for c in cells.values() for v in c.values() if not v)
    return {"commands": [{"key": k, "label": v} for k, v in commands.items()],
            "conditions": [{"key": k, "label": v} for k, v in conditions.items()],
            "cells": cells, "gaps": gaps}
