"""Access to the shared reference (../shared/reference) that the tests check against."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

REFERENCE_DIR = Path(__file__).resolve().parents[2] / "shared" / "reference"


def h(text: str) -> bytes:
    """Hex with grouping spaces, as vectors.json writes it."""
    return bytes.fromhex(text.replace(" ", ""))


@lru_cache(maxsize=1)
def vectors() -> dict:
    path = REFERENCE_DIR / "vectors.json"
    if not path.exists():
        raise FileNotFoundError(f"reference vectors missing at {path}: the tests need ../shared beside the clone")
    return json.loads(path.read_text())
