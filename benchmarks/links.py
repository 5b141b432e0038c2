"""APDU round trips per second through each transport a card endpoint serves, against the in-process slot.

Links: the in-process slot (a function call); the in-process air link (PCD and PICC engines of apdu.isodep,
every frame with CRC_A) through a lossy channel at 0 %, 5 % and 15 % frame loss plus 5 % corruption; and
nfcpy's udp driver (a card thread and a reader, real sockets). For each, a short APDU (8 bytes each way)
and one whose 310-byte answer chains; the ratio of each link to the slot, measured in the same run; how
many frames the chained APDU took. A link lost at the retry limit is activated again, counted as a
refresh and left out of the rates. Target: the lossless air link ≥ 5,000 short APDUs per second (its
protocol costs a validator under 2 ms for a ten-APDU tap). Run: `.venv/bin/python benchmarks/links.py
[--seconds S]`.
"""
from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from apdu.isodep import RetryLimitExceeded
from apdu.reader import Reader, ReaderError
from apdu.transport.air import AirCardEndpoint, AirReader, LossyChannel
from apdu.transport.inprocess import InProcessEndpoint, InProcessReader

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Upkeep, rate, report_upkeep, standard_arguments  # noqa: E402

ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
SHORT = bytes.fromhex("00 01 00 00 08 01 02 03 04 05 06 07 08")
CHAINED = bytes.fromhex("00 01 01 2C 08 01 02 03 04 05 06 07 08")  # P1‖P2 = 300 more bytes: 310 in all
TARGET = 5000


class EchoCard:
    """Echoes its data, then P1‖P2 bytes more."""

    def power_on(self) -> bytes:
        return ATS

    def power_off(self) -> None:
        pass

    def process(self, capdu: bytes) -> bytes:
        extra = int.from_bytes(capdu[2:4], "big")
        return capdu[5:] + bytes(i & 0xFF for i in range(extra)) + b"\x90\x00"


Link = Callable[[], Iterator[tuple[Reader, Callable[[], int]]]]
"""Opens a link: yields its connected reader and a count of frames (or 0 where frames are not seen)."""


@contextmanager
def in_process() -> Iterator[tuple[Reader, Callable[[], int]]]:
    reader = InProcessReader(name="slot")
    endpoint = InProcessEndpoint(EchoCard(), reader)
    endpoint.serve_in_thread()
    endpoint.wait_ready(5.0)
    reader.connect()
    try:
        yield reader, lambda: 0
    finally:
        endpoint.stop()


def air(loss: float, corruption: float) -> Link:
    @contextmanager
    def link() -> Iterator[tuple[Reader, Callable[[], int]]]:
        channel = LossyChannel(loss=loss, corruption=corruption, seed=1, keep=100)
        endpoint = AirCardEndpoint(EchoCard(), channel)
        endpoint.serve_in_thread()
        endpoint.wait_ready(5.0)
        reader = AirReader(channel)
        reader.connect()
        try:
            yield reader, lambda: channel.frames
        finally:
            endpoint.stop()
    return link


@contextmanager
def nfc_udp() -> Iterator[tuple[Reader, Callable[[], int]]]:
    from apdu.transport.nfc.card import NfcCardEndpoint
    from apdu.transport.nfc.reader import NfcReader

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("0.0.0.0", 0))
        port = probe.getsockname()[1]
    endpoint = NfcCardEndpoint(EchoCard(), f"udp:localhost:{port}")
    endpoint.serve_in_thread()
    endpoint.wait_listening(5.0)
    reader = NfcReader(endpoint.path)
    reader.connect()
    try:
        yield reader, lambda: 2 * endpoint.frames  # the card counts what it receives; each gets an answer
    finally:
        reader.close()
        endpoint.stop()


def exchanger(reader: Reader, capdu: bytes, upkeep: Upkeep) -> Callable[[], None]:
    """One APDU; a link lost at the retry limit is activated again inside `upkeep` (out of the rate)."""
    def once() -> None:
        try:
            reader.transmit(capdu)
        except RetryLimitExceeded:
            with upkeep.refresh("link lost at the retry limit"):
                while True:
                    try:
                        reader.connect()
                        return
                    except ReaderError:
                        continue
    return once


def main() -> int:
    args = standard_arguments(__doc__.splitlines()[0], 1.0).parse_args()
    links: dict[str, Link] = {"in-process slot": in_process, "air, lossless": air(0.0, 0.0),
                              "air, 5% loss + 5% corrupt": air(0.05, 0.05),
                              "air, 15% loss + 5% corrupt": air(0.15, 0.05), "nfcpy udp": nfc_udp}
    loops = {name: (Upkeep(), ()) for name in links}
    print(f"{'link':28} {'short/s':>9} {'µs':>7} {'chained/s':>10} {'µs':>7} {'frames':>7} {'vs slot':>8}")
    rates: dict[str, float] = {}
    for name, link in links.items():
        upkeep = loops[name][0]
        with link() as (reader, frames):
            rates[name] = short = rate(exchanger(reader, SHORT, upkeep), args.seconds, batch=20, upkeep=upkeep)
            before = frames()
            exchanger(reader, CHAINED, upkeep)()
            per_chained = frames() - before
            chained = rate(exchanger(reader, CHAINED, upkeep), args.seconds, batch=20, upkeep=upkeep)
        slower = rates["in-process slot"] / short
        print(f"{name:28} {short:9,.0f} {1e6 / short:7.1f} {chained:10,.0f} {1e6 / chained:7.1f} "
              f"{per_chained or '-':>7} {slower:7.2f}x")
    air_rate = rates["air, lossless"]
    print(f"the air link's ISO-DEP costs {rates['in-process slot'] / air_rate:.2f}x a function call; "
          f"{air_rate:,.0f} short APDUs/s (target ≥ {TARGET}/s): {'met' if air_rate >= TARGET else 'NOT met'}")
    # Nothing runs out on these links: the echo card keeps no counters. A lost link is the only refresh.
    return report_upkeep(loops, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
