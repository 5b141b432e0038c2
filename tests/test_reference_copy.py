"""The project keeps its own copy of the reference (tests/data/reference); this pins it.

Every copied file must match the SHA-256 written in SOURCES.md, so the copy cannot drift silently. Where
the project reference also sits beside the clone (the development workplace), the copy must equal it;
a clone without it checks the pinned hashes alone.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.reference import REFERENCE_DIR

SIBLING = Path(__file__).resolve().parents[2] / "shared" / "reference"


def _pinned() -> dict[str, str]:
    table = (REFERENCE_DIR / "SOURCES.md").read_text(encoding="utf-8")
    return dict(re.findall(r"^\| (\S+) \|[^|]*\| ([0-9a-f]{64}) \|$", table, flags=re.MULTILINE))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_every_copied_file_is_pinned_and_matches_its_hash():
    pinned = _pinned()
    copied = sorted(p.name for p in REFERENCE_DIR.iterdir() if p.name != "SOURCES.md")
    assert sorted(pinned) == copied
    assert {name: _sha256(REFERENCE_DIR / name) for name in copied} == pinned


def test_the_copy_equals_the_reference_beside_the_clone_where_there_is_one():
    originals = {name: SIBLING / name for name in _pinned() if (SIBLING / name).is_file()}
    differing = [name for name, path in originals.items() if _sha256(path) != _pinned()[name]]
    assert differing == [], f"the reference changed; refresh tests/data/reference: {differing}"
