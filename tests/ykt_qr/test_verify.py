"""The verifier as exchange tables: codes from the independent implementation, each scan with its verdict.

Each case is a terminal setting (policy or none, roots, fare) and the scans it sees in order; each scan
gives the code (a good one or one with a planted defect), the time, and the expected outcome: the token
of the first failure (None = accepted) and the failing check's detail. Every verdict must also have the
shape of §1.5: the checks before the failure pass (or are skipped without a policy), the failing one
fails, and every later one is not run.
"""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import pytest

from ykt_qr import CHECKS, AcceptancePolicy, MemoryReplayStore, Result, RootStore, Verifier
from ykt_qr.sm2 import PublicKey
from ykt_qr.verify import ACCEPTANCE_CHECKS

from tests.reference import reference_text

from . import independent as ind
from .conftest import ISSUER, NOW, PLATFORM, T0, World

SHANGHAI_CERT_UID = bytes.fromhex("01010000F0")                   # service id ‖ root index
OTHER = ind.Key(0xBAD5EED)                                          # a key nobody certified


def _cert(w: World, **kw) -> bytes:
    return ind.certificate(w.root, kw.pop("root_index", 0xF0), w.issuer, ISSUER, **kw)


def _shanghai(w: World, **changes) -> bytes:
    """A code signed as Shanghai's issuers do: all three signatures over their own user IDs (§1.4)."""
    spec = w.spec(cert=_cert(w, uid=SHANGHAI_CERT_UID), issuer_uid=ISSUER + PLATFORM,
                  user_uid=bytes.fromhex("90010000000000000001"), **changes)
    return ind.build_code(spec)


Build = Callable[[World], bytes]
CODES: dict[str, Build] = {
    "good": lambda w: w.code(),
    "good, fare limit 150": lambda w: w.code(limit=150),
    "good, local (81)": lambda w: w.code(version=0x81),
    "good, L = 32": lambda w: w.code(custom=bytes(range(32))),
    "good, account type 00": lambda w: w.code(account_type=0x00),
    "same account, new code at +1 s": lambda w: w.code(gen_time=T0 + 1),
    "same account, new code at +30 s": lambda w: w.code(gen_time=T0 + 30),
    "same account, new code at +61 s": lambda w: w.code(gen_time=T0 + 61),
    "one byte short": lambda w: w.code()[:-1],
    "length field one more": lambda w: w.code(length=330),
    "L = 33 (365 bytes)": lambda w: w.code(custom=bytes(33)),
    "L byte 33, 362 bytes": lambda w: w.code(custom=bytes(30), custom_len=33),
    "L byte 5, 362 bytes": lambda w: w.code(custom=bytes(30), custom_len=5),
    "version 7F": lambda w: w.code(version=0x7F),
    "certificate header 25": lambda w: w.code(cert=_cert(w, header=0x25)),
    "certificate format 13": lambda w: w.code(cert=_cert(w, fmt=0x13)),
    "certificate algorithms 04 03": lambda w: w.code(cert=_cert(w, algorithms="0403")),
    "certificate key length 40": lambda w: w.code(cert=_cert(w, key_length=0x40)),
    "certificate expired 10/2026": lambda w: w.code(cert=_cert(w, expiry="1026")),
    "certificate to 11/2026": lambda w: w.code(cert=_cert(w, expiry="1126")),
    "certificate date 1A26": lambda w: w.code(cert=_cert(w, expiry="1A26")),
    "certificate of root F1": lambda w: w.code(cert=_cert(w, root_index=0xF1)),
    "forged certificate": lambda w: w.code(cert=ind.certificate(OTHER, 0xF0, w.issuer, ISSUER)),
    "account not printable": lambda w: w.code(pay_account=b"IND000000000000\x01"),
    "account type DD": lambda w: w.code(account_type=0xDD),
    "issuer signature format 16": lambda w: w.code(issuer_format=0x16),
    "user signature format 14": lambda w: w.code(user_format=0x14),
    "authorisation expired 5 s ago": lambda w: w.code(auth_expiry=T0 + 5),
    "generated after its authorisation": lambda w: w.code(gen_time=T0 + 15, auth_expiry=T0 + 12),
    "validity 1201 s": lambda w: w.code(validity=1201),
    "forged issuer signature": lambda w: w.code(issuer_key=OTHER),
    "forged user signature": lambda w: w.code(user_key=OTHER, user_key_bytes=w.user.compressed),
    "Shanghai user IDs": lambda w: _shanghai(w),
    "Shanghai IDs on the user signature only": lambda w: w.code(user_uid=bytes.fromhex("90010000000000000001")),
    "issuer F0000009": lambda w: w.code(issuer=bytes.fromhex("F0000009")),
    "local (81) of issuer F0000009": lambda w: w.code(version=0x81, issuer=bytes.fromhex("F0000009")),
    "China time written as Unix": lambda w: w.code(gen_time=T0 + 8 * 3600),
}


@dataclass(frozen=True)
class Scan:
    code: str
    at: int
    reason: str | None
    detail: str | None = None          # the failing check's detail (None: not compared)
    amount: int | None = 200


@dataclass(frozen=True)
class Case:
    id: str
    scans: tuple[Scan, ...]
    policy: AcceptancePolicy | None = None
    store: str = "F0"                  # "F0", "F0 expired"


POLICY = AcceptancePolicy(local_issuers=frozenset({ISSUER}), whitelist=MappingProxyType({(ISSUER, PLATFORM): "01"}))
TJ = dataclasses.replace(POLICY, account_types=frozenset(range(1, 6)))
SHANGHAI = dataclasses.replace(POLICY, shanghai_uid_issuers=frozenset({ISSUER}))
QUIRK = dataclasses.replace(POLICY, local_time_quirk=frozenset({ISSUER}))
NO_ANTI_PASSBACK = dataclasses.replace(POLICY, anti_passback_s=0)


def one(code: str, reason: str | None, detail: str | None = None, at: int = NOW, policy=None, store="F0",
        amount: int | None = 200, id: str | None = None) -> Case:
    return Case(id or code, (Scan(code, at, reason, detail, amount),), policy, store)


CASES = [
    # -- accepted ---------------------------------------------------------------------------------
    one("good", None, id="good code, no profile"),
    one("good", None, policy=POLICY, id="good code, profile: white list gives ticket type 01"),
    one("good, local (81)", None, policy=POLICY),
    one("good, L = 32", None, policy=POLICY),
    one("good, account type 00", None, id="type 00 under the default account types"),
    one("certificate to 11/2026", None, id="certificate valid through the last day of its month"),
    one("good", None, at=T0 - 20, id="20 s from the future: within the skew"),
    one("good", None, at=T0 + 60, id="at the end of its validity"),
    one("good, fare limit 150", None, policy=POLICY, amount=150, id="fare equal to the limit"),
    one("Shanghai user IDs", None, policy=SHANGHAI, id="Shanghai IDs at a terminal that knows the issuer's mode"),
    one("China time written as Unix", None, at=T0 + 8 * 3600 - 28800 + 10, policy=QUIRK,
        id="local time quirk: an issuer listed for it is read back 8 h"),
    # -- 1 length -------------------------------------------------------------------------------------
    one("one byte short", "length", "331 bytes, expected 332..364", id="wrong length"),
    one("length field one more", "length", "length field 330 + 3 = 333, but the code has 332 bytes"),
    one("L = 33 (365 bytes)", "length", "365 bytes, expected 332..364", id="custom domain of 33 bytes"),
    # -- 2-4 ------------------------------------------------------------------------------------------
    one("version 7F", "version", "version 7F, expected 80 or above"),
    one("certificate header 25", "cert_format", "certificate header 25, expected 24"),
    one("certificate format 13", "cert_format", "certificate format 13, expected 12"),
    one("certificate algorithms 04 03", "cert_format", "certificate algorithms 0403, expected 0404"),
    one("certificate key length 40", "cert_format", "certificate key length 40, expected 21"),
    one("certificate expired 10/2026", "cert_expired", "certificate expired 10/2026", id="expired certificate"),
    one("certificate date 1A26", "cert_expired", "certificate expiry: 1A26 is not a BCD MMYY date"),
    # -- 5 roots --------------------------------------------------------------------------------------
    one("certificate of root F1", "root_unknown", "root index F1 is not in the store (known: F0)", id="unknown root"),
    one("good", "root_expired", "root F0 expired 10/2026", store="F0 expired"),
    one("forged certificate", "cert_sig", "root F0 signature over QR 9..55 does not verify"),
    # -- 6 account --------------------------------------------------------------------------------------
    one("account not printable", "account", "支付账户号 494E4430303030303030303030303001 is not printable ASCII"),
    one("account type DD", "account_type", "account type DD not accepted (accepted: 00, 01, 02, 03, 04, 05; DD never)",
        id="unaccepted account type DD"),
    one("good, account type 00", "account_type", "account type 00 not accepted (accepted: 01, 02, 03, 04, 05; DD never)",
        policy=TJ, id="type 00 at a TJ-style terminal"),
    # -- 7 ----------------------------------------------------------------------------------------------
    one("L byte 33, 362 bytes", "custom_len", "custom field L = 33, at most 32", id="custom domain over 32"),
    one("L byte 5, 362 bytes", "custom_len", "L = 5 makes 337 bytes, but the code has 362"),
    one("issuer signature format 16", "sig_format", "issuer signature format 16, expected 15"),
    one("user signature format 14", "sig_format", "user signature format 14, expected 15"),
    # -- 8-9 time ---------------------------------------------------------------------------------------
    one("authorisation expired 5 s ago", "auth_expired",
        "authorisation expired 2026-11-24 08:00:05 CST (1795478405), now 2026-11-24 08:00:10 CST (1795478410)",
        id="expired authorisation"),
    one("generated after its authorisation", "gen_after_auth",
        "generated 2026-11-24 08:00:15 CST (1795478415), after the authorisation expired "
        "2026-11-24 08:00:12 CST (1795478412)"),
    one("validity 1201 s", "validity", "validity 1201 s, at most 1200 s"),
    one("good", "time_window", "stale: generated 61 s ago, valid 60 s", at=T0 + 61, id="stale code"),
    one("good", "time_window", "from the future: generated 21 s ahead of now, skew allowed 20 s", at=T0 - 21,
        id="code from the future beyond the skew"),
    one("China time written as Unix", "time_window",
        "from the future: generated 28790 s ahead of now, skew allowed 20 s", policy=POLICY,
        id="local time quirk off: the China-time code is from the future"),
    # -- 10 signatures ----------------------------------------------------------------------------------
    one("forged issuer signature", "issuer_sig", "issuer signature over QR 3..197 does not verify"),
    one("forged user signature", "user_sig", "user signature over QR 0..266 does not verify"),
    one("Shanghai user IDs", "cert_sig", "root F0 signature over QR 9..55 does not verify",
        id="wrong user-ID mode: Shanghai code at a default terminal"),
    one("good", "cert_sig", "root F0 signature over QR 9..55 does not verify (Shanghai user IDs)", policy=SHANGHAI,
        id="wrong user-ID mode: default code from an issuer the terminal takes as Shanghai"),
    one("Shanghai IDs on the user signature only", "user_sig", "user signature over QR 0..266 does not verify",
        id="wrong user-ID mode on the user signature alone"),
    # -- 11 acceptance ----------------------------------------------------------------------------------
    one("issuer F0000009", "not_accepted", "issuer F0000009 with platform F0000002 is not on the white list",
        policy=POLICY),
    one("local (81) of issuer F0000009", "not_accepted",
        "local code of issuer F0000009, not one of this terminal's local issuers", policy=POLICY),
    one("good, fare limit 150", "over_limit", "fare 200 fen above the code's limit 150 fen", policy=POLICY,
        id="fare above the code's limit"),
    # -- 12 repeats ----------------------------------------------------------------------------------------
    Case("replay", (Scan("good", NOW, None), Scan("good", NOW + 5, "replay", "this exact code was accepted before")),
         POLICY),
    Case("replay after the anti-pass-back time", (Scan("good", NOW, None), Scan("good", NOW + 45, "replay")),
         NO_ANTI_PASSBACK),
    Case("anti-pass-back", (Scan("good", NOW, None),
                            Scan("same account, new code at +30 s", NOW + 30, "anti_passback",
                                 "same account 30 s ago, within anti_passback_s 60")), POLICY),
    Case("anti-pass-back over", (Scan("good", NOW, None),
                                 Scan("same account, new code at +61 s", NOW + 61, None)), POLICY),
    Case("anti-pass-back off", (Scan("good", NOW, None),
                                Scan("same account, new code at +30 s", NOW + 30, None)), NO_ANTI_PASSBACK),
    Case("same account within 2 s: ignored, no record",
         (Scan("good", NOW, None),
          Scan("same account, new code at +1 s", NOW + 1, "ignored", "same account 1 s ago (under 2 s): ignored, no record"),
          Scan("same account, new code at +1 s", NOW + 2, "anti_passback",
               "same account 2 s ago, within anti_passback_s 60")), POLICY),
    Case("refused codes are not remembered", (Scan("good, fare limit 150", NOW, "over_limit"),
                                              Scan("good, fare limit 150", NOW + 1, None, amount=100)), POLICY),
]


def _store(w: World, which: str) -> RootStore:
    if which == "F0 expired":
        return RootStore.from_dict({"F0": ind.root_record(w.root, 0xF0, expiry="1026").hex()})
    return w.store


@pytest.fixture(scope="module")
def codes(world) -> dict[str, bytes]:
    return {name: build(world) for name, build in CODES.items()}


def assert_shape(verdict, reason: str | None, policy: bool) -> None:
    """§1.5's order: pass … pass, fail, not_run …; steps 11-12 skipped without a policy."""
    names = [c.name for c in verdict.checks]
    assert names == list(CHECKS)
    stop = names.index(_failing(reason)) if reason is not None else len(names)
    for i, check in enumerate(verdict.checks):
        if i < stop:
            wanted = Result.SKIPPED if (not policy and check.name in ACCEPTANCE_CHECKS) else Result.PASS
        elif i == stop:
            wanted = Result.IGNORED if reason == "ignored" else Result.FAIL
        else:
            wanted = Result.NOT_RUN
        assert check.result is wanted, (check, wanted)


def _failing(reason: str) -> str:
    """The check that ends a run with `reason`: Q10's debounce is the anti-pass-back check's outcome."""
    return "anti_passback" if reason == "ignored" else reason


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_exchange(case: Case, world, codes):
    verifier = Verifier(_store(world, case.store), case.policy)
    for n, scan in enumerate(case.scans):
        verdict = verifier.verify(codes[scan.code], scan.at, scan.amount if case.policy else None)
        assert (n, verdict.reason) == (n, scan.reason), [c for c in verdict.checks if c.result is Result.FAIL]
        assert verdict.accepted is (scan.reason is None)
        assert_shape(verdict, scan.reason, case.policy is not None)
        if scan.detail is not None:
            assert verdict.check(_failing(scan.reason)).detail == scan.detail


def test_a_good_code_passes_every_check_with_these_details(world, codes):
    """The golden path in full, as the terminal's log will show it."""
    verdict = Verifier(world.store, POLICY).verify(codes["good"], NOW, 200)
    issuer_fp = PublicKey.parse(world.issuer.compressed).fingerprint
    user_fp = PublicKey.parse(world.user.compressed).fingerprint
    assert [(c.name, c.result.value, c.detail) for c in verdict.checks] == [
        ("length", "pass", "332 bytes"),
        ("version", "pass", "version 80"),
        ("cert_format", "pass", "header 24, format 12, SM2 04 04, key length 21"),
        ("cert_expired", "pass", "valid through 12/2039"),
        ("root_unknown", "pass", "root F0"),
        ("root_expired", "pass", "valid through 12/2049"),
        ("cert_sig", "pass", "signed by root F0"),
        ("account", "pass", "支付账户号 'IND0000000000001'"),
        ("account_type", "pass", "account type 01"),
        ("custom_len", "pass", "L = 0"),
        ("sig_format", "pass", "both 15"),
        ("auth_expired", "pass", "authorised until 2026-12-01 08:00:00 CST (1796083200)"),
        ("gen_after_auth", "pass", "generated 2026-11-24 08:00:00 CST (1795478400)"),
        ("validity", "pass", "60 s"),
        ("time_window", "pass", "10 s after generation, valid 60 s"),
        ("issuer_sig", "pass", f"issuer key {issuer_fp}"),
        ("user_sig", "pass", f"user key {user_fp}"),
        ("not_accepted", "pass", "issuer F0000001, platform F0000002, ticket type 01"),
        ("over_limit", "pass", "fare 200 fen, limit 2000 fen"),
        ("replay", "pass", "code not seen before"),
        ("anti_passback", "pass", "account not seen before"),
    ]
    assert (verdict.accepted, verdict.reason, verdict.ticket_type) == (True, None, "01")
    assert verdict.account == "F0000001F000000290010000000000000001"
    doc = verdict.to_json()
    assert (doc["accepted"], doc["reason"], len(doc["checks"])) == (True, None, 21)


class TestRealSample:
    """Q14: the real code ends in root_unknown at its generation time and in cert_expired today."""

    def test_at_its_generation_time(self, real_code, real_root_02):
        verdict = Verifier(RootStore.from_dict({"02": real_root_02.hex()})).verify(real_code, 1592893100)
        assert verdict.reason == "root_unknown"
        assert verdict.check("root_unknown").detail == "root index 17 is not in the store (known: 02)"
        assert [c.result for c in verdict.checks[:4]] == [Result.PASS] * 4

    def test_today(self, real_code, real_root_02):
        verdict = Verifier(RootStore.from_dict({"02": real_root_02.hex()})).verify(real_code, int(time.time()))
        assert (verdict.reason, verdict.check("cert_expired").detail) == ("cert_expired", "certificate expired 06/2020")


def test_the_month_ends_in_china_time(world, codes):
    """Q5: a certificate to 11/2026 holds until 2026-11-30 23:59:59 China time, not UTC."""
    last_second = 1796054399            # 2026-11-30 23:59:59 CST = 15:59:59 UTC
    code = ind.build_code(world.spec(cert=_cert(world, expiry="1126"), gen_time=last_second - 5,
                                     auth_expiry=last_second + 86400))
    verifier = Verifier(world.store)
    assert verifier.verify(code, last_second).accepted
    assert verifier.verify(code, last_second + 1).reason == "cert_expired"


def test_commit_later_for_a_terminal_that_records_first(world, codes):
    store = MemoryReplayStore()
    verifier = Verifier(world.store, POLICY, store)
    first = verifier.verify(codes["good"], NOW, 200, commit=False)
    assert first.accepted and verifier.verify(codes["good"], NOW + 5, 200, commit=False).accepted
    verifier.commit(first)
    assert verifier.verify(codes["good"], NOW + 5, 200).reason == "replay"
    assert store.codes[first.digest] == T0 + 60 + 20      # kept for validity + 20 s
    assert not verifier.verify(codes["good"], NOW + 5, 200).accepted
    with pytest.raises(ValueError, match="only an accepted verdict"):
        verifier.commit(verifier.verify(codes["one byte short"], NOW))


def test_the_replay_store_lets_go_after_validity_plus_20_s(world, codes):
    store = MemoryReplayStore()
    store.remember(b"\x01" * 32, "A", NOW, NOW + 70)
    assert store.code_seen(b"\x01" * 32, NOW + 70) and not store.code_seen(b"\x01" * 32, NOW + 71)


def test_every_token_of_1_5_is_a_check_in_order():
    """§1.5's tokens, in the order the reference lists them."""
    text = reference_text("mobile.md")
    section = text[text.index("### 1.5"):text.index("### 1.6")]
    tokens = [t for t in re.findall(r"`([a-z_]+)`", section)]
    assert tokens == list(CHECKS)


class _Counting(MemoryReplayStore):
    """A store that logs what the verifier asks it to remember (as a journal-backed store would write)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def remember(self, digest, account, at, keep_until):
        self.calls.append((account, at, keep_until))
        super().remember(digest, account, at, keep_until)


def test_a_terminal_store_sees_each_accepted_code_once(world, codes):
    store = _Counting()
    verifier = Verifier(world.store, POLICY, store)
    verifier.verify(codes["good"], NOW, 200)
    verifier.verify(codes["good"], NOW + 3, 200)       # replay: not remembered again
    verifier.verify(codes["one byte short"], NOW + 4)  # refused: not remembered
    assert store.calls == [("F0000001F000000290010000000000000001", NOW, T0 + 80)]


def test_the_clearing_record_extension_of_q12(world, codes):
    accepted = Verifier(world.store, POLICY).verify(codes["good"], NOW, 200)
    assert accepted.record_fields() == {
        "medium": "qr", "qr_code": codes["good"].hex().upper(), "reason": None,
        "account_no": "90010000000000000001", "pay_account": "IND0000000000001", "qr_issuer": "F0000001",
        "qr_platform": "F0000002", "qr_gen_time": T0, "ticket_type": "01"}
    short = Verifier(world.store, POLICY).verify(codes["one byte short"], NOW, 200)
    assert short.record_fields() == {"medium": "qr", "qr_code": codes["one byte short"].hex().upper(),
                                     "reason": "length"}
