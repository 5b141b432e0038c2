"""Options shared by the commands that transact: --seed, --clock, --trace, reader specs, serving."""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from keysets.randomness import RandomSource
from specs.catalog import find
from ykt_card.clock import SimulatedClock, SystemClock
from apdu.trace import TracingReader
from ykt_card.host.readers import OpenedReader, open_reader

from .errors import EXIT_BAD_INPUT, EXIT_FAILED, STORAGE_ERRNOS


class Shipped(click.ParamType):
    """A shipped file by name (`gd-test-3des`, `bus-flat`) or any path: the option's value as a Path."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.name = kind

    def convert(self, value, param, ctx) -> Path:
        if isinstance(value, Path):
            return value
        try:
            return find(self.kind, value)
        except LookupError as exc:
            self.fail(str(exc), param, ctx)


KEYSET = Shipped("keyset")
CARD_PROFILE = Shipped("card-profile")
TERMINAL_PROFILE = Shipped("terminal-profile")


def seed_option(fn):
    return click.option("--seed", type=int, default=None, metavar="N",
                        help="Seed card and PSAM randomness: the run repeats exactly.")(fn)


def clock_option(fn):
    return click.option("--clock", default=None, metavar="YYYYMMDDhhmmss",
                        help="Fixed start time (China time) that then advances with the run.")(fn)


def trace_option(fn):
    return click.option("--trace", "trace_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                        metavar="FILE", help="Record every APDU exchange as JSON Lines.")(fn)


def hex_bytes(param: str, text: str, length: int) -> bytes:
    """An option's hex value of exactly `length` bytes, or a usage error naming the option.

    The length is checked first (spaces allowed between bytes): an 11-digit terminal ID is a length
    error, not a bad digit.
    """
    digits = "".join(text.split())
    if len(digits) != 2 * length:
        raise click.BadParameter(f"must be {length} bytes ({2 * length} hex digits), got {len(digits)} digits: "
                                 f"{text!r}", param_hint=param)
    try:
        return bytes.fromhex(digits)
    except ValueError:
        raise click.BadParameter(f"not hexadecimal: {text!r}", param_hint=param) from None


def make_rng(seed: int | None) -> RandomSource:
    return RandomSource.seeded(seed) if seed is not None else RandomSource()


CLOCK_FORM = "YYYYMMDDhhmmss (China time, e.g. 20261124081500)"


def make_clock(text: str | None, option: str = "--clock"):
    """The simulated clock of `--clock`, or the system clock without one; a bad value is a usage error
    that names the option, says what is wrong and the form it takes."""
    if text is None:
        return SystemClock()
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise click.BadParameter(f"{text!r} is not a date-time: expected 14 digits {CLOCK_FORM}", param_hint=option)
    y, mo, d, h, mi, se = (int(text[a:b]) for a, b in ((0, 4), (4, 6), (6, 8), (8, 10), (10, 12), (12, 14)))
    try:
        _dt.datetime(y, mo, d, h, mi, se)
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a date-time ({exc}): expected {CLOCK_FORM}",
                                 param_hint=option) from None
    return SimulatedClock.parse(text)


def writable_folder(target: Path, option: str) -> None:
    """Refuse, naming the option and the folder, an output whose folder (or nearest existing parent)
    cannot be written: before anything is written, not as a failed temporary file later."""
    folder = target if target.is_dir() else target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise click.BadParameter(f"{folder} is not a folder", param_hint=option)
    if not os.access(folder, os.W_OK | os.X_OK):
        why = "it is on a read-only file system" if _read_only_fs(folder) else "permission denied"
        raise click.BadParameter(f"cannot write into folder {folder}: {why}", param_hint=option)


def _read_only_fs(folder: Path) -> bool:
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def write_failure(option: str, target: Path, exc: OSError) -> click.ClickException:
    """A write to `target` failed: one line naming the option, the folder and the cause (never the
    temporary file the atomic write used); exit 1 for a full disk or I/O error, else 2."""
    error = click.ClickException(f"{option}: cannot write {target.name} in folder {target.parent}: "
                                 f"{exc.strerror or exc}")
    error.exit_code = EXIT_FAILED if exc.errno in STORAGE_ERRNOS else EXIT_BAD_INPUT
    return error


def trace_clock(clock) -> Callable[[], float]:
    """Trace timestamps: seconds of the simulated clock (repeatable) or of the real one."""
    if isinstance(clock, SimulatedClock):
        counter = iter(range(10**9))
        base = clock.peek().timestamp()
        return lambda: base + next(counter) * 0.001
    return time.time


@contextlib.contextmanager
def reader(spec: str, *, rng: RandomSource, expect: str, option: str, trace: Path | None = None,
           stamps=time.time) -> Iterator[OpenedReader]:
    """Open a reader spec (optionally traced, timestamps from `stamps`); disconnect at the end, whatever happens.

    Readers of one command share one `stamps` (see `trace_clock`) so their exchanges interleave in order.
    """
    scheme, _, rest = spec.partition(":")
    if scheme == "image" and rest and Path(rest).is_dir():
        raise click.BadParameter(f"{spec!r}: {rest} is a directory, not a card or PSAM image", param_hint=option)
    opened = open_reader(spec, rng=rng, expect=expect, option=option)
    tracer = None
    if trace is not None:
        tracer = TracingReader(opened.reader, clock=stamps, jsonl=trace)
        opened.reader = tracer
    try:
        yield opened
    except Exception as exc:
        failure = _memory_failure(opened)
        if failure is None or isinstance(exc, click.exceptions.Exit):
            raise
        raise image_failure(failure.cause) from None     # the cause, not what the terminal made of 6581
    else:
        failure = _memory_failure(opened)
        if failure is not None:
            click.echo(f"ykt: error: {failure.cause}; it answered 6581 and kept its previous state", err=True)
    finally:
        with contextlib.suppress(Exception):
            opened.reader.disconnect()
        if tracer is not None:
            tracer.close()


def _memory_failure(opened: OpenedReader):
    """The latest failed image save of an image reader's card or PSAM (`MemoryFailure`), or None."""
    return getattr(opened.card_os, "memory_failure", None)


def image_failure(cause: OSError) -> click.ClickException:
    """An image that could not be saved: one line naming the file and the cause; exit 1 for a full disk
    or an I/O error, else 2 (a read-only file system: the user's choice of place)."""
    error = click.ClickException(f"{cause}; it answered 6581 and kept its previous state")
    error.exit_code = EXIT_FAILED if cause.errno in STORAGE_ERRNOS else EXIT_BAD_INPUT
    return error


def logging_saver(save: Callable, what: str) -> Callable:
    """A served card's or PSAM's save callback that reports a failed save on stderr (one line naming the
    image and the cause) before the card undoes the change and answers 6581; serving goes on."""
    def logged(state) -> None:
        try:
            save(state)
        except OSError as exc:
            click.echo(f"ykt: {what}: {exc}; answered 6581 and kept its previous state", err=True)
            raise
    return logged


def serve_until_signal(card_os, endpoint_text: str, atr: bytes, what: str, *, uid: bytes | None = None) -> None:
    """Serve a Card OS to vpcd at HOST:PORT until SIGTERM or SIGINT, then stop cleanly.

    `uid`: a contactless card's UID, which the virtual reader answers to PC/SC's GET DATA (`FF CA 00 00`);
    None for a contact card (a PSAM), which has none: the reader answers GET DATA 6A81.
    """
    from apdu.transport.pcsc.vpcd import VpcdEndpoint, parse_endpoint

    host, port = parse_endpoint(endpoint_text)
    endpoint = VpcdEndpoint(card_os, host, port, atr=atr, uid=uid)
    _run_until_signal(endpoint, what, f"to vpcd at {endpoint.host}:{endpoint.port}")


def serve_nfc_until_signal(card_os, path: str, what: str, *, uid: bytes | None = None) -> None:
    """Serve a contactless Card OS as an ISO 14443-4 card on nfcpy's udp driver until SIGTERM or SIGINT."""
    from apdu.transport.nfc.card import NfcCardEndpoint

    try:
        endpoint = NfcCardEndpoint(card_os, path, **({} if uid is None else {"uid": uid}))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--nfc") from None
    _run_until_signal(endpoint, what, f"as an NFC card on {endpoint.path}", ready=endpoint.wait_listening)


def _run_until_signal(endpoint, what: str, where: str, ready: Callable[[float], bool] | None = None) -> None:
    """Run an endpoint (vpcd or NFC) in a thread until a signal or its own failure; report either.

    With `ready`, the banner waits until the endpoint can be found (an NFC card listens), so a script may
    start its reader as soon as it reads the banner.
    """
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if ready is None:
        click.echo(f"serving {what} {where} (SIGTERM to stop)", err=True)
    thread = endpoint.serve_in_thread()
    if ready is not None and ready(5.0):
        click.echo(f"serving {what} {where} (SIGTERM to stop)", err=True)
    while not stop.wait(0.2):
        if not thread.is_alive():
            break
    endpoint.stop()
    if endpoint.error is not None:
        raise RuntimeError(f"{what}: {endpoint.error}")
    click.echo(f"stopped serving {what}", err=True)
