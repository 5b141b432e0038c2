"""Real clearing files: cards issued, loaded and tapped on ykt's own validators in-process, journals exported.

Everything goes through the public seams (issuance, Card OS, PSAM, in-process readers, Validator, the load
flow, the journal and its export), with a seeded random source and a simulated clock, so the same call
writes the same files.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from apdu.transport.inprocess import InProcessReader
from keysets.randomness import RandomSource
from specs.catalog import card_profile_path, find, terminal_profile_path
from terminal_sim.export import export
from terminal_sim.flows import load as load_flow
from terminal_sim.journal import Journal
from terminal_sim.load_host import LoadHost
from terminal_sim.profile import load_terminal_profile
from terminal_sim.links import TearingReader
from terminal_sim.qr import unix_seconds
from terminal_sim.validator import Validator
from ykt_card.card.cos import TUnionCardOS
from ykt_card.clock import SimulatedClock
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam
from ykt_qr.pki import load_account

TERMINALS = {"bus-flat": "440300000101", "metro-entry": "440300000201", "metro-exit": "440300000202",
             "bus-flat-capp": "440300000301"}
LOAD_TERMINAL = bytes.fromhex("440300009001")


@dataclass
class RealDay:
    files: list[Path]
    registry_lines: list[dict] = field(default_factory=list)
    terminal_ids: dict[str, str] = field(default_factory=dict)


def real_day(folder: Path, keysets, *, cards: int = 3, fmt: str = "jsonl", seed: int = 11,
             qr_rides: int = 0) -> RealDay:
    """A day of a few cards (3DES and SM4) at a bus, a metro line and a load office, with one torn purchase
    recovered; one clearing file per terminal (written by `ykt journal export`'s code). With `qr_rides`,
    the bus's validator (the bus-qr profile on the bus-flat PSAM and journal) then takes that many MOT QR
    codes of the shipped TEST account, five minutes apart, after every card: the card records are the
    same as without them."""
    rng = RandomSource.seeded(seed)
    clock = SimulatedClock.parse("20261124071500")
    profile = load_card_profile(card_profile_path("gd-guangzhou"))
    psams = {name: PsamOS(issue_psam(keysets, bytes.fromhex(tid)), random=rng.fork(f"psam-{name}"))
             for name, tid in TERMINALS.items()}
    journals = {name: Journal(folder / f"{name}.db") for name in (*TERMINALS, "load")}
    day = RealDay([], terminal_ids=dict(TERMINALS, load=LOAD_TERMINAL.hex().upper()))
    try:
        for c in range(cards):
            sm4_only = c % 3 == 2
            issued = issue_card(profile, keysets, profile.card_number(c + 1), clock.peek().date(),
                                algorithm="sm4" if sm4_only else None)
            day.registry_lines.append(issued.registry)
            card = InProcessReader(TUnionCardOS(issued.state, rng=rng.fork(f"card-{c}")), name=f"card{c}")
            psam_readers = {n: InProcessReader(p, name=n) for n, p in psams.items()}
            clock.advance(60)
            load_flow(card, LoadHost(keysets, clock=clock), 5000, LOAD_TERMINAL, journal=journals["load"],
                      clock=clock, key_index=2 if sm4_only else 1)

            def tap(name: str, station: str | None = None, reader=card) -> None:
                clock.advance(300)
                Validator(load_terminal_profile(terminal_profile_path(name)), psam_readers[name], reader,
                          journal=journals[name], clock=clock, rng=rng, station=station).tap()

            tap("bus-flat")
            tap("metro-entry", "0301")
            tap("metro-exit", "0305")
            tearing = TearingReader(card, at_ins=0x54, when="after")
            validator = Validator(load_terminal_profile(terminal_profile_path("bus-flat-capp")),
                                  psam_readers["bus-flat-capp"], tearing, journal=journals["bus-flat-capp"],
                                  clock=clock, rng=rng)
            clock.advance(300)
            validator.tap()                      # torn: the DEBIT's answer is lost
            clock.advance(20)
            validator.tap()                      # back within the window: recovered
            tap("bus-flat")
        if qr_rides:
            account = load_account(find("qr-pki", "test-account"))
            scanner = Validator(load_terminal_profile(terminal_profile_path("bus-qr")),
                                InProcessReader(psams["bus-flat"], name="bus-flat"), card,
                                journal=journals["bus-flat"], clock=clock, rng=rng)
            for i in range(qr_rides):
                clock.advance(300)
                code = account.show(unix_seconds(clock.peek()) - 10, RandomSource.seeded(seed * 100 + i)).to_bytes()
                assert scanner.scan(code).status == "approved"
        for name, journal in journals.items():
            path = folder / f"upload-{name}.{fmt}"
            export(journal, fmt, path)
            day.files.append(path)
    finally:
        for journal in journals.values():
            journal.close()
    return day
