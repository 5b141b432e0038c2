"""What a terminal remembers of the codes it accepted (Q10): their digests and each account's last ride.

A code carries no nonce, so only memory stops a screenshot riding twice. The verifier asks a
`ReplayStore`; the validator backs it with its SQLite journal, `ykt qr verify --replay FILE` with a
small JSON file, tests with `MemoryReplayStore`. Times are Unix seconds.

* ``code_seen(digest, now)``: the SHA-256 of this exact code was accepted and is still kept
  (kept until its generation time + validity + 20 s);
* ``last_accepted(account, now)``: when this account (发码机构号 ‖ 发码平台编号 ‖ 用户账户号, hex) last rode;
* ``remember(digest, account, at, keep_until)``: record an accepted code.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

from ykt_files.atomic import write_text_atomic
from ykt_files.schema import DocumentError, parse_document, read_text

__all__ = ["ReplayStore", "MemoryReplayStore", "JsonReplayStore", "ReplayStoreError"]


class ReplayStore(Protocol):
    def code_seen(self, digest: bytes, now: int) -> bool: ...

    def last_accepted(self, account: str, now: int) -> int | None: ...

    def remember(self, digest: bytes, account: str, at: int, keep_until: int) -> None: ...


class ReplayStoreError(DocumentError):
    """A replay file refused: `<file>: <field>: <reason>`."""


class MemoryReplayStore:
    """The store in memory: codes until their keep time, each account's latest acceptance."""

    def __init__(self) -> None:
        self.codes: dict[bytes, int] = {}
        self.accounts: dict[str, int] = {}

    def code_seen(self, digest: bytes, now: int) -> bool:
        until = self.codes.get(digest)
        return until is not None and now <= until

    def last_accepted(self, account: str, now: int) -> int | None:
        return self.accounts.get(account)

    def remember(self, digest: bytes, account: str, at: int, keep_until: int) -> None:
        self.codes = {d: u for d, u in self.codes.items() if u >= at}   # forget what has run out
        self.codes[digest] = keep_until
        self.accounts[account] = max(at, self.accounts.get(account, at))

    def __repr__(self) -> str:
        return f"MemoryReplayStore({len(self.codes)} codes, {len(self.accounts)} accounts)"


class JsonReplayStore(MemoryReplayStore):
    """The memory store saved to a JSON file after every change (atomically), for the command line."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)
        if self.path.exists():
            source = str(self.path)
            doc = parse_document(read_text(self.path, "replay", ReplayStoreError), "json", source, ReplayStoreError)
            try:
                self.codes = {bytes.fromhex(k): int(v) for k, v in doc["codes"].items()}
                self.accounts = {str(k): int(v) for k, v in doc["accounts"].items()}
            except (KeyError, TypeError, ValueError, AttributeError):
                raise ReplayStoreError(source, None, "not a replay file (an object with 'codes' and 'accounts')") from None

    def remember(self, digest: bytes, account: str, at: int, keep_until: int) -> None:
        super().remember(digest, account, at, keep_until)
        doc = {"codes": {d.hex().upper(): u for d, u in self.codes.items()}, "accounts": self.accounts}
        write_text_atomic(self.path, json.dumps(doc, indent=1) + "\n")
