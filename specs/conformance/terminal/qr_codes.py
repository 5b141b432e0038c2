"""The QR codes the terminal suite shows a scanner: named personalities made with ykt's TEST PKI.

Every code is made at the moment of its scan (the suite's clock), from the shipped TEST root F0 and
issuer (ykt_qr/test, trusted by the root store roots-test), through the same steps a phone and its
code platform take (ykt_qr.pki): the platform authorises an account, the phone signs each display.
A personality plants one defect, so exactly one check of mobile.md §1.5 must refuse it, and the case
says which token (Q11) the terminal must give as its reason:

    valid                      a good interoperable (80) code of the case's account: approved
    forged_certificate         a byte of the root's signature on the issuer certificate flipped: cert_sig
    forged_issuer_signature    the issuer's signature damaged, the phone's re-made over it: issuer_sig
    forged_user_signature      a byte of the phone's signature flipped: user_sig
    wrong_uid_mode             the whole chain signed with the Shanghai user IDs (Q1): cert_sig
    unknown_root               an issuer certified by TEST root F1, which no store trusts: root_unknown
    expired_certificate        an issuer certificate that expired 01/2020: cert_expired
    expired_authorisation      an authorisation that expired 5 s before the scan: auth_expired
    stale                      generated validity + 1 s before the scan: time_window
    future                     generated 30 s after the scan (the skew is 20 s): time_window
    replay                     the very bytes of the case's previous scan: replay
    anti_passback              a new, good code of the case's account: anti_passback within the window
    wrong_length               a good code one byte short: length
    custom_over_32             a 362-byte code whose L byte says 33: custom_len
    account_type_not_accepted  account type DD (never accepted): account_type
    issuer_not_accepted        a code of issuer F0000009, on no white list: not_accepted
    over_limit                 a good code whose single-ride limit (100 fen) is below the fare: over_limit

Randomness comes from the session's seeded source, so a run repeats byte for byte.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ykt_qr import TEST_PKI_DIR
from ykt_qr.pki import Account, Issuer, RootCa, load_issuer, load_root

__all__ = ["QR_PERSONALITIES", "QrCodes", "AUTH_DAYS", "SMALL_LIMIT"]

AUTH_DAYS = 30
"""The case's account is authorised from 30 days before its first scan to 30 days after."""
SMALL_LIMIT = 100
"""The single-ride limit (fen) of the over_limit account: below any shipped flat fare."""
PAY_ACCOUNT = b"YKT-SUITE-QR-001"
ACCOUNT_NO = bytes.fromhex("1234567890123456789F")


@dataclass
class QrCodes:
    """One case's code maker: the TEST PKI, the case's account (made at its first scan), what it showed."""

    random: Callable[[int], bytes]
    root: RootCa = field(default_factory=lambda: load_root(TEST_PKI_DIR / "test-root-f0.toml"))
    issuer: Issuer = field(default_factory=lambda: load_issuer(TEST_PKI_DIR / "test-issuer.toml"))
    account: Account | None = None
    last: bytes | None = None

    def make(self, personality: str, now: int) -> bytes:
        """The bytes of `personality` shown at `now` (Unix seconds); remembered as the last code."""
        if personality not in QR_PERSONALITIES:
            raise ValueError(f"code {personality!r}: not a QR personality (known: {', '.join(QR_PERSONALITIES)})")
        code = QR_PERSONALITIES[personality](self, now)
        self.last = code
        return code

    # -- the parts the personalities are made of ------------------------------------------------------
    def own_account(self, now: int) -> Account:
        if self.account is None:
            self.account = self.new_account(self.issuer, now)
        return self.account

    def new_account(self, issuer: Issuer, now: int, *, auth_expiry: int | None = None, **fields: Any) -> Account:
        expiry = now + AUTH_DAYS * 86400 if auth_expiry is None else auth_expiry
        return issuer.new_account(PAY_ACCOUNT, ACCOUNT_NO, expiry, self.random, **fields)

    def issuer_under(self, root: RootCa, *, code: str = "F0000001", expiry: str = "1239",
                     uid_mode: str = "default") -> Issuer:
        return Issuer.create(root, bytes.fromhex(code), bytes.fromhex("F0000002"), bytes.fromhex(expiry),
                             bytes.fromhex("000002"), uid_mode, self.random)

    def show(self, account: Account, at: int) -> bytes:
        return account.show(at, self.random).to_bytes()


def _flip(code: bytes, at: int) -> bytes:
    return code[:at] + bytes([code[at] ^ 0x01]) + code[at + 1:]


def _valid(q: QrCodes, now: int) -> bytes:
    return q.show(q.own_account(now), now)


def _forged_certificate(q: QrCodes, now: int) -> bytes:
    return _flip(_valid(q, now), 3 + 53 + 10)            # inside the certificate's root signature (QR 56..119)


def _forged_issuer_signature(q: QrCodes, now: int) -> bytes:
    account = q.own_account(now)
    auth = account.authorisation
    bad = bytes([auth.issuer_signature[0] ^ 0x01]) + auth.issuer_signature[1:]
    forged = dataclasses.replace(account, authorisation=dataclasses.replace(auth, issuer_signature=bad))
    return q.show(forged, now)                           # the phone signs the damaged authorisation as it is


def _forged_user_signature(q: QrCodes, now: int) -> bytes:
    code = _valid(q, now)
    return _flip(code, len(code) - 10)                   # inside the user signature (the last 64 bytes)


def _wrong_uid_mode(q: QrCodes, now: int) -> bytes:
    issuer = q.issuer_under(q.root, uid_mode="shanghai")
    return q.show(q.new_account(issuer, now), now)


def _unknown_root(q: QrCodes, now: int) -> bytes:
    stranger = RootCa.create(0xF1, bytes.fromhex("1249"), q.random)
    return q.show(q.new_account(q.issuer_under(stranger), now), now)


def _expired_certificate(q: QrCodes, now: int) -> bytes:
    return q.show(q.new_account(q.issuer_under(q.root, expiry="0120"), now, auth_expiry=now + 86400), now)


def _expired_authorisation(q: QrCodes, now: int) -> bytes:
    account = q.new_account(q.issuer, now, auth_expiry=now - 5)
    return q.show(account, now - 10)                     # generated while still authorised


def _stale(q: QrCodes, now: int) -> bytes:
    account = q.own_account(now)
    return q.show(account, now - account.authorisation.validity - 1)


def _future(q: QrCodes, now: int) -> bytes:
    return q.show(q.own_account(now), now + 30)         # 10 s beyond the skew: the terminal clock may tick


def _replay(q: QrCodes, now: int) -> bytes:
    if q.last is None:
        raise ValueError("code replay: the case scanned no code before to show again")
    return q.last


def _wrong_length(q: QrCodes, now: int) -> bytes:
    return _valid(q, now)[:-1]


def _custom_over_32(q: QrCodes, now: int) -> bytes:
    code = q.show(q.new_account(q.issuer, now, custom=bytes(30)), now)     # 362 bytes, L = 30
    return code[:197] + bytes([33]) + code[198:]                           # L byte (QR 197) says 33


def _account_type_not_accepted(q: QrCodes, now: int) -> bytes:
    return q.show(q.new_account(q.issuer, now, account_type=0xDD), now)


def _issuer_not_accepted(q: QrCodes, now: int) -> bytes:
    return q.show(q.new_account(q.issuer_under(q.root, code="F0000009"), now), now)


def _over_limit(q: QrCodes, now: int) -> bytes:
    return q.show(q.new_account(q.issuer, now, limit=SMALL_LIMIT), now)


QR_PERSONALITIES: dict[str, Callable[[QrCodes, int], bytes]] = {
    "valid": _valid,
    "forged_certificate": _forged_certificate,
    "forged_issuer_signature": _forged_issuer_signature,
    "forged_user_signature": _forged_user_signature,
    "wrong_uid_mode": _wrong_uid_mode,
    "unknown_root": _unknown_root,
    "expired_certificate": _expired_certificate,
    "expired_authorisation": _expired_authorisation,
    "stale": _stale,
    "future": _future,
    "replay": _replay,
    "anti_passback": _valid,
    "wrong_length": _wrong_length,
    "custom_over_32": _custom_over_32,
    "account_type_not_accepted": _account_type_not_accepted,
    "issuer_not_accepted": _issuer_not_accepted,
    "over_limit": _over_limit,
}
"""Each personality's maker; `anti_passback` is a new good code of the case's account (what makes it a
pass-back is the case: the same account scanned again within the terminal's anti_passback_s)."""
