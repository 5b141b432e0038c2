"""The project's own copy of the reference it tests against (tests/data/reference), and its provenance.

The copy lets a clone with nothing beside it pass its tests; `tests/data/reference/SOURCES.md` says where
every file came from and records its SHA-256, which `tests/test_reference_copy.py` checks.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parent / "data" / "reference"


def h(text: str) -> bytes:
    """Hex with grouping spaces, as vectors.json writes it."""
    return bytes.fromhex(text.replace(" ", ""))


def reference_text(name: str) -> str:
    """One reference document of the project's copy, e.g. 'tunion.md'."""
    return (REFERENCE_DIR / name).read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def vectors() -> dict:
    return json.loads((REFERENCE_DIR / "vectors.json").read_text(encoding="utf-8"))
