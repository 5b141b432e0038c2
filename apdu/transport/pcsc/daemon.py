"""A small manager for pcscd with the vpcd driver: start, wait until ready, wait for cards, stop.

Why: integration tests and machine checks need a pcscd they can rely on, on machines without systemd.
The manager starts `pcscd -f` itself (so it owns the PID and stops it with SIGTERM), or reuses a
running pcscd that already lists the vpcd readers. A missing pcscd binary or vpcd driver is an
error, never a reason to skip.
"""
from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PCSCD_SOCKET = Path("/run/pcscd/pcscd.comm")
PCSCD_PIDFILE = Path("/run/pcscd/pcscd.pid")
VPCD_DRIVER = Path("/usr/lib/pcsc/drivers/serial/libifdvpcd.so")
VPCD_CONFIG = Path("/etc/reader.conf.d/vpcd")
#: Reader names pcscd gives the two vpcd slots (TCP 35963 and 35964).
VPCD_READERS: tuple[str, ...] = ("Virtual PCD 00 00", "Virtual PCD 00 01")


class PcscdError(RuntimeError):
    """pcscd or the vpcd driver is missing, will not start, or a card did not show up."""


def vpcd_reader_name(slot: int) -> str:
    """Reader name of a vpcd slot (0 or 1)."""
    if not 0 <= slot < len(VPCD_READERS):
        raise ValueError(f"vpcd slot: {slot} is not one of 0..{len(VPCD_READERS) - 1}")
    return VPCD_READERS[slot]


def _scard() -> Any:  # imported late so machine checks work without pyscard
    from smartcard import scard

    return scard


def listed_readers() -> list[str] | None:
    """Readers pcscd lists, or None when no pcscd answers."""
    scard = _scard()
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != 0:
        return None
    try:
        hresult, readers = scard.SCardListReaders(context, [])
        return list(readers) if hresult == 0 else []
    finally:
        scard.SCardReleaseContext(context)


def card_state(reader: str) -> tuple[bool, bytes]:
    """(card present, ATR) as pcscd reports it for one reader right now."""
    scard = _scard()
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != 0:
        raise PcscdError(f"pcscd is not running (0x{hresult & 0xFFFFFFFF:08X})")
    try:
        hresult, states = scard.SCardGetStatusChange(context, 0, [(reader, scard.SCARD_STATE_UNAWARE)])
        if hresult != 0:
            raise PcscdError(f"reader {reader!r}: status unavailable (0x{hresult & 0xFFFFFFFF:08X})")
        _, state, atr = states[0]
        return bool(state & scard.SCARD_STATE_PRESENT), bytes(atr)
    finally:
        scard.SCardReleaseContext(context)


def supports_disable_polkit(binary: str = "pcscd") -> bool:
    """pcsc-lite 2.x needs --disable-polkit when run by hand; 1.9 does not know the option."""
    try:
        result = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "--disable-polkit" in result.stdout + result.stderr


class Pcscd:
    """One pcscd for this machine: started by us (`owned`) or an already running one we reuse."""

    def __init__(self, binary: str = "pcscd", readers: Sequence[str] = VPCD_READERS,
                 ready_timeout: float = 10.0, log_path: str | os.PathLike[str] | None = None) -> None:
        self.binary = binary
        self.readers = tuple(readers)
        self.ready_timeout = ready_timeout
        self.log_path = Path(log_path) if log_path is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self.owned = False
        self._temporary_log = False

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    # --- checks -----------------------------------------------------------------------------------------

    def require_installed(self) -> str:
        """Raise PcscdError naming what is missing; return the pcscd path."""
        path = shutil.which(self.binary) or shutil.which(self.binary, path="/usr/sbin:/sbin")
        if path is None:
            raise PcscdError(f"pcscd binary {self.binary!r} not found: apt-get install pcscd")
        if not VPCD_DRIVER.exists():
            raise PcscdError(f"vpcd driver {VPCD_DRIVER} missing: apt-get install vsmartcard-vpcd")
        if not VPCD_CONFIG.exists():
            raise PcscdError(f"vpcd reader config {VPCD_CONFIG} missing: reinstall vsmartcard-vpcd")
        return path

    def usable(self) -> bool:
        """A pcscd answers and lists every reader we need."""
        readers = listed_readers()
        return readers is not None and all(r in readers for r in self.readers)

    # --- life cycle -------------------------------------------------------------------------------------

    def start(self) -> Pcscd:
        """Reuse a usable running pcscd, else start `pcscd -f` as root and wait until it is ready."""
        path = self.require_installed()
        if self.usable():
            log.info("reusing the running pcscd (it lists %s)", ", ".join(self.readers))
            self.owned = False
            return self
        if listed_readers() is not None:
            raise PcscdError(
                f"a pcscd is running (pid file {PCSCD_PIDFILE}: {read_pid()}) but does not list "
                f"{', '.join(self.readers)}: stop it (kill that pid) so a pcscd with the vpcd driver "
                "can start")
        if os.geteuid() != 0:
            raise PcscdError("pcscd is not running and must be started as root: `sudo pcscd -f`")
        self._clear_stale_files()
        command = [path, "-f"]
        if supports_disable_polkit(path):
            command.append("--disable-polkit")
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="pcscd-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
            self._temporary_log = True
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log_file,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        self.owned = True
        log.info("started %s (pid %d, log %s)", " ".join(command), self.process.pid, self.log_path)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                self.process = None
                self.owned = False
                raise PcscdError(f"pcscd exited at start (exit code {code}); its log:\n{self.log_tail()}")
            if PCSCD_SOCKET.exists() and self.usable():
                return self
            time.sleep(0.02)
        self.stop()
        raise PcscdError(f"pcscd did not list {', '.join(self.readers)} within {self.ready_timeout} s; "
                         f"its log:\n{self.log_tail()}")

    def _clear_stale_files(self) -> None:
        """Remove the socket and pid file a killed pcscd left behind.

        pcscd cleans them itself when the old pid is gone, but refuses to start while that pid is
        still a zombie (nobody reaped it yet) or was reused by another program. A live pcscd that
        does not answer is an error.
        """
        if not PCSCD_PIDFILE.exists() and not PCSCD_SOCKET.exists():
            return
        text = read_pid()
        if text.isdigit():
            state = _process_state(int(text))
            if state not in (None, "Z") and _process_name(int(text)) == "pcscd":
                raise PcscdError(f"pcscd pid {text} is alive but does not answer on {PCSCD_SOCKET}: "
                                 f"stop it (kill {text}) and try again")
        for path in (PCSCD_SOCKET, PCSCD_PIDFILE):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        log.info("removed %s and %s left by a dead pcscd (pid %s)", PCSCD_SOCKET, PCSCD_PIDFILE, text)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the pcscd we started and wait for it; a reused pcscd is left running."""
        process, self.process = self.process, None
        owned, self.owned = self.owned, False
        if process is None or not owned:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("pcscd (pid %d) ignored SIGTERM for %s s; killing it", process.pid, timeout)
                process.kill()
                process.wait(timeout)
        if self._temporary_log and self.log_path is not None:
            self.log_path.unlink(missing_ok=True)
            self.log_path = None
            self._temporary_log = False

    def __enter__(self) -> Pcscd:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        if self.log_path is None or not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    # --- cards ------------------------------------------------------------------------------------------

    def wait_card(self, reader: str, present: bool = True, timeout: float = 10.0,
                  atr: bytes | None = None) -> bytes:
        """Wait until pcscd reports a card in `reader` (with `atr`, when given) or reports it empty.

        Returns the ATR pcscd reports (b"" when waiting for absence). pcscd polls vpcd about every
        400 ms, so a card appears or disappears a few hundred ms after its connection opens or closes.
        """
        deadline = time.monotonic() + timeout
        while True:
            is_present, seen_atr = card_state(reader)
            if is_present == present and (not present or atr is None or seen_atr == atr):
                return seen_atr if present else b""
            if time.monotonic() >= deadline:
                if present and is_present:
                    raise PcscdError(f"reader {reader!r} holds a card with ATR {seen_atr.hex().upper()}, "
                                     f"not the expected {atr.hex().upper() if atr else ''}: another card "
                                     "process is using this slot")
                raise PcscdError(f"reader {reader!r}: card still {'absent' if present else 'present'} "
                                 f"after {timeout} s")
            time.sleep(0.02)


def read_pid() -> str:
    """What pcscd's pid file says ('none' when there is no file, 'empty' when it is empty)."""
    try:
        return PCSCD_PIDFILE.read_text(errors="replace").strip("\0 \n") or "empty"
    except OSError:
        return "none"


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _process_state(pid: int) -> str | None:
    """The state letter of a process ('R', 'S', 'Z', ...), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


@contextlib.contextmanager
def session_lock(path: Path, holder_env: str, timeout: float = 900.0) -> Iterator[None]:
    """Hold the machine-wide lock on pcscd and the vpcd slots for a test session.

    Several engineers' test runs share one pcscd and two slots; without this, one run stops the
    pcscd another is using, or two cards queue on one slot. `path` is the lock file the cooperating
    sessions agree on. Waits up to `timeout` s, then raises.

    The holder's child processes inherit the lock (through the environment variable `holder_env`): a
    test that runs a command using pcscd waits for that command, so the two never use the slots at once,
    and the command must not wait for a lock its own parent holds. Nested blocks in the holder share it too
    (flock would wait on a second handle of the same process).
    """
    if os.environ.get(holder_env) is not None:
        yield  # held already: by the process that started us, or by an outer block of this one
        return
    handle = open(path, "a+")
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not announced:
                    handle.seek(0)
                    log.warning("waiting for %s, held by %s", path, handle.read().strip() or "?")
                    announced = True
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    raise PcscdError(f"{path} still held after {timeout} s by {handle.read().strip()}; "
                                     "another test session is using pcscd and the vpcd slots") from None
                time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        os.environ[holder_env] = str(os.getpid())
        yield
    finally:
        if os.environ.get(holder_env) == str(os.getpid()):
            del os.environ[holder_env]
        handle.close()  # closing releases the lock
