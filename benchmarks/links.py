"""APDU round trips through each transport a card endpoint serves, measured in one run.

In-process slot (a function call), the in-process air link (PCD and PICC engines, CRC_A, a lossy channel at
0 %, 5 % and 15 % frame loss plus 5 % corruption), and nfcpy's udp driver (two threads, real sockets): the
median time of one short APDU and of one whose 300-byte answer chains, frames per chained APDU, each link's
ratio to the in-process slot, and how often the link was lost (retry limit 2; the card is activated again). Run: `.venv/bin/python benchmarks/links.py [--count N]`.
"""
from __future__ import annotations

import argparse
import socket
import statistics
import time
from collections.abc import Callable

from apdu.isodep import RetryLimitExceeded
from apdu.reader import Reader, ReaderError
from apdu.transport.air import AirCardEndpoint, AirReader, LossyChannel
from apdu.transport.inprocess import InProcessEndpoint, InProcessReader

ATS = bytes.fromhex("12 78 80 80 02 4D 54 00 9D 00 40 86 9B 19 70 5D 14 01")
SHORT = bytes.fromhex("00 01 00 00 08 01 02 03 04 05 06 07 08")
CHAINED = bytes.fromhex("00 01 01 2C 08 01 02 03 04 05 06 07 08")  # P1 P2 = 300 more bytes: 310 in all


class EchoCard:
    """Echoes its data, then P1‖P2 bytes more."""

    def power_on(self) -> bytes:
        return ATS

    def power_off(self) -> None:
        pass

    def process(self, capdu: bytes) -> bytes:
        extra = int.from_bytes(capdu[2:4], "big")
        return capdu[5:] + bytes(i & 0xFF for i in range(extra)) + b"\x90\x00"


def median_us(reader: Reader, capdu: bytes, count: int) -> float:
    """Median µs per APDU; a link lost (the retry limit) is counted in `LOST` and the card activated again."""
    for _ in range(min(50, count)):
        transmit(reader, capdu)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        if transmit(reader, capdu):
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


LOST = {"links": 0}


def transmit(reader: Reader, capdu: bytes) -> bool:
    try:
        reader.transmit(capdu)
        return True
    except RetryLimitExceeded:
        LOST["links"] += 1
        while True:
            try:
                reader.connect()
                return False
            except ReaderError:
                continue


def in_process(count: int) -> tuple[float, float, float]:
    reader = InProcessReader(name="slot")
    endpoint = InProcessEndpoint(EchoCard(), reader)
    endpoint.serve_in_thread()
    endpoint.wait_ready(5.0)
    reader.connect()
    try:
        return median_us(reader, SHORT, count), median_us(reader, CHAINED, count), 0.0
    finally:
        endpoint.stop()


def air(loss: float, corruption: float) -> Callable[[int], tuple[float, float, float]]:
    def run(count: int) -> tuple[float, float, float]:
        channel = LossyChannel(loss=loss, corruption=corruption, seed=1)
        endpoint = AirCardEndpoint(EchoCard(), channel)
        endpoint.serve_in_thread()
        endpoint.wait_ready(5.0)
        reader = AirReader(channel)
        reader.connect()
        try:
            short = median_us(reader, SHORT, count)
            before = len(channel.log)
            chained = median_us(reader, CHAINED, count)
            return short, chained, (len(channel.log) - before) / (count + min(50, count))
        finally:
            endpoint.stop()
    return run


def nfc_udp(count: int) -> tuple[float, float, float]:
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
        short = median_us(reader, SHORT, count)
        before = endpoint.frames
        chained = median_us(reader, CHAINED, count)
        return short, chained, (endpoint.frames - before) * 2 / (count + min(50, count))
    finally:
        reader.close()
        endpoint.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="APDUs timed per link and size")
    count = parser.parse_args().count
    links = [("in-process slot", in_process), ("air, lossless", air(0.0, 0.0)),
             ("air, 5% loss + 5% corrupt", air(0.05, 0.05)), ("air, 15% loss + 5% corrupt", air(0.15, 0.05)),
             ("nfcpy udp", nfc_udp)]
    print(f"{'link':<28}{'short µs':>10}{'chained µs':>12}{'frames/APDU':>13}{'x slot':>9}{'links lost':>12}")
    base = None
    for name, run in links:
        LOST["links"] = 0
        short, chained, frames = run(count)
        base = base or short
        print(f"{name:<28}{short:>10.1f}{chained:>12.1f}{frames:>13.2f}{short / base:>9.1f}{LOST['links']:>12}")


if __name__ == "__main__":
    main()
