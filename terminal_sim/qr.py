"""The validator's QR path: a scanned MOT QR code is a ride, journaled beside the card rides (mobile.md §1.5-1.6).

A code is a transaction kind of its own on the skeleton (terminal_sim.transaction): the terminal's
fields, the QR stage table, and one ending:

    scan   the scanner handed over the code's bytes
    verify the offline checks of §1.5 in order (ykt_qr.Verifier) against the profile's root store
           (``qr.roots``), acceptance policy (``qr:`` white list, local issuers, account types,
           ``anti_passback_s``) and the codes this terminal's journal has seen
    → approved  the ride, with the Q12 clearing-record extension (no TAC: the signed code is the
                proof), journaled together with the code's replay entry in one SQLite transaction
    → declined  the first failing check's token as the reason (Q11), the code kept for clearing

Q10's debounce: the same account again within 2 s is neither accepted nor refused: `ride` returns a
``declined`` outcome with reason ``ignored`` and journals nothing (a rider holding the phone to the
scanner a little long).

Replay and anti-pass-back state live in the journal (terminal_sim.journal, table ``qr_seen``): a
restart, or a kill at any moment, forgets nothing, and since the ride and its replay entry commit
together a kill between the verification and the journal never lets a code ride twice. A journal that
finds the code already remembered at commit time (another writer got there first) refuses, and the ride
is declined as a replay.

A journal that fails (locked by another writer, a full or read-only disk, an I/O error: `JournalError`),
whether the replay checks read it or the ride is written, never raises out of `ride`: the ride is
declined with one line naming the journal's failure ("journal failed: …; nothing charged"), its code
not remembered, as a card tap that fails before its grey record (`Transaction.journal_failed`).

The fare is the ride's `amount` (the taxi meter, a test) or the profile's flat fare; flows that price by
stations have no fare for a code unless one is given.
"""
from __future__ import annotations

import datetime as _dt

from ykt_card.clock import CHINA_TZ
from ykt_qr import RootStore, Verifier

from .journal import CodeAlreadySeen, JournalError, RideJournal, SeenCode
from .outcome import MAX_CODE_BYTES, Outcome
from .profile import TerminalProfile
from .transaction import QR_STAGES, Device

__all__ = ["QrGate", "ride", "unix_seconds", "qr_fare", "IGNORED", "MAX_CODE_BYTES"]

IGNORED = "ignored"
"""The reason of a debounced scan (Q10): returned, never journaled."""


def unix_seconds(now: _dt.datetime) -> int:
    """The terminal clock's reading as Unix seconds (codes are dated in UTC, Q3); naive = China time."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=CHINA_TZ)
    return int(now.timestamp())


def qr_fare(profile: TerminalProfile, amount: int | None) -> int:
    """The fare of a QR ride: `amount` when given, else the profile's flat fare."""
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 <= amount <= 0xFFFFFFFF:
            raise ValueError(f"amount: expected an integer of fen 0..4294967295, got {amount!r}")
        return amount
    if profile.fares.flat is None:
        raise ValueError(f"amount: profile {profile.name} (flow {profile.flow}) has no flat fare; give the fare "
                         "of a QR ride")
    return profile.fares.flat


class QrGate:
    """A terminal's QR checks: its profile's root store and policy, its journal as the replay store."""

    def __init__(self, profile: TerminalProfile, journal: RideJournal) -> None:
        if profile.qr is None:
            raise ValueError(f"profile {profile.name}: no qr table: this terminal takes no QR code")
        if profile.qr_roots is None:
            raise ValueError(f"profile {profile.name}: qr.roots: missing (a terminal that scans codes names the "
                             "root store it trusts)")
        self.profile = profile
        self.journal = journal
        self.verifier = Verifier(RootStore.load(profile.qr_roots), profile.qr, journal)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"QrGate({self.profile.name!r}, roots={self.profile.qr_roots})"


def ride(device: Device, gate: QrGate, code: bytes, now: _dt.datetime, amount: int) -> Outcome:
    """One scanned code at this terminal, dated `now`, for `amount` fen: its outcome, journaled (but an
    ``ignored`` repeat, Q10). `code` is the scanner's raw bytes, at most MAX_CODE_BYTES."""
    code = bytes(code)
    if not 0 < len(code) <= MAX_CODE_BYTES:
        raise ValueError(f"code: {len(code)} bytes; a scanned code is 1 to {MAX_CODE_BYTES} bytes")
    tx = device.begin(now, QR_STAGES, medium="qr", qr_code=code.hex().upper(), amount=amount)
    tx.at("verify")
    try:
        verdict = gate.verifier.verify(code, unix_seconds(now), amount, commit=False)
    except JournalError as exc:    # the replay and anti-pass-back checks could not read the journal
        return tx.journal_failed(exc)
    tx.add(**{name: value for name, value in verdict.record_fields().items() if name != "reason"})
    if verdict.ignored:
        return tx.outcome("declined", reason=IGNORED)
    if not verdict.accepted:
        return tx.decline(verdict.reason or "refused")
    assert verdict.account is not None and verdict.keep_until is not None
    seen = SeenCode(verdict.digest, verdict.account, verdict.now, verdict.keep_until)
    try:
        return tx.settle("approved", seen=seen)        # a failing journal: declined by journal_failed
    except CodeAlreadySeen:        # remembered meanwhile by another writer of this journal
        return tx.decline("replay", ticket_type=None)
