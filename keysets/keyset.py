"""Key set files (TOML, format of design.md): loading with validation, roles, diversification, the test guard.

A key set names an algorithm, the diversification factors in the order they are applied, and one entry per
key role. Every refusal names the file, the role and the reason, and never the key value.
"""
from __future__ import annotations

import enum
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .algorithm import Algorithm
from .derive import diversify
from .secret import SecretKey

REQUIRED_ROLES = ("purchase", "load", "tac", "app_maintenance")
OPTIONAL_ROLES = ("app_block", "app_unblock", "pin_unblock", "pin_reload", "external_auth", "card_master")
ALL_ROLES = REQUIRED_ROLES + OPTIONAL_ROLES
FACTORS = ("issuer", "serial")
DEFAULT_DIVERSIFICATION = ("issuer", "serial")
_TOP_FIELDS = {"name", "test_only", "algorithm", "diversification", "keys", "description"}
_ENTRY_FIELDS = {"index", "version", "value", "kcv"}


class KeySetError(ValueError):
    """A key set refused: the message names the file, the role or field, and the reason."""


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
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise KeySetError(f"{p}: no such key set file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeySetError(f"{p}: cannot read key set: {exc.__class__.__name__}") from None
        return cls.loads(text, source=str(p))

    @classmethod
    def loads(cls, text: str, source: str = "<memory>") -> "KeySet":
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise KeySetError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_dict(doc, source)

    @classmethod
    def from_dict(cls, doc: Mapping[str, object], source: str = "<memory>") -> "KeySet":
        def fail(where: str, reason: str) -> KeySetError:
            return KeySetError(f"{source}: {where}: {reason}")

        unknown = set(doc) - _TOP_FIELDS
        if unknown:
            raise fail(sorted(unknown)[0], "unknown field")
        name = doc.get("name")
        if not isinstance(name, str) or not name.strip():
            raise fail("name", "missing or empty")
        test_only = doc.get("test_only")
        if not isinstance(test_only, bool):
            raise fail("test_only", "missing or not a boolean")
        if test_only and "test" not in name.lower():
            raise fail("name", "a test_only key set must say TEST in its name")
        alg_text = doc.get("algorithm")
        if not isinstance(alg_text, str):
            raise fail("algorithm", "missing or not a string")
        try:
            algorithm = Algorithm.parse(alg_text)
        except ValueError as exc:
            raise fail("algorithm", str(exc)) from None
        div = doc.get("diversification", list(DEFAULT_DIVERSIFICATION))
        if not isinstance(div, list) or not all(isinstance(f, str) for f in div):
            raise fail("diversification", "must be a list of factor names")
        for f in div:
            if f not in FACTORS:
                raise fail("diversification", f"unknown factor {f!r} (known: {', '.join(FACTORS)})")
        if len(set(div)) != len(div):
            raise fail("diversification", "a factor is listed twice")
        keys_doc = doc.get("keys")
        if not isinstance(keys_doc, dict):
            raise fail("keys", "missing [keys] table")
        entries: dict[str, KeyEntry] = {}
        for role, entry in keys_doc.items():
            if role not in ALL_ROLES:
                raise fail(f"keys.{role}", f"unknown role (known: {', '.join(ALL_ROLES)})")
            entries[role] = _entry(role, entry, algorithm, fail)
        for role in REQUIRED_ROLES:
            if role not in entries:
                raise fail(f"keys.{role}", "required role missing")
        return cls(name.strip(), test_only, algorithm, tuple(div), entries, source)

    # -- use ---------------------------------------------------------------------------------------
    def entry(self, role: str) -> KeyEntry:
        """The entry for a role; a missing optional role is an error naming the file."""
        try:
            return self.keys[role]
        except KeyError:
            raise KeySetError(f"{self.source}: keys.{role}: role not in this key set") from None

    def has(self, role: str) -> bool:
        return role in self.keys

    def require(self, use: Use) -> None:
        """The test guard: shipped test keys are refused for production; virtual images take test keys only.

        Virtual card and PSAM images keep their keys in clear (they are test cards), so a key set that is
        not marked test_only must never end up in one.
        """
        if use is Use.PRODUCTION and self.test_only:
            raise KeySetError(f"{self.source}: {self.name} is a TEST key set and is refused for {use.value}")
        if use is Use.SIMULATION and not self.test_only:
            raise KeySetError(
                f"{self.source}: {self.name} is not marked test_only; ykt keeps keys in clear in {use.value}, "
                "so only test key sets are accepted"
            )

    def factors(self, issuer_id: bytes, serial8: bytes) -> list[bytes]:
        """The diversification factors in this key set's order (decision D2)."""
        if len(issuer_id) != 8:
            raise KeySetError(f"{self.source}: issuer ID must be 8 bytes, got {len(issuer_id)}")
        if len(serial8) != 8:
            raise KeySetError(f"{self.source}: card serial must be 8 bytes, got {len(serial8)}")
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


def _entry(role: str, entry: object, algorithm: Algorithm, fail) -> KeyEntry:
    where = f"keys.{role}"
    if not isinstance(entry, dict):
        raise fail(where, "must be a table { index, version, value, kcv }")
    unknown = set(entry) - _ENTRY_FIELDS
    if unknown:
        raise fail(where, f"unknown field {sorted(unknown)[0]!r}")
    for field in ("index", "version"):
        v = entry.get(field)
        if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 255:
            raise fail(where, f"{field} missing or not an integer 0..255")
    value = entry.get("value")
    if not isinstance(value, str):
        raise fail(where, "value missing or not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise fail(where, "value is not hexadecimal") from None
    if len(raw) != 16:
        raise fail(where, f"value must be 16 bytes for {algorithm.value}, got {len(raw)}")
    check = entry.get("kcv")
    if not isinstance(check, str) or len(check) != 6:
        raise fail(where, "kcv missing or not 6 hex digits")
    key = SecretKey(algorithm, raw)
    if check.upper() != key.kcv:
        raise fail(where, f"KCV mismatch: file says {check.upper()}, key gives {key.kcv}")
    return KeyEntry(role, entry["index"], entry["version"], key)


def entry_toml(role: str, entry: KeyEntry) -> str:
    """One `[keys]` line of the design's format (contains the key value: for key files only)."""
    return (f'{role} = {{ index = {entry.index}, version = {entry.version}, '
            f'value = "{entry.key.value.hex().upper()}", kcv = "{entry.kcv}" }}')
