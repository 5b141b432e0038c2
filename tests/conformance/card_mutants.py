"""Named mutants of ykt's card: each a small subclass of TUnionCardOS with one planted defect.

The card suite must catch every one of them with a case whose reason names the defect
(tests/conformance/test_card_mutants.py). This is the one module that reaches into the card OS's
internals (handlers, the pending transaction, the persistent store): adapt it here when they change.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from apdu.command import CommandApdu
from apdu.status import CardError
from ykt_card.card import cos
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.state import PersistentStore
from ykt_card.card.writes import ProofWrite, PurseWrite, RecordWrite, RingWrite, SlotWrite, Write

Rewrite = Callable[[list[Write]], list[list[Write]]]


class MutantStore(PersistentStore):
    """The card's store with a hook that may rewrite (drop, change, split) the writes of a commit."""

    __slots__ = ("rewrite",)

    def __init__(self, base: PersistentStore) -> None:
        super().__init__(base.state, base.fault, base.on_commit)
        self.rewrite: Rewrite | None = None

    def commit(self, writes) -> None:
        if self.rewrite is None:
            return super().commit(writes)
        for group in self.rewrite(list(writes)):
            super().commit(group)


class Mutant(TUnionCardOS):
    name = "base"
    defect = ""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.store = MutantStore(self.store)

    @contextlib.contextmanager
    def rewriting(self, rewrite: Rewrite) -> Iterator[None]:
        self.store.rewrite = rewrite
        try:
            yield
        finally:
            self.store.rewrite = None


@contextlib.contextmanager
def patched(name: str, value) -> Iterator[None]:
    """Replace a name the card OS module uses (a crypto function or class) for one call."""
    old = getattr(cos, name)
    setattr(cos, name, value)
    try:
        yield
    finally:
        setattr(cos, name, old)


def _drop(pred: Callable[[Write], bool]) -> Rewrite:
    return lambda writes: [[w for w in writes if not pred(w)]]


def _purse(field: str) -> Callable[[Write], bool]:
    return lambda w: isinstance(w, PurseWrite) and w.field == field


def _log(w: Write) -> bool:
    return isinstance(w, (SlotWrite, RingWrite)) and w.sfi == 0x18


def _proof(w: Write) -> bool:
    return isinstance(w, ProofWrite)


# -- the mutants ----------------------------------------------------------------------------------------

class _AlwaysMac1(cos.PurchaseSession):
    def verify_mac1(self, *args) -> bool:  # type: ignore[override]
        return True


class Mac1Unchecked(Mutant):
    name, defect = "mac1_unchecked", "DEBIT accepts any MAC1"

    def debit(self, cmd):
        with patched("PurchaseSession", _AlwaysMac1):
            return super().debit(cmd)


class Mac2Unchecked(Mutant):
    name, defect = "load_mac2_unchecked", "CREDIT FOR LOAD accepts any MAC2"

    def credit_for_load(self, cmd):
        pending = self._live_pending
        if isinstance(pending, cos._OpenLoad):
            real = pending.session

            class Lenient:
                def __getattr__(self, item):
                    return getattr(real, item)

                def verify_mac2(self, *args) -> bool:
                    return True
            pending.session = Lenient()  # type: ignore[assignment]
        return super().credit_for_load(cmd)


class OfflineCounterFrozen(Mutant):
    name, defect = "offline_counter_not_incremented", "a purchase does not increment the offline counter"

    def debit(self, cmd):
        with self.rewriting(_drop(_purse("offline_counter"))):
            return super().debit(cmd)


class OnlineCounterFrozen(Mutant):
    name, defect = "online_counter_not_incremented", "a load does not increment the online counter"

    def credit_for_load(self, cmd):
        with self.rewriting(_drop(_purse("online_counter"))):
            return super().credit_for_load(cmd)


class BalanceFirst(Mutant):
    name, defect = "balance_committed_before_record", "DEBIT commits the balance before (apart from) the log"

    def debit(self, cmd):
        def split(writes):
            first = [w for w in writes if _purse("balance")(w)]
            return [first, [w for w in writes if w not in first]]
        with self.rewriting(split):
            return super().debit(cmd)


class PurchaseProofLost(Mutant):
    name, defect = "proof_not_kept", "the card keeps no proof of its purchases"

    def debit(self, cmd):
        with self.rewriting(_drop(_proof)):
            return super().debit(cmd)


class LoadProofLost(Mutant):
    name, defect = "load_proof_not_kept", "the card keeps no proof of its loads"

    def credit_for_load(self, cmd):
        with self.rewriting(_drop(_proof)):
            return super().credit_for_load(cmd)


class SmMacUnchecked(Mutant):
    name, defect = "sm_mac_unchecked", "secure-messaging commands accept any MAC"

    def _check_sm(self, cmd, keys):
        if self._live_challenge is None:
            raise CardError(0x6984)
        return cmd.data[:-4]


class WrongPurchaseTac(Mutant):
    name, defect = "wrong_purchase_tac", "the purchase TAC leaves out the terminal sequence"

    def debit(self, cmd):
        from keysets import purchase_tac
        with patched("purchase_tac", lambda alg, dtk, amount, t, term, seq, when:
                     purchase_tac(alg, dtk, amount, t, term, seq ^ 0x01, when)):
            return super().debit(cmd)


class WrongLoadTac(Mutant):
    name, defect = "wrong_load_tac", "the load TAC uses the online counter after the load"

    def credit_for_load(self, cmd):
        from keysets import load_tac
        with patched("load_tac", lambda alg, dtk, bal, ctr, amount, term, when:
                     load_tac(alg, dtk, bal, ctr + 1, amount, term, when)):
            return super().credit_for_load(cmd)


class Overdraws(Mutant):
    name, defect = "insufficient_balance_not_enforced", "purchases beyond the balance are accepted (no 9401)"

    def _allow(self, fn, cmd):
        purse = self.state.purse
        saved = purse.overdraft_limit
        purse.overdraft_limit = 10**7
        try:
            return fn(cmd)
        finally:
            purse.overdraft_limit = saved

    def initialize(self, cmd):
        if cmd.p1 == 0x00:
            return super().initialize(cmd)
        out = self._allow(super().initialize, cmd)
        limit = self.state.purse.overdraft_limit
        total = (self.state.purse.balance + limit) & 0xFFFFFFFF
        return total.to_bytes(4, "big") + out[4:6] + limit.to_bytes(3, "big") + out[9:]

    def debit(self, cmd):
        return self._allow(super().debit, cmd)


class CappCommittedEarly(Mutant):
    name, defect = "capp_cache_committed_without_debit", "UPDATE CAPP DATA CACHE writes EF1A at once"

    def update_capp_data_cache(self, cmd):
        out = super().update_capp_data_cache(cmd)
        if cmd.p2 >> 3 == 0x1A:
            self.store.commit([RecordWrite(0x1A, cmd.p1, cmd.data)])
        return out


class PendingSurvives(Mutant):
    name = "capp_transaction_survives_other_commands"
    defect = "a command between the CAPP writes and DEBIT does not abandon them"

    def process(self, capdu: bytes) -> bytes:
        kept = self._pending
        out = super().process(capdu)
        if self._pending is None and kept is not None and capdu[1:2] not in (b"\x54", b"\x52", b"\x50", b"\xA4"):
            self._pending = kept
        return out


class ChallengeReused(Mutant):
    name, defect = "challenge_reused", "a GET CHALLENGE random stays valid for later commands"

    def process(self, capdu: bytes) -> bytes:
        kept = self._challenge
        out = super().process(capdu)
        if self._challenge is None and kept is not None:
            self._challenge = kept
        return out


class WrongMac2(Mutant):
    name, defect = "wrong_mac2", "DEBIT answers a MAC2 the PSAM cannot verify"

    def debit(self, cmd):
        out = super().debit(cmd)
        return out[:4] + bytes((out[4] ^ 0x80,)) + out[5:]


class LogsCounterBefore(Mutant):
    name, defect = "ef18_counter_before_increment", "EF18 logs the counter before the increment (D4)"

    def credit_for_load(self, cmd):
        def rewrite(writes):
            out = []
            for w in writes:
                if isinstance(w, SlotWrite) and w.sfi == 0x18:
                    rec = w.data
                    w = SlotWrite(0x18, w.slot, (int.from_bytes(rec[0:2], "big") - 1).to_bytes(2, "big") + rec[2:])
                out.append(w)
            return [out]
        with self.rewriting(rewrite):
            return super().credit_for_load(cmd)


class NoLog(Mutant):
    name, defect = "ef18_not_written", "purchases are not logged in EF18"

    def debit(self, cmd):
        with self.rewriting(_drop(_log)):
            return super().debit(cmd)


class ChargesTwice(Mutant):
    name, defect = "debit_charges_twice", "DEBIT takes the amount twice from the balance"

    def debit(self, cmd):
        pending = self._live_pending
        amount = pending.amount if pending is not None else 0

        def rewrite(writes):
            return [[PurseWrite("balance", w.value - amount) if _purse("balance")(w) else w for w in writes]]
        with self.rewriting(rewrite):
            return super().debit(cmd)


class NoMaximum(Mutant):
    name, defect = "load_beyond_max_balance", "loads are not limited by the maximum balance"

    def initialize(self, cmd):
        purse = self.state.purse
        saved = purse.max_balance
        purse.max_balance = 0xFFFFFFFF
        try:
            return super().initialize(cmd)
        finally:
            purse.max_balance = saved


class LockIgnored(Mutant):
    name, defect = "locked_application_transacts", "a temporarily locked card still purchases and loads"

    def _require_app(self, temp_ok, file_cmd=False):
        return super()._require_app(True, file_cmd)


class AnyKeyIndex(Mutant):
    name, defect = "unknown_key_index_accepted", "INITIALIZE answers for key indexes the card does not hold"

    def initialize(self, cmd):
        if cmd.data and cmd.data[0] not in self.state.key_sets and self.state.key_sets:
            first = next(iter(self.state.key_sets))
            cmd = CommandApdu(cmd.cla, cmd.ins, cmd.p1, cmd.p2, bytes((first,)) + cmd.data[1:], cmd.le)
        return super().initialize(cmd)


class NoJournal(PersistentStore):
    __slots__ = ()

    def commit(self, writes) -> None:
        for w in writes:  # applied one by one, each a point where power can go: no anti-tearing
            if self.fault is not None:
                self.fault.checkpoint(f"apply {w.tag}")
            w.apply(self.state)
        if self.on_commit is not None:
            self.on_commit(self.state)


class NotAtomic(Mutant):
    name, defect = "no_anti_tearing", "writes are applied one by one without a journal (D7)"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.store = NoJournal(self.store.state, self.store.fault, self.store.on_commit)


class AlgorithmZero(Mutant):
    name, defect = "wrong_algorithm_byte", "INITIALIZE always reports algorithm 00 (3DES)"

    def initialize(self, cmd):
        out = super().initialize(cmd)
        at = 7 if cmd.p1 == 0x00 else 10
        return out[:at] + b"\x00" + out[at + 1:]


class ReplayedDebit(Mutant):
    name, defect = "debit_session_not_spent", "a DEBIT can be replayed after it completed"

    def debit(self, cmd):
        pending = self._live_pending
        out = super().debit(cmd)
        if pending is not None:
            self._pending = pending   # the session is not spent: the same DEBIT works again
        return out


class OffsetIgnored(Mutant):
    name, defect = "read_binary_ignores_offset", "READ BINARY reads from the start whatever the offset"

    def read_binary(self, cmd):
        if cmd.p1 & 0x80 and cmd.p2:
            cmd = CommandApdu(cmd.cla, cmd.ins, cmd.p1, 0x00, cmd.data, cmd.le)
        return super().read_binary(cmd)


@dataclass(frozen=True)
class Expectation:
    mutant: type[Mutant]
    case: str              # a case that must fail ...
    reason: str            # ... with a reason matching this (regex, case-insensitive) that names the defect


EXPECTATIONS: tuple[Expectation, ...] = (
    Expectation(Mac1Unchecked, "TU-CARD-062", r"MAC1 unchecked"),
    Expectation(Mac2Unchecked, "TU-CARD-043", r"MAC2 unchecked"),
    Expectation(OfflineCounterFrozen, "TU-CARD-060", r"offline counter did not count"),
    Expectation(OnlineCounterFrozen, "TU-CARD-040", r"online counter did not count"),
    Expectation(BalanceFirst, "TU-CARD-140", r"balance changed but .*ef18.* did not.*not atomic"),
    Expectation(PurchaseProofLost, "TU-CARD-095", r"proof not kept"),
    Expectation(LoadProofLost, "TU-CARD-099", r"load proof not kept"),
    Expectation(SmMacUnchecked, "TU-CARD-104", r"SM MAC unchecked"),
    Expectation(WrongPurchaseTac, "TU-CARD-060", r"wrong purchase TAC"),
    Expectation(WrongLoadTac, "TU-CARD-040", r"wrong load TAC"),
    Expectation(Overdraws, "TU-CARD-064", r"insufficient balance not enforced"),
    Expectation(CappCommittedEarly, "TU-CARD-083", r"CAPP cache was committed without a successful DEBIT"),
    Expectation(PendingSurvives, "TU-CARD-085", r"D6 not applied"),
    Expectation(ChallengeReused, "TU-CARD-108", r"challenge reused"),
    Expectation(WrongMac2, "TU-CARD-060", r"wrong MAC2"),
    Expectation(LogsCounterBefore, "TU-CARD-042", r"counter before the increment \(D4\)"),
    Expectation(NoLog, "TU-CARD-060", r"EF18 does not log the purchase"),
    Expectation(ChargesTwice, "TU-CARD-019", r"did not debit the amount"),
    Expectation(NoMaximum, "TU-CARD-049", r"loads past its maximum balance"),
    Expectation(LockIgnored, "TU-CARD-120", r"locked card still accepts purchases"),
    Expectation(AnyKeyIndex, "TU-CARD-067", r"accepts a key index the card does not hold"),
    Expectation(NotAtomic, "TU-CARD-141", r"not atomic, D7"),
    Expectation(AlgorithmZero, "TU-CARD-061", r"wrong algorithm byte"),
    Expectation(ReplayedDebit, "TU-CARD-071", r"replayed DEBIT is accepted"),
    Expectation(OffsetIgnored, "TU-CARD-014", r"ignores the offset"),
)
