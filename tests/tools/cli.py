"""Run the real `ykt` entry point in a subprocess, as a user would."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
YKT_ARGS = [sys.executable, "-m", "tools.cli"]


def ykt(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*YKT_ARGS, *map(str, args)], cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """Assert the command failed with exactly one line on stderr and nothing on stdout; return it."""
    assert proc.returncode != 0, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("ykt: error: "), lines[0]
    return lines[0]
