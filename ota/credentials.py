"""Wallet accounts of the OTA top-up host: a TEST credential file, and how a request proves its account.

The file (TOML) is shared by the host, which holds every account, and a wallet, which uses its own::

    name = "TEST wallet accounts"           # must say TEST
    test_only = true                        # required: the secrets are in clear
    [accounts.wallet-0001]
    secret = "<16..64 bytes hex>"           # the HMAC key the wallet and the host share
    terminal_id = "FF0000000001"            # the wallet's terminal number (INITIALIZE FOR LOAD, §2.4)
    cards = ["03105810000000001234"]        # optional: the only cards this account may top up

A request proves its account with two HTTP headers: ``X-Ykt-Account`` (the account ID) and
``X-Ykt-Signature``, HMAC-SHA256 of the exact request body under the account's secret, in hex. The
secret never crosses the wire; a body changed in transit no longer verifies; the comparison is in
constant time. A replayed request can only repeat an answer: every operation of the host is idempotent
(ota.host). Secrets never reach a repr, an error or a log line.
"""
from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import model_validator

from ykt_files.schema import DocumentError, HexBytes, HexString, Model, NonEmpty, load_document, problem

__all__ = ["CredentialError", "WalletAccount", "Credentials", "load_credentials", "sign", "ACCOUNT_HEADER",
           "SIGNATURE_HEADER"]

ACCOUNT_HEADER = "X-Ykt-Account"
SIGNATURE_HEADER = "X-Ykt-Signature"
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class CredentialError(DocumentError):
    """A credential file refused: `<file>: <field>: <reason>` (never a secret)."""


def sign(secret: bytes, body: bytes) -> str:
    """The signature of a request body: HMAC-SHA256 under the account's secret, upper-case hex."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest().upper()


@dataclass(frozen=True)
class WalletAccount:
    """One wallet account: its ID, terminal number, the cards it may top up (None: any), its secret."""

    id: str
    terminal_id: str
    cards: frozenset[str] | None
    _secret: bytes = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"WalletAccount({self.id!r}, terminal {self.terminal_id})"

    def sign(self, body: bytes) -> str:
        return sign(self._secret, body)

    def verifies(self, body: bytes, signature: str) -> bool:
        """Constant-time check of a request's signature."""
        return hmac.compare_digest(self.sign(body).encode(), signature.strip().upper().encode())

    def may_load(self, card_no: str) -> bool:
        return self.cards is None or card_no in self.cards


class AccountFile(Model):
    secret: HexBytes(lo=16, hi=64)
    terminal_id: HexString(12)
    cards: list[str] | None = None

    @model_validator(mode="after")
    def _cards(self) -> "AccountFile":
        for i, card in enumerate(self.cards or ()):
            if not (len(card) == 20 and card.isascii() and card.isdigit()):
                raise problem(f"must be 20 decimal digits (EF15 bytes 10..19), got {card!r}", at=f"cards[{i}]")
        return self


class CredentialFile(Model):
    name: NonEmpty
    test_only: bool
    accounts: dict[str, AccountFile]
    description: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> "CredentialFile":
        if not self.test_only:
            raise problem("must be true: ykt keeps wallet secrets in clear, so it takes TEST credentials only",
                          at="test_only")
        if "test" not in self.name.lower():
            raise problem("a test_only credential file must say TEST in its name", at="name")
        if not self.accounts:
            raise problem("no account", at="accounts")
        for account in self.accounts:
            if not ACCOUNT_ID.fullmatch(account):
                raise problem("an account ID is 1 to 64 of A-Z a-z 0-9 _ . -", at=f"accounts.{account}")
        return self


class Credentials(Mapping[str, WalletAccount]):
    """The accounts of a credential file, by ID."""

    def __init__(self, accounts: Mapping[str, WalletAccount], name: str, source: str) -> None:
        self._accounts = dict(accounts)
        self.name = name
        self.source = source

    def __getitem__(self, account: str) -> WalletAccount:
        return self._accounts[account]

    def __iter__(self) -> Iterator[str]:
        return iter(self._accounts)

    def __len__(self) -> int:
        return len(self._accounts)

    def __repr__(self) -> str:
        return f"Credentials({self.name!r}, {len(self)} accounts)"

    def account(self, account: str) -> WalletAccount:
        """One account by ID, or CredentialError naming the file."""
        try:
            return self._accounts[account]
        except KeyError:
            raise CredentialError(self.source, "accounts", f"no account {account!r}") from None

    def authenticate(self, account: str | None, body: bytes, signature: str | None) -> WalletAccount | None:
        """The account a request comes from, or None when the account is unknown or the signature wrong."""
        if not account or not signature:
            return None
        found = self._accounts.get(account)
        if found is None:
            sign(b"\0" * 32, body)                  # the same work either way: no timing hint of known IDs
            return None
        return found if found.verifies(body, signature) else None


def load_credentials(path: str | Path) -> Credentials:
    """Read and check a TEST credential file; every refusal is one CredentialError line."""
    doc = load_document(path, CredentialFile, "toml", "credential", CredentialError)
    accounts = {ident: WalletAccount(ident, a.terminal_id, frozenset(a.cards) if a.cards is not None else None,
                                     a.secret)
                for ident, a in doc.accounts.items()}
    return Credentials(accounts, doc.name, str(path))
