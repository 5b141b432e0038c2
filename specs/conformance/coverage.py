"""The coverage matrix: each command of the reference × each condition, with the cases that cover it.

A case says which cells it fills (`covers: [debit/wrong_mac, ...]`); an empty cell is a gap the report
shows. Cells list the case IDs with their verdicts in this run.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .results import CaseResult

__all__ = ["matrix", "COMMAND_NAMES", "commands"]

COMMAND_NAMES: dict[str, str] = {
    "select": "SELECT", "read_binary": "READ BINARY", "read_record": "READ RECORD",
    "get_balance": "GET BALANCE", "verify": "VERIFY", "initialize_load": "INITIALIZE FOR LOAD",
    "credit_load": "CREDIT FOR LOAD", "initialize_purchase": "INITIALIZE FOR PURCHASE",
    "initialize_capp": "INITIALIZE FOR CAPP PURCHASE", "update_capp_cache": "UPDATE CAPP DATA CACHE",
    "debit": "DEBIT FOR (CAPP) PURCHASE", "get_transaction_prove": "GET TRANSACTION PROVE",
    "get_challenge": "GET CHALLENGE", "external_authenticate": "EXTERNAL AUTHENTICATE",
    "application_block": "APPLICATION BLOCK", "application_unblock": "APPLICATION UNBLOCK",
    "update_binary_sm": "UPDATE BINARY (SM)", "update_record_sm": "UPDATE RECORD (SM)",
    "write_key": "WRITE KEY", "card_block": "CARD BLOCK",
}
"""The commands of tunion.md section 2 by the key cases use in `covers:`; each suite's matrix takes its rows."""


def commands(*keys: str) -> dict[str, str]:
    """The rows of a suite's coverage matrix, in the order given."""
    return {k: COMMAND_NAMES[k] for k in keys}


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
