"""Key set files (TOML, format of design.md): loading with validation, roles, diversification, the test guard.

A key set names an algorithm, the diversification factors in the order they are applied, and one entry per
key role. Every refusal names the file, the role and the reason, and never the key value.
"""
from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from ykt_files.schema import (Byte, DocumentError, HexBytes, HexString, Model, NonEmpty, parse_document, problem,
                              read_text, validate)

from .algorithm import Algorithm
from .derive import diversify
from .secret import SecretKey

REQUIRED_ROLES = ("purchase", "load", "tac", "app_maintenance")
OPTIONAL_ROLES = ("app_block", "app_unblock", "pin_unblock", "pin_reload", "external_auth", "card_master")
ALL_ROLES = REQUIRED_ROLES + OPTIONAL_ROLES
FACTORS = ("issuer", "serial")
DEFAULT_DIVERSIFICATION = ("issuer", "serial")


class KeySetError(DocumentError):
    """A key set refused (or misused): the message names the file, the role or field, and the reason."""


# -- the file's schema (design.md "Key set") -------------------------------------------------------

Role = Literal["purchase", "load", "tac", "app_maintenance", "app_block", "app_unblock", "pin_unblock",
               "pin_reload", "external_auth", "card_master"]


class KeyEntryFile(Model):
    """`ROLE = { index, version, value, kcv }`: the key checked against its KCV by the key set."""

    index: Byte
    version: Byte
    value: HexBytes(16)
    kcv: HexString(6)


class KeySetFile(Model):
    """A key set file as written; `KeySet.from_dict` turns it into the validated domain object."""

    name: NonEmpty
    test_only: bool
    algorithm: Literal["3des", "sm4"]
    diversification: list[Literal["issuer", "serial"]] = list(DEFAULT_DIVERSIFICATION)
    keys: dict[Role, KeyEntryFile]
    description: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> "KeySetFile":
        if self.test_only and "test" not in self.name.lower():
            raise problem("a test_only key set must say TEST in its name", at="name")
        if len(set(self.diversification)) != len(self.diversification):
            raise problem("a factor is listed twice", at="diversification")
        for role in REQUIRED_ROLES:
            if role not in self.keys:
                raise problem("required role missing", at=f"keys.{role}")
        algorithm = Algorithm.parse(self.algorithm)
        for role, entry in self.keys.items():
            actual = SecretKey(algorithm, entry.value).kcv
            if entry.kcv != actual:
                raise problem(f"KCV mismatch: file says {entry.kcv}, key gives {actual}", at=f"keys.{role}.kcv")
        return self


class Use(enum.Enum):
    """What a key set is about to be used for; the test-only guard decides on it."""

    SIMULATION = "virtual test cards and simulated PSAMs"
    PRODUCTION = "production issuance"


@dataclass(frozen=True)
class KeyEntry:
    """One role of a key set: the key with its index and version as a card or PSAM announces them."""

    role: str
    index: int
    version: int
    key: SecretKey

    @property
    def kcv(self) -> str:
        return self.key.kcv


@dataclass(frozen=True)
class KeySet:
    """A validated key set. `diversification == ()` means the keys are already card keys."""

    name: str
    test_only: bool
    algorithm: Algorithm
    diversification: tuple[str, ...]
    keys: Mapping[str, KeyEntry]
    source: str = "<memory>"

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "KeySet":
        """Read a key set file; every refusal is one KeySetError naming the file, the field and the reason."""
        source = str(path)
        doc = parse_document(read_text(path, "key set", KeySetError), "toml", source, KeySetError)
        return cls.from_dict(doc, source)

    @classmethod
    def loads(cls, text: str, source: str = "<memory>") -> "KeySet":
        return cls.from_dict(parse_document(text, "toml", source, KeySetError), source)

    @classmethod
    def from_dict(cls, doc: object, source: str = "<memory>") -> "KeySet":
        f = validate(KeySetFile, doc, source, KeySetError)
        algorithm = Algorithm.parse(f.algorithm)
        entries = {role: KeyEntry(role, e.index, e.version, SecretKey(algorithm, e.value))
                   for role, e in f.keys.items()}
        return cls(f.name, f.test_only, algorithm, tuple(f.diversification), entries, source)

    # -- use ---------------------------------------------------------------------------------------
    def entry(self, role: str) -> KeyEntry:
        """The entry for a role; a missing optional role is an error naming the file."""
        try:
            return self.keys[role]
        except KeyError:
            raise KeySetError(self.source, f"keys.{role}", "role not in this key set") from None

    def has(self, role: str) -> bool:
        return role in self.keys

    def require(self, use: Use) -> None:
        """The test guard: shipped test keys are refused for production; virtual images take test keys only.

        Virtual card and PSAM images keep their keys in clear (they are test cards), so a key set that is
        not marked test_only must never end up in one.
        """
        if use is Use.PRODUCTION and self.test_only:
            raise KeySetError(self.source, None, f"{self.name} is a TEST key set and is refused for {use.value}")
        if use is Use.SIMULATION and not self.test_only:
            raise KeySetError(self.source, None, f"{self.name} is not marked test_only; ykt keeps keys in clear "
                                                 f"in {use.value}, so only test key sets are accepted")

    def factors(self, issuer_id: bytes, serial8: bytes) -> list[bytes]:
        """The diversification factors in this key set's order (decision D2)."""
        if len(issuer_id) != 8:
            raise KeySetError(self.source, None, f"issuer ID must be 8 bytes, got {len(issuer_id)}")
        if len(serial8) != 8:
            raise KeySetError(self.source, None, f"card serial must be 8 bytes, got {len(serial8)}")
        by_name = {"issuer": issuer_id, "serial": serial8}
        return [by_name[f] for f in self.diversification]

    def card_keys(self, issuer_id: bytes, serial8: bytes) -> "KeySet":
        """The card's own keys: every role diversified per this key set (identity when already card keys)."""
        factors = self.factors(issuer_id, serial8)
        derived = {
            role: KeyEntry(role, e.index, e.version, SecretKey(self.algorithm, diversify(self.algorithm, e.key.value, factors)))
            for role, e in self.keys.items()
        }
        return KeySet(f"{self.name} [card {serial8.hex().upper()}]", self.test_only, self.algorithm, (), derived,
                      f"{self.source} diversified")

    def summary(self) -> dict[str, object]:
        """A JSON-safe view: everything but key values (roles show index, version and KCV)."""
        return {
            "name": self.name,
            "source": self.source,
            "test_only": self.test_only,
            "algorithm": self.algorithm.value,
            "diversification": list(self.diversification),
            "keys": {
                role: {"index": e.index, "version": e.version, "kcv": e.kcv}
                for role, e in sorted(self.keys.items(), key=lambda kv: ALL_ROLES.index(kv[0]))
            },
        }

    def __repr__(self) -> str:
        return f"KeySet({self.name!r}, {self.algorithm.value}, roles={sorted(self.keys)}, test_only={self.test_only})"


def entry_toml(role: str, entry: KeyEntry) -> str:
    """One `[keys]` line of the design's format (contains the key value: for key files only)."""
    return (f'{role} = {{ index = {entry.index}, version = {entry.version}, '
            f'value = "{entry.key.value.hex().upper()}", kcv = "{entry.kcv}" }}')
