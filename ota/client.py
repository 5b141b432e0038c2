"""How a wallet reaches the top-up host: signed JSON requests over HTTP, or the same call in process (M5).

`HttpHostClient` POSTs each request to the host's URL with the account's signature (ota.credentials)
and retries what may not have arrived, or whose answer was lost: a refused connection, a reset, a
timeout, a 5xx. A retry sends the very same bytes, and the host answers a repeated request the same
(ota.host), so retrying is always safe. A 4xx is the host's answer (a refusal) and is not retried.
`InProcessHostClient` runs the same signed bytes through `TopUpHost.respond` without a socket.
"""
from __future__ import annotations

import http.client
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, Protocol

from .credentials import ACCOUNT_HEADER, SIGNATURE_HEADER, WalletAccount
from .host import TopUpHost
from .protocol import encode

__all__ = ["HostClient", "HostRefused", "HostUnreachable", "HttpHostClient", "InProcessHostClient"]


class HostRefused(Exception):
    """The host answered with a refusal: its HTTP status and one-line reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"host refused ({status}): {reason}")
        self.status = status
        self.reason = reason


class HostUnreachable(Exception):
    """No answer from the host after every retry (the request may or may not have been carried out)."""


class HostClient(Protocol):
    """One request → the host's answer (HostRefused, HostUnreachable)."""

    def call(self, message: dict[str, Any]) -> dict[str, Any]: ...


def _answer(status: int, raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HostRefused(status, f"not a JSON answer ({len(raw)} bytes)") from None
    if not isinstance(data, dict):
        raise HostRefused(status, "not a JSON object")
    if status != 200 or "error" in data:
        raise HostRefused(status, str(data.get("error", "no reason given")))
    return data


class HttpHostClient:
    """Signed POSTs to `url` for `account`; each attempt waits `timeout` s; up to `retries` more attempts,
    `backoff` s apart at first, doubling to at most 2 s. `sleep` is injectable for tests."""

    def __init__(self, url: str, account: WalletAccount, timeout: float = 5.0, retries: int = 5,
                 backoff: float = 0.2, sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"host URL {url!r}: expected http://HOST:PORT")
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError("timeout must be > 0, retries and backoff >= 0")
        self.url = url if parts.path else url + "/"
        self.account = account
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep
        self.attempts = 0          # requests sent, retries included (tests and reports)
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))   # straight to the host

    def __repr__(self) -> str:
        return f"HttpHostClient({self.url!r}, account {self.account.id!r})"

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        body = encode(message)
        headers = {"Content-Type": "application/json", ACCOUNT_HEADER: self.account.id,
                   SIGNATURE_HEADER: self.account.sign(body)}
        delay = self.backoff
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(delay)
                delay = min(2.0, delay * 2 or 0.2)
            self.attempts += 1
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with self._opener.open(request, timeout=self.timeout) as response:
                    return _answer(response.status, response.read())
            except urllib.error.HTTPError as exc:
                raw = exc.read()
                if exc.code < 500:
                    return _answer(exc.code, raw)
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout,
                    TimeoutError) as exc:
                last = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
        raise HostUnreachable(f"host {self.url}: no answer after {self.retries + 1} attempt(s): {last}")


class InProcessHostClient:
    """The same signed request, handed to a TopUpHost in this process."""

    def __init__(self, host: TopUpHost, account: WalletAccount) -> None:
        self.host = host
        self.account = account

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        body = encode(message)
        status, answer = self.host.respond(self.account.id, self.account.sign(body), body)
        return _answer(status, encode(answer))
