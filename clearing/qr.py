"""QR rides in an upload (mobile.md Q12, issue 10 part 5): each code re-verified, its replays found.

A QR ride has no card, counter, balance or TAC: its proof is the signed code it carries whole
(``qr_code``). The clearing platform re-runs the offline checks 1-10 of §1.5 (``ykt_qr.Verifier``
without a terminal's acceptance policy) on that code at the ride's own time (its ``datetime``, China
time) against the platform's root store: the certificate chain (``root_unknown``, ``root_expired``,
``cert_sig``), the issuer's and the user's signatures (``issuer_sig``, ``user_sig``) and the code's
times as the validator saw them. A ride that fails is rejected with that check's token, the name the
validator would have given it (Q11), and the check's detail.

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

__all__ = ["QrRide", "QrChecker", "QR_REPLAY", "QR_REASONS", "NO_ROOTS"]

QR_REPLAY = "qr-replay"
"""The reason of a ride whose code already rode (anywhere: any terminal, file or run)."""
QR_REASONS = ("length", "version", "cert_format", "cert_expired", "root_unknown", "root_expired", "cert_sig",
              "account", "account_type", "custom_len", "sig_format", "auth_expired", "gen_after_auth", "validity",
              "time_window", "issuer_sig", "user_sig", QR_REPLAY)
"""Every reason a QR ride can be rejected for: the tokens of §1.5 checks 1-10 (ykt_qr), then replay."""
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
        if verdict.accepted:
            return digest, None, None
        assert verdict.reason is not None
        detail = verdict.check(verdict.reason).detail
        return digest, verdict.reason, f"{verdict.reason}: {detail}" if detail else verdict.reason
