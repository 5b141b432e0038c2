"""ota: over-the-air top-up of phone (and any) T-Union cards (issue 10, mobile.md §2.4, M5).

The issuer's top-up host (`TopUpHost`, served over HTTP by `HostServer`) and the wallet that relays
between a card and that host (`Wallet`). It sits just above terminal_sim: the host's cryptography is
the load host's (terminal_sim.load_host), the wallet drives the card through ykt_card's host API over
any reader (in-process image, PC/SC, NFC). Only tools imports it.

    credentials  the TEST credential file of wallet accounts; request signatures (HMAC-SHA256)
    protocol     the JSON messages and their checks
    journal      the host's orders in SQLite (WAL, synchronous=FULL): idempotency, kill -9
    host         the host's rules: authenticate, MAC1, card limit, MAC2, TAC, idempotent orders
    server       the host on HTTP (standard library), loopback by default
    client       the wallet's way to the host: HTTP with retries, or in process
    wallet       the relay: SELECT, settle pending orders, INITIALIZE, CREDIT, confirm
"""
from pathlib import Path as _Path

from .client import HostRefused, HostUnreachable, HttpHostClient, InProcessHostClient
from .credentials import CredentialError, Credentials, WalletAccount, load_credentials
from .host import DEFAULT_MAX_BALANCE, HostRefusal, TopUpHost
from .journal import HostJournal, HostJournalError, Order
from .server import HostServer
from .wallet import Settlement, TopUp, Wallet

__all__ = ["TopUpHost", "HostRefusal", "HostServer", "HostJournal", "HostJournalError", "Order", "Credentials",
           "CredentialError", "WalletAccount", "load_credentials", "HttpHostClient", "InProcessHostClient",
           "HostRefused", "HostUnreachable", "Wallet", "TopUp", "Settlement", "DEFAULT_MAX_BALANCE",
           "TEST_CREDENTIALS_DIR"]

TEST_CREDENTIALS_DIR = _Path(__file__).parent / "test"
"""The shipped TEST credential file (wallets-test.toml)."""
