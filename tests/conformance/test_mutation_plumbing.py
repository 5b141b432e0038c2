"""`make mutation` works: mutmut mutates the validator's modules and the terminal suite judges the mutants.

The whole run takes tens of minutes (docs/conformance.md gives its score); here a copy of the project runs
scripts/mutation.sh (what `make mutation` runs after the bootstrap) on the mutants of one small function,
recovery.within_window, and must print a mutation score over exactly those mutants.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COPIED = ("terminal_sim", "tests", "scripts")


def test_make_mutation_runs_mutmut_with_the_terminal_suite_on_one_function(tmp_path):
    work = tmp_path / "ykt"
    work.mkdir()
    for name in COPIED:
        shutil.copytree(ROOT / name, work / name, ignore=shutil.ignore_patterns("__pycache__", "mutants"))
    for name in ("setup.cfg", "pyproject.toml"):
        shutil.copy(ROOT / name, work / name)
    assert "mutation:" in (ROOT / "Makefile").read_text() and "scripts/mutation.sh" in (ROOT / "Makefile").read_text()
    venv = Path(sys.executable).parent.parent
    proc = subprocess.run(["bash", "scripts/mutation.sh", "terminal_sim.recovery.x_within_window*"], cwd=work,
                          capture_output=True, text=True, timeout=900,
                          env={"PATH": "/usr/bin:/bin", "YKT_VENV": str(venv), "HOME": str(tmp_path)})
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    head = re.search(r"mutants: (\d+) run of (\d+) \((\d+) killed", out)
    assert head, out[-3000:]
    run, total, killed = map(int, head.groups())
    assert 3 <= run < total and 1 <= killed <= run
    assert re.search(r"mutation score: \d+\.\d % \(\d+/\d+\) of all mutants", out)
    survivors = re.findall(r"survivor: (\S+)", out)
    assert all(name.startswith("terminal_sim.recovery.x_within_window__mutmut_") for name in survivors)
    assert killed + len(survivors) == run
