"""Offline verification of a MOT QR code at a validator (mobile.md §1.5, Q1-Q11), check by check.

    verifier = Verifier(RootStore.load("roots.json"), policy, replay_store)
    verdict = verifier.verify(code_bytes, now=unix_seconds, amount=fare_fen)
    verdict.accepted, verdict.reason, verdict.checks

The checks run in the order of §1.5 and stop at the first failure, whose token is the verdict's
`reason` (Q11). Every check appears in `checks`: ``pass``, ``fail``, ``skipped`` (it does not apply:
no acceptance policy, or no fare to compare), or ``not_run`` (an earlier check failed). Without a
policy (``policy=None``) the acceptance checks 11-12 are skipped and account types take Q8's default.

Q10's debounce is the one outcome that is neither accepted nor a refusal: the same account again within
2 s is ``ignored`` (reason ``ignored``), and the terminal writes no record of it.
"""
from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .codec import (CERT_FORMAT, CERT_HEADER, HEAD_SIZE, KEY_LENGTH_COMPRESSED, MAX_CUSTOM, MAX_LENGTH, MIN_LENGTH,
                    SIG_FORMAT, SM2_ALGORITHMS, Certificate, CodecError, QrCode, parse_head, printable_ascii)
from .policy import AcceptancePolicy
from .replay import MemoryReplayStore, ReplayStore
from .roots import RootKey, RootStore
from .sm2 import DEFAULT_UID, PublicKey
from .times import format_unix, mmyy_text, month_not_before

__all__ = ["CHECKS", "ACCEPTANCE_CHECKS", "Result", "Check", "Verdict", "Verifier", "MAX_VALIDITY", "SKEW",
           "DEBOUNCE_S", "REPLAY_MARGIN", "QUIRK_OFFSET"]

MAX_VALIDITY = 1200     # Q4
SKEW = 20               # Q4: a code may come from up to 20 s in the future
DEBOUNCE_S = 2          # Q10: the same account within 2 s is ignored
REPLAY_MARGIN = 20      # Q10: digests are kept for validity + 20 s
QUIRK_OFFSET = 8 * 3600  # Q3: a phone that wrote China time as if it were UTC

CHECKS = ("length", "version", "cert_format", "cert_expired", "root_unknown", "root_expired", "cert_sig",
          "account", "account_type", "custom_len", "sig_format", "auth_expired", "gen_after_auth", "validity",
          "time_window", "issuer_sig", "user_sig", "not_accepted", "over_limit", "replay", "anti_passback")
"""Every check by the token it fails with, in §1.5 order (steps 1-12)."""
ACCEPTANCE_CHECKS = frozenset({"not_accepted", "over_limit", "replay", "anti_passback"})
"""Steps 11-12: they need a terminal's acceptance policy."""


class Result(str, enum.Enum):
    PASS = "pass"
    FAIL = "fail"
    SKIPPED = "skipped"
    NOT_RUN = "not_run"
    IGNORED = "ignored"


@dataclass(frozen=True)
class Check:
    """One check's outcome; `detail` says what was compared (never a key)."""

    name: str
    result: Result
    detail: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.name, "result": self.result.value, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    """The outcome of one verification: accepted, or the first failure's token, and every check."""

    accepted: bool
    reason: str | None
    checks: tuple[Check, ...]
    digest: bytes
    raw: bytes = b""
    code: QrCode | None = None
    ticket_type: str | None = None
    account: str | None = None
    now: int = 0

    @property
    def ignored(self) -> bool:
        """Q10: a repeat of the same account within 2 s; the terminal makes no record."""
        return self.reason == "ignored"

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    @property
    def keep_until(self) -> int | None:
        """Until when (Unix s) a terminal keeps this code's digest: generation + validity + 20 s (Q10)."""
        if self.code is None:
            return None
        return _keep_until(self.code.gen_time, self.code.authorisation.validity, self.now)

    def record_fields(self) -> dict[str, Any]:
        """The Q12 clearing-record extension of this scan (the terminal adds status, amount, datetime, …)."""
        fields: dict[str, Any] = {"medium": "qr", "qr_code": self.raw.hex().upper(), "reason": self.reason}
        if self.code is not None:
            a = self.code.authorisation
            fields.update(account_no=a.account_no.hex().upper(), pay_account=a.pay_account.decode("latin-1"),
                          qr_issuer=a.issuer.hex().upper(), qr_platform=a.platform.hex().upper(),
                          qr_gen_time=self.code.gen_time)
        if self.ticket_type is not None:
            fields["ticket_type"] = self.ticket_type
        return fields

    def to_json(self) -> dict[str, Any]:
        return {"accepted": self.accepted, "reason": self.reason, "checks": [c.to_json() for c in self.checks],
                "ticket_type": self.ticket_type, "account": self.account, "now": self.now,
                "sha256": self.digest.hex().upper()}


class _Refused(Exception):
    def __init__(self, detail: str, result: Result = Result.FAIL) -> None:
        self.detail = detail
        self.result = result


@dataclass
class _Context:
    """What the checks learn as they go (each later check may use what an earlier one established)."""

    data: bytes
    now: int
    amount: int | None
    policy: AcceptancePolicy
    acceptance: bool
    head: dict[str, Any] = field(default_factory=dict)
    cert: Certificate | None = None
    root: RootKey | None = None
    code: QrCode | None = None
    shanghai: bool = False
    gen_time: int = 0
    ticket_type: str | None = None

    @property
    def custom_len(self) -> int:
        return self.head["custom_len"]


def _fail(detail: str) -> None:
    raise _Refused(detail)


class Verifier:
    """Checks codes against a root store and, when given, a terminal's acceptance policy and replay store.

    `replay` defaults to a fresh in-memory store when a policy is given; a validator passes one backed
    by its journal. `verify(..., commit=False)` leaves the store untouched, so that a terminal can call
    `commit(verdict)` inside its own journal transaction once the ride is recorded.
    """

    def __init__(self, roots: RootStore, policy: AcceptancePolicy | None = None,
                 replay: ReplayStore | None = None) -> None:
        self.roots = roots
        self.policy = policy
        self.replay: ReplayStore | None = replay if replay is not None else (
            MemoryReplayStore() if policy is not None else None)

    def __repr__(self) -> str:
        return f"Verifier({self.roots!r}, policy={'yes' if self.policy else 'none'})"

    # -- the run --------------------------------------------------------------------------------------
    def verify(self, data: bytes, now: int, amount: int | None = None, commit: bool = True) -> Verdict:
        """Run every check of §1.5 in order on the raw code `data` at Unix time `now`; fare `amount` in fen."""
        data = bytes(data)
        ctx = _Context(data, int(now), amount, self.policy or AcceptancePolicy(), self.policy is not None)
        checks: list[Check] = []
        reason: str | None = None
        for name, step in self._steps():
            if reason is not None:
                checks.append(Check(name, Result.NOT_RUN))
                continue
            if name in ACCEPTANCE_CHECKS and not ctx.acceptance:
                checks.append(Check(name, Result.SKIPPED, "no terminal profile"))
                continue
            try:
                detail = step(ctx)
            except _Refused as refused:
                checks.append(Check(name, refused.result, refused.detail))
                if refused.result is not Result.SKIPPED:
                    reason = "ignored" if refused.result is Result.IGNORED else name
                continue
            checks.append(Check(name, Result.PASS, detail or ""))
        account = _account_key(ctx.head) if ctx.head else None
        verdict = Verdict(reason is None, reason, tuple(checks), hashlib.sha256(data).digest(), data, ctx.code,
                          ctx.ticket_type, account, ctx.now)
        if commit and verdict.accepted and ctx.acceptance:
            self._remember(verdict, ctx)
        return verdict

    def commit(self, verdict: Verdict) -> None:
        """Record an accepted code in the replay store (for callers that verified with `commit=False`)."""
        if not verdict.accepted or self.replay is None or verdict.code is None:
            raise ValueError("only an accepted verdict of a verifier with a replay store can be committed")
        assert verdict.keep_until is not None
        self.replay.remember(verdict.digest, verdict.account or "", verdict.now, verdict.keep_until)

    def _remember(self, verdict: Verdict, ctx: _Context) -> None:
        assert self.replay is not None and ctx.code is not None
        self.replay.remember(verdict.digest, verdict.account or "", ctx.now,
                             _keep_until(ctx.gen_time, ctx.code.authorisation.validity, ctx.now))

    def _steps(self) -> tuple[tuple[str, Callable[[_Context], str | None]], ...]:
        return (
            ("length", _length), ("version", _version), ("cert_format", _cert_format),
            ("cert_expired", _cert_expired), ("root_unknown", self._root_unknown), ("root_expired", _root_expired),
            ("cert_sig", _cert_sig), ("account", _account), ("account_type", _account_type),
            ("custom_len", _custom_len), ("sig_format", _sig_format), ("auth_expired", _auth_expired),
            ("gen_after_auth", _gen_after_auth), ("validity", _validity), ("time_window", _time_window),
            ("issuer_sig", _issuer_sig), ("user_sig", _user_sig), ("not_accepted", _not_accepted),
            ("over_limit", _over_limit), ("replay", self._replay), ("anti_passback", self._anti_passback),
        )

    # -- the checks that need this verifier's stores --------------------------------------------------
    def _root_unknown(self, ctx: _Context) -> str:
        index = ctx.cert.root_index
        if index not in self.roots:
            known = ", ".join(f"{i:02X}" for i in self.roots) or "none"
            _fail(f"root index {index:02X} is not in the store (known: {known})")
        ctx.root = self.roots[index]
        return f"root {index:02X}"

    def _replay(self, ctx: _Context) -> str:
        assert self.replay is not None
        if self.replay.code_seen(hashlib.sha256(ctx.data).digest(), ctx.now):
            _fail("this exact code was accepted before")
        return "code not seen before"

    def _anti_passback(self, ctx: _Context) -> str:
        assert self.replay is not None
        last = self.replay.last_accepted(_account_key(ctx.head), ctx.now)
        if last is None:
            return "account not seen before"
        ago = ctx.now - last
        if 0 <= ago < DEBOUNCE_S:
            raise _Refused(f"same account {ago} s ago (under {DEBOUNCE_S} s): ignored, no record", Result.IGNORED)
        window = ctx.policy.anti_passback_s
        if window and 0 <= ago < window:
            _fail(f"same account {ago} s ago, within anti_passback_s {window}")
        return f"account last accepted {ago} s ago"


# -- the checks, one function each (step numbers of §1.5) --------------------------------------------

def _length(ctx: _Context) -> str:                                   # 1
    n = len(ctx.data)
    if not MIN_LENGTH <= n <= MAX_LENGTH:
        _fail(f"{n} bytes, expected {MIN_LENGTH}..{MAX_LENGTH}")
    declared = int.from_bytes(ctx.data[1:3], "big")
    if declared + 3 != n:
        _fail(f"length field {declared} + 3 = {declared + 3}, but the code has {n} bytes")
    ctx.head = parse_head(ctx.data)
    ctx.cert = Certificate.parse(ctx.head["certificate"])
    ctx.shanghai = ctx.head["issuer"] in ctx.policy.shanghai_uid_issuers
    return f"{n} bytes"


def _version(ctx: _Context) -> str:                                  # 2
    v = ctx.head["version"]
    if v < 0x80:
        _fail(f"version {v:02X}, expected 80 or above")
    return f"version {v:02X}"


def _cert_format(ctx: _Context) -> str:                              # 3 (+ Q7)
    c = ctx.cert
    for what, actual, wanted in (("header", f"{c.header:02X}", f"{CERT_HEADER:02X}"),
                                 ("format", f"{c.format:02X}", f"{CERT_FORMAT:02X}"),
                                 ("algorithms", c.algorithms.hex().upper(), SM2_ALGORITHMS.hex().upper()),
                                 ("key length", f"{c.key_length:02X}", f"{KEY_LENGTH_COMPRESSED:02X}")):
        if actual != wanted:
            _fail(f"certificate {what} {actual}, expected {wanted}")
    return "header 24, format 12, SM2 04 04, key length 21"


def _cert_expired(ctx: _Context) -> str:                             # 4
    try:
        month = ctx.cert.expiry_month
    except ValueError as exc:
        _fail(f"certificate expiry: {exc}")
    if not month_not_before(month, ctx.now):
        _fail(f"certificate expired {mmyy_text(ctx.cert.expiry)}")
    return f"valid through {mmyy_text(ctx.cert.expiry)}"


def _root_expired(ctx: _Context) -> str:                             # 5
    root = ctx.root
    if root.expiry is None:
        return "bare root key, no expiry"
    if not month_not_before(root.expiry, ctx.now):
        _fail(f"root {root.index:02X} expired {root.expiry[1]:02d}/{root.expiry[0]}")
    return f"valid through {root.expiry[1]:02d}/{root.expiry[0]}"


def _cert_sig(ctx: _Context) -> str:                                 # 5
    uid = (ctx.data[4:9] if ctx.shanghai else DEFAULT_UID)          # Shanghai: service id ‖ root index
    if not ctx.root.verifier(uid).verify(ctx.data[9:56], ctx.cert.signature):
        _fail(f"root {ctx.root.index:02X} signature over QR 9..55 does not verify{_uid_note(ctx)}")
    return f"signed by root {ctx.root.index:02X}{_uid_note(ctx)}"


def _account(ctx: _Context) -> str:                                  # 6
    pay = ctx.head["pay_account"]
    if not printable_ascii(pay):
        _fail(f"支付账户号 {pay.hex().upper()} is not printable ASCII")
    return f"支付账户号 {pay.decode('ascii')!r}"


def _account_type(ctx: _Context) -> str:                             # 6
    t = ctx.head["account_type"]
    if not ctx.policy.accepts_type(t):
        accepted = ", ".join(f"{x:02X}" for x in sorted(ctx.policy.account_types))
        _fail(f"account type {t:02X} not accepted (accepted: {accepted}; DD never)")
    return f"account type {t:02X}"


def _custom_len(ctx: _Context) -> str:                               # 7
    n, custom = len(ctx.data), ctx.custom_len
    if custom > MAX_CUSTOM:
        _fail(f"custom field L = {custom}, at most {MAX_CUSTOM}")
    if n != MIN_LENGTH + custom:
        _fail(f"L = {custom} makes {MIN_LENGTH + custom} bytes, but the code has {n}")
    try:
        ctx.code = QrCode.parse(ctx.data)
    except CodecError as exc:  # cannot happen once the sizes agree; kept as a refusal, not a crash
        _fail(str(exc))
    ctx.gen_time = ctx.code.gen_time
    return f"L = {custom}"


def _sig_format(ctx: _Context) -> str:                               # 7
    for what, value in (("issuer", ctx.code.authorisation.issuer_sig_format), ("user", ctx.code.user_sig_format)):
        if value != SIG_FORMAT:
            _fail(f"{what} signature format {value:02X}, expected {SIG_FORMAT:02X}")
    return "both 15"


def _auth_expired(ctx: _Context) -> str:                             # 8
    expiry = ctx.code.authorisation.auth_expiry
    if expiry < ctx.now:
        _fail(f"authorisation expired {format_unix(expiry)}, now {format_unix(ctx.now)}")
    return f"authorised until {format_unix(expiry)}"


def _gen_after_auth(ctx: _Context) -> str:                           # 8
    gen, expiry = ctx.gen_time, ctx.code.authorisation.auth_expiry
    if gen > expiry:
        _fail(f"generated {format_unix(gen)}, after the authorisation expired {format_unix(expiry)}")
    return f"generated {format_unix(gen)}"


def _validity(ctx: _Context) -> str:                                 # 9
    validity = ctx.code.authorisation.validity
    if validity > MAX_VALIDITY:
        _fail(f"validity {validity} s, at most {MAX_VALIDITY} s")
    return f"{validity} s"


def _time_window(ctx: _Context) -> str:                              # 9 (+ Q3)
    validity, now = ctx.code.authorisation.validity, ctx.now
    candidates = [ctx.gen_time]
    if ctx.head["issuer"] in ctx.policy.local_time_quirk:
        candidates += [ctx.gen_time - QUIRK_OFFSET, ctx.gen_time + QUIRK_OFFSET]
    for gen in candidates:
        if gen - SKEW <= now <= gen + validity:
            ctx.gen_time = gen
            shift = "" if gen == candidates[0] else f" (read with the ±8 h quirk as {gen})"
            return f"{now - gen} s after generation, valid {validity} s{shift}"
    age = now - ctx.gen_time
    if age > validity:
        _fail(f"stale: generated {age} s ago, valid {validity} s")
    _fail(f"from the future: generated {-age} s ahead of now, skew allowed {SKEW} s")


def _issuer_sig(ctx: _Context) -> str:                               # 10
    end = HEAD_SIZE + ctx.custom_len
    uid = ctx.data[146:154] if ctx.shanghai else DEFAULT_UID       # Shanghai: 发码机构号 ‖ 发码平台编号
    try:
        key = PublicKey.parse(ctx.cert.public_key)
    except ValueError as exc:
        _fail(f"issuer key: {exc}")
    if not key.verifier(uid).verify(ctx.data[3:end], ctx.code.authorisation.issuer_signature):
        _fail(f"issuer signature over QR 3..{end - 1} does not verify{_uid_note(ctx)}")
    return f"issuer key {key.fingerprint}{_uid_note(ctx)}"


def _user_sig(ctx: _Context) -> str:                                 # 10
    end = MIN_LENGTH - 65 + ctx.custom_len
    uid = ctx.data[136:146] if ctx.shanghai else DEFAULT_UID       # Shanghai: 用户账户号
    try:
        key = PublicKey.parse(ctx.head["user_key"])
    except ValueError as exc:
        _fail(f"user key: {exc}")
    if not key.verifier(uid).verify(ctx.data[:end], ctx.code.user_signature):
        _fail(f"user signature over QR 0..{end - 1} does not verify{_uid_note(ctx)}")
    return f"user key {key.fingerprint}{_uid_note(ctx)}"


def _not_accepted(ctx: _Context) -> str:                             # 11
    h = ctx.head
    accepted, ticket = ctx.policy.admits(h["version"], h["issuer"], h["platform"])
    issuer, platform = h["issuer"].hex().upper(), h["platform"].hex().upper()
    if not accepted:
        if h["version"] == 0x81:
            _fail(f"local code of issuer {issuer}, not one of this terminal's local issuers")
        _fail(f"issuer {issuer} with platform {platform} is not on the white list")
    ctx.ticket_type = ticket
    return f"issuer {issuer}, platform {platform}" + (f", ticket type {ticket}" if ticket else "")


def _over_limit(ctx: _Context) -> str:                               # 11
    limit = ctx.head["limit"]
    if ctx.amount is None:
        raise _Refused("no fare given", Result.SKIPPED)
    if ctx.amount > limit:
        _fail(f"fare {ctx.amount} fen above the code's limit {limit} fen")
    return f"fare {ctx.amount} fen, limit {limit} fen"


# -- helpers -----------------------------------------------------------------------------------------

def _account_key(head: dict[str, Any]) -> str:
    """发码机构号 ‖ 发码平台编号 ‖ 用户账户号, hex: 'the same account' of Q10."""
    return (head["issuer"] + head["platform"] + head["account_no"]).hex().upper()


def _keep_until(gen_time: int, validity: int, now: int) -> int:
    return max(gen_time + validity, now) + REPLAY_MARGIN


def _uid_note(ctx: _Context) -> str:
    return " (Shanghai user IDs)" if ctx.shanghai else ""
