"""The virtual PSAM: its persistent state and its Card OS (reference section 4, decisions D10, D12, D16).

A validator's PSAM holds the purchase and TAC master keys, its terminal number and a 4-byte terminal
transaction sequence. It answers, byte for byte as section 4 lists them:

    00 A4 00 00 02 3F00 | 8011     SELECT MF / the T-Union DF (answers 9000 without FCI; P2 00 or 0C)
    00 B0 (80|SFI) off Le          READ BINARY: MF EF15 (14 B), MF EF16 (terminal ID, 6 B), 8011 EF17 (25 B)
    00 84 00 00 04|08              GET CHALLENGE
    80 70 00 00 24|1C data         INIT SAM FOR PURCHASE -> terminal sequence(4) ‖ MAC1(4)
    80 72 00 00 04 MAC2            CREDIT SAM FOR PURCHASE (verify MAC2)
    80 1A P1 P2 Lc factor          DES INIT: diversify a master key into the "current key"
    80 FA P1 00 Lc data            DES COMPUTE: P1 00 encrypt, P1 05 MAC with IV (single "last block")
    00 C0 00 00 Le                 GET RESPONSE (T=0)

Choices this module makes where the reference is silent (each one documented once, here):

* Transport: a contact card speaking T=0. The ATR is `3B 08` + historical bytes "YKTPSAM" 01 (direct
  convention, no interface bytes: T=0 at the default F=372 D=1, 9600 baud at 3.57 MHz as the test PSAMs
  of SH). As a T=0 card it answers every command that carries a data field AND returns data (8070,
  80FA) with `61xx`; the data is fetched with `00 C0 00 00 xx` (a smaller Le leaves the rest behind
  another 61xx, a larger one answers 6Cxx). The Le of such a command is ignored, as the T=0 mapping of
  ISO 7816-3 never transmits it. Extended-length APDUs do not exist in T=0: 6700.
* Files: EF15/EF16 are in the MF, EF17 in DF 8011; SFIs are looked up in the current DF (6A82 when not
  there). READ BINARY with P1 bit 8 clear reads the EF last read by SFI (6986 before one). An offset at
  or beyond the end is 6B00; Le 00 reads to the end; an Le past the end answers 6Cxx with what is left.
* The purse commands (8070, 8072, 801A, 80FA) need DF 8011 selected, as every terminal start-up does
  (4.1); in the MF they answer 6985.
* 8070 picks the key set by algorithm ID (00 3DES, 04 SM4) and the purchase key's version; no such
  key set: 9403 (key index not supported, which LOH checks). Lc 24 carries serial8 ‖ issuer8; Lc 1C
  carries the serial only and is accepted for a key set with one diversification factor; the count of
  factors must match the key set's, else 6700. Transaction types other than 06/09: 6A80. The BCD
  date-time is not checked (the card checks nothing either; the TAC binds it). The sequence handed out
  is `next_terminal_seq` (starting at 1); the PSAM increments it and persists it through `on_change`
  BEFORE it answers (a failed save answers 6581 and hands nothing out); once FFFFFFFF has been used it
  answers 9402. Any 8070 that succeeds replaces the pending purchase; a refused one changes nothing.
* The pending purchase (the 8070 whose MAC2 the PSAM awaits) is kept in the PSAM's persistent state
  (`PendingPurchase`: what derives its session key, never the key), saved with the sequence before 8070
  answers, as reference section 7 lists "pending SESPK for 8072" among what a PSAM stores. So it
  survives a reset and a new process on the same image: a torn purchase recovered by a later `ykt
  terminal tap` verifies its MAC2 (D12: the session is gone only when another 8070 replaced it).
* 8072 without a pending purchase: 6901 (the vendor "state machine" code, as DEBIT without INIT).
  A correct MAC2 (constant-time comparison) consumes the pending purchase (saved before 9000; a failed
  save answers 6581 and keeps it). A wrong one answers 9302,
  keeps the purchase (BJ retries 8072) and is remembered in the state (`mac2_failures`: count, card
  serial, issuer, sequence), saved through `on_change` before the answer. The count is 4 bytes and
  stops at FFFFFFFF.
* 801A P1 = key usage: high 3 bits = diversification levels (1 or 2, else 6A86), low 5 bits = key type
  (table `names.PSAM_KEY_TYPES`; 4 is the TAC key, folded L⊕R for 3DES as a PIN-reload key is; 09/0A are ykt's
  own types for the APPLICATION BLOCK/UNBLOCK keys: `app_block`/`app_unblock`, or `app_maintenance`
  when the key set names none, exactly the key the card uses, see design.md). P2 = key index (D16:
  01 3DES, 02 SM4 on the reference profile), matched against the index of that role's entry; P2 00 =
  the PSAM's first key set (the one EF17's key index names). Unknown type or index: 6A88; levels that
  differ from the key set's: 6A86; Lc ≠ 8 × levels: 6700. Two levels take serial8 ‖ issuer8 and are
  applied in the key set's order (D2); one level takes that one factor.
* 80FA without a current key: 6901. P1 05: data = IV (one block: 8 bytes for 3DES, 16 for SM4) ‖
  message; the message is padded with 80 00.. only when it is not a whole number of blocks (callers
  pre-pad, reference 4.2); an 8-byte key is plain DES CBC-MAC, a 16-byte 3DES key the retail MAC
  (ISO 9797-1 alg. 3), SM4 CBC-MAC; the answer is 4 bytes. P1 00: ECB encryption of the (padded) data.
  An empty message or data shorter than the IV: 6700. Other P1: 6A86.
* Volatile (lost at power off/reset): current DF, current 801A key, GET RESPONSE data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from apdu.command import ApduError, CommandApdu
from apdu.dispatch import CardApplication, instruction
from keysets.randomness import RandomSource
from apdu.status import (SW_CONDITIONS, SW_FILE_NOT_FOUND, SW_KEY_NOT_FOUND, SW_NO_CURRENT_EF, SW_WRONG_DATA, SW_WRONG_LENGTH, SW_WRONG_OFFSET, SW_WRONG_P1P2, CardError)
from ykt_card.status import SW_COUNTER_MAX, SW_KEY_INDEX_UNSUPPORTED, SW_MAC_INVALID, SW_STATE
from keysets import (PURCHASE_TYPES, Algorithm, KeySet, PurchaseSession, diversify, pad80, tac_key)
from keysets.keyset import Use

from ykt_card.persistence import MemoryFailure, persist
from ykt_card.layouts.names import KEY_TYPE_TAC, PSAM_DF_TUNION, PSAM_KEY_TYPES, PSAM_MF
from ykt_card.layouts.psam import PsamEF15, PsamEF16, PsamEF17

__all__ = [
    "ATR", "FIRST_TERMINAL_SEQ", "SEQ_EXHAUSTED", "MAC2_FAILURES_MAX", "PsamStateError", "Mac2Failures",
    "PendingPurchase", "PsamState", "PsamOS",
    "raw_mac", "state_summary",
]

ATR = bytes.fromhex("3B08") + b"YKTPSAM\x01"
"""Direct convention, T0 = 08 (no interface bytes, so T=0 at default speed), 8 proprietary historical
bytes: "YKTPSAM" and the version of this Card OS."""

PSAM_FILES: dict[int, dict[int, str]] = {}
"""DF → SFI → the `PsamState` attribute holding the file, from the layouts' `df` and `sfi`."""
for _layout, _attr in ((PsamEF15, "ef15"), (PsamEF16, "ef16"), (PsamEF17, "ef17")):
    PSAM_FILES.setdefault(_layout.df, {})[_layout.sfi] = _attr  # type: ignore[index]

FIRST_TERMINAL_SEQ = 1
SEQ_EXHAUSTED = 0x1_0000_0000
"""`next_terminal_seq` after FFFFFFFF was handed out: the PSAM refuses 8070 from then on (9402)."""

_INIT_PURCHASE_COMMON = 20    # random 4, counter 2, amount 4, type 1, date-time 7, key version 1, alg 1


class PsamStateError(ValueError):
    """A PSAM state that breaks the PSAM's own rules: `field` and `reason`, never a key value."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


MAC2_FAILURES_MAX = 0xFFFFFFFF
"""The wrong-MAC2 count stops here (a 4-byte counter, as the image stores it)."""


@dataclass
class Mac2Failures:
    """What the PSAM remembers of wrong MAC2s (SH refuses such a card on its next tap)."""

    count: int = 0
    last_serial: bytes | None = None
    last_issuer_id: bytes | None = None
    last_terminal_seq: int | None = None


@dataclass(frozen=True)
class PendingPurchase:
    """The purchase an 8070 signed and whose MAC2 the PSAM awaits: the inputs of its session key (which
    key set, the card's diversification factors, its random and counter, the terminal sequence) and the
    amount MAC2 covers. Persisted instead of the session key: the image keeps no derived secret."""

    algorithm_id: int
    key_version: int
    serial: bytes
    issuer_id: bytes | None
    random: bytes
    card_counter: int
    terminal_seq: int
    amount: int


@dataclass
class PsamState:
    """Everything the PSAM keeps across power cycles (its EEPROM). Build one with psam.issue.issue_psam.

    `keysets` are TEST master key sets; the first is the default (EF17's key index, 801A P2 00).
    """

    ef15: bytes
    ef16: bytes
    ef17: bytes
    keysets: tuple[KeySet, ...]
    next_terminal_seq: int = FIRST_TERMINAL_SEQ
    mac2_failures: Mac2Failures = field(default_factory=Mac2Failures)
    pending_purchase: PendingPurchase | None = None

    # -- views -----------------------------------------------------------------------------------
    @property
    def terminal_id(self) -> bytes:
        """EF16: the 6-byte terminal number every purchase carries."""
        return PsamEF16.field_bytes(self.ef16, "terminal_id")

    @property
    def serial(self) -> bytes:
        """EF15's serial: the PSAM's own serial number."""
        return PsamEF15.field_bytes(self.ef15, "serial")

    @property
    def key_index(self) -> int:
        """EF17's key index: the purchase key index a terminal sends in INITIALIZE FOR PURCHASE."""
        return PsamEF17.field_bytes(self.ef17, "key_index")[0]

    def purchase_keyset(self, algorithm_id: int, key_version: int) -> KeySet | None:
        """The key set 8070 uses for a card's algorithm byte and purchase key version."""
        for ks in self.keysets:
            if ks.algorithm.wire_id == algorithm_id and ks.entry("purchase").version == key_version:
                return ks
        return None

    def keyset_for(self, key_type: int, p2: int) -> tuple[KeySet, str] | None:
        """The key set and role 801A addresses with key type `key_type` and P2 (00 = default set)."""
        roles = PSAM_KEY_TYPES.get(key_type)
        if roles is None:
            return None
        candidates = self.keysets[:1] if p2 == 0 else self.keysets
        for ks in candidates:
            role = next((r for r in roles if ks.has(r)), None)
            if role is not None and (p2 == 0 or ks.entry(role).index == p2):
                return ks, role
        return None

    def validate(self) -> None:
        """Check every invariant the PSAM OS relies on; raise PsamStateError naming the field."""
        _check_files(self)
        _check_keysets(self.keysets)
        if self.key_index != self.keysets[0].entry("purchase").index:
            raise PsamStateError("ef17", f"key index {self.key_index:02X} is not the purchase key index "
                                         f"{self.keysets[0].entry('purchase').index:02X} of the first key set")
        seq = self.next_terminal_seq
        if isinstance(seq, bool) or not isinstance(seq, int) or not FIRST_TERMINAL_SEQ <= seq <= SEQ_EXHAUSTED:
            raise PsamStateError("next_terminal_seq", f"{seq!r} out of range 1..{SEQ_EXHAUSTED:X}")
        _check_mac2_failures(self.mac2_failures)
        if self.pending_purchase is not None:
            _check_pending(self, self.pending_purchase)

    def purchase_session(self) -> PurchaseSession | None:
        """The session key of the pending purchase, derived again from its inputs (None: none pending)."""
        p = self.pending_purchase
        if p is None:
            return None
        ks = self.purchase_keyset(p.algorithm_id, p.key_version)
        assert ks is not None, "validate() checks the pending purchase's key set"
        factors = _factors(ks, p.serial, p.issuer_id)
        assert factors is not None, "validate() checks the pending purchase's factors"
        dpk = diversify(ks.algorithm, ks.entry("purchase").key.value, factors)
        return PurchaseSession.derive(ks.algorithm, dpk, p.random, p.card_counter, p.terminal_seq)


def _check_pending(state: PsamState, p: PendingPurchase) -> None:
    """A pending purchase the PSAM can derive a session for, handed out before the next sequence."""
    ks = state.purchase_keyset(p.algorithm_id, p.key_version)
    if ks is None:
        raise PsamStateError("pending_purchase.key_version",
                             f"no key set has algorithm {p.algorithm_id:02X} and purchase key version "
                             f"{p.key_version:02X}")
    if _factors(ks, p.serial, p.issuer_id) is None:
        raise PsamStateError("pending_purchase.issuer_id", "the factors differ from the key set's diversification")
    if len(p.random) != 4:
        raise PsamStateError("pending_purchase.random", "must be 4 bytes")
    if not 0 <= p.card_counter <= 0xFFFF:
        raise PsamStateError("pending_purchase.card_counter", f"{p.card_counter} does not fit 2 bytes")
    if not 0 <= p.amount <= 0xFFFFFFFF:
        raise PsamStateError("pending_purchase.amount", f"{p.amount} does not fit 4 bytes")
    if not FIRST_TERMINAL_SEQ <= p.terminal_seq < state.next_terminal_seq:
        raise PsamStateError("pending_purchase.terminal_seq",
                             f"{p.terminal_seq} was not handed out yet (next_terminal_seq {state.next_terminal_seq})")


def _check_files(state: PsamState) -> None:
    for name, layout in (("ef15", PsamEF15), ("ef16", PsamEF16), ("ef17", PsamEF17)):
        value = getattr(state, name)
        if not isinstance(value, bytes):
            raise PsamStateError(name, "must be bytes")
        try:
            layout.decode(value)
        except ValueError as exc:
            raise PsamStateError(name, str(exc)) from None


def _check_keysets(keysets: tuple[KeySet, ...]) -> None:
    """Test master key sets, each with purchase and TAC keys, that 8070 and 801A can tell apart."""
    if not keysets:
        raise PsamStateError("keysets", "a PSAM needs at least one key set")
    seen_purchase: set[tuple[int, int]] = set()
    seen_index: dict[str, set[int]] = {}
    for i, ks in enumerate(keysets):
        where = f"keysets[{i}]"
        if not isinstance(ks, KeySet):
            raise PsamStateError(where, "not a KeySet")
        try:
            ks.require(Use.SIMULATION)
        except ValueError as exc:
            raise PsamStateError(where, str(exc)) from None
        if not ks.diversification:
            raise PsamStateError(where, f"{ks.name}: a PSAM holds master keys; diversification must not be []")
        for role in ("purchase", "tac"):
            if not ks.has(role):
                raise PsamStateError(f"{where}.keys.{role}", f"{ks.name}: role {role} missing")
        key = (ks.algorithm.wire_id, ks.entry("purchase").version)
        if key in seen_purchase:
            raise PsamStateError(where, f"{ks.name}: a second {ks.algorithm.value} key set with purchase key "
                                        f"version {key[1]:02X}; 8070 could not tell them apart")
        seen_purchase.add(key)
        for role, entry in ks.keys.items():
            if entry.index == 0:
                raise PsamStateError(f"{where}.keys.{role}.index",
                                     f"{ks.name}: key index 00 is reserved (801A P2 00 = default)")
            if entry.index in seen_index.setdefault(role, set()):
                raise PsamStateError(f"{where}.keys.{role}.index",
                                     f"{ks.name}: two key sets give {role} key index {entry.index:02X}; "
                                     "801A could not tell them apart")
            seen_index[role].add(entry.index)


def _check_mac2_failures(f: Mac2Failures) -> None:
    if isinstance(f.count, bool) or not isinstance(f.count, int) or not 0 <= f.count <= MAC2_FAILURES_MAX:
        raise PsamStateError("mac2_failures.count", f"{f.count!r} out of range 0..{MAC2_FAILURES_MAX}")
    for name, size in (("last_serial", 8), ("last_issuer_id", 8)):
        v = getattr(f, name)
        if v is not None and (not isinstance(v, bytes) or len(v) != size):
            raise PsamStateError(f"mac2_failures.{name}", f"must be {size} bytes or null")
    if f.last_terminal_seq is not None and not 0 <= f.last_terminal_seq <= 0xFFFFFFFF:
        raise PsamStateError("mac2_failures.last_terminal_seq", "must fit 4 bytes or be null")


# --- crypto the PSAM needs beyond keysets: MAC over caller-padded data -----------------------------

def raw_mac(algorithm: Algorithm, key: bytes, iv: bytes, message: bytes) -> bytes:
    """80FA 05: MAC of `message` from `iv`, padding with 80 00.. only when not block-aligned.

    With a pre-padded message this equals `keysets.mac(alg, key, unpadded, iv)`; an 8-byte key is DES
    CBC-MAC, a 16-byte 3DES key the retail MAC, SM4 CBC-MAC. Returns the 4-byte MAC.
    """
    bs = algorithm.block_size
    if len(iv) != bs:
        raise ValueError(f"IV must be {bs} bytes, got {len(iv)}")
    data = message if len(message) % bs == 0 else pad80(message, bs)
    if not data:
        raise ValueError("nothing to MAC")
    blocks = [data[i:i + bs] for i in range(0, len(data), bs)]
    retail = algorithm is Algorithm.TDES and len(key) == 16
    chain_cipher = algorithm.cipher(key[:8] if retail else key)
    x = iv
    for block in blocks[:-1]:
        x = chain_cipher.encrypt(_xor(x, block))
    last = _xor(x, blocks[-1])
    final = algorithm.cipher(key).encrypt(last) if retail else chain_cipher.encrypt(last)
    return final[:4]


def _xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


class _WorkingKey:
    """The 801A "current key": algorithm plus bytes that no repr shows."""

    __slots__ = ("algorithm", "_value")

    def __init__(self, algorithm: Algorithm, value: bytes) -> None:
        self.algorithm = algorithm
        self._value = value

    @property
    def value(self) -> bytes:
        return self._value

    def __repr__(self) -> str:
        return f"<{self.algorithm.value} working key, {len(self._value)} bytes>"


@dataclass(frozen=True, repr=False)
class _AwaitingMac2:
    """A purchase the PSAM signed (8070, MAC1) and whose card MAC2 it awaits (8072): the session, the
    amount, and what a wrong MAC2 is remembered by."""

    session: PurchaseSession
    amount: int
    serial: bytes
    issuer_id: bytes | None
    terminal_seq: int

    def __repr__(self) -> str:
        return f"_AwaitingMac2(seq={self.terminal_seq:08X}, amount={self.amount}, session=<hidden>)"


class PsamOS(CardApplication):
    """The PSAM's Card OS: no I/O; `on_change(state)` persists the state before an answer leaves.

    `random` supplies GET CHALLENGE bytes (inject `RandomSource(seed)` for repeatable runs).
    """

    def __init__(self, state: PsamState, *, random: Callable[[int], bytes] | None = None,
                 on_change: Callable[[PsamState], None] | None = None) -> None:
        state.validate()
        self.state = state
        self.random = random if random is not None else RandomSource()
        self.on_change = on_change
        self.memory_failure: MemoryFailure | None = None
        self._reset_volatile()

    # -- the Card OS seam ------------------------------------------------------------------------
    def power_on(self) -> bytes:
        self._reset_volatile()
        return ATR

    def power_off(self) -> None:
        self._reset_volatile()

    def process(self, capdu: bytes) -> bytes:
        """Dispatch, then apply the T=0 mapping: data of a command with a data field comes via 61xx."""
        raw = bytes(capdu)
        try:
            cmd: CommandApdu | None = CommandApdu.parse(raw)
        except ApduError:
            cmd = None
        self._offered, self._response = self._response, b""
        rapdu = super().process(raw)
        if cmd is not None and cmd.data and len(rapdu) > 2 and rapdu[-2:] == b"\x90\x00":
            self._response = rapdu[:-2]
            return bytes((0x61, len(self._response) & 0xFF))
        return rapdu

    def _reset_volatile(self) -> None:
        self._df = PSAM_MF
        self._current_ef: int | None = None
        self._pending: _AwaitingMac2 | None = _awaiting(self.state)
        self._key: _WorkingKey | None = None
        self._response = b""
        self._offered = b""

    # -- views for tests and tools (no key material) ---------------------------------------------
    @property
    def current_df(self) -> int:
        return self._df

    @property
    def has_pending_purchase(self) -> bool:
        return self._pending is not None

    @property
    def has_current_key(self) -> bool:
        return self._key is not None

    def __repr__(self) -> str:
        return (f"PsamOS(terminal {self.state.terminal_id.hex().upper()}, "
                f"next seq {self.state.next_terminal_seq:08X}, df {self._df:04X})")

    # -- common checks ---------------------------------------------------------------------------
    def before_command(self, cmd: CommandApdu) -> None:
        if cmd.extended:
            raise CardError(SW_WRONG_LENGTH, "T=0 has no extended lengths")

    def _need_tunion(self) -> None:
        if self._df != PSAM_DF_TUNION:
            raise CardError(SW_CONDITIONS, "select DF 8011 first")

    @staticmethod
    def _p1p2_zero(cmd: CommandApdu) -> None:
        if cmd.p1 or cmd.p2:
            raise CardError(SW_WRONG_P1P2)

    def _save(self, undo: Callable[[], None]) -> None:
        """Persist the state before answering; on failure undo the change and answer 6581 (the seam the
        card shares, ykt_card.persistence); `memory_failure` keeps the latest failure for the owner."""
        try:
            persist(self.on_change, self.state, undo)
        except MemoryFailure as failure:
            self.memory_failure = failure
            raise

    # -- files -----------------------------------------------------------------------------------
    @instruction(0xA4, cla=0x00)
    def select(self, cmd: CommandApdu) -> None:
        if cmd.p1 != 0x00 or cmd.p2 not in (0x00, 0x0C):
            raise CardError(SW_WRONG_P1P2)
        if len(cmd.data) != 2:
            raise CardError(SW_WRONG_LENGTH)
        fid = int.from_bytes(cmd.data, "big")
        if fid not in PSAM_FILES:
            raise CardError(SW_FILE_NOT_FOUND)
        self._df = fid
        self._current_ef = None
        return None

    def _files(self) -> dict[int, bytes]:
        """The files of the current DF by SFI."""
        return {sfi: getattr(self.state, attr) for sfi, attr in PSAM_FILES[self._df].items()}

    @instruction(0xB0, cla=0x00)
    def read_binary(self, cmd: CommandApdu) -> bytes:
        if cmd.data:
            raise CardError(SW_WRONG_LENGTH)
        if cmd.le is None:
            raise CardError(SW_WRONG_LENGTH)
        files = self._files()
        if cmd.p1 & 0x80:
            if cmd.p1 & 0x60:
                raise CardError(SW_WRONG_P1P2)
            sfi, offset = cmd.p1 & 0x1F, cmd.p2
            if sfi not in files:
                raise CardError(SW_FILE_NOT_FOUND)
        else:
            if self._current_ef is None or self._current_ef not in files:
                raise CardError(SW_NO_CURRENT_EF)
            sfi, offset = self._current_ef, (cmd.p1 << 8) | cmd.p2
        content = files[sfi]
        if offset >= len(content):
            raise CardError(SW_WRONG_OFFSET)
        left = len(content) - offset
        want = left if cmd.le == 256 else cmd.le
        if want > left:
            raise CardError(0x6C00 | left)
        self._current_ef = sfi
        return content[offset:offset + want]

    # -- GET CHALLENGE / GET RESPONSE --------------------------------------------------------------
    @instruction(0x84, cla=0x00)
    def get_challenge(self, cmd: CommandApdu) -> bytes:
        self._p1p2_zero(cmd)
        if cmd.data or cmd.le not in (4, 8):
            raise CardError(SW_WRONG_LENGTH)
        return bytes(self.random(cmd.le))

    @instruction(0xC0, cla=0x00)
    def get_response(self, cmd: CommandApdu):
        available = self._offered
        self._response = available  # a refused GET RESPONSE leaves the data waiting
        self._p1p2_zero(cmd)
        if cmd.data or cmd.le is None:
            raise CardError(SW_WRONG_LENGTH)
        if not available:
            raise CardError(SW_CONDITIONS, "no response data waiting")
        if cmd.le > len(available):
            raise CardError(0x6C00 | (len(available) & 0xFF))
        chunk, rest = available[:cmd.le], available[cmd.le:]
        self._response = rest
        if rest:
            return chunk, 0x6100 | (len(rest) & 0xFF)
        return chunk

    # -- 8070 INIT SAM FOR PURCHASE ----------------------------------------------------------------
    @instruction(0x70, cla=0x80)
    def init_purchase(self, cmd: CommandApdu) -> bytes:
        self._p1p2_zero(cmd)
        data = cmd.data
        if len(data) not in (_INIT_PURCHASE_COMMON + 8, _INIT_PURCHASE_COMMON + 16):
            raise CardError(SW_WRONG_LENGTH)
        self._need_tunion()
        random4, counter = data[0:4], int.from_bytes(data[4:6], "big")
        amount, tx_type, tx_datetime = int.from_bytes(data[6:10], "big"), data[10], data[11:18]
        key_version, algorithm_id = data[18], data[19]
        serial = data[20:28]
        issuer = data[28:36] if len(data) == 36 else None
        if tx_type not in PURCHASE_TYPES:
            raise CardError(SW_WRONG_DATA, f"transaction type {tx_type:02X} is not 06 or 09")
        ks = self.state.purchase_keyset(algorithm_id, key_version)
        if ks is None:
            raise CardError(SW_KEY_INDEX_UNSUPPORTED)
        factors = _factors(ks, serial, issuer)
        if factors is None:
            raise CardError(SW_WRONG_LENGTH, "factor count differs from the key set's diversification")
        seq = self.state.next_terminal_seq
        if seq >= SEQ_EXHAUSTED:
            raise CardError(SW_COUNTER_MAX)
        dpk = diversify(ks.algorithm, ks.entry("purchase").key.value, factors)
        session = PurchaseSession.derive(ks.algorithm, dpk, random4, counter, seq)
        mac1 = session.mac1(amount, tx_type, self.state.terminal_id, tx_datetime)
        state = self.state
        before = state.pending_purchase
        state.next_terminal_seq = seq + 1
        state.pending_purchase = PendingPurchase(algorithm_id, key_version, serial, issuer, random4, counter, seq,
                                                 amount)

        def undo() -> None:
            state.next_terminal_seq, state.pending_purchase = seq, before
        self._save(undo)
        self._pending = _AwaitingMac2(session, amount, serial, issuer, seq)
        return seq.to_bytes(4, "big") + mac1

    # -- 8072 CREDIT SAM FOR PURCHASE --------------------------------------------------------------
    @instruction(0x72, cla=0x80)
    def verify_mac2(self, cmd: CommandApdu) -> None:
        self._p1p2_zero(cmd)
        if len(cmd.data) != 4:
            raise CardError(SW_WRONG_LENGTH)
        self._need_tunion()
        pending = self._pending
        if pending is None:
            raise CardError(SW_STATE, "no purchase pending (8070 first)")
        if pending.session.verify_mac2(cmd.data, pending.amount):
            state = self.state
            before = state.pending_purchase
            state.pending_purchase = None

            def consumed_undo() -> None:
                state.pending_purchase = before
            self._save(consumed_undo)
            self._pending = None
            return None
        before = replace(self.state.mac2_failures)
        self.state.mac2_failures = Mac2Failures(min(before.count + 1, MAC2_FAILURES_MAX), pending.serial,
                                                pending.issuer_id, pending.terminal_seq)

        def undo() -> None:
            self.state.mac2_failures = before
        self._save(undo)
        raise CardError(SW_MAC_INVALID)

    # -- 801A DES INIT / 80FA DES COMPUTE ----------------------------------------------------------
    @instruction(0x1A, cla=0x80)
    def des_init(self, cmd: CommandApdu) -> None:
        levels, key_type = cmd.p1 >> 5, cmd.p1 & 0x1F
        if levels not in (1, 2):
            raise CardError(SW_WRONG_P1P2, "1 or 2 diversification levels")
        if len(cmd.data) != 8 * levels:
            raise CardError(SW_WRONG_LENGTH)
        self._need_tunion()
        found = self.state.keyset_for(key_type, cmd.p2)
        if found is None:
            raise CardError(SW_KEY_NOT_FOUND)
        ks, role = found
        if len(ks.diversification) != levels:
            raise CardError(SW_WRONG_P1P2, "levels differ from the key set's diversification")
        serial = cmd.data[:8]
        issuer = cmd.data[8:16] if levels == 2 else None
        factors = _factors(ks, serial, issuer)
        assert factors is not None  # levels match the key set, so the factors do too
        key = diversify(ks.algorithm, ks.entry(role).key.value, factors)
        if key_type == KEY_TYPE_TAC:
            key = tac_key(ks.algorithm, key)
        self._key = _WorkingKey(ks.algorithm, key)
        return None

    @instruction(0xFA, cla=0x80)
    def des_compute(self, cmd: CommandApdu) -> bytes:
        if cmd.p2 != 0x00 or cmd.p1 not in (0x00, 0x05):
            raise CardError(SW_WRONG_P1P2)
        self._need_tunion()
        if self._key is None:
            raise CardError(SW_STATE, "no current key (801A first)")
        alg, key = self._key.algorithm, self._key.value
        bs = alg.block_size
        data = cmd.data
        if cmd.p1 == 0x05:
            if len(data) <= bs:
                raise CardError(SW_WRONG_LENGTH)
            return raw_mac(alg, key, data[:bs], data[bs:])
        if not data:
            raise CardError(SW_WRONG_LENGTH)
        plain = data if len(data) % bs == 0 else pad80(data, bs)
        return alg.cipher(key).encrypt(plain)


def _awaiting(state: PsamState) -> _AwaitingMac2 | None:
    """The purchase awaiting MAC2, from the persistent state (None when none is pending)."""
    p = state.pending_purchase
    session = state.purchase_session()
    if p is None or session is None:
        return None
    return _AwaitingMac2(session, p.amount, p.serial, p.issuer_id, p.terminal_seq)


def _factors(ks: KeySet, serial: bytes, issuer: bytes | None) -> list[bytes] | None:
    """The factors in the key set's order, or None when the command brought a different number.

    Two factors are named (serial, issuer) and applied in the key set's order; a single factor is the
    key set's only one, whatever its name.
    """
    given = [serial] if issuer is None else [serial, issuer]
    if len(given) != len(ks.diversification):
        return None
    if issuer is None:
        return given
    by_name = {"serial": serial, "issuer": issuer}
    return [by_name[name] for name in ks.diversification]


def state_summary(state: PsamState) -> dict[str, Any]:
    """A JSON-safe view without key values (key sets show index, version and KCV)."""
    f = state.mac2_failures
    return {
        "serial": state.serial.hex().upper(),
        "terminal_id": state.terminal_id.hex().upper(),
        "key_index": state.key_index,
        "next_terminal_seq": state.next_terminal_seq,
        "mac2_failures": {
            "count": f.count,
            "last_serial": f.last_serial.hex().upper() if f.last_serial else None,
            "last_issuer_id": f.last_issuer_id.hex().upper() if f.last_issuer_id else None,
            "last_terminal_seq": f.last_terminal_seq,
        },
        "pending_purchase": None if state.pending_purchase is None else {
            "terminal_seq": state.pending_purchase.terminal_seq, "amount": state.pending_purchase.amount},
        "keysets": [ks.summary() for ks in state.keysets],
    }
