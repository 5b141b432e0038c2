"""The virtual T-Union card OS: the EP application of reference sections 1-3 behind the Card OS seam.

No I/O: `power_on`, `process`, `power_off` (apdu.cardos.CardOS). Handlers read the `CardState`, raise
`CardError` to refuse, and change state only through `PersistentStore.commit`, so every refusal leaves
the card exactly as it was and every change is atomic across a power cut (D7).

Volatile state (lost at power-off, and, where the reference says so, at the next command):
- the selection (none, PPSE, the EP application) and the current EF (set by SFI reads);
- the pending transaction opened by INITIALIZE: any command but CREDIT/DEBIT, or a successful
  UPDATE CAPP DATA CACHE inside a CAPP purchase, abandons it (D6); a later CREDIT/DEBIT answers 6985;
- the GET CHALLENGE random, good for the next command only, whatever that command is (D18);
- PIN verified and EXTERNAL AUTHENTICATE status, reset by any SELECT.

Choices where the reference is silent (each is the reference profile's behaviour):
- Extended-length APDUs are not supported: 6700.
- READ BINARY: Le 00 reads the rest of the file; Le beyond the end answers 6Cxx with xx = the bytes
  available (ISO 7816-4 "wrong Le", what SH retries with); offset at or past the end answers 6B00.
  READ RECORD returns whole records: Le 00 or the record length, otherwise 6Cxx with the length.
  Commands without data (case 2: READ BINARY/RECORD, GET BALANCE, GET CHALLENGE) need an Le (6700).
- No application selected (or only the PPSE): file commands answer 6A82, purse and security
  commands 6985. SELECT by file ID answers 6A82 (T-Union cards have no MF to select, ref 1.2).
- Locked application: temporarily locked, SELECT answers FCI + 6283 and only reads, GET BALANCE,
  GET TRANSACTION PROVE, GET CHALLENGE, EXTERNAL AUTHENTICATE, APPLICATION BLOCK and UNBLOCK work;
  the rest answers 6985. Permanently locked, SELECT answers FCI + 9303 and every other command but
  GET CHALLENGE answers 9303.
- A load above the maximum balance, or of 0 fen, is refused at INITIALIZE FOR LOAD with 6A80
  (the amount in the data field is not acceptable); a purchase beyond balance + overdraft limit
  with 9401 at INITIALIZE and again at DEBIT.
- INITIALIZE offset 0 and GET BALANCE P1 00 report balance + overdraft limit (ref 1.4); load MAC1
  and load TAC use that same figure (balance before / after), so a 0-limit card matches the vector.
- GET BALANCE P1 03 returns the real balance as a signed (two's complement) 32-bit number.
- UPDATE CAPP DATA CACHE: P2 = SFI<<3 (low bits 000). EF1A: P1 = record ID; the record must exist
  (6A83), the data must have its length (6700) and carry the ID in its second byte (27 ID ...,
  else 6A80). Cyclic EF1E: P1 00 appends. EF18 is written by the card only (6982). At most 8 writes
  per transaction (6A84). A refused 80DC ends the pending transaction like any other command.
- Secure messaging (UPDATE BINARY/RECORD, APPLICATION BLOCK/UNBLOCK, WRITE KEY): MAC over
  CLA INS P1 P2 Lc ‖ data (Lc counts the MAC), IV = challenge ‖ 00… to one block (keysets.
  secure_messaging_mac). A card with two key sets accepts the MAC under either (lowest index first).
  No challenge → 6984, wrong MAC → 6988; plain CLA 00 D6/DC → 6982.
- EXTERNAL AUTHENTICATE `00 82 00 keyID Lc crypt`: keyID = the index of an `external_auth` key
  (6A88 if none); crypt = ECB(key, challenge ‖ 00… to one block): 8 bytes for 3DES, 16 for SM4;
  a wrong cryptogram answers 6300. Success sets a security status that nothing requires yet.
- VERIFY: `00 20 00 00 Lc PIN` (BCD, F-padded); the try counter is decremented (and committed)
  before the comparison; 63Cx = x tries left; no tries left → 6983; no data → 63Cx (9000 once
  verified). Non-BCD PIN data → 6A80 without counting.
- WRITE KEY: see `TUnionCardOS.write_key`.
"""
from __future__ import annotations

import hmac
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from apdu.command import CommandApdu
from apdu.dispatch import CardApplication, instruction, respond
from keysets.randomness import RandomSource
from apdu.status import (SW_AUTH_BLOCKED, SW_CLA_NOT_SUPPORTED, SW_CONDITIONS, SW_FILE_INCOMPATIBLE, SW_FILE_NOT_FOUND, SW_KEY_NOT_FOUND, SW_NO_CURRENT_EF, SW_NO_SPACE, SW_RECORD_NOT_FOUND, SW_REF_DATA_INVALID, SW_SECURITY_STATUS, SW_SM_MAC, SW_VERIFY_FAILED, SW_WRONG_DATA, SW_WRONG_LENGTH, SW_WRONG_OFFSET, SW_WRONG_P1P2, CardError)
from ykt_card.status import SW_APP_LOCKED, SW_APP_LOCKED_PERM, SW_COUNTER_MAX, SW_INSUFFICIENT_BALANCE, SW_KEY_INDEX_UNSUPPORTED, SW_MAC_INVALID, SW_NO_PROOF
from keysets import (
    TYPE_CAPP_PURCHASE, TYPE_LOAD, TYPE_PURCHASE, Algorithm, KeyEntry, KeySet, LoadSession,
    PurchaseSession, SecretKey, load_tac, purchase_tac, secure_messaging_iv, secure_messaging_mac,
)

from ykt_card.card.files import BinaryFile, CyclicFile, RecordFile
from ykt_card.card.state import CardState, FaultInjector, Lock, PersistentStore, PowerLoss, _is_bcd_pin
from ykt_card.card.writes import (BinaryWrite, KeyWrite, LockWrite, PinTriesWrite, ProofWrite, PurseWrite,
                                  RecordWrite, RingWrite, SlotWrite, TransportKeyWrite, Write)
from ykt_card.layouts import EF18
from ykt_card.layouts.names import PPSE_NAME, SFI_LOG, WRITE_KEY_TYPES
from ykt_card.proof import Proof

__all__ = ["TUnionCardOS", "SW_AUTH_FAILED", "MAX_CAPP_WRITES"]

SW_AUTH_FAILED = 0x6300
"""EXTERNAL AUTHENTICATE with a wrong cryptogram (ISO 7816-4: authentication failed)."""
MAX_CAPP_WRITES = 8
"""UPDATE CAPP DATA CACHE writes one transaction may hold."""

_NONE, _PPSE, _APP = 0, 1, 2


@dataclass(slots=True)
class _OpenLoad:
    """A load INITIALIZE FOR LOAD opened: what CREDIT FOR LOAD checks MAC2 against and commits."""

    key_set: KeySet
    session: LoadSession
    amount: int
    terminal_id: bytes
    counter: int


@dataclass(slots=True)
class _OpenPurchase:
    """A purchase INITIALIZE FOR (CAPP) PURCHASE opened: what DEBIT checks MAC1 against, with the
    UPDATE CAPP DATA CACHE writes it holds until then (D6)."""

    key_set: KeySet
    tx_type: int
    amount: int
    terminal_id: bytes
    counter: int
    random4: bytes
    cache: list[tuple[int, int, bytes]] = field(default_factory=list)


def _check_le_case2(cmd: CommandApdu, available: int) -> int:
    """How many bytes a case-2 command returns for `available`: Le 00 = all, else exactly Le (6Cxx)."""
    le = cmd.le
    if le is None or cmd.data:
        raise CardError(SW_WRONG_LENGTH, "Le missing or unexpected data")
    if le == 256:
        return min(available, 256)
    if le > available:
        raise CardError(0x6C00 | available, "Le beyond the data available")
    return le


def _check_le_fixed(cmd: CommandApdu, n: int) -> None:
    """Case-2 commands with one fixed-size answer: Le 00 or at least n, else 6Cn."""
    le = cmd.le
    if le is None or cmd.data:
        raise CardError(SW_WRONG_LENGTH, "Le missing or unexpected data")
    if le < n:
        raise CardError(0x6C00 | n, "Le shorter than the answer")


def _check_le_case4(cmd: CommandApdu, n: int) -> None:
    """Case-4 commands: Le may be absent (T=0 style), 00, or at least the answer's length."""
    le = cmd.le
    if le is not None and le < n:
        raise CardError(SW_WRONG_LENGTH, "Le shorter than the answer")


class TUnionCardOS(CardApplication):
    """A T-Union EP card: `TUnionCardOS(state, rng=RandomSource(), fault=None, on_commit=None)`.

    state: the card's persistent `CardState` (changed in place; the owner may save it from on_commit).
    rng: callable n -> n random bytes (INITIALIZE randoms, GET CHALLENGE); inject a seeded
        `RandomSource` for repeatable runs.
    fault: a `FaultInjector` to cut power inside commits; `process` then raises `PowerLoss`.
    on_commit: called with the state after every change (persist the image there).

    `process` never raises for any input, except `PowerLoss` when a fault injector fires; a card
    that was never powered is powered on by its first command.
    """

    def __init__(self, state: CardState, rng: Callable[[int], bytes] | None = None,
                 fault: FaultInjector | None = None,
                 on_commit: Callable[[CardState], None] | None = None) -> None:
        self.store = PersistentStore(state, fault, on_commit)
        self.rng: Callable[[int], bytes] = rng if rng is not None else RandomSource()
        self._powered = False
        self.last_recovery = "clean"
        self._reset_volatile()

    # -- the Card OS seam -------------------------------------------------------------------------
    @property
    def state(self) -> CardState:
        return self.store.state

    @property
    def fault(self) -> FaultInjector | None:
        return self.store.fault

    @fault.setter
    def fault(self, value: FaultInjector | None) -> None:
        self.store.fault = value

    @property
    def memory_failure(self):
        """The latest save of this card that failed (`MemoryFailure`: answered 6581, change undone), or None."""
        return self.store.memory_failure

    @property
    def powered(self) -> bool:
        return self._powered

    def power_on(self) -> bytes:
        """Reset: lose volatile state, finish or undo a torn commit, answer the ATS."""
        self._reset_volatile()
        self._powered = True
        try:
            self.last_recovery = self.store.recover()
        except PowerLoss:
            self._powered = False
            raise
        return self.store.state.ats

    def power_off(self) -> None:
        self._reset_volatile()
        self._powered = False

    def process(self, capdu: bytes) -> bytes:
        if not self._powered:
            self.power_on()
        # D18 and D6: whatever this command is, it spends the challenge and the pending transaction;
        # the handlers that may use them read the _live_ copies.
        self._live_challenge = self._challenge
        self._challenge = None
        self._live_pending = self._pending
        self._pending = None
        try:
            return respond(self.instructions, capdu, self._before)
        except PowerLoss:
            self.power_off()
            raise

    # -- volatile state ---------------------------------------------------------------------------
    def _reset_volatile(self) -> None:
        self._selected = _NONE
        self._current_ef: int | None = None
        self._challenge: bytes | None = None
        self._live_challenge: bytes | None = None
        self._pending: _OpenLoad | _OpenPurchase | None = None
        self._live_pending: _OpenLoad | _OpenPurchase | None = None
        self._pin_verified = False
        self._authenticated: set[int] = set()

    @property
    def pending_transaction(self) -> str | None:
        """"load", "purchase", "capp" or None: what the next CREDIT/DEBIT could complete."""
        p = self._pending
        if p is None:
            return None
        if isinstance(p, _OpenLoad):
            return "load"
        return "capp" if p.tx_type == TYPE_CAPP_PURCHASE else "purchase"

    @staticmethod
    def _before(cmd: CommandApdu) -> None:
        if cmd.extended:
            raise CardError(SW_WRONG_LENGTH, "extended lengths not supported")

    def _require_app(self, temp_ok: bool, file_cmd: bool = False) -> CardState:
        if self._selected != _APP:
            raise CardError(SW_FILE_NOT_FOUND if file_cmd else SW_CONDITIONS, "application not selected")
        state = self.store.state
        lock = state.lock
        if lock is not Lock.NONE:
            if lock is Lock.PERMANENT:
                raise CardError(SW_APP_LOCKED_PERM, "application permanently locked")
            if not temp_ok:
                raise CardError(SW_CONDITIONS, "application temporarily locked")
        return state

    # -- selection --------------------------------------------------------------------------------
    @instruction(0xA4, cla=0x00)
    def select(self, cmd: CommandApdu):
        """SELECT by DF name (P1 04): the PPSE or the EP application; by file ID (P1 00): 6A82.

        The name may be the whole DF name or its start (ISO 7816-4 partial selection, mobile.md 2.2): P2 00
        selects the first DF whose name starts with it, P2 02 the next one after the current DF, and 6A82
        answers when none is (left). A phone card's EP is found so by `A000000632010105`.
        """
        if cmd.p1 not in (0x00, 0x04) or cmd.p2 not in (0x00, 0x02) or (cmd.p1 == 0x00 and cmd.p2):
            raise CardError(SW_WRONG_P1P2)
        if not cmd.data:
            raise CardError(SW_WRONG_LENGTH, "SELECT needs a name or file ID")
        if cmd.p1 == 0x00:
            if len(cmd.data) != 2:
                raise CardError(SW_WRONG_LENGTH, "a file ID is 2 bytes")
            raise CardError(SW_FILE_NOT_FOUND, "no file selectable by ID")
        state = self.store.state
        found = self._occurrence(state, cmd.data, following=cmd.p2 == 0x02)
        if found == _APP:
            self._select(_APP)
            fci = state.app_fci()
            if state.lock is Lock.TEMPORARY:
                return fci, SW_APP_LOCKED
            if state.lock is Lock.PERMANENT:
                return fci, SW_APP_LOCKED_PERM
            return fci
        if found == _PPSE:
            self._select(_PPSE)
            return state.ppse_fci()
        raise CardError(SW_FILE_NOT_FOUND, "no such application")

    def _occurrence(self, state: CardState, name: bytes, following: bool) -> int:
        """The DF (_APP, _PPSE) whose name starts with `name`: the first, or the next after the current DF
        in the card's order (the EP application, then the PPSE); _NONE when there is none (left). A card
        whose PPSE directory is empty has no PPSE (as some phone wallets and older cards)."""
        dfs = ((state.aid, _APP), (PPSE_NAME, _PPSE)) if state.ppse else ((state.aid, _APP),)
        matches = [kind for df_name, kind in dfs if df_name.startswith(name)]
        if following and self._selected in matches:
            matches = matches[matches.index(self._selected) + 1:]
        return matches[0] if matches else _NONE

    def _select(self, what: int) -> None:
        self._selected = what
        self._current_ef = None
        self._pin_verified = False
        self._authenticated = set()

    # -- reading ----------------------------------------------------------------------------------
    def _binary_target(self, p1: int, p2: int) -> tuple[int, int]:
        if p1 & 0x80:
            if p1 & 0x60:
                raise CardError(SW_WRONG_P1P2, "P1 bits 6-7 must be 0 with an SFI")
            return p1 & 0x1F, p2
        if self._current_ef is None:
            raise CardError(SW_NO_CURRENT_EF)
        return self._current_ef, (p1 << 8) | p2

    def _record_target(self, p2: int) -> int:
        sfi = p2 >> 3
        if sfi == 0:
            if self._current_ef is None:
                raise CardError(SW_NO_CURRENT_EF)
            return self._current_ef
        if sfi == 31:
            raise CardError(SW_WRONG_P1P2)
        return sfi

    def _file(self, state: CardState, sfi: int):
        f = state.files.get(sfi)
        if f is None:
            raise CardError(SW_FILE_NOT_FOUND, f"no file with SFI {sfi:02X}")
        return f

    @instruction(0xB0, cla=0x00)
    def read_binary(self, cmd: CommandApdu) -> bytes:
        sfi, offset = self._binary_target(cmd.p1, cmd.p2)
        state = self._require_app(temp_ok=True, file_cmd=True)
        if cmd.le is None or cmd.data:
            raise CardError(SW_WRONG_LENGTH)
        f = self._file(state, sfi)
        if not isinstance(f, BinaryFile):
            raise CardError(SW_FILE_INCOMPATIBLE, "not a binary file")
        data = f.data
        if offset >= len(data):
            raise CardError(SW_WRONG_OFFSET)
        n = _check_le_case2(cmd, len(data) - offset)
        self._current_ef = sfi
        return data[offset:offset + n]

    @instruction(0xB2, cla=0x00)
    def read_record(self, cmd: CommandApdu) -> bytes:
        if cmd.p2 & 0x07 != 0x04 or cmd.p1 == 0:
            raise CardError(SW_WRONG_P1P2, "record number in P1 (P2 low bits 100) only")
        sfi = self._record_target(cmd.p2)
        state = self._require_app(temp_ok=True, file_cmd=True)
        if cmd.le is None or cmd.data:
            raise CardError(SW_WRONG_LENGTH)
        f = self._file(state, sfi)
        if isinstance(f, CyclicFile):
            rec = f.record(cmd.p1)
        elif isinstance(f, RecordFile):
            rec = f.records.get(cmd.p1)
        else:
            raise CardError(SW_FILE_INCOMPATIBLE, "not a record file")
        if rec is None:
            raise CardError(SW_RECORD_NOT_FOUND)
        if cmd.le != 256 and cmd.le != len(rec):
            raise CardError(0x6C00 | len(rec), "records are read whole")
        self._current_ef = sfi
        return rec

    @instruction(0x5C, cla=0x80)
    def get_balance(self, cmd: CommandApdu) -> bytes:
        """GET BALANCE (D3): P1 00 balance + overdraft limit, 01 limit, 03 real balance; P2 02 = EP."""
        if cmd.p1 not in (0x00, 0x01, 0x03) or cmd.p2 != 0x02:
            raise CardError(SW_WRONG_P1P2)
        _check_le_fixed(cmd, 4)
        purse = self._require_app(temp_ok=True).purse
        if cmd.p1 == 0x00:
            value = purse.balance + purse.overdraft_limit
        elif cmd.p1 == 0x01:
            value = purse.overdraft_limit
        else:
            value = purse.balance & 0xFFFFFFFF
        return value.to_bytes(4, "big")

    @instruction(0x5A, cla=0x80)
    def get_transaction_prove(self, cmd: CommandApdu) -> bytes:
        """GET TRANSACTION PROVE (D5): MAC2 ‖ TAC of the transaction that left counter = data."""
        if cmd.p1 != 0x00 or cmd.p2 not in (TYPE_LOAD, TYPE_PURCHASE, TYPE_CAPP_PURCHASE):
            raise CardError(SW_WRONG_P1P2)
        if len(cmd.data) != 2:
            raise CardError(SW_WRONG_LENGTH, "data is the 2-byte counter")
        _check_le_case4(cmd, 8)
        state = self._require_app(temp_ok=True)
        proof = state.proofs.get("load" if cmd.p2 == TYPE_LOAD else "purchase")
        counter = int.from_bytes(cmd.data, "big")
        if proof is None or proof.tx_type != cmd.p2 or proof.counter != counter:
            raise CardError(SW_NO_PROOF)
        return proof.mac2 + proof.tac

    # -- security ---------------------------------------------------------------------------------
    @instruction(0x84, cla=0x00)
    def get_challenge(self, cmd: CommandApdu) -> bytes:
        """GET CHALLENGE: 4 or 8 random bytes, good for the next command only (D18)."""
        if cmd.p1 != 0x00 or cmd.p2 != 0x00:
            raise CardError(SW_WRONG_P1P2)
        if cmd.data or cmd.le not in (4, 8):
            raise CardError(SW_WRONG_LENGTH, "challenge is 4 or 8 bytes")
        challenge = self.rng(cmd.le)
        self._challenge = challenge
        return challenge

    @instruction(0x82, cla=0x00)
    def external_authenticate(self, cmd: CommandApdu) -> None:
        if cmd.p1 != 0x00:
            raise CardError(SW_WRONG_P1P2)
        state = self._require_app(temp_ok=True)
        key = None
        for ks in state.key_sets.values():
            e = ks.keys.get("external_auth")
            if e is not None and e.index == cmd.p2:
                key = e.key
                break
        if key is None:
            raise CardError(SW_KEY_NOT_FOUND, f"no external authentication key {cmd.p2:02X}")
        if len(cmd.data) != key.algorithm.block_size:
            raise CardError(SW_WRONG_LENGTH, "cryptogram is one block")
        challenge = self._live_challenge
        if challenge is None:
            raise CardError(SW_REF_DATA_INVALID, "no challenge")
        expected = key.algorithm.cipher(key.value).encrypt(secure_messaging_iv(key.algorithm, challenge))
        if not hmac.compare_digest(expected, cmd.data):
            raise CardError(SW_AUTH_FAILED)
        self._authenticated.add(cmd.p2)

    @instruction(0x20, cla=0x00)
    def verify(self, cmd: CommandApdu) -> None:
        """VERIFY PIN (D11): 3 tries, 63Cx, then 6983."""
        if cmd.p1 != 0x00 or cmd.p2 != 0x00:
            raise CardError(SW_WRONG_P1P2)
        state = self._require_app(temp_ok=False)
        pin = state.pin
        data = cmd.data
        if not data:
            if pin.tries_left == 0:
                raise CardError(SW_AUTH_BLOCKED)
            if self._pin_verified:
                return None
            raise CardError(SW_VERIFY_FAILED | pin.tries_left)
        if not 2 <= len(data) <= 6:
            raise CardError(SW_WRONG_LENGTH, "PIN is 2..6 BCD bytes")
        if not _is_bcd_pin(data):
            raise CardError(SW_WRONG_DATA, "PIN is not BCD")
        if pin.tries_left == 0:
            raise CardError(SW_AUTH_BLOCKED)
        left = pin.tries_left - 1
        self.store.commit([PinTriesWrite(left)])  # count first: tearing cannot give a free try
        if hmac.compare_digest(data, pin.value):
            self.store.commit([PinTriesWrite(pin.max_tries)])
            self._pin_verified = True
            return None
        self._pin_verified = False
        raise CardError(SW_VERIFY_FAILED | left)

    # -- load -------------------------------------------------------------------------------------
    @instruction(0x50, cla=0x80)
    def initialize(self, cmd: CommandApdu) -> bytes:
        """INITIALIZE FOR LOAD (P1 00), PURCHASE (01), CAPP PURCHASE (03); P2 02 = EP."""
        p1 = cmd.p1
        if cmd.p2 != 0x02 or p1 not in (0x00, 0x01, 0x03):
            raise CardError(SW_WRONG_P1P2)
        data = cmd.data
        if len(data) != 11:
            raise CardError(SW_WRONG_LENGTH, "data is key index, amount, terminal ID (11 bytes)")
        _check_le_case4(cmd, 16 if p1 == 0 else 15)
        state = self._require_app(temp_ok=False)
        purse = state.purse
        amount = int.from_bytes(data[1:5], "big")
        terminal_id = data[5:11]
        if p1 == 0x00:
            if state.pin_required_for_load and not self._pin_verified:
                raise CardError(SW_SECURITY_STATUS, "PIN required before a load")
            ks = state.key_sets.get(data[0])
            if ks is None or "load" not in ks.keys or "tac" not in ks.keys:
                raise CardError(SW_KEY_INDEX_UNSUPPORTED)
            counter = purse.online_counter
            if counter >= 0xFFFF:
                raise CardError(SW_COUNTER_MAX)
            if amount == 0 or purse.balance + amount > purse.max_balance:
                raise CardError(SW_WRONG_DATA, "amount zero or above the maximum balance")
            entry = ks.keys["load"]
            random4 = self.rng(4)
            session = LoadSession.derive(ks.algorithm, entry.key.value, random4, counter)
            total = purse.balance + purse.overdraft_limit
            mac1 = session.mac1(total, amount, terminal_id)
            self._pending = _OpenLoad(ks, session, amount, terminal_id, counter)
            return (total.to_bytes(4, "big") + counter.to_bytes(2, "big")
                    + bytes((entry.version, ks.algorithm.wire_id)) + random4 + mac1)
        ks = state.key_sets.get(data[0])
        if ks is None or "purchase" not in ks.keys or "tac" not in ks.keys:
            raise CardError(SW_KEY_INDEX_UNSUPPORTED)
        counter = purse.offline_counter
        if counter >= 0xFFFF:
            raise CardError(SW_COUNTER_MAX)
        if purse.balance - amount < -purse.overdraft_limit:
            raise CardError(SW_INSUFFICIENT_BALANCE)
        random4 = self.rng(4)
        tx_type = TYPE_PURCHASE if p1 == 0x01 else TYPE_CAPP_PURCHASE
        self._pending = _OpenPurchase(ks, tx_type, amount, terminal_id, counter, random4)
        return ((purse.balance + purse.overdraft_limit).to_bytes(4, "big") + counter.to_bytes(2, "big")
                + purse.overdraft_limit.to_bytes(3, "big")
                + bytes((ks.keys["purchase"].version, ks.algorithm.wire_id)) + random4)

    @instruction(0x52, cla=0x80)
    def credit_for_load(self, cmd: CommandApdu) -> bytes:
        """CREDIT FOR LOAD: host date(4) time(3) MAC2(4) → TAC(4); commits balance, counter, EF18, proof."""
        if cmd.p1 != 0x00 or cmd.p2 != 0x00:
            raise CardError(SW_WRONG_P1P2)
        data = cmd.data
        if len(data) != 11:
            raise CardError(SW_WRONG_LENGTH, "data is date, time, MAC2 (11 bytes)")
        _check_le_case4(cmd, 4)
        state = self._require_app(temp_ok=False)
        pending = self._live_pending
        if not isinstance(pending, _OpenLoad):
            raise CardError(SW_CONDITIONS, "no INITIALIZE FOR LOAD before")
        when, mac2 = data[0:7], data[7:11]
        amount, terminal_id = pending.amount, pending.terminal_id
        if not pending.session.verify_mac2(mac2, amount, terminal_id, when):
            raise CardError(SW_MAC_INVALID, "MAC2")
        purse = state.purse
        balance = purse.balance + amount
        counter = pending.counter
        ks = pending.key_set
        tac = load_tac(ks.algorithm, ks.keys["tac"].key.value, balance + purse.overdraft_limit, counter,
                       amount, terminal_id, when)
        record = _log_record(counter + 1, purse.overdraft_limit, amount, TYPE_LOAD, terminal_id, when)
        writes: list[Write] = [PurseWrite("balance", balance), PurseWrite("online_counter", counter + 1)]
        _append(writes, state.files[SFI_LOG], record, {})  # type: ignore[arg-type]
        writes.append(ProofWrite("load", Proof(TYPE_LOAD, counter + 1, mac2, tac)))
        self.store.commit(writes)
        return tac

    # -- purchase ---------------------------------------------------------------------------------
    @instruction(0xDC, cla=0x80)
    def update_capp_data_cache(self, cmd: CommandApdu) -> None:
        """UPDATE CAPP DATA CACHE (D6): hold a record write until DEBIT commits it."""
        p1, p2 = cmd.p1, cmd.p2
        if p2 & 0x07 or p2 >> 3 in (0, 31):
            raise CardError(SW_WRONG_P1P2, "P2 = SFI << 3")
        data = cmd.data
        if not data:
            raise CardError(SW_WRONG_LENGTH)
        state = self._require_app(temp_ok=False)
        pending = self._live_pending
        if not isinstance(pending, _OpenPurchase) or pending.tx_type != TYPE_CAPP_PURCHASE:
            raise CardError(SW_CONDITIONS, "no INITIALIZE FOR CAPP PURCHASE before")
        sfi = p2 >> 3
        f = self._file(state, sfi)
        if isinstance(f, RecordFile):
            rec = f.records.get(p1)
            if rec is None:
                raise CardError(SW_RECORD_NOT_FOUND, f"no record {p1:02X}")
            if len(data) != len(rec):
                raise CardError(SW_WRONG_LENGTH, f"record {p1:02X} is {len(rec)} bytes")
            if len(data) >= 2 and data[1] != p1:
                raise CardError(SW_WRONG_DATA, "record ID in the data differs from P1")
        elif isinstance(f, CyclicFile):
            if sfi == SFI_LOG:
                raise CardError(SW_SECURITY_STATUS, "EF18 is written by the card only")
            if p1 != 0x00:
                raise CardError(SW_WRONG_P1P2, "P1 00 appends to a cyclic file")
            if len(data) != f.record_size:
                raise CardError(SW_WRONG_LENGTH, f"records are {f.record_size} bytes")
        else:
            raise CardError(SW_FILE_INCOMPATIBLE, "not a record file")
        if len(pending.cache) >= MAX_CAPP_WRITES:
            raise CardError(SW_NO_SPACE, "CAPP cache full")
        pending.cache.append((sfi, p1, data))
        self._pending = pending
        return None

    @instruction(0x54, cla=0x80)
    def debit(self, cmd: CommandApdu) -> bytes:
        """DEBIT FOR (CAPP) PURCHASE: terminal seq(4) date(4) time(3) MAC1(4) → TAC(4) ‖ MAC2(4)."""
        if cmd.p1 != 0x01 or cmd.p2 != 0x00:
            raise CardError(SW_WRONG_P1P2)
        data = cmd.data
        if len(data) != 15:
            raise CardError(SW_WRONG_LENGTH, "data is terminal seq, date, time, MAC1 (15 bytes)")
        _check_le_case4(cmd, 8)
        state = self._require_app(temp_ok=False)
        pending = self._live_pending
        if not isinstance(pending, _OpenPurchase):
            raise CardError(SW_CONDITIONS, "no INITIALIZE FOR PURCHASE before")
        terminal_seq = int.from_bytes(data[0:4], "big")
        when, mac1 = data[4:11], data[11:15]
        ks = pending.key_set
        alg = ks.algorithm
        amount, tx_type, terminal_id, counter = pending.amount, pending.tx_type, pending.terminal_id, pending.counter
        session = PurchaseSession.derive(alg, ks.keys["purchase"].key.value, pending.random4, counter,
                                         terminal_seq)
        if not session.verify_mac1(mac1, amount, tx_type, terminal_id, when):
            raise CardError(SW_MAC_INVALID, "MAC1")
        purse = state.purse
        balance = purse.balance - amount
        if balance < -purse.overdraft_limit:
            raise CardError(SW_INSUFFICIENT_BALANCE)
        tac = purchase_tac(alg, ks.keys["tac"].key.value, amount, tx_type, terminal_id, terminal_seq, when)
        mac2 = session.mac2(amount)
        record = _log_record(counter + 1, purse.overdraft_limit, amount, tx_type, terminal_id, when)
        writes: list[Write] = [PurseWrite("balance", balance), PurseWrite("offline_counter", counter + 1)]
        files = state.files
        rings: dict[int, tuple[int, int]] = {}
        _append(writes, files[SFI_LOG], record, rings)  # type: ignore[arg-type]
        for sfi, p1, rec in pending.cache:
            f = files[sfi]
            if isinstance(f, CyclicFile):
                _append(writes, f, rec, rings)
            else:
                writes.append(RecordWrite(sfi, p1, rec))
        writes.append(ProofWrite("purchase", Proof(tx_type, counter + 1, mac2, tac)))
        self.store.commit(writes)
        return tac + mac2

    # -- secure messaging -------------------------------------------------------------------------
    def _sm_keys(self, state: CardState, role: str) -> Iterator[SecretKey]:
        for ks in state.key_sets.values():
            entry = ks.keys.get(role) or ks.keys.get("app_maintenance")
            if entry is not None:
                yield entry.key

    def _check_sm(self, cmd: CommandApdu, keys: Iterator[SecretKey] | list[SecretKey]) -> bytes:
        """Verify the trailing 4-byte MAC of a secure-messaging command; return the data before it."""
        challenge = self._live_challenge
        if challenge is None:
            raise CardError(SW_REF_DATA_INVALID, "no challenge (or already spent)")
        data = cmd.data
        body, received = data[:-4], data[-4:]
        signed = bytes((cmd.cla, cmd.ins, cmd.p1, cmd.p2, len(data))) + body
        for key in keys:
            if len(challenge) > key.algorithm.block_size:
                continue
            expected = secure_messaging_mac(key.algorithm, key.value, challenge, signed)
            if hmac.compare_digest(expected, received):
                return body
        raise CardError(SW_SM_MAC, "secure messaging MAC")

    @instruction(0x1E, cla=0x84)
    def application_block(self, cmd: CommandApdu) -> None:
        """APPLICATION BLOCK `84 1E 00 P2 04 MAC`: P2 00 temporary, 01 permanent."""
        if cmd.p1 != 0x00 or cmd.p2 not in (0x00, 0x01):
            raise CardError(SW_WRONG_P1P2)
        if len(cmd.data) != 4:
            raise CardError(SW_WRONG_LENGTH, "data is the 4-byte MAC")
        state = self._require_app(temp_ok=True)
        self._check_sm(cmd, self._sm_keys(state, "app_block"))
        lock = Lock.TEMPORARY if cmd.p2 == 0x00 else Lock.PERMANENT
        if state.lock is not lock:
            self.store.commit([LockWrite(lock)])

    @instruction(0x18, cla=0x84)
    def application_unblock(self, cmd: CommandApdu) -> None:
        """APPLICATION UNBLOCK `84 18 00 00 04 MAC`: lifts a temporary lock."""
        if cmd.p1 != 0x00 or cmd.p2 != 0x00:
            raise CardError(SW_WRONG_P1P2)
        if len(cmd.data) != 4:
            raise CardError(SW_WRONG_LENGTH, "data is the 4-byte MAC")
        state = self._require_app(temp_ok=True)
        self._check_sm(cmd, self._sm_keys(state, "app_unblock"))
        if state.lock is not Lock.NONE:
            self.store.commit([LockWrite(Lock.NONE)])

    @instruction(0xD6, cla=0x04)
    def update_binary(self, cmd: CommandApdu) -> None:
        """UPDATE BINARY with MAC `04 D6 (80|SFI) offset Lc data ‖ MAC4` (app maintenance key)."""
        sfi, offset = self._binary_target(cmd.p1, cmd.p2)
        if len(cmd.data) < 5:
            raise CardError(SW_WRONG_LENGTH, "data and a 4-byte MAC")
        state = self._require_app(temp_ok=False, file_cmd=True)
        f = self._file(state, sfi)
        if not isinstance(f, BinaryFile):
            raise CardError(SW_FILE_INCOMPATIBLE, "not a binary file")
        if offset >= len(f.data):
            raise CardError(SW_WRONG_OFFSET)
        if offset + len(cmd.data) - 4 > len(f.data):
            raise CardError(SW_WRONG_LENGTH, "data runs past the end of the file")
        body = self._check_sm(cmd, self._sm_keys(state, "app_maintenance"))
        self.store.commit([BinaryWrite(sfi, offset, body)])
        self._current_ef = sfi

    @instruction(0xDC, cla=0x04)
    def update_record(self, cmd: CommandApdu) -> None:
        """UPDATE RECORD with MAC `04 DC rec (SFI<<3)|4 Lc data ‖ MAC4` (app maintenance key).

        EF1A: P1 = record ID. Cyclic files: P1 = record number (1 = newest), updated in place.
        """
        if cmd.p2 & 0x07 != 0x04 or cmd.p1 == 0:
            raise CardError(SW_WRONG_P1P2, "record number in P1 (P2 low bits 100) only")
        sfi = self._record_target(cmd.p2)
        if len(cmd.data) < 5:
            raise CardError(SW_WRONG_LENGTH, "data and a 4-byte MAC")
        state = self._require_app(temp_ok=False, file_cmd=True)
        f = self._file(state, sfi)
        size = len(cmd.data) - 4
        if isinstance(f, RecordFile):
            rec = f.records.get(cmd.p1)
            if rec is None:
                raise CardError(SW_RECORD_NOT_FOUND)
            if size != len(rec):
                raise CardError(SW_WRONG_LENGTH, f"record is {len(rec)} bytes")
            body = self._check_sm(cmd, self._sm_keys(state, "app_maintenance"))
            write: Write = RecordWrite(sfi, cmd.p1, body)
        elif isinstance(f, CyclicFile):
            if sfi == SFI_LOG:
                raise CardError(SW_SECURITY_STATUS, "EF18 is written by the card only")
            if f.record(cmd.p1) is None:
                raise CardError(SW_RECORD_NOT_FOUND)
            if size != f.record_size:
                raise CardError(SW_WRONG_LENGTH, f"records are {f.record_size} bytes")
            body = self._check_sm(cmd, self._sm_keys(state, "app_maintenance"))
            write = SlotWrite(sfi, f.slot_of(cmd.p1), body)
        else:
            raise CardError(SW_FILE_INCOMPATIBLE, "not a record file")
        self.store.commit([write])
        self._current_ef = sfi

    @instruction(0xD6, cla=0x00)
    @instruction(0xDC, cla=0x00)
    def update_without_mac(self, cmd: CommandApdu) -> None:
        """Plain UPDATE BINARY/RECORD: the files need the app maintenance MAC."""
        raise CardError(SW_SECURITY_STATUS, "updates need secure messaging (CLA 04)")

    @instruction(0xD4, cla=0x84)
    def write_key(self, cmd: CommandApdu) -> None:
        """WRITE KEY `84 D4 type index Lc E ‖ MAC4` (FMCOS style; the exact format is this project's).

        P1 = key type (`names.WRITE_KEY_TYPES`: 30 card_master, 34 tac, 36 app_maintenance, 37 pin_unblock,
        38 pin_reload, 39 external_auth, 3A app_block, 3B app_unblock, 3E purchase, 3F load).
        P2 = key index (the key set it belongs to, e.g. 01 3DES, 02 SM4); P2 00 with type 30 replaces
        the card transport key.

        Protecting key K: the card_master key of key set P2 if the card holds one, else the card's
        transport key (6A88 when there is neither). K's own algorithm (3DES or SM4) is used.
        E = ECB_K( pad80( 14 ‖ algID ‖ version ‖ 00 00 ‖ key(16) ) ): 24 bytes under 3DES, 32 under
        SM4; algID 00 = 3DES, 04 = SM4 is the algorithm of the key being written.
        MAC4 = secure-messaging MAC under K over `84 D4 P1 P2 Lc ‖ E` (Lc = len(E) + 4), IV =
        GET CHALLENGE random ‖ 00… (so a GET CHALLENGE must come right before).
        Refusals: 6A86 unknown type or P2 00 with a non-transport type; 6700 length; 6984 no
        challenge; 6988 MAC; 6A80 bad plaintext, or an algorithm different from key set P2's.
        """
        role = WRITE_KEY_TYPES.get(cmd.p1)
        index = cmd.p2
        if role is None or (index == 0 and role != "card_master"):
            raise CardError(SW_WRONG_P1P2, "unknown key type or index")
        state = self._require_app(temp_ok=False)
        ks = state.key_sets.get(index)
        entry = ks.keys.get("card_master") if ks is not None and index else None
        protector = entry.key if entry is not None else state.transport_key
        if protector is None:
            raise CardError(SW_KEY_NOT_FOUND, "no key protects this key index")
        alg = protector.algorithm
        if len(cmd.data) != 4 + (24 if alg is Algorithm.TDES else 32):
            raise CardError(SW_WRONG_LENGTH, "encrypted key block and MAC")
        encrypted = self._check_sm(cmd, [protector])
        plain = alg.cipher(protector.value).decrypt(encrypted)
        if plain[0] != 0x14 or plain[3:5] != b"\x00\x00" or plain[21:] != b"\x80" + bytes(len(plain) - 22):
            raise CardError(SW_WRONG_DATA, "key block format")
        try:
            new_alg = Algorithm.from_wire(plain[1])
        except ValueError:
            raise CardError(SW_WRONG_DATA, "unknown algorithm ID") from None
        if ks is not None and ks.algorithm is not new_alg:
            raise CardError(SW_WRONG_DATA, "key algorithm differs from the key set's")
        key = SecretKey(new_alg, plain[5:21])
        if index == 0:
            self.store.commit([TransportKeyWrite(key)])
        else:
            self.store.commit([KeyWrite(index, KeyEntry(role, index, plain[2], key))])

    # -- wrong class for a known instruction ------------------------------------------------------
    @instruction(0xA4)
    @instruction(0xB0)
    @instruction(0xB2)
    @instruction(0x5C)
    @instruction(0x5A)
    @instruction(0x84)
    @instruction(0x82)
    @instruction(0x20)
    @instruction(0x50)
    @instruction(0x52)
    @instruction(0xDC)
    @instruction(0x54)
    @instruction(0x1E)
    @instruction(0x18)
    @instruction(0xD6)
    @instruction(0xD4)
    def wrong_class(self, cmd: CommandApdu) -> None:
        """An instruction this card knows, under a class it does not use for it."""
        raise CardError(SW_CLA_NOT_SUPPORTED)


def _append(writes: list[Write], f: CyclicFile, record: bytes, rings: dict[int, tuple[int, int]]) -> None:
    """Add the writes that append `record` to cyclic file `f` (several appends chain through `rings`)."""
    head, count = rings.get(f.sfi, (f.head, f.count))
    slot, count = f.next_position(head, count)
    writes.append(SlotWrite(f.sfi, slot, record))
    writes.append(RingWrite(f.sfi, slot, count))
    rings[f.sfi] = (slot, count)


_pack_log_record = EF18.packer()


def _log_record(counter: int, overdraft_limit: int, amount: int, tx_type: int, terminal_id: bytes,
                when: bytes) -> bytes:
    """The EF18 record the card writes for a load or purchase (the counter after it, D4), packed by the
    EF18 layout's generated packer (counter, limit and amount are in range: INITIALIZE checked them);
    the date-time is stored as the terminal sent it (the card checks none, the TAC binds it)."""
    return _pack_log_record(counter, overdraft_limit, amount, bytes((tx_type,)), terminal_id, when)
