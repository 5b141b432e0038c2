"""QR rides in an upload (mobile.md Q12, issue 10 part 5): each code re-verified, its replays found.

A QR ride has no card, counter, balance or TAC: its proof is the signed code it carries whole
(``qr_code``). The clearing platform re-runs the offline checks 1-10 of §1.5 (``ykt_qr.Verifier``
without a terminal's acceptance policy) on that code at the ride's own time (its ``datetime``, China
time) against the platform's root store: the certificate chain (``root_unknown``, ``root_expired``,
``cert_sig``), the issuer's and the user's signatures (``issuer_sig``, ``user_sig``) and the code's
times as the validator saw them. A ride that fails is rejected with that check's token, the name the
validator would have given it (Q11), and the check's detail.

A ride's own fields that the code also carries — the accounts, the issuer and platform codes (which
settlement and the monthly return read) and the generation time — must be the code's: a ride that says
otherwise is rejected `QR_FIELDS`, its detail naming each field and both values (a code that fails its
checks keeps that check's token: the code is not what it claims in the first place).

The same code in two rides — at two terminals, in two files or two runs — is a replay (Q10 holds per
terminal; only clearing sees them all): the first ride in arrival order whose code passed its checks is
the ride, every other one is rejected `QR_REPLAY` (the store finds them: `store.Store`). Acceptance
itself (white list, fare limit, anti-pass-back) is the terminal's policy and is not judged again.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
from dataclasses import dataclass

from ykt_card.clock import CHINA_TZ
from ykt_qr import RootStore, Verifier
from ykt_qr.codec import QrCode

__all__ = ["QrRide", "QrChecker", "QR_REPLAY", "QR_FIELDS", "QR_REASONS", "NO_ROOTS"]

QR_REPLAY = "qr-replay"
"""The reason of a ride whose code already rode (anywhere: any terminal, file or run)."""
QR_FIELDS = "qr-fields"
"""The reason of a ride whose fields differ from what its code carries."""
QR_REASONS = ("length", "version", "cert_format", "cert_expired", "root_unknown", "root_expired", "cert_sig",
              "account", "account_type", "custom_len", "sig_format", "auth_expired", "gen_after_auth", "validity",
              "time_window", "issuer_sig", "user_sig", QR_FIELDS, QR_REPLAY)
"""Every reason a QR ride can be rejected for: the tokens of §1.5 checks 1-10 (ykt_qr), then the ride's
fields against its code, then replay."""
NO_ROOTS = "root_unknown: no QR root store given (--qr-roots); the certificate chain cannot be checked"


@dataclass(frozen=True)
class QrRide:
    """What clearing keeps of a QR ride line: the code (hex), where, when (China time) and the fare."""

    code: str
    terminal: str
    datetime: str
    amount: int
    issuer: str
    platform: str
    city: str | None
    account_no: str
    pay_account: str
    gen_time: int


def _unix(china_time: str) -> int:
    """YYYYMMDDhhmmss China time (a record's datetime, already checked) as Unix seconds (Q3)."""
    return int(_dt.datetime.strptime(china_time, "%Y%m%d%H%M%S").replace(tzinfo=CHINA_TZ).timestamp())


class QrChecker:
    """Checks 1-10 of §1.5 on a ride's code at the ride's time; one per worker (the root store is small)."""

    def __init__(self, roots: str | None) -> None:
        self._verifier = Verifier(RootStore.load(roots)) if roots is not None else None

    def check(self, ride: QrRide) -> tuple[str, str | None, str | None]:
        """(SHA-256 of the code in hex, the failing check's token or None, its detail or None)."""
        code = bytes.fromhex(ride.code)
        digest = hashlib.sha256(code).hexdigest().upper()
        if self._verifier is None:
            return digest, "root_unknown", NO_ROOTS
        verdict = self._verifier.verify(code, _unix(ride.datetime))
        if not verdict.accepted:
            assert verdict.reason is not None
            detail = verdict.check(verdict.reason).detail
            return digest, verdict.reason, f"{verdict.reason}: {detail}" if detail else verdict.reason
        differ = differences(ride, QrCode.parse(code))
        if differ:
            return digest, QR_FIELDS, f"{QR_FIELDS}: " + "; ".join(differ)
        return digest, None, None


def differences(ride: QrRide, code: QrCode) -> list[str]:
    """Each field of the ride (Q12's names) whose value is not the code's, with both values."""
    a = code.authorisation
    pairs = (("account_no", ride.account_no, a.account_no.hex().upper()),
             ("pay_account", ride.pay_account, a.pay_account.decode("latin-1")),
             ("qr_issuer", ride.issuer, a.issuer.hex().upper()),
             ("qr_platform", ride.platform, a.platform.hex().upper()),
             ("qr_gen_time", ride.gen_time, code.gen_time))
    return [f"{name} is {mine!r}, the code says {theirs!r}" for name, mine, theirs in pairs if mine != theirs]
