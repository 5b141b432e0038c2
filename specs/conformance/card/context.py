"""The card suite's run state: the session (DUT, key sets as PSAM and issuer host, clock) and one case.

The suite plays the PSAM and the load host itself: from `--keyset` master keys and the card's own EF15
(issuer ID and serial, D2) it derives the card keys, computes MAC1 and MAC2 as a PSAM and a host would,
and checks every MAC1, MAC2 and TAC the card returns. It builds each APDU itself (apdu.CommandApdu or raw
bytes, so it can send malformed ones) and reads the card's state only through APDUs (`read_state`), so
it tests any card behind any reader, not ykt's.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from apdu import tlv
from apdu.command import CommandApdu
from apdu.reader import ReaderError
from apdu.status import ResponseApdu
from keysets import Algorithm, KeySet
from ykt_card.clock import SystemClock, bcd_datetime
from ykt_card.issuance.profile import CardProfile

from ..results import CaseFailed, Exchanged, Inconclusive, resolve
from .dut import CardDut

__all__ = ["AID", "PPSE", "TERMINAL_ID", "CardKeys", "Pending", "Done", "CardSession", "CardCase",
           "lock_of", "read_state", "STATE_ITEMS"]

AID = bytes.fromhex("A000000632010105")
CASH_AID = bytes.fromhex("A000000632010106")
PPSE = b"2PAY.SYS.DDF01"
TERMINAL_ID = bytes.fromhex("112233445566")
"""The terminal number the suite's PSAM role announces (6 bytes, reference 4.1)."""

STATE_ITEMS = ("balance", "online_counter", "offline_counter", "overdraft_limit", "ef18", "ef18_count",
               "ef1e", "ef15", "ef16", "ef17", "lock")
"""What `read_state` can read; plus `capp:NN` for an EF1A record."""


@dataclass(frozen=True)
class CardKeys:
    """One key set of the card (D16): its algorithm, key index and the card keys (diversified, D2)."""

    algorithm: Algorithm
    index: int
    keys: KeySet
    name: str

    def value(self, role: str) -> bytes:
        return self.keys.entry(role).key.value

    def version(self, role: str) -> int:
        return self.keys.entry(role).version

    def sm_key(self, role: str) -> bytes:
        """Secure-messaging key: the role's own key when the set has it, else app maintenance (design)."""
        return self.keys.entry(role if self.keys.has(role) else "app_maintenance").key.value


@dataclass
class Pending:
    """The transaction the last INITIALIZE opened, as the suite (PSAM / host) remembers it."""

    kind: str                  # "load", "purchase" (06) or "capp" (09)
    keys: CardKeys
    amount: int
    terminal: bytes
    counter: int
    random: bytes
    balance: int               # the total INITIALIZE reported (balance + overdraft limit)
    overdraft_limit: int = 0
    mac1: bytes = b""
    cache: list[tuple[int, int, bytes]] = field(default_factory=list)

    @property
    def tx_type(self) -> int:
        return {"load": 0x02, "purchase": 0x06, "capp": 0x09}[self.kind]


@dataclass
class Done:
    """A completed transaction: what GET TRANSACTION PROVE must give back and EF18 must log."""

    kind: str
    tx_type: int
    amount: int
    terminal: bytes
    datetime: bytes
    counter_before: int
    mac2: bytes
    tac: bytes
    terminal_seq: int | None = None
    cache: list[tuple[int, int, bytes]] = field(default_factory=list)

    @property
    def counter_after(self) -> int:
        return self.counter_before + 1

    def as_vars(self) -> dict[str, Any]:
        return {"amount": self.amount, "counter_before": self.counter_before, "counter_after": self.counter_after,
                "type": self.tx_type, "mac2": self.mac2.hex().upper(), "tac": self.tac.hex().upper()}


def lock_of(sw: int) -> str | None:
    """SELECT's status word as the lock state: none, temporary (6283), permanent (9303, 6284)."""
    return {0x9000: "none", 0x6283: "temporary", 0x9303: "permanent", 0x6284: "permanent"}.get(sw)


class CardSession:
    """One run against one card: DUT, card keys per key set, profile, clock, PSAM sequence, identity."""

    def __init__(self, dut: CardDut, keysets: list[KeySet], *, profile: CardProfile | None = None,
                 clock: Any = None, terminal_id: bytes = TERMINAL_ID, ef1e_layout: str = "A") -> None:
        if not keysets:
            raise ValueError("--keyset: the card suite needs the card's key set (one per algorithm)")
        if len({ks.algorithm for ks in keysets}) != len(keysets):
            raise ValueError("--keyset: give at most one key set per algorithm")
        self.dut = dut
        self.masters = list(keysets)
        self.profile = profile
        self.clock = clock or SystemClock()
        self.terminal_id = terminal_id
        self.ef1e_layout = ef1e_layout
        self.keys: list[CardKeys] = []
        self.identity: dict[str, Any] = {}
        self.terminal_seq = 0
        self.ef15 = b""

    # -- start: who is the card, and its keys -----------------------------------------------------
    def start(self) -> None:
        """Power the card, select the application, read EF15 and derive the card keys (D2)."""
        try:
            answer = self.dut.connect()
            fci = ResponseApdu.parse(self.dut.transmit(CommandApdu(0x00, 0xA4, 0x04, 0x00, AID, le=256).to_bytes()))
            ef15 = ResponseApdu.parse(self.dut.transmit(bytes.fromhex("00B0950000")))
        except ReaderError as exc:
            raise Inconclusive(f"the card could not be reached: {exc}") from None
        ident: dict[str, Any] = {"reader": self.dut.name, "spec": self.dut.spec,
                                 "answer_to_reset": answer.hex().upper(), "fci_sw": f"{fci.sw:04X}",
                                 "fci": fci.data.hex().upper()}
        if lock_of(fci.sw) is None:
            raise Inconclusive(f"SELECT of the T-Union application answered {fci.sw:04X}: not a T-Union card")
        raw = ef15.data if ef15.sw == 0x9000 and len(ef15.data) == 30 else _fci_ef15(fci.data)
        if raw is None or len(raw) != 30:
            raise Inconclusive("EF15 (30 bytes) could not be read, neither by READ BINARY nor from the FCI")
        self.ef15 = raw
        ident.update({"ef15": raw.hex().upper(), "issuer_id": raw[0:8].hex().upper(),
                      "card_no": raw[10:20].hex().upper(), "lock": lock_of(fci.sw)})
        issuer, serial = raw[0:8], raw[12:20]
        for ks in self.masters:
            card = ks.card_keys(issuer, serial) if ks.diversification else ks
            index = card.entry("purchase").index
            self.keys.append(CardKeys(ks.algorithm, index, card, ks.name))
        ident["key_sets"] = [{"name": k.name, "algorithm": k.algorithm.value, "index": k.index}
                             for k in self.keys]
        self.identity = ident

    def run_record(self) -> dict[str, Any]:
        """What report.json's `run` adds about this session: start time, key sets (KCVs, never keys)."""
        peek = getattr(self.clock, "peek", None)
        started = peek() if peek is not None else self.clock.now()
        return {"started": started.isoformat(),
                "keyset_kcvs": [{"name": k.name, "algorithm": k.algorithm.value,
                                 "purchase_kcv": k.entry("purchase").kcv} for k in self.masters]}

    def key(self, which: str = "any") -> CardKeys:
        """`any`/`first`: the first key set given; `3des`/`sm4`: that algorithm's; `second`: the other."""
        if which in ("any", "first"):
            return self.keys[0]
        if which == "second":
            if len(self.keys) < 2:
                raise Inconclusive("the case needs two key sets (--keyset twice)")
            return self.keys[1]
        for k in self.keys:
            if k.algorithm.value == which:
                return k
        raise Inconclusive(f"no {which} key set was given (--keyset)")

    def algorithms(self) -> set[str]:
        return {k.algorithm.value for k in self.keys}

    def unknown_key_index(self) -> int:
        """A key index no key set of this run uses (and, with a profile, no slot of the profile)."""
        used = {k.index for k in self.keys}
        if self.profile is not None:
            used |= {s.index for s in self.profile.keys}
        return next(i for i in range(0x7F, 0, -1) if i not in used)

    def now(self) -> bytes:
        """Transaction date-time, 7 BCD bytes, from the run's clock (China time)."""
        t = self.clock.now()
        if isinstance(t, _dt.datetime):
            return bcd_datetime(t)
        raise TypeError("clock must give datetimes")

    def next_terminal_seq(self) -> int:
        self.terminal_seq += 1
        return self.terminal_seq


def _fci_ef15(fci: bytes) -> bytes | None:
    try:
        found = tlv.parse_one(fci).find(0x9F0C)
    except tlv.TlvError:  # a bad FCI is judged by the cases, not here
        return None
    return found.value if found is not None else None


class CardCase:
    """One case's run: its exchange (every APDU, labelled by phase), the pending transaction, saved
    values for `$name` references, and the non-fatal failures found along the way."""

    def __init__(self, session: CardSession) -> None:
        self.s = session
        self.exchange: list[Exchanged] = []
        self.phase = "setup"
        self.pending: Pending | None = None
        self.done: dict[str, Done] = {}
        self.saved: dict[str, Any] = {}
        self.before: dict[str, Any] = {}
        self.after: dict[str, Any] = {}
        self.failures: list[str] = []
        self.last_command: bytes | None = None
        self.originals: dict[tuple[str, int, int], bytes] = {}
        self.written: dict[str, bytes] = {}
        self.tags: tuple[str, ...] = ()

    # -- the wire ---------------------------------------------------------------------------------
    def send(self, capdu: CommandApdu | bytes, *, remember: bool = True) -> ResponseApdu:
        """One command, answer recorded; 61xx is followed with GET RESPONSE (T=0), nothing else is."""
        raw = capdu.to_bytes() if isinstance(capdu, CommandApdu) else bytes(capdu)
        if remember:
            self.last_command = raw
        try:
            rapdu = self.s.dut.transmit(raw)
        except ReaderError as exc:
            self.exchange.append(Exchanged(self.phase, raw, None, str(exc)))
            raise
        self.exchange.append(Exchanged(self.phase, raw, rapdu))
        resp = ResponseApdu.parse(rapdu)
        data = bytearray(resp.data)
        rounds = 0
        while resp.sw1 == 0x61 and rounds < 64:
            rounds += 1
            get = CommandApdu(0x00, 0xC0, 0x00, 0x00, le=resp.sw2 or 256).to_bytes()
            rapdu = self.s.dut.transmit(get)
            self.exchange.append(Exchanged(self.phase, get, rapdu))
            resp = ResponseApdu.parse(rapdu)
            data += resp.data
        return ResponseApdu(bytes(data), resp.sw)

    def power_cycle(self) -> bytes:
        """Field off and on: the card loses its volatile state (selection, sessions, challenge)."""
        self.pending = None
        try:
            return self.s.dut.connect()
        except ReaderError as exc:
            raise Inconclusive(f"the card did not power up again: {exc}") from None

    def select(self) -> int:
        resp = self.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, AID, le=256), remember=False)
        return resp.sw

    def fail(self, reason: str) -> None:
        """A defect found inside an action (a MAC or TAC that does not verify): recorded, run goes on."""
        if reason not in self.failures:
            self.failures.append(reason)

    def variables(self) -> dict[str, Any]:
        prof = self.s.profile
        out: dict[str, Any] = {k: v for k, v in self.before.items() if isinstance(v, int)}
        out.update(self.saved)
        for name, done in self.done.items():
            out[name] = done.as_vars()
        out["card_no"] = self.s.ef15[10:20].hex().upper()
        out["issuer_id"] = self.s.ef15[0:8].hex().upper()
        if prof is not None:
            out.update({"max_balance": prof.max_balance, "profile_overdraft_limit": prof.overdraft_limit})
        return out

    def value(self, v: Any) -> Any:
        return resolve(v, self.variables())

    def done_or_inconclusive(self, name: str) -> Done:
        done = self.done.get(name)
        if done is None:
            raise Inconclusive(f"no completed {name.replace('_', ' ')} in this case to refer to")
        return done

    def require(self, condition: bool, reason: str) -> None:
        if not condition:
            raise CaseFailed(reason)


def _balance(case: CardCase) -> int | None:
    r = case.send(bytes.fromhex("805C000204"), remember=False)
    return int.from_bytes(r.data, "big") if r.sw == 0x9000 and len(r.data) == 4 else None


def _read_newest(case: CardCase, sfi: int) -> bytes | None:
    r = case.send(CommandApdu(0x00, 0xB2, 0x01, (sfi << 3) | 4, le=256), remember=False)
    return r.data if r.sw == 0x9000 else None


def _count(case: CardCase, sfi: int) -> int:
    n = 0
    for record in range(1, 255):
        r = case.send(CommandApdu(0x00, 0xB2, record, (sfi << 3) | 4, le=256), remember=False)
        if r.sw != 0x9000:
            break
        n += 1
    return n


def read_state(case: CardCase, items: set[str] | list[str]) -> dict[str, Any]:
    """Read what `items` name through APDUs only; an item the card does not give is None.

    Counters come from INITIALIZE answers (load of 1 fen, purchase of 0 fen) that are then abandoned
    by a new SELECT, so reading changes nothing the card keeps.
    """
    items = set(items)
    out: dict[str, Any] = {}
    keys = case.s.keys[0]
    sw = case.select()
    out["lock"] = lock_of(sw)
    if "balance" in items:
        out["balance"] = _balance(case)
    initialised = False
    if items & {"online_counter"}:
        data = bytes((keys.index,)) + (1).to_bytes(4, "big") + case.s.terminal_id
        r = case.send(CommandApdu(0x80, 0x50, 0x00, 0x02, data, le=0x10), remember=False)
        out["online_counter"] = int.from_bytes(r.data[4:6], "big") if r.sw == 0x9000 and len(r.data) == 16 else None
        initialised = True
    if items & {"offline_counter", "overdraft_limit"}:
        data = bytes((keys.index,)) + bytes(4) + case.s.terminal_id
        r = case.send(CommandApdu(0x80, 0x50, 0x01, 0x02, data, le=0x0F), remember=False)
        ok = r.sw == 0x9000 and len(r.data) == 15
        out["offline_counter"] = int.from_bytes(r.data[4:6], "big") if ok else None
        out["overdraft_limit"] = int.from_bytes(r.data[6:9], "big") if ok else None
        initialised = True
    if "ef18" in items:
        out["ef18"] = _read_newest(case, 0x18)
    if "ef18_count" in items:
        out["ef18_count"] = _count(case, 0x18)
    if "ef1e" in items:
        out["ef1e"] = _read_newest(case, 0x1E)
    for name, sfi in (("ef15", 0x15), ("ef16", 0x16), ("ef17", 0x17)):
        if name in items:
            r = case.send(CommandApdu(0x00, 0xB0, 0x80 | sfi, 0x00, le=256), remember=False)
            out[name] = r.data if r.sw == 0x9000 else None
    for item in sorted(i for i in items if i.startswith("capp:")):
        record = int(item[5:], 0)
        r = case.send(CommandApdu(0x00, 0xB2, record, (0x1A << 3) | 4, le=256), remember=False)
        out[item] = r.data if r.sw == 0x9000 else None
    if initialised:
        case.select()  # abandons the INITIALIZE the counters came from
    case.pending = None
    return out
