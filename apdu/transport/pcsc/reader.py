"""PC/SC reader (pyscard): the host side of a card behind pcscd — a USB reader or a vpcd slot.

Why raw `smartcard.scard` calls and not pyscard's object layer: every failure must become a precise
ReaderError (pcscd not running, no such reader, ambiguous prefix, no card, card removed), and the
raw PC/SC return codes are the only reliable way to tell those apart.

T=1 is asked for first, T=0 accepted. Transmit is raw: a T=0 card's 61xx/6Cxx is handled above
this layer (apdu.t0), never here.
"""
from __future__ import annotations

from collections.abc import Sequence

from apdu.reader import ReaderError

try:
    from smartcard import scard
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "apdu.transport.pcsc.reader needs pyscard (the 'pcsc' extra): pip install pyscard (building it needs "
        "gcc, swig and libpcsclite-dev)"
    ) from exc

# PC/SC return codes (pcsc-lite pcsclite.h); pyscard hands them back as (possibly negative) ints.
SCARD_S_SUCCESS = 0x00000000
SCARD_E_INVALID_HANDLE = 0x80100003
SCARD_E_TIMEOUT = 0x8010000A
SCARD_E_SHARING_VIOLATION = 0x8010000B
SCARD_E_NO_SMARTCARD = 0x8010000C
SCARD_E_UNKNOWN_READER = 0x80100009
SCARD_E_PROTO_MISMATCH = 0x8010000F
SCARD_F_COMM_ERROR = 0x80100013
SCARD_E_NOT_TRANSACTED = 0x80100016
SCARD_E_READER_UNAVAILABLE = 0x80100017
SCARD_E_NO_SERVICE = 0x8010001D
SCARD_E_SERVICE_STOPPED = 0x8010001E
SCARD_E_NO_READERS_AVAILABLE = 0x8010002E
SCARD_E_COMM_DATA_LOST = 0x8010002F
SCARD_W_UNRESPONSIVE_CARD = 0x80100066
SCARD_W_UNPOWERED_CARD = 0x80100067
SCARD_W_RESET_CARD = 0x80100068
SCARD_W_REMOVED_CARD = 0x80100069

_NAMES = {value: name for name, value in globals().items() if name.startswith("SCARD_")}

#: Codes meaning "the card left (or stopped answering) while we held it".
_CARD_GONE = {SCARD_W_REMOVED_CARD, SCARD_E_NOT_TRANSACTED, SCARD_E_NO_SMARTCARD,
              SCARD_E_COMM_DATA_LOST, SCARD_W_UNPOWERED_CARD, SCARD_W_UNRESPONSIVE_CARD}
#: Codes meaning "pcscd itself is gone".
_DAEMON_GONE = {SCARD_E_NO_SERVICE, SCARD_E_SERVICE_STOPPED, SCARD_F_COMM_ERROR}

PCSCD_HINT = "pcscd is not running: start it with `pcscd -f` as root"


class PcscError(ReaderError):
    """A PC/SC failure; `code` is the PC/SC return code (None when the failure is ours)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class PcscdNotRunning(PcscError):
    """pcscd is not running (or stopped during the session)."""


class NoSuchReader(PcscError):
    """No reader matches the requested name, or pcscd lists no readers at all."""


class AmbiguousReader(PcscError):
    """The requested prefix matches more than one reader."""


class NoCard(PcscError):
    """The reader holds no card (or the card does not answer reset)."""


class CardRemoved(PcscError):
    """The card left the reader during the session."""


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def describe_code(code: int) -> str:
    """'SCARD_W_REMOVED_CARD 0x80100069' for a PC/SC return code."""
    code = _code(code)
    return f"{_NAMES.get(code, 'SCARD code')} 0x{code:08X}"


def _fail(what: str, hresult: int, reader: str | None = None) -> PcscError:
    """Map a failed PC/SC call to the precise ReaderError."""
    code = _code(hresult)
    tag = describe_code(code)
    where = f" in reader {reader!r}" if reader else ""
    if code in _DAEMON_GONE:
        if code == SCARD_E_NO_SERVICE:
            return PcscdNotRunning(f"{PCSCD_HINT} ({what}: {tag})", code)
        return PcscdNotRunning(f"pcscd stopped during the session ({what}: {tag}); "
                               "restart it with `pcscd -f` as root and reconnect", code)
    if code in (SCARD_E_UNKNOWN_READER, SCARD_E_READER_UNAVAILABLE):
        return NoSuchReader(f"reader {reader!r} is gone ({what}: {tag})", code)
    if code == SCARD_E_SHARING_VIOLATION:
        return PcscError(f"reader {reader!r} is held exclusively by another application ({tag})", code)
    if code == SCARD_W_RESET_CARD:
        return PcscError(f"the card{where} was reset by another application; connect again ({tag})",
                         code)
    if code == SCARD_E_INVALID_HANDLE:
        return PcscError(f"the connection{where} is no longer valid (pcscd restarted?); connect "
                         f"again ({what}: {tag})", code)
    return PcscError(f"{what}{where} failed: {tag}", code)


def _establish() -> int:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != SCARD_S_SUCCESS:
        raise _fail("SCardEstablishContext", hresult)
    return context


def _release(context: int) -> None:
    scard.SCardReleaseContext(context)


def _list(context: int) -> list[str]:
    hresult, readers = scard.SCardListReaders(context, [])
    if _code(hresult) == SCARD_E_NO_READERS_AVAILABLE:
        return []
    if hresult != SCARD_S_SUCCESS:
        raise _fail("SCardListReaders", hresult)
    return list(readers)


def _states(context: int, readers: Sequence[str]) -> dict[str, tuple[int, bytes]]:
    """Reader -> (event state bits, ATR) right now."""
    if not readers:
        return {}
    hresult, states = scard.SCardGetStatusChange(
        context, 0, [(reader, scard.SCARD_STATE_UNAWARE) for reader in readers])
    if hresult != SCARD_S_SUCCESS and _code(hresult) != SCARD_E_TIMEOUT:
        raise _fail("SCardGetStatusChange", hresult)
    return {reader: (state, bytes(atr)) for reader, state, atr in states}


def list_readers() -> list[str]:
    """Names of all readers pcscd knows; raises PcscdNotRunning when there is no pcscd."""
    context = _establish()
    try:
        return _list(context)
    finally:
        _release(context)


def resolve_reader(request: str | None, readers: Sequence[str], with_card: Sequence[str] = ()) -> str:
    """Pick a reader: None -> the first reader holding a card; else an exact name, else a unique prefix.

    Pure, so the rules are tested without pcscd. Errors list the readers to choose from.
    """
    listing = ", ".join(repr(r) for r in readers) or "none"
    if not readers:
        raise NoSuchReader("pcscd lists no readers (is a reader plugged in, or the vpcd driver "
                           "configured in /etc/reader.conf.d?)")
    if request is None:
        for reader in readers:
            if reader in with_card:
                return reader
        raise NoCard(f"no reader holds a card; readers: {listing}")
    if request in readers:
        return request
    matches = [r for r in readers if r.startswith(request)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise NoSuchReader(f"no reader named or starting with {request!r}; readers: {listing}")
    raise AmbiguousReader(f"reader prefix {request!r} matches {len(matches)} readers: "
                          f"{', '.join(repr(m) for m in matches)}; give more of the name")


class PcscReader:
    """One PC/SC reader slot, implementing the Reader protocol.

    `name` None = the first reader holding a card (chosen at connect), else an exact reader name or
    a unique prefix. After connect, `name` is the full reader name and `protocol` 'T=1' or 'T=0'.
    """

    def __init__(self, name: str | None = None) -> None:
        self.requested = name
        self.name = name if name is not None else "pcsc"
        self.protocol: str | None = None
        self._context: int | None = None
        self._card: int | None = None
        self._scard_protocol: int | None = None
        self._card_gone = False

    def __repr__(self) -> str:
        return f"PcscReader({self.name!r}, protocol={self.protocol!r})"

    # --- Reader protocol --------------------------------------------------------------------------------

    def connect(self) -> bytes:
        """Resolve the reader, power the card (T=1 preferred, else T=0), return its ATR."""
        if self._card is not None:
            self.disconnect()
        context = _establish()
        try:
            readers = _list(context)
            with_card = [] if self.requested is not None else [
                r for r, (state, _) in _states(context, readers).items()
                if state & scard.SCARD_STATE_PRESENT]
            reader = resolve_reader(self.requested, readers, with_card)
            card, protocol = self._connect_card(context, reader)
        except BaseException:
            _release(context)
            raise
        self._context, self._card, self._scard_protocol = context, card, protocol
        self.name = reader
        self.protocol = "T=1" if protocol == scard.SCARD_PROTOCOL_T1 else "T=0"
        return self._atr()

    def transmit(self, capdu: bytes) -> bytes:
        """Send one command APDU, return the raw response APDU (SW1 SW2 included)."""
        if self._card is None:
            raise PcscError(f"reader {self.name!r}: not connected (call connect() first)")
        hresult, response = scard.SCardTransmit(self._card, self._scard_protocol, list(capdu))
        if hresult != SCARD_S_SUCCESS:
            code = _code(hresult)
            if code in _CARD_GONE:
                raise self._gone(f"card removed from reader {self.name!r} during the session "
                                 f"({describe_code(code)})", code)
            raise _fail("SCardTransmit", hresult, self.name)
        if len(response) < 2:
            # vpcd reports a card that vanished between command and answer as an empty response.
            raise self._gone(f"card in reader {self.name!r} answered no status word "
                             f"({len(response)} bytes): it left the reader or stopped answering")
        return bytes(response)

    def disconnect(self) -> None:
        """Power the card off and release the reader; never raises for a card that already left.

        A card known to be gone is released with SCARD_LEAVE_CARD: asking pcscd 1.9 to power off a
        vanished vpcd card makes it mark the slot empty behind its own poller's back, and the next
        card in that slot then stays invisible until it is removed once.
        """
        card, context = self._card, self._context
        gone, self._card_gone = self._card_gone, False
        self._card = self._context = self._scard_protocol = None
        self.protocol = None
        if card is not None:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD if gone else scard.SCARD_UNPOWER_CARD)
        if context is not None:
            _release(context)

    def card_present(self) -> bool:
        """True when the reader (or, before connect with name None, any reader) holds a card."""
        context = self._context if self._context is not None else _establish()
        try:
            readers = _list(context)
            if self._card is not None or self.requested is not None:
                try:
                    readers = [resolve_reader(self.name if self._card is not None else self.requested,
                                              readers)]
                except NoSuchReader:
                    return False
            states = _states(context, readers)
            return any(state & scard.SCARD_STATE_PRESENT for state, _ in states.values())
        finally:
            if context != self._context:
                _release(context)

    # --- extras -------------------------------------------------------------------------------------------

    def reset(self) -> bytes:
        """Warm reset of the connected card (SCardReconnect with SCARD_RESET_CARD); returns the ATR."""
        if self._card is None:
            raise PcscError(f"reader {self.name!r}: not connected (call connect() first)")
        hresult, protocol = scard.SCardReconnect(
            self._card, scard.SCARD_SHARE_SHARED, scard.SCARD_PROTOCOL_T1 | scard.SCARD_PROTOCOL_T0,
            scard.SCARD_RESET_CARD)
        if hresult != SCARD_S_SUCCESS:
            code = _code(hresult)
            if code in _CARD_GONE:
                raise self._gone(f"card removed from reader {self.name!r} ({describe_code(code)})", code)
            raise _fail("SCardReconnect", hresult, self.name)
        self._scard_protocol = protocol
        return self._atr()

    def __enter__(self) -> PcscReader:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.disconnect()

    # --- internals ------------------------------------------------------------------------------------------

    def _connect_card(self, context: int, reader: str) -> tuple[int, int]:
        for protocol in (scard.SCARD_PROTOCOL_T1, scard.SCARD_PROTOCOL_T0):
            hresult, card, active = scard.SCardConnect(context, reader, scard.SCARD_SHARE_SHARED,
                                                       protocol)
            if hresult == SCARD_S_SUCCESS:
                return card, active
            code = _code(hresult)
            if code == SCARD_E_PROTO_MISMATCH:
                continue
            if code in (SCARD_E_NO_SMARTCARD, SCARD_W_REMOVED_CARD):
                raise NoCard(f"no card in reader {reader!r} ({describe_code(code)})", code)
            if code in (SCARD_W_UNRESPONSIVE_CARD, SCARD_W_UNPOWERED_CARD):
                raise NoCard(f"the card in reader {reader!r} does not answer reset "
                             f"({describe_code(code)})", code)
            raise _fail("SCardConnect", hresult, reader)
        raise PcscError(f"the card in reader {reader!r} speaks neither T=1 nor T=0",
                        SCARD_E_PROTO_MISMATCH)

    def _atr(self) -> bytes:
        assert self._card is not None
        hresult, _reader, _state, _protocol, atr = scard.SCardStatus(self._card)
        if hresult != SCARD_S_SUCCESS:
            code = _code(hresult)
            if code in _CARD_GONE:
                raise self._gone(f"card removed from reader {self.name!r} ({describe_code(code)})", code)
            raise _fail("SCardStatus", hresult, self.name)
        return bytes(atr)

    def _gone(self, message: str, code: int | None = None) -> CardRemoved:
        self._card_gone = True
        return CardRemoved(message, code)
