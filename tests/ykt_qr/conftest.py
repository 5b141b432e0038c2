"""A TEST PKI built by the independent implementation, and the reference's real vectors (from the copy)."""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import pytest

from tests.reference import reference_text
from ykt_qr import AcceptancePolicy, RootStore

from . import independent as ind

T0 = 1795478400           # 2026-11-24 08:00:00 China time: the codes' generation time
NOW = T0 + 10             # when the validator reads them
ISSUER = bytes.fromhex("F0000001")
PLATFORM = bytes.fromhex("F0000002")


def reference_hex(after: str, n_bytes: int) -> bytes:
    """The first hex block after `after` in mobile.md (§1.7's fenced sample, the root record lines)."""
    text = reference_text("mobile.md")
    start = text.index(after)
    digits = "".join(re.findall(r"^([0-9A-F]{16,})\s*$", text[start:], flags=re.MULTILINE))
    return bytes.fromhex(digits[: 2 * n_bytes])


@pytest.fixture(scope="session")
def real_code() -> bytes:
    return reference_hex("### 1.7 Test vectors", 332)


@pytest.fixture(scope="session")
def real_root_02() -> bytes:
    return reference_hex("Real root record, index `02`", 144)


@dataclass
class World:
    """Keys and records of an independent TEST PKI; `spec()` is a good code's fields, `code()` builds it."""

    root: ind.Key
    issuer: ind.Key
    user: ind.Key
    record: bytes
    cert: bytes

    @property
    def store(self) -> RootStore:
        return RootStore.from_dict({"F0": self.record.hex()})

    def spec(self, **changes) -> ind.CodeSpec:
        base = ind.CodeSpec(cert=self.cert, issuer_key=self.issuer, user_key=self.user,
                            auth_expiry=T0 + 7 * 86400, gen_time=T0)
        return dataclasses.replace(base, **changes)

    def code(self, **changes) -> bytes:
        return ind.build_code(self.spec(**changes))


@pytest.fixture(scope="session")
def world() -> World:
    root, issuer, user = ind.Key(0x1F2E3D4C5B6A79881726354453627180), ind.Key(0xA5A5), ind.Key(0x5EED5EED)
    record = ind.root_record(root, 0xF0)
    cert = ind.certificate(root, 0xF0, issuer, ISSUER)
    return World(root, issuer, user, record, cert)


@pytest.fixture
def policy() -> AcceptancePolicy:
    """A terminal taking the independent issuer's interoperable codes (ticket type 01) and its local ones."""
    from types import MappingProxyType
    return AcceptancePolicy(local_issuers=frozenset({ISSUER}),
                            whitelist=MappingProxyType({(ISSUER, PLATFORM): "01"}))
