"""MACs per second through ykt's `keysets.mac`, against the backend doing the same CBC-MAC blocks directly.

Baseline: one pyca/cryptography ECB encryptor created once, the padded message precomputed, CBC chaining
by hand — the least a CBC-MAC can cost on this backend from Python. Ours: `keysets.mac(...)` as every caller
uses it (cipher cache lookup, padding, chaining, truncation). Target (issue 2): ours within 1.5x of the
baseline.

Any duration: a MAC keeps no state, so nothing runs out and nothing is refreshed; `--near-limits` is
accepted like every benchmark's and changes nothing.
Run: `.venv/bin/python benchmarks/crypto.py [--seconds S] [--near-limits]`.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

from keysets import Algorithm, mac, pad80

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Loops, Upkeep, rate, report_upkeep, standard_arguments  # noqa: E402

MESSAGE = bytes.fromhex("000000C806112233445566202611230815")  # MAC1 input of a purchase (18 bytes)


def baseline(encryptor_update, padded: bytes, bs: int, last=None):
    def run() -> bytes:
        x = 0
        for i in range(0, len(padded), bs):
            x ^= int.from_bytes(padded[i : i + bs], "big")
            if last is not None and i == len(padded) - bs:
                return last(x.to_bytes(bs, "big"))[:4]
            x = int.from_bytes(encryptor_update(x.to_bytes(bs, "big")), "big")
        return x.to_bytes(bs, "big")[:4]
    return run


def main() -> int:
    args = standard_arguments(__doc__.splitlines()[0], seconds=0.5).parse_args()
    k8, k16 = bytes.fromhex("16F040BB1EB824AA"), bytes.fromhex("4CFC77E2AD5058183C8140B319660517")
    cases = []
    des_enc = Cipher(TripleDES(k8 * 3), modes.ECB()).encryptor().update
    cases.append(("3DES family, 8-byte session key (ISO 9797-1 alg. 1)", lambda: mac(Algorithm.TDES, k8, MESSAGE),
                  baseline(des_enc, pad80(MESSAGE, 8), 8)))
    kl_enc = Cipher(TripleDES(k16[:8] * 3), modes.ECB()).encryptor().update
    ede_enc = Cipher(TripleDES(k16 + k16[:8]), modes.ECB()).encryptor().update
    cases.append(("3DES, 16-byte key (retail MAC, alg. 3)", lambda: mac(Algorithm.TDES, k16, MESSAGE),
                  baseline(kl_enc, pad80(MESSAGE, 8), 8, last=ede_enc)))
    sm4_enc = Cipher(algorithms.SM4(k16), modes.ECB()).encryptor().update
    cases.append(("SM4, 16-byte key (CBC-MAC)", lambda: mac(Algorithm.SM4, k16, MESSAGE),
                  baseline(sm4_enc, pad80(MESSAGE, 16), 16)))
    for label, ours, base in cases:
        if ours() != base():
            raise SystemExit(f"{Path(__file__).name}: {label}: ours and the baseline disagree")
    print(f"{'case':55} {'ours MAC/s':>12} {'baseline/s':>12} {'ratio':>6}")
    worst = 0.0
    for label, ours, base in cases:
        r_ours, r_base = rate(ours, args.seconds, batch=200), rate(base, args.seconds, batch=200)
        ratio = r_base / r_ours
        worst = max(worst, ratio)
        print(f"{label:55} {r_ours:12,.0f} {r_base:12,.0f} {ratio:6.2f}x")
    print(f"worst ratio {worst:.2f}x (target ≤ 1.5x): {'met' if worst <= 1.5 else 'NOT met'}")
    loops: Loops = {label: (Upkeep(), ()) for label, _, _ in cases}      # nothing to refresh
    return report_upkeep(loops, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
