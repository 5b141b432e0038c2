"""`ykt doctor`'s checks on this machine: with the session's pcscd running, and with none answering."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from apdu.transport.pcsc.daemon import Pcscd
from apdu.transport.usb import nfcpy_driver_table, nfcpy_readers, usb_devices
from tests.apdu.test_nfc_usb import sysfs_tree
from tools.doctor_cmd import Check, run_checks, usb_readers_check

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.pcsc
def test_doctor_on_this_machine(pcscd: Pcscd) -> None:
    checks = run_checks()
    assert [check for check, _, _ in checks] == [
        "pcscd binary", "vpcd driver config", "pyscard importable", "pcscd running", "readers listed",
        "USB readers", "nfcpy importable", "tshark present"]
    failing = [(check, fix) for check, ok, fix in checks if not ok]
    assert failing == []
    readers = dict((check, fix) for check, _, fix in checks)["readers listed"]
    assert readers == "Virtual PCD 00 00, Virtual PCD 00 01"
    # this machine has no USB bus to speak of: the doctor says so plainly (the enumeration read the real /sys)
    assert usb_devices() == [] or nfcpy_readers(usb_devices(), nfcpy_driver_table()) == []
    assert dict((check, fix) for check, _, fix in checks)["USB readers"] == (
        "none seen: no USB contactless reader nfcpy supports and no USB smart-card reader is plugged in, and "
        "pcscd lists none but vpcd's virtual readers")


def test_usb_readers_are_named_with_the_reader_option_that_opens_them(tmp_path: Path) -> None:
    sysfs, devfs = sysfs_tree(tmp_path)
    check = usb_readers_check(["Virtual PCD 00 00", "ACS ACR122U PICC Interface 00 00"], sysfs=sysfs, devfs=devfs)
    assert check == Check("USB readers", True,
                          "ACS ACR122U PICC Interface (072f:2200) [nfcpy acr122, --reader nfc:usb:001:004]; "
                          "SONY RC-S380/P (054c:06c3) [nfcpy rcs380, --reader nfc:usb:001:005]; "
                          "ACS ACR122U PICC Interface 00 00 [pcscd, --reader pcsc:ACS ACR122U PICC Interface 00 00]")
    assert usb_readers_check(None, sysfs=tmp_path / "none", devfs=devfs) == Check(
        "USB readers", True, "none seen: no USB contactless reader nfcpy supports and no USB smart-card reader is "
                             "plugged in, and pcscd is not running to list any")


def test_a_reader_this_user_may_not_open_fails_with_the_udev_fix() -> None:
    root = Path(tempfile.mkdtemp(prefix="ykt-doctor-"))
    try:
        root.chmod(0o755)
        sysfs, devfs = sysfs_tree(root)
        code = ("from pathlib import Path; from tools.doctor_cmd import usb_readers_check\n"
                f"print(usb_readers_check([], sysfs=Path({str(sysfs)!r}), devfs=Path({str(devfs)!r})))")
        result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
                                 "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Check(check='USB readers', ok=False, fix='ACS ACR122U PICC Interface "
                                    "(072f:2200) at usb:001:004: no read-write permission on ")
    assert "GROUP=\"plugdev\"` to /etc/udev/rules.d/nfcdev.rules" in result.stdout


def test_doctor_says_how_to_start_pcscd_when_it_is_not_running(tmp_path: Path) -> None:
    script = "from tools.doctor_cmd import run_checks\nfor c in run_checks(): print(c.check, c.ok, c.fix, sep='|')"
    env = dict(os.environ, PCSCLITE_CSOCK_NAME=str(tmp_path / "nobody.comm"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=REPO, timeout=60, check=True)
    checks = {line.split("|")[0]: line.split("|")[1:] for line in result.stdout.splitlines()}
    assert checks["pcscd running"] == ["False", "start it as root: `pcscd -f` (pcsc-lite 2.x: "
                                                "`pcscd -f --disable-polkit`)"]
    assert checks["readers listed"] == ["False", "start pcscd first"]
    assert checks["USB readers"] == ["True", "none seen: no USB contactless reader nfcpy supports and no USB "
                                             "smart-card reader is plugged in, and pcscd is not running to list any"]
    assert checks["pcscd binary"][0] == "True"
