"""The simulated online host of a load (圈存) terminal: it holds the load and TAC master keys (ref 3.2, 5.7).

A load is online because only the issuer's host may hold DLK: the terminal forwards what INITIALIZE FOR
LOAD answered (balance, online counter, random, MAC1), the host derives the card's load key from the
master (diversified by issuer ID and serial, D2), checks MAC1, and answers its date-time and MAC2; after
CREDIT FOR LOAD the host checks the card's TAC with the TAC master. The terminal never sees a key.

The host is stateless: every answer is a pure function of the request, the key set and the host clock,
so a request can be checked again later (recovery of a torn load recomputes MAC2 and the TAC the same
way). Key values stay inside `keysets.SecretKey`; the repr shows the key sets' KCVs only.
"""
from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from ykt_card.clock import Clock, SystemClock, bcd_datetime
from keysets import Algorithm, KeySet, LoadSession, diversify, load_tac
from keysets.keyset import KeySetError, Use

__all__ = ["LoadRequest", "LoadAuthorisation", "LoadRefused", "LoadHost"]


class LoadRefused(Exception):
    """The host refuses a load; `reason` says why in one line (never a key value)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoadRequest:
    """What the terminal sends the host after INITIALIZE FOR LOAD (reference 5.7).

    `balance` is the figure INITIALIZE reported (balance plus overdraft limit, ref 1.4): it is what
    MAC1 and the TAC cover. `issuer_id` and `serial8` are EF15 bytes 0..7 and 12..19.
    """

    issuer_id: bytes
    serial8: bytes
    key_index: int
    key_version: int
    algorithm: Algorithm
    balance: int
    online_counter: int
    random: bytes
    mac1: bytes
    amount: int
    terminal_id: bytes

    def __post_init__(self) -> None:
        for name, size in (("issuer_id", 8), ("serial8", 8), ("random", 4), ("mac1", 4), ("terminal_id", 6)):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != size:
                raise ValueError(f"{name}: must be {size} bytes")
        for name, high in (("key_index", 0xFF), ("key_version", 0xFF), ("balance", 0xFFFFFFFF),
                           ("online_counter", 0xFFFF), ("amount", 0xFFFFFFFF)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
                raise ValueError(f"{name}: {value!r} out of range 0..{high}")
        if not isinstance(self.algorithm, Algorithm):
            raise ValueError("algorithm: must be a keysets.Algorithm")


@dataclass(frozen=True)
class LoadAuthorisation:
    """The host's answer: its date-time (7 BCD bytes) and MAC2, both sent to the card in CREDIT FOR LOAD."""

    host_datetime: bytes
    mac2: bytes


class LoadHost:
    """An issuer host holding TEST master key sets (3DES and/or SM4); `clock` dates the loads."""

    def __init__(self, keysets: KeySet | Sequence[KeySet], clock: Clock | None = None) -> None:
        sets = (keysets,) if isinstance(keysets, KeySet) else tuple(keysets)
        if not sets:
            raise KeySetError("load host", None, "at least one key set is needed")
        for ks in sets:
            if not isinstance(ks, KeySet):
                raise TypeError(f"load host: {type(ks).__name__} is not a KeySet")
            ks.require(Use.SIMULATION)
            for role in ("load", "tac"):
                ks.entry(role)  # a missing role is refused here, naming the file
            if not ks.diversification:
                raise KeySetError(ks.source, "diversification", "a load host holds master keys; must not be []")
        self._keysets = sets
        self.clock: Clock = clock if clock is not None else SystemClock()

    def __repr__(self) -> str:
        kcvs = ", ".join(f"{ks.algorithm.value} load KCV {ks.entry('load').kcv}" for ks in self._keysets)
        return f"LoadHost({kcvs})"

    # -- keys ------------------------------------------------------------------------------------
    def _keyset(self, req: LoadRequest) -> KeySet:
        for ks in self._keysets:
            entry = ks.entry("load")
            if ks.algorithm is req.algorithm and entry.index == req.key_index and entry.version == req.key_version:
                return ks
        raise LoadRefused(f"no {req.algorithm.value} load key with index {req.key_index:02X} and version "
                          f"{req.key_version:02X} at this host")

    def _card_key(self, ks: KeySet, role: str, req: LoadRequest) -> bytes:
        return diversify(ks.algorithm, ks.entry(role).key.value, ks.factors(req.issuer_id, req.serial8))

    def _session(self, req: LoadRequest) -> tuple[KeySet, LoadSession]:
        ks = self._keyset(req)
        dlk = self._card_key(ks, "load", req)
        return ks, LoadSession.derive(ks.algorithm, dlk, req.random, req.online_counter)

    # -- the two steps of 5.7 --------------------------------------------------------------------
    def authorise(self, req: LoadRequest) -> LoadAuthorisation:
        """Check MAC1 (SESLK from the card's DLK), then date the load and answer MAC2."""
        if req.amount == 0:
            raise LoadRefused("amount 0: nothing to load")
        ks, session = self._session(req)
        expected = session.mac1(req.balance, req.amount, req.terminal_id)
        if not hmac.compare_digest(expected, req.mac1):
            raise LoadRefused("MAC1 does not verify: the card did not prove the request")
        when = bcd_datetime(self.clock.now())
        return LoadAuthorisation(when, session.mac2(req.amount, req.terminal_id, when))

    def expected_mac2(self, req: LoadRequest, host_datetime: bytes) -> bytes:
        """MAC2 of an earlier authorisation, recomputed (recovery compares a card's proof with it)."""
        _, session = self._session(req)
        return session.mac2(req.amount, req.terminal_id, host_datetime)

    def verify_mac2(self, req: LoadRequest, host_datetime: bytes, mac2: bytes) -> bool:
        """Constant-time check that a card's proof carries the MAC2 this host sent for that load."""
        return hmac.compare_digest(self.expected_mac2(req, host_datetime), bytes(mac2))

    def verify_tac(self, req: LoadRequest, host_datetime: bytes, tac: bytes) -> bool:
        """The card's TAC over balance after, online counter before, amount, 02, terminal, date-time."""
        ks = self._keyset(req)
        dtk = self._card_key(ks, "tac", req)
        expected = load_tac(ks.algorithm, dtk, req.balance + req.amount, req.online_counter, req.amount,
                            req.terminal_id, host_datetime)
        return hmac.compare_digest(expected, bytes(tac))
