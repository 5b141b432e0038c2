"""`pip install .` (not editable) into a fresh venv gives a working `ykt` from any folder.

The real install: a new virtual environment, the project built as a wheel by pip, no checkout on the path.
What this proves is the package itself: the data folders ship (key sets, profiles, lists), shipped files
are found by name, and no command needs the checkout it was built from.
"""
from __future__ import annotations

import json
import subprocess
import sys
import venv

from .cli import ROOT


def test_pip_install_gives_a_working_ykt_from_any_folder(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    pip = subprocess.run([env_dir / "bin" / "python", "-m", "pip", "install", "-q", str(ROOT)],
                         capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert pip.returncode == 0, pip.stderr[-2000:]
    assert "BuildBackendWarning" not in pip.stderr and "SetuptoolsDeprecationWarning" not in pip.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ykt = env_dir / "bin" / "ykt"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([ykt, *args], capture_output=True, text=True, timeout=120, cwd=elsewhere)

    shown = run("keys", "show", "gd-test-sm4", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["algorithm"] == "sm4"
    issued = run("card", "issue", "--keyset", "gd-test-3des", "--keyset", "gd-test-sm4", "--profile", "gd-guangzhou",
                 "--out", "card.json", "--json")
    assert issued.returncode == 0, issued.stderr
    assert (elsewhere / "card.json").is_file()
    shown = run("qr", "show", "test-account", "--at", "20261124080000", "--seed", "1", "--no-symbol")
    assert shown.returncode == 0, shown.stderr
    verified = run("qr", "verify", shown.stdout.strip(), "--roots", "roots-test", "--at", "20261124080010",
                   "--profile", "bus-qr", "--json")
    assert verified.returncode == 0, verified.stderr
    assert json.loads(verified.stdout)["ticket_type"] == "01"
    for module in ("apdu", "ykt_card", "ykt_qr", "tools"):
        located = subprocess.run([env_dir / "bin" / "python", "-c", f"import {module}; print({module}.__file__)"],
                                 capture_output=True, text=True, cwd=elsewhere)
        assert str(env_dir) in located.stdout and str(ROOT) not in located.stdout
    assert sys.prefix != str(env_dir)
