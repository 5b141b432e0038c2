"""QR scanners as the validator loop sees them: a source of codes it polls between card polls.

A scanner hands over one code at a time and never blocks (`poll() -> bytes | None`). Real scanners talk
to the validator over a serial line or USB HID, one code per read; here:

* `LineScanner` reads a text stream (a file, a pipe, stdin) in a background thread, one code per line,
  in hex or base64 as scanners and phone apps hand codes over (ykt_qr.scan.code_from_text). Blank lines
  and lines starting with ``#`` are skipped; a line that holds no code goes to `on_error` with its line
  number, and the loop goes on. `done` is true once the stream ended and every code was handed over.
* `CodeList`: codes already in hand (tests, benchmarks).
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol, TextIO

from ykt_qr.scan import ScanError, code_from_text

from .outcome import MAX_CODE_BYTES

__all__ = ["Scanner", "CodeList", "LineScanner", "parse_line"]


class Scanner(Protocol):
    """A QR scanner: the next code read, or None when none is waiting."""

    def poll(self) -> bytes | None: ...


class CodeList:
    """A scanner of codes in hand, handed over in order."""

    def __init__(self, codes: Iterable[bytes] = ()) -> None:
        self._codes = deque(bytes(c) for c in codes)

    def add(self, code: bytes) -> None:
        self._codes.append(bytes(code))

    def poll(self) -> bytes | None:
        return self._codes.popleft() if self._codes else None

    @property
    def done(self) -> bool:
        return not self._codes

    def __repr__(self) -> str:
        return f"CodeList({len(self._codes)} waiting)"


def parse_line(line: str) -> bytes | None:
    """One scanner line: a code (hex or base64), or None for a blank line or a ``#`` comment."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    code = code_from_text(text)
    if len(code) > MAX_CODE_BYTES:
        raise ScanError(f"{len(code)} bytes, longer than any QR symbol holds")
    return code


class LineScanner:
    """Codes from a text stream, one per line, read by a daemon thread; `poll` never waits."""

    def __init__(self, stream: TextIO, on_error: Callable[[str], None] | None = None, name: str = "scanner") -> None:
        self.name = name
        self.on_error = on_error
        self._queue: queue.Queue[bytes | str | None] = queue.Queue()
        self._ended = False
        self._thread = threading.Thread(target=self._read, args=(stream,), name=f"{name} reader", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"LineScanner({self.name!r})"

    def _read(self, stream: TextIO) -> None:
        try:
            for number, line in enumerate(stream, start=1):
                try:
                    code = parse_line(line)
                except ScanError as exc:
                    self._queue.put(f"{self.name}: line {number}: {exc}")
                    continue
                if code is not None:
                    self._queue.put(code)
        except (OSError, UnicodeDecodeError) as exc:
            self._queue.put(f"{self.name}: cannot read: {exc}")
        finally:
            self._queue.put(None)

    def poll(self) -> bytes | None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return None
            if item is None:
                self._ended = True
                continue
            if isinstance(item, str):
                if self.on_error is not None:
                    self.on_error(item)
                continue
            return item

    @property
    def done(self) -> bool:
        """The stream ended and every code was handed over."""
        return self._ended and self._queue.empty()

    def wait_done(self, timeout: float) -> bool:
        """Wait until the stream ended (tests); True when it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()
