"""`nfc:usb`: nfcpy's real usb open on this machine (no USB reader), the messages for no device and no
permission, and the sysfs enumeration `ykt doctor` and those messages share (apdu.transport.usb)."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from apdu.transport.nfc.reader import NfcDeviceError, NfcReader, device_error
from apdu.transport.usb import (SYSFS_USB, ccid_readers, nfcpy_driver_table, nfcpy_readers, udev_rule,
                                usb_devices)

REPO = Path(__file__).resolve().parents[2]
NO_READER = ("nfc:usb: no NFC readers found on nfcpy path 'usb': no USB contactless reader nfcpy supports is "
             "plugged in (readers with acr122, pn531, pn533, rcs380, rcs956 chips); plug one in and check with "
             "`ykt doctor`, or read a served card with nfc:udp:HOST:PORT")


def _no_reader_here() -> None:
    table = nfcpy_driver_table()
    assert table is not None, "nfcpy is not installed"
    found = nfcpy_readers(usb_devices(), table)
    assert found == [], f"this test expects a machine without USB NFC readers, found {found}"


def test_nfcpy_usb_open_without_a_reader_names_the_cause_and_the_fix():
    _no_reader_here()
    reader = NfcReader("usb")
    with pytest.raises(NfcDeviceError) as caught:
        reader.connect()
    assert str(caught.value) == NO_READER
    # it is nfcpy's own open that failed: the frontend raised OSError(ENODEV) from its usb transport
    import nfc.clf
    with pytest.raises(OSError) as raw:
        nfc.clf.ContactlessFrontend("usb")
    assert raw.value.errno == errno.ENODEV


def test_the_real_sys_tree_of_this_machine():
    devices = usb_devices()
    expected = []
    if SYSFS_USB.is_dir():
        expected = sorted(p.name for p in SYSFS_USB.iterdir() if ":" not in p.name and (p / "idVendor").exists())
    assert len(devices) == len(expected)
    assert all(d.devnode == Path("/dev/bus/usb") / f"{d.bus:03d}" / f"{d.address:03d}" for d in devices)
    assert usb_devices(Path("/nonexistent/sys/bus/usb/devices")) == []


def sysfs_tree(root: Path) -> tuple[Path, Path]:
    """A tree laid out as Linux's sysfs and devfs: a root hub, an ACR122U (CCID) and an RC-S380."""
    sysfs, devfs = root / "sys", root / "dev"

    def device(name: str, vid: str, pid: str, bus: int, dev: int, classes: list[str], **strings: str) -> None:
        folder = sysfs / name
        folder.mkdir(parents=True)
        for key, value in dict(idVendor=vid, idProduct=pid, busnum=str(bus), devnum=str(dev), **strings).items():
            (folder / key).write_text(value + "\n")
        for i, cls in enumerate(classes):
            (folder / f"{name}:1.{i}").mkdir()
            (folder / f"{name}:1.{i}" / "bInterfaceClass").write_text(cls + "\n")
        (devfs / f"{bus:03d}").mkdir(parents=True, exist_ok=True)
        node = devfs / f"{bus:03d}" / f"{dev:03d}"
        node.write_bytes(b"")
        node.chmod(0o600)

    device("usb1", "1d6b", "0002", 1, 1, ["09"], product="EHCI Host Controller")
    device("1-1", "072f", "2200", 1, 4, ["0b"], manufacturer="ACS", product="ACR122U PICC Interface")
    device("1-2", "054c", "06c3", 1, 5, ["ff"], manufacturer="SONY", product="RC-S380/P")
    (sysfs / "1-0:1.0").mkdir()      # an interface folder of the root hub, no device of its own
    return sysfs, devfs


def test_enumeration_of_a_sysfs_tree(tmp_path):
    sysfs, devfs = sysfs_tree(tmp_path)
    devices = usb_devices(sysfs, devfs)
    assert [(d.id, d.nfcpy_path) for d in devices] == [
        ("1d6b:0002", "usb:001:001"), ("072f:2200", "usb:001:004"), ("054c:06c3", "usb:001:005")]
    acr = devices[1]
    assert acr.label == "ACS ACR122U PICC Interface (072f:2200)" and acr.devnode == devfs / "001" / "004"
    table = nfcpy_driver_table()
    assert [(d.id, driver) for d, driver in nfcpy_readers(devices, table)] == [
        ("072f:2200", "acr122"), ("054c:06c3", "rcs380")]
    assert ccid_readers(devices) == [acr]
    assert udev_rule(acr) == ('SUBSYSTEM=="usb", ACTION=="add", ATTRS{idVendor}=="072f", '
                              'ATTRS{idProduct}=="2200", GROUP="plugdev"')


def _as_nobody(code: str) -> str:
    """Run `code` as the unprivileged user nobody (root passes every permission check)."""
    result = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c",
                             code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_reader_without_permission_is_named_with_its_udev_fix():
    """nfcpy skips a reader it may not open and says ENODEV: the message names the reader and the fix.

    Run as nobody against device nodes of mode 600, so os.access really denies them (as root it cannot).
    """
    root = Path(tempfile.mkdtemp(prefix="ykt-usb-"))
    try:
        root.chmod(0o755)
        sysfs, devfs = sysfs_tree(root)
        code = ("import errno, os; from pathlib import Path; from apdu.transport.nfc.reader import device_error\n"
                f"s, d = Path({str(sysfs)!r}), Path({str(devfs)!r})\n"
                "print(device_error('usb', OSError(errno.ENODEV, os.strerror(errno.ENODEV)), sysfs=s, devfs=d))\n"
                "print(device_error('usb:001:005', OSError(errno.EACCES, os.strerror(errno.EACCES)), sysfs=s, "
                "devfs=d))")
        no_device, denied = _as_nobody(code).splitlines()
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)
    assert no_device == (
        "nfc:usb: nfcpy skipped the reader it may not open: ACS ACR122U PICC Interface (072f:2200) at usb:001:004: "
        f"no read-write permission on {devfs}/001/004; add the udev rule `SUBSYSTEM==\"usb\", ACTION==\"add\", "
        "ATTRS{idVendor}==\"072f\", ATTRS{idProduct}==\"2200\", GROUP=\"plugdev\"` to /etc/udev/rules.d/nfcdev.rules, "
        "run `udevadm control --reload` and replug the reader, and add your user to the plugdev group "
        "(`python -m nfc` prints the same rule)")
    assert denied.startswith("nfc:usb:001:005: permission denied opening 'usb:001:005': SONY RC-S380/P (054c:06c3) "
                             "at usb:001:005: no read-write permission")


def test_errno_mapping_on_the_oserror_nfcpy_raises(tmp_path):
    """nfcpy's usb transport raises IOError(EACCES / EBUSY) built as below; it cannot be produced here
    (no USB bus in this machine, and root may open any device node), so the mapping gets the same object."""
    eacces = OSError(errno.EACCES, os.strerror(errno.EACCES))
    assert str(device_error("usb:001:004", eacces, sysfs=tmp_path)) == (
        "nfc:usb:001:004: permission denied opening 'usb:001:004': run as root, or add a udev rule giving the "
        "plugdev group the reader (`python -m nfc` prints it) and add your user to plugdev")
    ebusy = OSError(errno.EBUSY, os.strerror(errno.EBUSY))
    assert "'usb' is in use by another process (pcscd holds readers it serves" in str(device_error("usb", ebusy))
    enodev = OSError(errno.ENODEV, os.strerror(errno.ENODEV))
    assert str(device_error("tty:USB0:pn532", enodev)) == (
        "nfc:tty:USB0:pn532: no NFC readers found on nfcpy path 'tty:USB0:pn532' (plug a reader in, or serve a "
        "card on nfcpy's udp driver and read it with udp:HOST:PORT)")


@pytest.mark.parametrize("command", [
    ("card", "read", "--reader", "nfc:usb"),
    ("terminal", "tap", "--card", "nfc:usb", "--psam", "image:{psam}", "--profile", "bus-flat"),
])
def test_commands_taking_a_reader_refuse_nfc_usb_in_one_line_with_exit_1(command, tmp_path):
    """docs/exit-codes.md: 1 = a reader link failed; one line on stderr, no traceback."""
    from tests.tools.cli import one_line_error, ykt
    _no_reader_here()
    psam = tmp_path / "psam.json"
    shutil.copyfile(REPO / "tests" / "data" / "images" / "psam.json", psam)
    proc = ykt(*(part.format(psam=psam) for part in command))
    line = one_line_error(proc)
    assert proc.returncode == 1
    assert line == f"ykt: error: {NO_READER}"
