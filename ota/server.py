"""The top-up host on HTTP: POST a JSON request to ``/``, get a JSON answer (loopback by default).

Why the standard library (``http.server.ThreadingHTTPServer`` and ``json``) and no framework: the
protocol is three JSON operations on one path; the work is a MAC and one SQLite transaction; the
server is a test host that runs on loopback for wallets under test, and a framework (Flask, FastAPI)
would add dependencies and a second way to fail with nothing gained. One thread per connection; the
journal serialises the writes (ota.journal).

A request: ``POST /`` with ``Content-Type: application/json``, ``Content-Length`` (at most
protocol.MAX_BODY), and the headers of ota.credentials (account and signature). The answer is always a
JSON object; its HTTP status says whether it is a refusal (ota.protocol). Each request is logged on one
line when it arrives and when it is answered (op, card, counter, order, status: never a secret, a MAC
key or a request body).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .credentials import ACCOUNT_HEADER, SIGNATURE_HEADER
from .host import TopUpHost
from .protocol import MAX_BODY, encode

__all__ = ["HostServer", "DEFAULT_BIND", "summary"]

DEFAULT_BIND = "127.0.0.1"


def summary(body: bytes) -> str:
    """What a log line may say about a request: its op and its card, counter and order (no MAC, no key)."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "(not JSON)"
    if not isinstance(data, dict):
        return "(not an object)"
    parts = [str(data.get("op", "?"))]
    if isinstance(data.get("card_no"), str):
        parts.append(f"card {data['card_no']}")
    init = data.get("init")
    if isinstance(init, str) and len(init) == 32:
        try:
            parts.append(f"counter {int(init[8:12], 16)}")     # INITIALIZE's online counter, bytes 4..5
        except ValueError:
            pass
    if isinstance(data.get("amount"), int):
        parts.append(f"amount {data['amount']}")
    if isinstance(data.get("order"), str):
        parts.append(f"order {data['order']}")
    return " ".join(parts)


class _Handler(BaseHTTPRequestHandler):
    server: "HostServer"
    protocol_version = "HTTP/1.1"
    server_version = "ykt-ota-host"
    timeout = 30                  # seconds a connection may stall before its thread lets go

    def _answer(self, status: int, message: dict[str, Any]) -> None:
        body = encode(message)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
        if self.path != "/":
            self._answer(404, {"error": f"no such path {self.path!r}: POST requests to /"})
            return
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._answer(411, {"error": "Content-Length required"})
            return
        if not 0 < length <= MAX_BODY:
            self.close_connection = True
            self._answer(413, {"error": f"request body of {length} bytes; at most {MAX_BODY}"})
            return
        body = self.rfile.read(length)
        account = self.headers.get(ACCOUNT_HEADER)
        self.server.log(f"received {summary(body)} from {account or '(no account)'}")
        try:
            status, message = self.server.host.respond(account, self.headers.get(SIGNATURE_HEADER), body)
        except Exception as exc:  # the journal or the disk failed: nothing was committed; the wallet retries
            status, message = 500, {"error": f"host failure ({type(exc).__name__}); try again"}
        self._answer(status, message)
        detail = message.get("error") or message.get("state") or message.get("order") or ""
        self.server.log(f"answered {status} {summary(body)} {detail}".rstrip())

    def do_GET(self) -> None:  # noqa: N802
        self._answer(405, {"error": "POST JSON requests to /"})

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        """http.server's own access log is replaced by the lines above."""


class HostServer(ThreadingHTTPServer):
    """The HTTP server of one TopUpHost; `log` receives one line per event."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: TopUpHost, bind: str = DEFAULT_BIND, port: int = 0,
                 log: Callable[[str], None] | None = None) -> None:
        super().__init__((bind, port), _Handler)
        self.host = host
        self._log = log
        self._log_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"

    def log(self, line: str) -> None:
        if self._log is not None:
            with self._log_lock:
                self._log(line)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="ota host", daemon=True)
        thread.start()
        return thread
