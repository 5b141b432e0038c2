"""How long the suites take: card suite against an `image:` card (target < 30 s) and through pcscd + vpcd
(< 90 s); terminal suite against `--dut ykt` (< 30 s), and against every shipped terminal profile in turn.

Both runs use a freshly issued dual-algorithm reference card and the whole non-destructive suite with
the reference profile. The image run pays for saving the image after every change (fsync), as
`--dut image:PATH` does; the pcscd run serves the same image the way `ykt card serve` does (vpcd slot 0,
saved after every change) and reaches it as `pcsc:Virtual PCD 00 00`. The pcscd run takes the
machine-wide lock the tests use and starts pcscd when none runs (as root).
The terminal runs issue their own test cards and a virtual PSAM from the TEST key sets, and cross the
recovery window on the suite's clock (no waiting).
Run: `.venv/bin/python benchmarks/conformance.py [--no-pcsc]`.
"""
from __future__ import annotations

import datetime as _dt
import sys
import tempfile
import time
from pathlib import Path

from apdu.iso14443 import pseudo_atr
from keysets import TEST_KEYSET_DIR, KeySet
from keysets.randomness import RandomSource
from specs.catalog import card_profile_path
from specs.conformance.options import RunOptions, run_suite
from ykt_card.card.cos import TUnionCardOS
from ykt_card.card.image import load_card, save_card, saver
from ykt_card.issuance.personalise import issue_card
from ykt_card.issuance.profile import load_card_profile

sys.path.insert(0, str(Path(__file__).parent))
from _harness import Upkeep, report_upkeep, standard_arguments  # noqa: E402

KEYSETS = [str(TEST_KEYSET_DIR / f"gd-test-{a}.toml") for a in ("3des", "sm4")]


def fresh_image(folder: Path) -> Path:
    profile = load_card_profile(card_profile_path("reference"))
    card = issue_card(profile, [KeySet.load(k) for k in KEYSETS], profile.card_number(1), _dt.date(2026, 1, 1))
    path = folder / "card.json"
    save_card(path, card.state)
    return path


def timed(options: RunOptions) -> tuple[float, dict[str, int]]:
    start = time.perf_counter()
    result = run_suite(options)
    return time.perf_counter() - start, result.counts()


def image_run(folder: Path) -> tuple[float, dict[str, int]]:
    image = fresh_image(folder)
    return timed(RunOptions("card", f"image:{image}", KEYSETS, profile="reference", seed=1,
                            clock="20260301120000"))


def pcsc_run(folder: Path) -> tuple[float, dict[str, int]]:
    from apdu.transport.pcsc.daemon import Pcscd, vpcd_reader_name
    from apdu.transport.pcsc.vpcd import VpcdEndpoint, slot_port
    from specs.conformance.pcsc_session import vpcd_session

    image = fresh_image(folder)
    state = load_card(image)
    card = TUnionCardOS(state, rng=RandomSource(1).fork("card"), on_commit=saver(image))
    atr = pseudo_atr(state.ats_historical)
    with vpcd_session():
        daemon = Pcscd().start()
        endpoint = VpcdEndpoint(card, "localhost", slot_port(0), atr)
        endpoint.serve_in_thread()
        try:
            reader = vpcd_reader_name(0)
            daemon.wait_card(reader, present=True, atr=atr)
            return timed(RunOptions("card", f"pcsc:{reader}", KEYSETS, profile="reference",
                                    clock="20260301120000"))
        finally:
            endpoint.stop()
            daemon.wait_card(vpcd_reader_name(0), present=False)
            daemon.stop()


def terminal_run(folder: Path, profiles: tuple[str, ...] = ("bus-flat",)) -> tuple[float, dict[str, int]]:
    total: dict[str, int] = {}
    start = time.perf_counter()
    for profile in profiles:
        result = run_suite(RunOptions("terminal", f"ykt:{profile}", KEYSETS, seed=1, clock="20260301120000"))
        for verdict, n in result.counts().items():
            total[verdict] = total.get(verdict, 0) + n
    return time.perf_counter() - start, total


def every_profile_run(folder: Path) -> tuple[float, dict[str, int]]:
    from specs.catalog import SHELVES
    return terminal_run(folder, tuple(SHELVES["terminal-profile"].names()))


def main() -> int:
    ap = standard_arguments(__doc__.splitlines()[0], 1.0)
    ap.add_argument("--no-pcsc", action="store_true", help="Only the image run.")
    args = ap.parse_args()  # the suite runs once whatever --seconds says: a run is its own measure
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("image:", 30.0, image_run)] + ([] if args.no_pcsc else [("pcscd + vpcd", 90.0, pcsc_run)])
        terminal_runs = [("ykt (bus-flat)", 30.0, terminal_run), ("ykt, 9 profiles", 30.0, every_profile_run)]
        print(f"{'card suite via':14} {'seconds':>8} {'target':>7}  verdicts")
        ok = True
        times = []
        for n, (label, target, fn) in enumerate(runs):
            folder = Path(tmp) / str(n)
            folder.mkdir()
            seconds, counts = fn(folder)
            times.append(seconds)
            ok &= seconds < target and counts["fail"] == counts["inconclusive"] == 0
            print(f"{label:14} {seconds:8.2f} {target:6.0f}s  {counts}")
        if len(times) == 2:
            print(f"through pcscd + vpcd the suite takes {times[1] / times[0]:.2f}x its in-process time")
        else:
            print(f"the image run takes {times[0] / 30.0:.2f}x its 30 s budget")
        print(f"{'terminal suite':14} {'seconds':>8} {'target':>7}  verdicts")
        for n, (label, target, fn) in enumerate(terminal_runs):
            seconds, counts = fn(Path(tmp))
            ok &= seconds < target and counts["fail"] == counts["inconclusive"] == 0
            print(f"{label:14} {seconds:8.2f} {target:6.0f}s  {counts}")
            if n == 0:
                print(f"the terminal suite against ykt takes {seconds / target:.2f}x its 30 s budget")
        print(f"targets: {'met' if ok else 'NOT met'}")
    # A run issues its own fresh card: nothing carries over from one run to the next, nothing runs out.
    return report_upkeep({"card suite": (Upkeep(), ())}, args.near_limits)


if __name__ == "__main__":
    sys.exit(main())
