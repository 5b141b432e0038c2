"""The root store (Q6): the root-CA keys a terminal trusts, by index, as one JSON object.

    {"02": "2101010000A000000632021240…", "F0": "…"}

Each key is the root index (2 hex digits); each value is the 144-byte record of §1.3 in hex, or a bare
X‖Y (64 bytes, as TJ keeps some), which then has no expiry. A record is checked when the store loads:
header, service, RID, its own index, algorithm and key length, a BCD MMYY expiry, a point on the curve,
and its self-signature over bytes 0..79 (default user ID). Anything else refuses the whole file with
one line naming the file and the index.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ykt_files.atomic import write_text_atomic
from ykt_files.schema import DocumentError, parse_document, read_text

from .codec import RID, ROOT_HEADER, ROOT_KEY_LENGTH, ROOT_ALGORITHM, ROOT_RECORD_SIZE, SERVICE_ID, RootRecord, mmyy
from .sm2 import DEFAULT_UID, PublicKey, Verifier

__all__ = ["RootStoreError", "RootKey", "RootStore"]


class RootStoreError(DocumentError):
    """A root store refused: `<file>: <index>: <reason>`."""


@dataclass(frozen=True)
class RootKey:
    """One trusted root: its index, key, expiry month (None for a bare key) and the record it came from."""

    index: int
    public_key: PublicKey
    expiry: tuple[int, int] | None
    record: bytes | None
    _verifiers: dict = field(default_factory=dict, repr=False, compare=False)

    def verifier(self, uid: bytes = DEFAULT_UID) -> Verifier:
        """A verifier for certificates under this root, Z computed once per user ID."""
        v = self._verifiers.get(uid)
        if v is None:
            v = self._verifiers[uid] = self.public_key.verifier(uid)
        return v

    def to_hex(self) -> str:
        return (self.record if self.record is not None else self.public_key.xy).hex().upper()

    @classmethod
    def from_record(cls, data: bytes) -> "RootKey":
        """A checked 144-byte record; ValueError with the reason otherwise."""
        rec = RootRecord.parse(data)
        for name, actual, wanted in (("header", rec.header, ROOT_HEADER), ("algorithm", rec.algorithm, ROOT_ALGORITHM),
                                     ("key length", rec.key_length, ROOT_KEY_LENGTH)):
            if actual != wanted:
                raise ValueError(f"{name} is {actual:02X}, expected {wanted:02X}")
        for name, actual, wanted in (("service", rec.service, SERVICE_ID), ("RID", rec.rid, RID)):
            if actual != wanted:
                raise ValueError(f"{name} is {actual.hex().upper()}, expected {wanted.hex().upper()}")
        expiry = mmyy(rec.expiry)
        key = PublicKey.parse(rec.public_key)
        if not key.verify(rec.signed_part, rec.signature):
            raise ValueError("self-signature over bytes 0..79 does not verify")
        return cls(rec.index, key, expiry, bytes(data))


class RootStore(Mapping[int, RootKey]):
    """Trusted root keys by index (0..255)."""

    def __init__(self, roots: Mapping[int, RootKey] | None = None, source: str = "<memory>") -> None:
        self._roots: dict[int, RootKey] = dict(roots or {})
        self.source = source

    # -- Mapping ------------------------------------------------------------------------------------
    def __getitem__(self, index: int) -> RootKey:
        return self._roots[index]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._roots))

    def __len__(self) -> int:
        return len(self._roots)

    def __repr__(self) -> str:
        return f"RootStore({', '.join(f'{i:02X}' for i in self)} from {self.source})"

    # -- files --------------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "RootStore":
        source = str(path)
        return cls.from_dict(parse_document(read_text(path, "root store", RootStoreError), "json", source,
                                            RootStoreError), source)

    @classmethod
    def from_dict(cls, doc: object, source: str = "<memory>") -> "RootStore":
        if not isinstance(doc, dict):
            raise RootStoreError(source, None, "must be a JSON object of index -> record hex")
        roots: dict[int, RootKey] = {}
        for name, value in doc.items():
            if not (isinstance(name, str) and len(name) == 2 and all(c in "0123456789abcdefABCDEF" for c in name)):
                raise RootStoreError(source, str(name), "a root index is 2 hex digits")
            index = int(name, 16)
            if index in roots:
                raise RootStoreError(source, name, "index listed twice")
            roots[index] = cls._entry(index, value, source, name)
        return cls(roots, source)

    @staticmethod
    def _entry(index: int, value: object, source: str, name: str) -> RootKey:
        try:
            data = bytes.fromhex(value) if isinstance(value, str) else None
        except ValueError:
            data = None
        if data is None:
            raise RootStoreError(source, name, "must be a hex string (a 144-byte record or a 64-byte X‖Y)")
        try:
            if len(data) == 64:
                return RootKey(index, PublicKey.parse(data), None, None)
            if len(data) != ROOT_RECORD_SIZE:
                raise ValueError(f"{len(data)} bytes; a root is a {ROOT_RECORD_SIZE}-byte record or a 64-byte X‖Y")
            key = RootKey.from_record(data)
        except ValueError as exc:
            raise RootStoreError(source, name, str(exc)) from None
        if key.index != index:
            raise RootStoreError(source, name, f"the record says index {key.index:02X}")
        return key

    def to_dict(self) -> dict[str, str]:
        return {f"{i:02X}": self._roots[i].to_hex() for i in self}

    def with_root(self, key: RootKey) -> "RootStore":
        """A new store with `key` added (or replacing the same index)."""
        return RootStore({**self._roots, key.index: key}, self.source)

    def save(self, path: str | Path) -> None:
        write_text_atomic(path, json.dumps(self.to_dict(), indent=2) + "\n")
