"""The card endpoint seam: the card side of a transport, serving one Card OS to readers.

Every transport has two halves: a `Reader` (apdu.reader) on the host side and a card endpoint on the card
side (in-process slot, vpcd for pcscd, nfcpy udp card, the in-process air link). Endpoints share one life
cycle, so tools and tests serve a card the same way whatever carries it:

    endpoint.serve_in_thread()        # or serve_forever() in the caller's thread
    endpoint.wait_ready(5.0)          # until a reader can find the card
    ...
    endpoint.stop()                   # the card leaves; safe from a signal handler
    if endpoint.error: ...            # what ended a served thread, if it failed

and one behaviour around the Card OS (`answer`): a Card OS that raises breaks its contract and is answered
6F00; `on_exchange` runs after every APDU and before its answer leaves, the way a card writes its EEPROM
before it answers (an owner persisting the card there never acknowledges a change it has not saved; if it
fails, serving ends with that error); a `CardPowerLoss` is the card leaving the field: it gives no answer,
stays away `absence` seconds (so the reader sees it go), then comes back and recovers at its next power-on.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from apdu.cardos import CardOS, CardPowerLoss

__all__ = ["CardEndpoint", "EndpointBase", "DirectEndpoint", "SW_UNKNOWN"]

log = logging.getLogger(__name__)

#: Answer sent when a Card OS breaks its contract and raises: "no precise diagnosis".
SW_UNKNOWN = b"\x6F\x00"


@runtime_checkable
class CardEndpoint(Protocol):
    """One Card OS served to readers through one transport."""

    card_os: CardOS
    #: APDUs the card answered so far.
    apdu_count: int
    #: What ended serving in `serve_in_thread`'s thread, None while it serves or when it stopped cleanly.
    error: BaseException | None

    @property
    def ready(self) -> bool:
        """A reader can find the card now (in the slot, connected to vpcd, listening on udp...)."""
        ...

    def wait_ready(self, timeout: float) -> bool:
        """Wait until `ready`; False on timeout or when serving failed."""
        ...

    def serve_forever(self, stop_event: threading.Event | None = None) -> None:
        """Serve until `stop()` (or `stop_event`) fires; raises what ends serving abnormally."""
        ...

    def serve_in_thread(self, name: str | None = None) -> threading.Thread:
        """Serve in a daemon thread; a failure lands in `error`."""
        ...

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving (the card leaves); waits for `serve_in_thread`'s thread."""
        ...


class _OwnerFailed(Exception):
    """`on_exchange` raised: the owner's failure ends serving (it is no link problem to retry)."""


class EndpointBase:
    """What every card endpoint shares: the life cycle and the one place that calls the Card OS.

    A subclass implements `_serve()` (block until `self._stop` is set; leave the field for `absence`
    seconds when `_power_lost` says so), `ready`, `__str__` (how logs and errors name the card), and
    `_wake()` when its `_serve` blocks in I/O that `stop()` must interrupt.
    """

    #: how the thread of `serve_in_thread` is named by default
    kind = "card"

    def __init__(self, card_os: CardOS, *, on_exchange: Callable[[], None] | None = None,
                 absence: float = 1.0) -> None:
        self.card_os = card_os
        self.on_exchange = on_exchange
        #: seconds a card that lost power stays out of the field before it comes back
        self.absence = absence
        self.apdu_count = 0
        self.power_losses = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._thread: threading.Thread | None = None
        self._serving_thread: threading.Thread | None = None
        self._away = False

    # --- the life cycle ------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        raise NotImplementedError

    @property
    def serving(self) -> bool:
        """True between the start of `serve_forever` and its end."""
        return not self._done.is_set()

    def wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.ready:
            if self.error is not None or time.monotonic() >= deadline:
                return False
            time.sleep(0.002)
        return True

    def serve_forever(self, stop_event: threading.Event | None = None) -> None:
        self._done.clear()
        self._serving_thread = threading.current_thread()
        if stop_event is not None and stop_event is not self._stop:
            threading.Thread(target=self._relay_stop, args=(stop_event,), daemon=True).start()
        try:
            self._serve()
        except _OwnerFailed as failure:
            raise failure.__cause__ from None  # type: ignore[misc]
        finally:
            self._serving_thread = None
            self._done.set()
            log.info("%s stopped after %d APDUs", self, self.apdu_count)

    def serve_in_thread(self, name: str | None = None) -> threading.Thread:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"{self} is already being served")
        self._stop.clear()
        self._done.clear()  # `serving` from now on, so a stop() right after this call waits for the thread
        self.error = None
        self._thread = threading.Thread(target=self._run_thread, name=name or f"{self.kind}-endpoint",
                                        daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if threading.current_thread() is self._serving_thread:
            self._wake()  # a signal handler inside the serving thread: the loop sees the flag when it wakes
            return
        stopped = self._wake_until_done(timeout)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout))
            stopped = stopped and not thread.is_alive()
        if not stopped:
            raise RuntimeError(f"{self} did not stop within {timeout} s")

    # --- the Card OS ----------------------------------------------------------------------------------

    def answer(self, capdu: bytes) -> bytes:
        """The one place that turns a command into the Card OS's answer (see the module docstring).

        A `CardPowerLoss` propagates (after `_power_lost` is noted): the transport sends nothing back.
        """
        try:
            rapdu = self.card_os.process(capdu)
        except CardPowerLoss:
            self.note_power_loss()
            raise
        except Exception:
            log.exception("card OS raised on a command APDU (INS %02X); answering 6F00",
                          capdu[1] if len(capdu) > 1 else 0)
            rapdu = SW_UNKNOWN
        self.apdu_count += 1
        if self.on_exchange is not None:
            try:
                self.on_exchange()
            except Exception as exc:
                raise _OwnerFailed() from exc
        return bytes(rapdu)

    def note_power_loss(self) -> None:
        """The card lost power (mid-command or at power-on): it leaves the field for `absence` s."""
        self.power_losses += 1
        self._away = True
        if self.absence > 0:
            log.warning("%s lost power; leaving the field for %.1f s", self, self.absence)
        else:
            log.warning("%s lost power", self)

    # --- for subclasses -------------------------------------------------------------------------------

    def _serve(self) -> None:
        raise NotImplementedError

    def _wake(self) -> None:
        """Interrupt whatever `_serve` blocks on, so it sees `_stop` (nothing to do for an Event wait)."""

    def _power_lost(self) -> bool:
        """True once after a power loss: the caller takes the card out of the field now."""
        away, self._away = self._away, False
        return away

    def _stay_away(self) -> bool:
        """Keep out of the field for `absence` s; True when stop was asked meanwhile."""
        return self._stop.wait(self.absence)

    # --- internals ------------------------------------------------------------------------------------

    def _run_thread(self) -> None:
        try:
            self.serve_forever()
        except BaseException as exc:  # surfaced to the owner through .error, who reports it
            self.error = exc
            log.debug("%s failed", self, exc_info=True)

    def _wake_until_done(self, timeout: float) -> bool:
        """Wake the serving loop until it ends (a wake-up sent just before it blocks again could be lost)."""
        deadline = time.monotonic() + timeout
        while not self._done.is_set():
            if time.monotonic() >= deadline:
                return False
            self._wake()
            self._done.wait(0.05)
        return True

    def _relay_stop(self, event: threading.Event) -> None:
        while not self._done.is_set():
            if event.wait(0.1):
                self._stop.set()
                self._wake_until_done(float("inf"))
                return


class DirectEndpoint(EndpointBase):
    """An endpoint its reader calls directly, in the reader's thread (the in-process transports).

    It has no I/O of its own: its serving thread only puts the card in the field (`_enter`), takes it out
    (`_leave`) when stopped, and brings it back `absence` seconds after a power loss (with `absence` 0
    the card stays, unpowered, until the reader powers it again). A failing `on_exchange` takes the card
    out at once and ends serving with that error.
    """

    def __init__(self, card_os: CardOS, *, on_exchange: Callable[[], None] | None = None,
                 absence: float = 0.0) -> None:
        super().__init__(card_os, on_exchange=on_exchange, absence=absence)
        self._wakeup = threading.Event()
        self._failure: BaseException | None = None

    def _enter(self) -> None:
        raise NotImplementedError

    def _leave(self) -> None:
        raise NotImplementedError

    def answer_or_leave(self, capdu: bytes) -> bytes | None:
        """`answer`, for a reader calling in; None when the owner's `on_exchange` failed and the card left."""
        try:
            return self.answer(capdu)
        except _OwnerFailed as failure:
            assert failure.__cause__ is not None
            self._fail(failure.__cause__)
            return None

    def _fail(self, error: BaseException) -> None:
        """Something in the reader's thread ends serving: the card leaves, the serving thread raises `error`."""
        self._failure = error
        self._leave()
        self._wake()

    def note_power_loss(self) -> None:
        super().note_power_loss()
        if self.absence > 0:
            self._leave()
            self._wake()
        else:
            self._away = False

    def _serve(self) -> None:
        self._failure = None
        self._enter()
        try:
            while not self._stop.is_set():
                self._wakeup.wait()
                self._wakeup.clear()
                if self._failure is not None:
                    raise self._failure
                if self._power_lost():
                    if self._stay_away():
                        break
                    self._enter()
        finally:
            self._leave()

    def _wake(self) -> None:
        self._wakeup.set()
