"""ykt_qr: the MOT interoperable QR code (部标二维码, mobile.md §1): codec, SM2, TEST PKI, offline verifier.

Sits beside ykt_card on the same floor: it uses the schema layer (ykt_files), the project's randomness
(keysets) and China time (ykt_card.clock), and nothing above. The validator's QR path and the `ykt qr`
commands build on `Verifier` (verify.py) and the TEST PKI (pki.py).
"""
from pathlib import Path as _Path

from .codec import Authorisation, Certificate, CodecError, QrCode, RootRecord
from .policy import AcceptancePolicy, parse_policy
from .replay import JsonReplayStore, MemoryReplayStore, ReplayStore
from .roots import RootKey, RootStore, RootStoreError
from .verify import ACCEPTANCE_CHECKS, CHECKS, Check, Result, Verdict, Verifier

__all__ = [
    "Authorisation", "Certificate", "CodecError", "QrCode", "RootRecord", "AcceptancePolicy", "parse_policy",
    "ReplayStore", "MemoryReplayStore", "JsonReplayStore", "RootKey", "RootStore", "RootStoreError",
    "CHECKS", "ACCEPTANCE_CHECKS", "Check", "Result", "Verdict", "Verifier",
]

TEST_PKI_DIR = _Path(__file__).parent / "test"
"""The shipped TEST PKI: a root CA (F0), an issuer, an account and the root store that trusts F0."""
