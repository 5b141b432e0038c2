"""One run of the terminal suite (`TerminalSession`) and one case's run (`TerminalCase`, its taps).

The session knows the DUT, the run's key sets (to issue test cards and to check TACs as the issuer),
the ICS (what the DUT claims), the clock, and the terminal profiles of the modes it claims (the shipped
profiles the ICS names: city, flow, fares, lists, recovery window, EF1E layout). What a case expects is
computed here from those profiles by the suite's own arithmetic, never by calling the validator's code.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from keysets import KeySet
from keysets.randomness import RandomSource
from specs.catalog import SHELVES, card_profile_path, terminal_profile_path
from ykt_card.clock import SystemClock
from ykt_card.issuance.profile import CardProfile, load_card_profile

from ..results import Exchanged, Inconclusive, resolve
from ..schema import Ics
from .dut import TapResult, TerminalDut
from .personalities import CardParams, CardView, Seen, TestCard, Terminal, build_card

__all__ = ["TerminalSession", "TerminalCase", "TapRecord", "command_name", "AMOUNT_FLOWS", "FLAT_FARE_FLOWS",
           "MODE_GROUPS", "round_half_up"]

AMOUNT_FLOWS = ("flat", "flat-capp", "ferry", "taxi")
FLAT_FARE_FLOWS = ("flat", "flat-capp", "ferry")
DEFAULT_TAXI_AMOUNT = 1500
DEFAULT_LOAD_AMOUNT = 1000
DEFAULT_BALANCE = 10000
DEFAULT_WINDOW = 120
"""D12: a torn purchase is recovered when the same card returns within 120 s (configurable)."""

MODE_GROUPS = {
    "purchase": lambda p: p.flow != "load",
    "plain": lambda p: p.flow != "load" and p.transaction_type == "06",
    "composite": lambda p: p.flow != "load" and p.transaction_type == "09",
    "flat_fare": lambda p: p.flow in AMOUNT_FLOWS,
    "ef1a": lambda p: p.ef1a_record is not None,
}
"""Names a case's `applies.modes` may use besides the flows (flat, flat-capp, segment, metro-entry,
metro-exit, ferry, taxi, load): they match terminal profiles by what the profile does."""


def round_half_up(fare: int, percent: int) -> int:
    """fare × percent / 100, rounded half up to whole fen (四舍五入)."""
    return (fare * percent + 50) // 100


def command_name(c: bytes) -> str:
    """The reference's name of a command APDU a card receives (section 2)."""
    if len(c) < 4:
        return "malformed"
    cla, ins, p1 = c[0], c[1], c[2]
    if ins == 0x50:
        return {0x00: "initialize_load", 0x01: "initialize_purchase", 0x03: "initialize_capp"}.get(p1, "initialize")
    if ins == 0xDC:
        return "update_capp_cache" if cla == 0x80 else "update_record_sm"
    names = {0xA4: "select", 0xB0: "read_binary", 0xB2: "read_record", 0x5C: "get_balance", 0x20: "verify",
             0x52: "credit_load", 0x54: "debit", 0x5A: "get_transaction_prove", 0x84: "get_challenge",
             0x82: "external_authenticate", 0x1E: "application_block", 0x18: "application_unblock",
             0xD6: "update_binary_sm", 0xC0: "get_response", 0xD4: "write_key", 0x16: "card_block"}
    return names.get(ins, f"INS {ins:02X}")


@dataclass
class TapRecord:
    """One tap of a case: which card, what it saw, its state before and after, the terminal's outcome."""

    number: int
    card: str
    amount: int | None
    before: CardView
    after: CardView
    result: TapResult
    seen: list[Seen]
    when: str

    @property
    def outcome(self) -> dict[str, Any] | None:
        return self.result.outcome

    def commands(self) -> list[str]:
        return [command_name(s.command) for s in self.seen]

    def find(self, name: str, nth: int = 1) -> Seen | None:
        """The nth command of that name (`initialize` matches all three INITIALIZEs)."""
        hits = [s for s in self.seen if command_name(s.command) == name
                or (name == "initialize" and command_name(s.command).startswith("initialize"))]
        return hits[nth - 1] if len(hits) >= nth else None


class TerminalSession:
    """One run against one terminal: DUT, key sets, ICS, clock, modes and their profiles, card numbers."""

    def __init__(self, dut: TerminalDut, keysets: list[KeySet], ics: Ics | None, clock: Any, *,
                 seed: int | None = None, terminal_id: bytes = bytes.fromhex("112233445566"),
                 real_time: bool = False) -> None:
        if not keysets:
            raise ValueError("--keyset: the terminal suite issues its test cards with the card key sets "
                             "(one per algorithm)")
        if len({ks.algorithm for ks in keysets}) != len(keysets):
            raise ValueError("--keyset: give at most one key set per algorithm")
        self.dut = dut
        self.keysets = list(keysets)
        self.ics = ics
        self.clock = clock if clock is not None else SystemClock()
        self.seed = seed
        self.rng = RandomSource(seed) if seed is not None else RandomSource()
        self.terminal_id = terminal_id
        self.real_time = real_time
        self.identity: dict[str, Any] = {}
        self._profiles: dict[str, Any] = {}
        self._card_profiles: dict[str, CardProfile] = {}
        self._numbers = 100
        self.modes = list(ics.modes) if ics is not None and ics.modes else list(dut.default_modes)
        if not self.modes:
            raise ValueError(f"--ics: the ICS of {dut.spec} lists no modes (terminal profile names, e.g. bus-flat)")
        for mode in self.modes:
            self.profile(mode)

    # -- what the DUT is and claims ---------------------------------------------------------------
    def profile(self, mode: str) -> Any:
        """The shipped terminal profile a mode names (`bus-flat`, …) or a profile path."""
        if mode not in self._profiles:
            from terminal_sim.profile import load_terminal_profile
            try:
                self._profiles[mode] = load_terminal_profile(terminal_profile_path(mode))
            except (LookupError, ValueError) as exc:
                raise ValueError(f"mode {mode!r}: {exc}") from None
        return self._profiles[mode]

    def card_profile(self, name: str) -> CardProfile:
        if name not in self._card_profiles:
            self._card_profiles[name] = load_card_profile(card_profile_path(name))
        return self._card_profiles[name]

    def algorithms(self) -> set[str]:
        """Algorithms the run can test: key sets given, and (with an ICS) claimed by the DUT."""
        have = {ks.algorithm.value for ks in self.keysets}
        if self.ics is not None and self.ics.algorithms:
            have &= set(self.ics.algorithms)
        return have

    def features(self, mode: str) -> set[str]:
        """Optional features the DUT claims: the ICS's list; for `ykt` without an ICS, the profile's."""
        if self.ics is not None:
            return set(self.ics.optional)
        p = self.profile(mode)
        out = {"recovery", "clock"}
        if p.flow != "load":
            out.add("blacklist")            # ykt's load terminal does not check the black list
        if p.discounts.pay_percent:
            out.add("discounts")
        if p.transaction_type == "09":
            out.add("capp")
        if p.flow == "load":
            out.add("load")
        return out

    def keeps_psam_session(self) -> bool:
        if self.ics is not None and self.ics.keeps_psam_session is not None:
            return self.ics.keeps_psam_session
        return self.dut.kind != "command"

    def accepts_suite_psam(self) -> bool:
        """Whether a case may give the DUT a PSAM the suite controls (ICS suite_psam; by default the
        in-process DUTs that do not bring their own PSAM). A program run per tap has its PSAM in its
        command line: never."""
        if self.dut.kind == "command":
            return False
        if self.ics is not None and self.ics.suite_psam is not None:
            return self.ics.suite_psam
        return self.ics is None or self.ics.psam is None

    def takes_qr(self, mode: str) -> bool:
        """Whether the suite can show this terminal QR codes: an in-process DUT (a program run per tap
        has no scanner the suite reaches) whose mode's profile has a qr table, and, with an ICS, that
        claims the optional feature `qr`."""
        if self.dut.kind == "command" or self.profile(mode).qr is None:
            return False
        return self.ics is None or "qr" in self.ics.optional

    def accepts_suite_journal(self) -> bool:
        """Whether a case may give the DUT a journal the suite controls (ICS suite_journal; by default
        ykt's in-process validator only: the seam lets another terminal keep its own journal)."""
        if self.dut.kind == "command":
            return False
        if self.ics is not None and self.ics.suite_journal is not None:
            return self.ics.suite_journal
        return self.dut.kind == "ykt"

    def exact_time(self) -> bool:
        """Whether the suite sets the terminal's time to the second (not so with --real-time)."""
        return "clock" in self.dut.features

    def list_version(self, mode: str) -> str | None:
        if self.ics is not None and self.ics.list_version is not None:
            return self.ics.list_version
        from terminal_sim.lists import load_blacklist
        try:
            return load_blacklist(self.profile(mode).blacklist).version
        except Exception:  # noqa: BLE001 - no readable list: no version to expect
            return None

    def can_pass_time(self) -> bool:
        """Whether time can pass in a case: an injectable clock, a DUT that takes one, or --real-time."""
        return "clock" in self.dut.features or self.real_time

    def window(self, mode: str) -> int:
        if self.ics is not None and self.ics.recovery_window is not None:
            return self.ics.recovery_window
        return int(getattr(self.profile(mode), "recovery_window", DEFAULT_WINDOW))

    def flat_fare(self, mode: str) -> int | None:
        p = self.profile(mode)
        if self.ics is not None and self.ics.fare is not None:
            return self.ics.fare
        return p.fares.flat

    def blacklisted(self, mode: str) -> tuple[str, ...]:
        if self.ics is not None and self.ics.blacklisted_cards:
            return tuple(self.ics.blacklisted_cards)
        from terminal_sim.lists import load_blacklist
        try:
            return tuple(sorted(load_blacklist(self.profile(mode).blacklist).cards))
        except Exception:  # noqa: BLE001 - no readable list: no black-listed card to offer
            return ()

    # -- start and report ---------------------------------------------------------------------------
    def start(self) -> None:
        ident = {"dut": self.dut.spec, "kind": self.dut.kind, "modes": list(self.modes),
                 "spec": self.dut.spec}
        ident.update({k: v for k, v in self.dut.open(self).items() if v is not None})
        self.identity = ident

    def run_record(self) -> dict[str, Any]:
        peek = getattr(self.clock, "peek", None)
        started = peek() if peek is not None else self.clock.now()
        return {"started": started.isoformat(), "modes": list(self.modes), "real_time": self.real_time,
                "keyset_kcvs": [{"name": k.name, "algorithm": k.algorithm.value,
                                 "purchase_kcv": k.entry("purchase").kcv} for k in self.keysets]}

    def today(self) -> _dt.date:
        peek = getattr(self.clock, "peek", None)
        return (peek() if peek is not None else self.clock.now()).date()

    def next_number(self) -> int:
        self._numbers += 1
        return self._numbers

    # -- what a tap should cost (the suite's own arithmetic over the profile) ----------------------
    def discounted(self, mode: str, fare: int, card_type: str, card_city: str) -> int:
        p = self.profile(mode)
        d = p.discounts
        if card_city != p.city and card_city not in d.recognised_cities:
            return fare
        return round_half_up(fare, d.pay_percent.get(card_type.upper(), 100))

    def pair_fare(self, mode: str, a: str, b: str) -> int | None:
        table = self.profile(mode).fares.table
        if table is None:
            return None
        if a == b:
            return table.same_station
        return table.pairs.get(frozenset((a, b)))

    def fare(self, mode: str) -> int | None:
        """What one tap of a fresh, full-fare card costs in this mode (None: not known)."""
        p = self.profile(mode)
        if p.flow in FLAT_FARE_FLOWS:
            return self.flat_fare(mode)
        if p.flow == "taxi":
            return self.taxi_amount()
        if p.flow in ("metro-entry", "segment"):
            return 0                                   # entry and boarding charge nothing (5.3, 5.4)
        if p.flow == "metro-exit":
            return p.fares.max_fare                    # no entry on a fresh card
        return None

    def taxi_amount(self) -> int:
        return self.ics.fare if self.ics is not None and self.ics.fare is not None else DEFAULT_TAXI_AMOUNT

    def variables(self, mode: str) -> dict[str, Any]:
        p = self.profile(mode)
        out: dict[str, Any] = {"window": self.window(mode), "load": DEFAULT_LOAD_AMOUNT,
                               "fare": self.fare(mode), "max_fare": p.fares.max_fare,
                               "max_balance": self.card_profile("reference").max_balance,
                               "city": p.city, "line": p.line, "station": p.station,
                               "tx_type": p.transaction_type, "key_index": p.key_index,
                               "mode": p.mode, "operator": p.operator, "vehicle": p.vehicle,
                               "direction": p.direction if p.flow == "segment" else None,
                               "list_version": self.list_version(mode)}
        fare = self.fare(mode)
        if fare is not None:
            out["fare_for"] = {t: self.discounted(mode, fare, t, p.city) for t in ("01", "02", "03", "04")}
        table = p.fares.table
        if table is not None and p.station is not None:
            out["fare_from"] = {s: self.pair_fare(mode, s, p.station) for s in table.stations}
            terminus = table.stations[-1] if p.direction == "AB" else table.stations[0]
            out["mark"] = self.pair_fare(mode, p.station, terminus)
        if p.load is not None:
            out["load"] = p.load.amounts[0] if p.load.amounts else DEFAULT_LOAD_AMOUNT
        return out


class TerminalCase:
    """One case's run: its mode, its test cards, its taps, the exchange, and failures found so far."""

    def __init__(self, session: TerminalSession, mode: str) -> None:
        self.s = session
        self.mode = mode
        self.profile = session.profile(mode)
        self.cards: dict[str, TestCard] = {}
        self.psam: Any = None                   # the case's test PSAM (specs.conformance.terminal.psams)
        self.qr: Any = None                     # the case's QR code maker (specs.conformance.terminal.qr_codes)
        self.initial: dict[str, CardView] = {}
        self.taps: list[TapRecord] = []
        self.exchange: list[Exchanged] = []
        self.failures: list[str] = []
        self.phase = "setup"
        self.vars: dict[str, Any] = session.variables(mode)

    # -- cards --------------------------------------------------------------------------------------
    def terminal_facts(self) -> Terminal:
        p = self.profile
        return Terminal(city=p.city, line=p.line, operator=p.operator, acceptor=p.acceptor or "0" * 16,
                        blacklisted=self.s.blacklisted(self.mode))

    def _card_profile_name(self, wanted: str) -> str:
        """`local` / `other`: a shipped Guangdong issuer of the terminal's city / of an unrelated city."""
        if wanted not in ("local", "other"):
            return wanted
        p = self.profile
        for name in SHELVES["card-profile"].names():
            if not name.startswith("gd-"):
                continue
            city = self.s.card_profile(name).city
            if wanted == "local" and city == p.city:
                return name
            if wanted == "other" and city != p.city and city not in p.discounts.recognised_cities:
                return name
        raise Inconclusive(f"no shipped card profile is {wanted} to a terminal of city {p.city}")

    def add_card(self, name: str, params: CardParams) -> TestCard:
        profile = self.s.card_profile(self._card_profile_name(params.profile))
        default = {"insufficient_balance": "$fare - 1", "max_balance": profile.max_balance}.get(
            params.personality, DEFAULT_BALANCE)
        balance = self.value(params.balance if params.balance is not None else default)
        if not isinstance(balance, int) or balance < 0:
            raise Inconclusive(f"card {name}: balance {balance!r} is not a number of fen")
        if params.personality == "not_interoperable" and params.profile == "reference":
            profile = self.s.card_profile(self._card_profile_name("other"))
        peek = getattr(self.s.clock, "peek", None)
        now = peek() if peek is not None else self.s.clock.now()
        number = self.s.next_number()
        try:
            card = build_card(name, params, profile, self.s.keysets, today=self.s.today(),
                              number=number, balance=balance, rng=self.s.rng.fork(f"card {number}"),
                              terminal=self.terminal_facts(), now=now)
        except LookupError as exc:
            raise Inconclusive(f"card {name}: {exc}") from None
        self.cards[name] = card
        self.initial[name] = card.view()
        self.vars[name] = dataclasses.asdict(self.initial[name]) | {"card_no": card.card_no}
        return card

    def card(self, name: str) -> TestCard:
        if name not in self.cards:
            raise Inconclusive(f"the case uses card {name!r} but does not describe it under `cards`")
        return self.cards[name]

    # -- values ---------------------------------------------------------------------------------------
    def value(self, v: Any) -> Any:
        return resolve(v, self.vars)

    def tap_record(self, ref: int | str) -> TapRecord:
        if not self.taps:
            raise Inconclusive("the case made no tap to judge")
        if ref == "last":
            return self.taps[-1]
        if not isinstance(ref, int) or not 1 <= ref <= len(self.taps):
            raise Inconclusive(f"tap {ref}: the case made {len(self.taps)} taps")
        return self.taps[ref - 1]

    def outcome(self, ref: int | str) -> dict[str, Any]:
        tap = self.tap_record(ref)
        if tap.outcome is None:
            raise Inconclusive(f"tap {tap.number} ({tap.card}): the terminal gave no outcome "
                               f"({tap.result.problem})")
        return tap.outcome

    def fail(self, reason: str) -> None:
        if reason not in self.failures:
            self.failures.append(reason)
