"""The test cards of the terminal suite: Card OS personalities the suite serves to the terminal under test.

A test card is ykt's own card OS (ykt_card.card.cos.TUnionCardOS, the reference behaviour) issued from a
card profile with the suite's `--keyset`s, in a given *personality*:

- by configuration (the card as issued, then set up): `valid`, `expired`, `not_yet_valid`,
  `expires_today` and `starts_today` (the last and the first day of validity),
  `not_interoperable` (EF17 互通卡种 0000), `ed_only` (EF15 application type 01), `not_tunion` (no
  T-Union EP application: SELECT answers 6A82), `blacklisted` (a card number on the terminal's black
  list), `locked` (SELECT answers 6283), `locked_permanent` (9303), `ef1a_locked` (应用锁定标识 01 in
  the metro and bus records), `insufficient_balance`, `max_balance`, `counter_max` (both counters at
  FFFF: INITIALIZE answers 9402), `entered`/`boarded` (an EF1A metro entry or bus boarding written
  by an earlier terminal), `foreign_keys` (its key sets under key indexes no terminal uses: every
  INITIALIZE answers 9403);
- by behaviour (the card OS behind a thin wrapper that bends one exchange): `tearing` (loses power
  inside a command, `before` it writes anything or `after` it committed, so that the answer is lost),
  `bad_mac2` (DEBIT answers a MAC2 with one bit flipped), `bad_tac` (DEBIT or CREDIT answers a TAC
  with one bit flipped), `unexpected_sw` (a command answered by a status word the terminal does not
  expect, the card doing nothing), `malformed` (a command processed but its answer data cut short),
  `slow` (long processing before the answer, as a card sending WTX), `fci_without_ef15` (SELECT's FCI
  without the 9F0C copy of EF15). A tearing card may also give a bad proof afterwards (`proof:
  bad_mac2|bad_tac`: GET TRANSACTION PROVE answers MAC2 or TAC with one bit flipped);
- phone cards (mobile.md M1, M2, 2.2): `phone` (a virtual card: its EP has an extended AID, listed in the
  PPSE; a physical profile becomes virtual with the AID MOT_T_EP ‖ its issuer ID, the "issuer ID ‖ FF"
  convention of 2.1; its SE selects by the whole name only, partial selection answering 6A82, so a
  terminal must read the PPSE to find it), `phone_no_ppse` (the same without a PPSE: the terminal must find the EP by partial
  selection), `phone_wtx` (a phone card that asks for more time, S(WTX) `times` times, before answering
  `command` (every command without one): the in-process DUT then reaches it over the ISO-DEP air link,
  apdu.transport.air, where the terminal's PCD engine must grant the time; through vpcd, pcscd's reader
  driver does).

Every card records what it saw (`TestCard.seen`: command, answer, tap number) whatever the transport
(in-process or served through vpcd), and exposes its end state (`TestCard.view()`), so the suite
judges a terminal by the card's side of the exchange and by what the card keeps.

This is the one module of the suite that reaches into ykt's card internals (the card state, its write
vocabulary, the file objects); the rest of the suite sees a Card OS and these views. Adapt it here when
those internals change.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from apdu.cardos import CardPowerLoss
from apdu.iso14443 import pseudo_atr
from keysets import KeySet
from keysets.randomness import RandomSource
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.state import SFI_CAPP, SFI_HISTORY, SFI_LOG, CardState, Lock
from ykt_card.card.writes import LockWrite, PurseWrite, RecordWrite
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import CardProfile
from ykt_card.layouts import EF1ABus, EF1AMetro
from ykt_card.layouts.names import extended_aid
from ykt_files.schema import Model, problem

__all__ = ["PERSONALITIES", "PHONE_PERSONALITIES", "COMMAND_INS", "CardParams", "Seen", "TestCard", "CardView", "build_card"]

PERSONALITIES = (
    "valid", "expired", "not_yet_valid", "expires_today", "starts_today", "not_interoperable", "ed_only", "not_tunion", "blacklisted",
    "locked", "locked_permanent", "ef1a_locked", "insufficient_balance", "max_balance", "counter_max",
    "entered", "boarded", "foreign_keys", "fci_without_ef15", "tearing", "bad_mac2", "bad_tac",
    "unexpected_sw", "malformed", "slow", "phone", "phone_no_ppse", "phone_wtx",
)
PHONE_PERSONALITIES = ("phone", "phone_no_ppse", "phone_wtx")
COMMAND_INS = {
    "select": 0xA4, "read_binary": 0xB0, "read_record": 0xB2, "get_balance": 0x5C, "initialize": 0x50,
    "update_capp_cache": 0xDC, "debit": 0x54, "credit_load": 0x52, "get_transaction_prove": 0x5A,
    "get_challenge": 0x84, "application_block": 0x1E,
}
"""Commands a behaviour can bend, by name (INS; CLA decides nothing here)."""
OTHER_AID = bytes.fromhex("A000000003869807")
"""The AID a `not_tunion` card carries instead of the T-Union EP's (a MOHURD-style purse)."""


class CardParams(Model):
    """One test card of a case (`cards: {A: {personality: tearing, when: after}}`).

    profile: a card issuance profile (`reference`, `gd-foshan`, …) or `local` / `other` (a Guangdong
    issuer of the terminal's city / of a city that neither is it nor has its discounts recognised).
    algorithm: the key sets the card carries (D16: `dual` = 3DES and SM4). balance: fen or a `$`
    expression (`$fare - 1`). card_type: EF17 byte 10 (hex), the discount key.
    Behaviour: `command` (which command the behaviour bends), `when` (`before`/`after`, tearing),
    `times` (how many times it happens; phone_wtx: S(WTX) per answer), `sw` (unexpected_sw), `delay` (slow,
    seconds).
    History: `station`, `minutes_ago` (entered, boarded).
    """

    personality: Literal[PERSONALITIES] = "valid"  # type: ignore[valid-type]
    profile: str = "reference"
    algorithm: Literal["3des", "sm4", "dual"] = "dual"
    balance: int | str | None = None
    card_type: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{2}$")
    command: Literal[tuple(COMMAND_INS)] | None = None  # type: ignore[valid-type]
    when: Literal["before", "after"] = "after"
    times: int = Field(default=1, ge=1, le=100)
    sw: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{4}$")
    delay: float = Field(default=0.3, ge=0, le=30)
    station: str | None = None
    minutes_ago: int = Field(default=10, ge=0, le=100000)
    proof: Literal["good", "bad_mac2", "bad_tac"] = "good"

    @model_validator(mode="after")
    def _rules(self) -> "CardParams":
        p = self.personality
        if p in ("tearing", "unexpected_sw", "malformed") and self.command is None:
            raise problem(f"a {p} card needs the command it bends (command: debit, …)", at="command")
        if p == "unexpected_sw" and self.sw is None:
            raise problem("an unexpected_sw card needs the status word it answers (sw: 6581)", at="sw")
        if self.proof != "good" and p != "tearing":
            raise problem("a bad proof follows a tear: only a tearing card takes proof", at="proof")
        if p in ("entered", "boarded") and self.station is None:
            raise problem(f"an {p} card needs the station of its entry or boarding", at="station")
        return self


@dataclass
class Seen:
    """One command the card received: its answer (None: the card lost power before answering)."""

    tap: int
    command: bytes
    response: bytes | None
    note: str | None = None

    @property
    def ins(self) -> int:
        return self.command[1] if len(self.command) > 1 else -1

    @property
    def sw(self) -> int | None:
        return int.from_bytes(self.response[-2:], "big") if self.response and len(self.response) >= 2 else None

    @property
    def data(self) -> bytes:
        """The command's data field (short APDUs only, as terminals send)."""
        c = self.command
        if len(c) <= 5:
            return b""
        lc = c[4]
        return c[5:5 + lc]

    @property
    def answer(self) -> bytes:
        return self.response[:-2] if self.response else b""


@dataclass(frozen=True)
class CardView:
    """What the card keeps, read straight from the test card (it is the suite's own card)."""

    balance: int
    overdraft_limit: int
    max_balance: int
    online_counter: int
    offline_counter: int
    lock: str
    capp: dict[int, bytes]
    history: tuple[bytes, ...]          # EF1E records, newest first
    log: tuple[bytes, ...]              # EF18 records, newest first
    proofs: dict[str, tuple[int, int, bytes, bytes]]   # kind -> (type, counter after, MAC2, TAC)

    def item(self, name: str) -> Any:
        """`balance`, `offline_counter`, …, `capp:NN`, `ef1e`, `ef18`, `lock` (for `unchanged`)."""
        if name.startswith("capp:"):
            return self.capp.get(int(name[5:], 0))
        if name == "ef1e":
            return self.history
        if name == "ef18":
            return self.log
        return getattr(self, name)


class TestCard:
    """A test card: the card OS, the behaviour bending its exchanges, and the record of what it saw.

    Implements the Card OS seam (power_on, process, power_off) so that it sits in an in-process reader
    or a vpcd slot alike. `tap` is set by the suite before each presentation.
    """

    __test__ = False  # not a pytest class

    def __init__(self, name: str, params: CardParams, state: CardState, profile: CardProfile,
                 keysets: list[KeySet], rng: RandomSource) -> None:
        self.name = name
        self.params = params
        self.profile = profile
        self.os = TUnionCardOS(state, rng=rng)
        self.seen: list[Seen] = []
        self.tap = 0
        self.bent = 0
        self.powered_on = 0
        self.wtx_requests = 0
        state_ef15 = state.ef15
        self.ef15 = state_ef15
        self.card_keys = {ks.algorithm.value: ks.card_keys(state_ef15[0:8], state_ef15[12:20]) for ks in keysets}

    def __repr__(self) -> str:
        return f"TestCard({self.name!r}, {self.params.personality}, {self.card_no})"

    # -- identity --------------------------------------------------------------------------------
    @property
    def card_no(self) -> str:
        return self.ef15[10:20].hex().upper()

    @property
    def issuer_id(self) -> str:
        return self.ef15[0:8].hex().upper()

    @property
    def card_type(self) -> str:
        """EF17 byte 10 (卡种类型), hex: what the clearing record's card_type must say."""
        return f"{self.os.state.files[0x17].data[10]:02X}"  # type: ignore[union-attr]

    @property
    def atr(self) -> bytes:
        """The PC/SC pseudo-ATR of this contactless card (what pcscd reports for it through vpcd)."""
        return pseudo_atr(self.os.state.ats_historical)

    @property
    def wtx_rounds(self) -> Any:
        """For a card that asks for more time (phone_wtx): `f(capdu) -> n`, the S(WTX) it sends before
        answering that command, for an ISO-DEP link to call; None for a card served straight into a slot."""
        return self._wtx_for if self.params.personality == "phone_wtx" else None

    def _wtx_for(self, capdu: bytes) -> int:
        wanted = self.params.command
        if wanted is not None and (len(capdu) < 2 or capdu[1] != COMMAND_INS[wanted]):
            return 0
        rounds = self.params.times
        self.wtx_requests += rounds
        if self.seen and self.seen[-1].command == bytes(capdu):
            self.seen[-1].note = f"the card asked for more time: {rounds} × S(WTX) before its answer"
        return rounds

    # -- the Card OS seam ------------------------------------------------------------------------
    def power_on(self) -> bytes:
        self.powered_on += 1
        return self.os.power_on()

    def power_off(self) -> None:
        self.os.power_off()

    def process(self, capdu: bytes) -> bytes:
        capdu = bytes(capdu)
        entry = Seen(self.tap, capdu, None)
        self.seen.append(entry)
        behaviour = self._behaviour(capdu)
        try:
            rapdu = behaviour(capdu) if behaviour is not None else self.os.process(capdu)
        except CardPowerLoss:
            entry.note = "the card lost power inside this command (torn): no answer"
            raise
        entry.response = bytes(rapdu)
        return entry.response

    # -- behaviours --------------------------------------------------------------------------------
    def _behaviour(self, capdu: bytes):
        p = self.params
        ins = capdu[1] if len(capdu) > 1 else -1
        if p.personality == "fci_without_ef15":
            return self._short_fci if ins == COMMAND_INS["select"] else None
        if p.personality == "phone" and ins == COMMAND_INS["select"]:
            return self._whole_names_only
        if p.personality == "tearing" and p.proof != "good" and ins == COMMAND_INS["get_transaction_prove"]:
            return self._bad_proof
        if p.personality not in ("tearing", "bad_mac2", "bad_tac", "unexpected_sw", "malformed", "slow"):
            return None
        command = p.command
        if p.personality == "bad_mac2" and command is None:
            command = "debit"
        if command is None and p.personality == "bad_tac":
            if ins not in (COMMAND_INS["debit"], COMMAND_INS["credit_load"]):
                return None
        elif command is not None and ins != COMMAND_INS[command]:
            return None                 # (slow without a command: every command is slow)
        if p.personality != "slow" and self.bent >= p.times:
            return None
        return getattr(self, f"_{p.personality}")

    def _tearing(self, capdu: bytes) -> bytes:
        self.bent += 1
        if self.params.when == "after":
            rapdu = self.os.process(capdu)          # committed (or refused): the answer never leaves
            if rapdu[-2:] != b"\x90\x00":
                return rapdu                          # nothing to tear: a refusal is answered
        self.os.power_off()
        raise CardPowerLoss(f"test card {self.name}: torn {self.params.when} {capdu[:4].hex().upper()}")

    def _bad_mac2(self, capdu: bytes) -> bytes:
        rapdu = self.os.process(capdu)
        if rapdu[-2:] != b"\x90\x00" or len(rapdu) != 10:
            return rapdu
        self.bent += 1
        return rapdu[:7] + bytes((rapdu[7] ^ 0x01,)) + rapdu[8:]   # TAC ‖ MAC2: flip a bit of MAC2

    def _bad_tac(self, capdu: bytes) -> bytes:
        rapdu = self.os.process(capdu)
        if rapdu[-2:] != b"\x90\x00" or len(rapdu) not in (6, 10):
            return rapdu
        self.bent += 1
        return bytes((rapdu[0] ^ 0x01,)) + rapdu[1:]         # TAC first in DEBIT and CREDIT answers

    def _bad_proof(self, capdu: bytes) -> bytes:
        rapdu = self.os.process(capdu)
        if rapdu[-2:] != b"\x90\x00" or len(rapdu) != 10:
            return rapdu
        at = 0 if self.params.proof == "bad_mac2" else 4       # MAC2 ‖ TAC
        return rapdu[:at] + bytes((rapdu[at] ^ 0x01,)) + rapdu[at + 1:]

    def _short_fci(self, capdu: bytes) -> bytes:
        rapdu = self.os.process(capdu)
        if rapdu[-2:] not in (b"\x90\x00", b"\x62\x83") or b"\x9f\x0c\x1e" not in rapdu:
            return rapdu
        from apdu import tlv
        fci = tlv.parse_one(rapdu[:-2])
        aid = fci.find(0x84).value
        version = fci.find(0x9F08)
        prop = _tlv(0x9F08, version.value) if version is not None else b""
        return _tlv(0x6F, _tlv(0x84, aid) + _tlv(0xA5, prop)) + rapdu[-2:]

    def _whole_names_only(self, capdu: bytes) -> bytes:
        name = capdu[5:5 + capdu[4]] if len(capdu) > 5 else b""
        aid = self.os.state.aid
        if len(capdu) > 2 and capdu[2] == 0x04 and name != aid and aid.startswith(name):
            return bytes.fromhex("6A82")             # a start of the AID is no name to this SE
        return self.os.process(capdu)

    def _unexpected_sw(self, capdu: bytes) -> bytes:
        self.bent += 1
        self.os.process(bytes.fromhex("00A4040008") + OTHER_AID + b"\x00")  # the card drops its session too
        return bytes.fromhex(self.params.sw or "6F00")

    def _malformed(self, capdu: bytes) -> bytes:
        rapdu = self.os.process(capdu)
        if rapdu[-2:] != b"\x90\x00" or len(rapdu) < 4:
            return rapdu
        self.bent += 1
        data = rapdu[:-2]
        return data[: len(data) // 2] + rapdu[-2:]

    def _slow(self, capdu: bytes) -> bytes:
        time.sleep(self.params.delay)
        return self.os.process(capdu)

    # -- views --------------------------------------------------------------------------------------
    def view(self) -> CardView:
        state = self.os.state
        purse = state.purse
        capp = dict(state.files[SFI_CAPP].records)  # type: ignore[union-attr]
        history = tuple(state.files[SFI_HISTORY].records())  # type: ignore[union-attr]
        log = tuple(state.files[SFI_LOG].records())  # type: ignore[union-attr]
        proofs = {k: (p.tx_type, p.counter, p.mac2, p.tac) for k, p in state.proofs.items()}
        return CardView(purse.balance, purse.overdraft_limit, purse.max_balance, purse.online_counter,
                        purse.offline_counter, state.lock.value, capp, history, log, proofs)

    def seen_in(self, tap: int) -> list[Seen]:
        return [s for s in self.seen if s.tap == tap]


def _tlv(tag: int, value: bytes) -> bytes:
    head = tag.to_bytes(2 if tag > 0xFF else 1, "big")
    return head + bytes((len(value),)) + value


# ---------------------------------------------------------------------------------------------------
# Building a card

@dataclass
class Terminal:
    """What a personality needs to know of the terminal it is made for (from its profile)."""

    city: str
    line: str | None = None
    operator: str = "0000"
    acceptor: str = "0000000000000000"
    blacklisted: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


def _dates(params: CardParams, profile: CardProfile, today: _dt.date) -> tuple[CardProfile, _dt.date]:
    """The profile (validity years) and start date that give this personality its EF15 dates."""
    if params.personality == "expired":
        start = today.replace(year=today.year - 2) - _dt.timedelta(days=1)
        return dataclasses.replace(profile, valid_years=2), start        # expired yesterday
    if params.personality == "not_yet_valid":
        return profile, today + _dt.timedelta(days=1)                    # valid from tomorrow
    if params.personality == "starts_today":
        return profile, today
    if params.personality == "expires_today":
        return dataclasses.replace(profile, valid_years=2), today.replace(year=today.year - 2)
    return profile, today.replace(year=today.year - 1)


def build_card(name: str, params: CardParams, profile: CardProfile, keysets: list[KeySet], *, today: _dt.date,
               number: int, balance: int, rng: RandomSource, terminal: Terminal,
               now: _dt.datetime | None = None) -> TestCard:
    """Issue the test card `params` describes (card number `number` of the profile's range, unless the
    personality needs a black-listed number) and set it up."""
    p = params.personality
    changes: dict[str, Any] = {}
    if p == "not_interoperable":
        changes["interoperable"] = False
    if p == "ed_only":
        changes["app_type"] = 0x01
    if params.card_type is not None:
        changes["card_type"] = int(params.card_type, 16)
    if p in PHONE_PERSONALITIES and profile.medium != "virtual":
        changes.update(medium="virtual", aid=extended_aid(profile.issuer_id))
    profile = dataclasses.replace(profile, **changes) if changes else profile
    profile, start = _dates(params, profile, today)
    card_no = profile.card_number(number)
    if p == "blacklisted":
        listed = [n for n in terminal.blacklisted if n.startswith(profile.card_no_prefix)]
        if not listed:
            raise LookupError(f"no card number of profile {profile.name} is on the terminal's black list")
        card_no = listed[0]
    algorithm = None if params.algorithm == "dual" else params.algorithm
    chosen = [ks for ks in keysets if algorithm is None or ks.algorithm.value == algorithm]
    balance = min(balance, profile.max_balance)
    state = issue_card(profile, chosen, card_no, start, balance=balance, algorithm=algorithm).state
    _set_up(state, params, terminal, now)
    return TestCard(name, params, state, profile, chosen, rng)


def _set_up(state: CardState, params: CardParams, terminal: Terminal, now: _dt.datetime | None) -> None:
    """What issuance cannot give: locks, counters, records written by earlier terminals, another AID."""
    p = params.personality
    if p == "locked":
        LockWrite(Lock.TEMPORARY).apply(state)
    elif p == "locked_permanent":
        LockWrite(Lock.PERMANENT).apply(state)
    elif p == "counter_max":
        PurseWrite("offline_counter", 0xFFFF).apply(state)
        PurseWrite("online_counter", 0xFFFF).apply(state)
    elif p == "not_tunion":
        state.aid = OTHER_AID
    elif p == "phone_no_ppse":
        state.ppse = ()                  # no PPSE: SELECT 2PAY.SYS.DDF01 answers 6A82
    elif p == "foreign_keys":
        state.key_sets = {0x70 + i: ks for i, ks in enumerate(state.key_sets.values())}
    elif p == "ef1a_locked":
        for rid, record in list(state.files[SFI_CAPP].records.items()):  # type: ignore[union-attr]
            RecordWrite(SFI_CAPP, rid, record[:5] + b"\x01" + record[6:]).apply(state)
    elif p in ("entered", "boarded"):
        when = (now or _dt.datetime.now()) - _dt.timedelta(minutes=params.minutes_ago)
        rid, data = _history_record(p, params.station or "", terminal, when.replace(tzinfo=None))
        RecordWrite(SFI_CAPP, rid, data).apply(state)


def _history_record(personality: str, station: str, terminal: Terminal, when: _dt.datetime) -> tuple[int, bytes]:
    """An EF1A entry (metro 01) or boarding (bus 02) as a terminal of this city wrote it earlier.

    The metro station field is `city ‖ line ‖ station ‖ 0000` and terminals hold `0000 ‖ terminal ID`:
    the layout choices of terminal_sim.records (the reference leaves them to the city, so cases that
    need them are `profile`).
    """
    stamp = when.strftime("%Y-%m-%d %H:%M:%S")
    if personality == "entered":
        fields = {**EF1AMetro.blank(), "trade_serial": "0000000000000001", "status": "01",
                  "in_city": terminal.city, "in_issuer": terminal.acceptor,
                  "in_station": f"{terminal.city}{terminal.line or '0000'}{station}0000",
                  "in_terminal": "0000AABBCCDDEEFF", "in_time": stamp, "max_fare": 0}
        return 0x01, EF1AMetro.encode(fields)
    fields = {**EF1ABus.blank(), "trade_serial": "0000000000000001", "status": "01", "on_city": terminal.city,
              "on_issuer": terminal.acceptor, "on_operator": terminal.operator,
              "on_line": terminal.line or "0000", "on_station": station, "on_bus_no": "X0000001",
              "on_terminal": "0000AABBCCDDEEFF", "on_time": stamp, "mark_amount": 0, "direction": "AB"}
    return 0x02, EF1ABus.encode(fields)
