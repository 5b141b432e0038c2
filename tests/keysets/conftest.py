import pytest

from tests.reference import vectors as _vectors


@pytest.fixture(scope="session")
def vectors() -> dict:
    return _vectors()
