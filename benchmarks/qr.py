"""MOT QR codes: complete offline verifications per second on one core, and codes issued per second.

Verification: `Verifier.verify` on a TEST code with the bus-qr profile's acceptance policy, all 21 checks of
§1.5 (three SM2 verifications, two point decompressions, parsing, times, white list, limit, replay and
anti-pass-back against an in-memory store; `commit=False` so the same code can be checked again). The
floor under it: the same three SM2 verifications called directly on gmalglib, keys already decompressed.
Issuing: the phone's display (`Account.show`: one SM2 signature) and the platform's authorisation
(`Issuer.new_account`: a key pair and one signature). Target (issue 6): ≥ 100 verifications per second, so
that a gate spends under 10 ms of its budget on the check. Run: `.venv/bin/python benchmarks/qr.py [--seconds S]`.
"""
from __future__ import annotations

import sys
from pathlib import Path

from gmalglib.sm2 import SM2

from keysets import RandomSource
from specs.catalog import terminal_profile_path
from terminal_sim.profile import load_terminal_profile
from ykt_qr import TEST_PKI_DIR, RootStore, Verifier
from ykt_qr.pki import account_number, load_account, load_issuer

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Upkeep, rate, report_upkeep, standard_arguments  # noqa: E402

GEN_TIME = 1795478400
TARGET = 100


def main() -> int:
    args = standard_arguments(__doc__.splitlines()[0], 1.0).parse_args()
    rng = RandomSource(1)
    account = load_account(TEST_PKI_DIR / "test-account.toml")
    issuer = load_issuer(TEST_PKI_DIR / "test-issuer.toml")
    roots = RootStore.load(TEST_PKI_DIR / "roots-test.json")
    policy = load_terminal_profile(terminal_profile_path("bus-qr")).qr
    code = account.show(GEN_TIME, rng).to_bytes()
    verifier = Verifier(roots, policy)

    def verify() -> None:
        verdict = verifier.verify(code, GEN_TIME + 10, 200, commit=False)
        assert verdict.accepted, verdict.reason

    root, iss, user = (SM2(pk=p) for p in (roots[0xF0].public_key.point, SM2.convert_pk(code[23:56]),
                                            SM2.convert_pk(code[158:191])))

    def floor() -> None:
        assert root.verify(code[9:56], code[56:120]) and iss.verify(code[3:198], code[199:263]) \
            and user.verify(code[:267], code[268:332])

    def show() -> None:
        account.show(GEN_TIME, rng)

    def authorise() -> None:
        issuer.new_account(b"BENCH00000000001", account_number("1"), GEN_TIME + 604800, rng)

    print(f"{'operation':60} {'per second':>11} {'ms each':>8}")
    results = {}
    for label, fn in (("complete offline verification (checks 1-12)", verify),
                      ("floor: the three SM2 verifications alone (gmalglib)", floor),
                      ("code issued: phone display (time + user signature)", show),
                      ("authorisation issued: user key pair + issuer signature", authorise)):
        results[label] = r = rate(fn, args.seconds, batch=20)
        print(f"{label:60} {r:11,.0f} {1000 / r:8.2f}")
    v = results["complete offline verification (checks 1-12)"]
    f = results["floor: the three SM2 verifications alone (gmalglib)"]
    print(f"verification costs {f / v:.2f}x the bare signatures; "
          f"{v:,.0f}/s (target ≥ {TARGET}/s, under 10 ms a code): {'met' if v >= TARGET else 'NOT met'}")
    # Nothing here runs out: the code is verified without being remembered (commit=False), displays and
    # authorisations only sign, so a run of any length needs no refresh.
    return report_upkeep({"verify": (Upkeep(), ()), "issue": (Upkeep(), ())}, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
