"""The host side of an exchange: T=0 response fetching (61xx, 6Cxx) and a checked command channel.

Contact cards and PSAMs on T=0 answer case-4 commands with `61xx` (fetch with GET RESPONSE) and a
wrong Le with `6Cxx` (resend with Le=xx). This is the ONE place that handles both, so host APIs send
a command and get the whole answer whatever the transport (on T=1 and ISO-DEP nothing changes).
"""
from __future__ import annotations

from dataclasses import replace

from apdu.command import CommandApdu
from apdu.reader import Reader, ReaderError
from apdu.status import SW_OK, CardError, ResponseApdu

__all__ = ["transceive", "get_response", "Channel", "MAX_GET_RESPONSE"]

#: A card answering 61xx more often than this is broken (65536 bytes fetched 1 byte at a time
#: would take 65536 rounds; real cards return 256 at a time).
MAX_GET_RESPONSE = 512


def get_response(le: int) -> CommandApdu:
    """GET RESPONSE `00 C0 00 00 Le` for `le` bytes (1..256, 256 sent as 00)."""
    return CommandApdu(0x00, 0xC0, 0x00, 0x00, le=le)


def _exchange(reader: Reader, capdu: bytes) -> ResponseApdu:
    raw = reader.transmit(capdu)
    if len(raw) < 2:
        got = "1 byte" if len(raw) == 1 else f"{len(raw)} bytes"
        raise ReaderError(f"reader {reader.name!r}: card answered {got}, a response APDU needs "
                          f"at least SW1 SW2")
    return ResponseApdu.parse(raw)


def transceive(reader: Reader, capdu: bytes | CommandApdu) -> ResponseApdu:
    """Send one command and return the complete response, following 6Cxx and 61xx.

    6Cxx: the same command is resent once with Le = xx (00 = 256). 61xx: `00 C0 00 00 xx` is sent
    and the data gathered, repeatedly; the final status word is that of the last answer. The first
    transmission sends `capdu` byte for byte. Raises ApduError when `capdu` is malformed and
    ReaderError when the link fails or the card never stops answering 61xx.
    """
    cmd = capdu if isinstance(capdu, CommandApdu) else CommandApdu.parse(capdu)
    raw = capdu.to_bytes() if isinstance(capdu, CommandApdu) else bytes(capdu)
    resp = _exchange(reader, raw)
    data = bytearray()
    resent = False
    fetches = 0
    while True:
        if resp.sw1 == 0x6C and not resent:
            cmd = replace(cmd, le=resp.sw2 or 256)
            resent = True
            resp = _exchange(reader, cmd.to_bytes())
            continue
        if resp.sw1 == 0x61:
            data += resp.data
            fetches += 1
            if fetches > MAX_GET_RESPONSE:
                raise ReaderError(f"reader {reader.name!r}: card still answers 61xx after "
                                  f"{MAX_GET_RESPONSE} GET RESPONSE commands")
            cmd = get_response(resp.sw2 or 256)
            resent = False
            resp = _exchange(reader, cmd.to_bytes())
            continue
        data += resp.data
        if len(data) > 65536:
            raise ReaderError(f"reader {reader.name!r}: card returned {len(data)} bytes for one "
                              f"command, more than 65536")
        return ResponseApdu(bytes(data), resp.sw)


class Channel:
    """A Reader seen as a command channel: send commands, get whole responses, raise on refusal."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    @property
    def name(self) -> str:
        return self.reader.name

    def send(self, cmd: CommandApdu | bytes) -> ResponseApdu:
        """Any status word comes back as a ResponseApdu (warnings such as 6283 included)."""
        return transceive(self.reader, cmd)

    def check(self, cmd: CommandApdu | bytes) -> bytes:
        """The response data when the card answers 9000; otherwise raise CardError(sw).

        The error's detail names the command header (CLA INS P1 P2), never its data.
        """
        cmd = cmd if isinstance(cmd, CommandApdu) else CommandApdu.parse(cmd)
        resp = transceive(self.reader, cmd)
        if resp.sw != SW_OK:
            raise CardError(resp.sw, f"command {cmd.header.hex(' ').upper()}")
        return resp.data
