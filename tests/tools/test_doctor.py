"""`ykt doctor`'s checks on this machine: with the session's pcscd running, and with none answering."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from apdu.transport.pcsc.daemon import Pcscd
from tools.doctor_cmd import run_checks

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.pcsc
def test_doctor_on_this_machine(pcscd: Pcscd) -> None:
    checks = run_checks()
    assert [check for check, _, _ in checks] == [
        "pcscd binary", "vpcd driver config", "pyscard importable", "pcscd running", "readers listed",
        "nfcpy importable", "tshark present"]
    failing = [(check, fix) for check, ok, fix in checks if not ok]
    assert failing == []
    readers = dict((check, fix) for check, _, fix in checks)["readers listed"]
    assert readers == "Virtual PCD 00 00, Virtual PCD 00 01"


def test_doctor_says_how_to_start_pcscd_when_it_is_not_running(tmp_path: Path) -> None:
    script = "from tools.doctor_cmd import run_checks\nfor c in run_checks(): print(c.check, c.ok, c.fix, sep='|')"
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "nobody.comm"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=60, check=True)
    checks = {line.split("|")[0]: line.split("|")[1:] for line in result.stdout.splitlines()}
    assert checks["pcscd running"] == ["False", "start it as root: `pcscd -f` (pcsc-lite 2.x: "
                                                "`pcscd -f --disable-polkit`)"]
    assert checks["readers listed"] == ["False", "start pcscd first"]
    assert checks["pcscd binary"][0] == "True"
