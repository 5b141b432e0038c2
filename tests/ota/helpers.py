"""The over-the-air top-up's test bench: a virtual card (tests.terminal_sim.test_flows), a host in process or
as its own process, and one interleaved log of card APDUs and host messages (an exchange table)."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from keysets import Algorithm, LoadSession, load_tac
from ota import TEST_CREDENTIALS_DIR, HostJournal, InProcessHostClient, TopUpHost, Wallet, load_credentials
from ota.client import HostRefused, HostUnreachable
from ykt_card.clock import SimulatedClock
from ykt_card.card.state import CardState

from tests.terminal_sim.test_flows import KS3, KS4, World, card_key

ROOT = Path(__file__).resolve().parents[2]
CREDENTIALS = load_credentials(TEST_CREDENTIALS_DIR / "wallets-test.toml")
HOST_CLOCK = "20261124090000"
WALLET_TID = bytes.fromhex("FF0000000001")
CARD = "03105810000000001234"
ISSUER = "58105810FFFFFFFF"


class Recorder:
    """A HostClient decorator: every request and its answer (or the exception) go into the shared log."""

    def __init__(self, inner: Any, log: list) -> None:
        self.inner, self.log = inner, log

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        try:
            answer = self.inner.call(message)
        except (HostRefused, HostUnreachable) as exc:
            self.log.append(("host", dict(message), exc))
            raise
        self.log.append(("host", dict(message), dict(answer)))
        return answer


class Dropping:
    """A HostClient decorator that loses the answer of the nth call of `op` (the host did the work)."""

    def __init__(self, inner: Any, op: str, nth: int = 1, carried_out: bool = True) -> None:
        self.inner, self.op, self.nth, self.carried_out = inner, op, nth, carried_out
        self.seen = 0

    def call(self, message: dict[str, Any]) -> dict[str, Any]:
        if message.get("op") == self.op:
            self.seen += 1
            if self.seen == self.nth:
                if self.carried_out:
                    self.inner.call(message)
                raise HostUnreachable(f"answer to {self.op} lost")
        return self.inner.call(message)


def make_host(tmp: Path, *, clock: str = HOST_CLOCK, max_balance: int = 100_000,
              name: str = "host.db") -> TopUpHost:
    return TopUpHost([KS3, KS4], CREDENTIALS, HostJournal(tmp / name), SimulatedClock.parse(clock), max_balance)


def wallet(w: World, host: Any, account: str = "wallet-0001", reader: Any = None, key_index: int = 1,
           client: Any = None) -> Wallet:
    """A wallet on this world's card slot (or `reader`), its host calls logged into the world's log."""
    if client is None:
        client = InProcessHostClient(host, CREDENTIALS[account])
    return Wallet(reader if reader is not None else w.card_reader, Recorder(client, w.log),
                  bytes.fromhex(CREDENTIALS[account].terminal_id), key_index)


def table(log: list) -> list[tuple[str, str]]:
    """The exchange as (who, what): card C-APDU headers, host ops."""
    return [(who, c[:4].hex().upper() if who != "host" else c["op"]) for who, c, _ in log]


def mac2_of(state: CardState, init: bytes, amount: int, terminal_id: bytes, when: str,
            algorithm: Algorithm = Algorithm.TDES) -> str:
    """The MAC2 a host holding the TEST master must answer for this INITIALIZE answer (tunion.md 3.2)."""
    session = LoadSession.derive(algorithm, card_key(state, "load", algorithm), init[8:12],
                                 int.from_bytes(init[4:6], "big"))
    return session.mac2(amount, terminal_id, bytes.fromhex(when)).hex().upper()


def tac_of(state: CardState, init: bytes, amount: int, terminal_id: bytes, when: str,
           algorithm: Algorithm = Algorithm.TDES) -> str:
    balance, counter = int.from_bytes(init[0:4], "big"), int.from_bytes(init[4:6], "big")
    return load_tac(algorithm, card_key(state, "tac", algorithm), balance + amount, counter, amount, terminal_id,
                    bytes.fromhex(when)).hex().upper()


# ---------------------------------------------------------------------------------------------------
# the host as its own process

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HostProcess:
    """`ykt host serve` in a child process on a loopback port; its stderr lines are collected by a thread."""

    def __init__(self, proc: subprocess.Popen, journal: Path) -> None:
        self.proc, self.journal, self.port = proc, journal, 0
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.log: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)
        self.lines.put(None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, journal: Path, port: int = 0, *extra: str, clock: str = HOST_CLOCK) -> "HostProcess":
        args = [sys.executable, "-m", "tools.cli", "host", "serve", "--keyset", "gd-test-3des", "--keyset",
                "gd-test-sm4", "--journal", str(journal), "--port", str(port), "--clock", clock, *extra]
        proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": str(ROOT)})
        host = cls(proc, journal)
        banner = host.wait_for("serving the OTA top-up host on")
        host.port = int(re.search(r"http://127\.0\.0\.1:(\d+)", banner).group(1))
        return host

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The next stderr line containing `text` (lines before it are kept in `log`)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} from the host within {timeout} s: {self.log[-5:]}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"host exited (rc {self.proc.poll()}) before printing {text!r}: {self.log[-5:]}")
            self.log.append(line)
            if text in line:
                return line

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Proxy:
    """A loopback TCP proxy in front of the host: one HTTP request per connection (urllib closes each).

    `hook(request, response)` sees each exchange after the host answered and returns whether the client
    gets the answer (False: the connection is closed without one, as when a network drops it).
    """

    def __init__(self, upstream_port: int, hook=None) -> None:
        self.upstream_port = upstream_port
        self.hook = hook
        self.exchanges: list[tuple[bytes, bytes]] = []
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(16)
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    @staticmethod
    def _read_request(conn: socket.socket) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return data
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body

    def _relay(self, client: socket.socket) -> None:
        with client:
            request = self._read_request(client)
            try:
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30)
            except OSError:
                return                                         # the host is down: the client sees a reset
            with upstream:
                upstream.sendall(request)
                response = b""
                try:
                    while chunk := upstream.recv(65536):
                        response += chunk
                except OSError:
                    pass
            self.exchanges.append((request, response))
            if response and (self.hook is None or self.hook(request, response)):
                client.sendall(response)

    def close(self) -> None:
        self._server.close()
