"""Every benchmark runs, briefly, and crosses every refresh it needs to run for any duration.

The scripts are discovered the way `make bench` finds them (benchmarks/*.py, helpers such as _harness.py
start with `_`), so a new benchmark is covered without touching this file. Each one runs as a subprocess
for a fraction of a second, normally and with `--near-limits` (cards and PSAMs personalised at the last
state before each refresh); the tests ask for exit status 0, the ratio lines and the refresh report,
never for a rate. The last tests break one refresh check at a time by one unit (a counter, a fen, a
second, a sequence number) and show that near-limits personalisation then makes the card or PSAM refuse:
the near-limits runs prove the boundaries, they do not merely pass.
"""
from __future__ import annotations

import datetime as _dt
import importlib.util
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(p for p in BENCHMARKS.glob("*.py") if not p.name.startswith("_"))
RATIO = re.compile(r"\d+\.\d+x(\s|$)")        # 2.31x: ours against the baseline, measured in one run
SECONDS = "0.02"


def run(script: Path, *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), "--seconds", SECONDS, *options], capture_output=True,
                          text=True, timeout=300, cwd=BENCHMARKS.parent)


def check_output(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr or result.stdout
    lines = result.stdout.splitlines()
    assert any(RATIO.search(line) for line in lines), f"no ratio lines in:\n{result.stdout}"
    assert any("target" in line and line.endswith(("met", "NOT met")) for line in lines), result.stdout
    assert "refreshes, left out of the rates:" in lines, result.stdout
    return lines


def test_the_benchmarks_are_found():
    names = {p.name for p in SCRIPTS}
    assert {"crypto.py", "card.py", "validator.py"} <= names
    assert not any(name.startswith("_") for name in names)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_runs_briefly(script):
    lines = check_output(run(script))
    assert not any(line.startswith("near limits") for line in lines)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_near_limits_crosses_every_refresh(script):
    lines = check_output(run(script, "--near-limits"))
    verdict = [line for line in lines if line.startswith("near limits:")]
    assert len(verdict) == 1, "\n".join(lines)
    assert verdict[0].startswith(("near limits: every refresh path crossed", "near limits: no refresh paths"))


def test_a_duration_must_be_positive():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "card.py"), "--seconds", "0"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2
    assert "argument --seconds: 0: must be a finite number of seconds above 0" in result.stderr


def test_make_bench_runs_the_same_scripts():
    makefile = (BENCHMARKS.parent / "Makefile").read_text()
    assert "for script in benchmarks/[!_]*.py" in makefile


# --- a refresh check one unit too lax fails under --near-limits ----------------------------------------

@pytest.fixture
def bench(monkeypatch):
    """Import benchmark scripts as modules; sys.path is put back and the scripts forgotten afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))

    def load(name: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    yield load
    for path in BENCHMARKS.glob("*.py"):
        module = sys.modules.get(path.stem)
        if module is not None and getattr(module, "__file__", None) == str(path):
            del sys.modules[path.stem]


def test_card_loop_with_a_lax_counter_check_runs_into_9402(bench, monkeypatch):
    card = bench("card")
    real = card.used_up
    monkeypatch.setattr(card, "used_up", lambda counter, balance: real(counter - 1, balance))
    loop = card.CappPurchases("3des", near_limits=True)      # first card: next to its offline counter
    with pytest.raises(SystemExit, match="INITIALIZE FOR CAPP PURCHASE answered 9402"):
        loop()


def test_card_loop_with_a_lax_balance_check_runs_into_9401(bench, monkeypatch):
    card = bench("card")
    real = card.used_up
    monkeypatch.setattr(card, "used_up", lambda counter, balance: real(counter, balance + 1))
    loop = card.CappPurchases("sm4", near_limits=True)
    loop()                                                   # the counter card: refreshed in time
    with pytest.raises(SystemExit, match="INITIALIZE FOR CAPP PURCHASE answered 9401"):
        loop()


LAX_CHECKS = [
    # flow, limit, how the lax check shifts what it looks at, what the card or PSAM then says
    ("bus-flat", "offline counter", lambda v, p, now: (replace(p, offline_counter=p.offline_counter - 1), now),
     "INITIALIZE refused: 9402"),
    # the balance and expiry checks keep a margin: lax means no margin (any balance, the last second)
    ("taxi", "balance", lambda v, p, now: (replace(p, balance=p.balance + v.RESERVE - 1), now),
     "insufficient balance"),
    ("metro (entry + exit)", "expiry", lambda v, p, now: (p, now - v.EXPIRY_MARGIN), "card expired on"),
    ("load", "online counter", lambda v, p, now: (replace(p, online_counter=p.online_counter - 1), now),
     "INITIALIZE FOR LOAD refused: 9402"),
    ("load", "headroom", lambda v, p, now: (replace(p, balance=p.balance - 1), now), "amount refused by the card"),
]


@pytest.mark.parametrize("flow_name, limit, shift, refusal", LAX_CHECKS, ids=[f"{c[0]}-{c[1]}" for c in LAX_CHECKS])
def test_world_with_a_lax_card_check_fails(bench, flow_name, limit, shift, refusal):
    validator = bench("validator")
    flow = next(f for f in validator.FLOWS if f.name == flow_name)

    class Lax(validator.World):
        def used_up(self, purse, now: _dt.datetime):
            why = super().used_up(purse, now)
            return super().used_up(*shift(validator, purse, now)) if why == limit else why

    honest = validator.World(flow, near_limits=True)
    for _ in flow.card_limits:                               # each card limit once, refreshed in time
        honest.step()
    assert set(honest.upkeep.reasons) >= set(flow.card_limits)
    world = Lax(flow, near_limits=True)
    with pytest.raises(SystemExit, match=re.escape(refusal)):
        for _ in flow.card_limits:
            world.step()


def test_world_with_a_lax_psam_check_fails(bench):
    validator = bench("validator")
    flow = next(f for f in validator.FLOWS if f.name == "metro (entry + exit)")

    class Lax(validator.World):
        def psam_used_up(self, next_terminal_seq: int) -> bool:
            return super().psam_used_up(next_terminal_seq - 1)

    with pytest.raises(SystemExit, match="PSAM refused 8070: 9402"):
        Lax(flow, near_limits=True).step()
