"""Fixtures of the clearing tests: the shipped TEST key sets (3DES and SM4), by path and loaded."""
from __future__ import annotations

import pytest

from keysets import TEST_KEYSET_DIR, KeySet

KEYSET_PATHS = (TEST_KEYSET_DIR / "gd-test-3des.toml", TEST_KEYSET_DIR / "gd-test-sm4.toml")


@pytest.fixture(scope="session")
def keyset_paths():
    return KEYSET_PATHS


@pytest.fixture(scope="session")
def keysets():
    return [KeySet.load(p) for p in KEYSET_PATHS]
