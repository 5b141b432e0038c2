"""`ykt doctor`: what this machine has for PC/SC, vpcd, NFC and traces, and how to fix what is missing."""
from __future__ import annotations

import importlib
import shutil
from pathlib import Path
from typing import NamedTuple

import click

from apdu.transport.pcsc.daemon import (PCSCD_SOCKET, VPCD_CONFIG, VPCD_DRIVER, VPCD_READERS, listed_readers,
                                        read_pid)
from apdu.transport.usb import (DEVFS_USB, SYSFS_USB, ccid_readers, nfcpy_driver_table, nfcpy_readers, permission_fix,
                                usb_devices)

from .output import emit_json


class Check(NamedTuple):
    """One doctor line. `fix` says how to fix it when not `ok`, and what was found when `ok`."""

    check: str
    ok: bool
    fix: str


def _importable(module: str) -> tuple[bool, str]:
    try:
        imported = importlib.import_module(module)
    except Exception as exc:  # any import failure is the finding
        return False, f"{type(exc).__name__}: {exc}"
    return True, getattr(imported, "__file__", module) or module


def usb_readers_check(pcsc_readers: list[str] | None, *, sysfs: Path = SYSFS_USB,
                      devfs: Path = DEVFS_USB) -> Check:
    """The real readers this machine has: USB contactless readers nfcpy drives (from sysfs, against nfcpy's
    own table; each with its `--reader nfc:usb:BBB:DDD`), USB smart-card (CCID) readers, and the readers
    pcscd lists besides vpcd's virtual ones. None is no fault (virtual cards need none): it is said plainly.
    A reader nfcpy drives but this user may not open fails the check, with the udev fix.
    """
    devices = usb_devices(sysfs, devfs)
    table = nfcpy_driver_table()
    found: list[str] = []
    denied = []
    for device, driver in nfcpy_readers(devices, table or {}):
        found.append(f"{device.label} [nfcpy {driver}, --reader nfc:{device.nfcpy_path}]")
        if not device.accessible():
            denied.append(device)
    contactless = {d for d, _ in nfcpy_readers(devices, table or {})}
    found += [f"{d.label} [USB smart-card reader (CCID)]" for d in ccid_readers(devices) if d not in contactless]
    found += [f"{name} [pcscd, --reader pcsc:{name}]" for name in pcsc_readers or [] if name not in VPCD_READERS]
    if denied:
        return Check("USB readers", False, permission_fix(denied[0]))
    if found:
        return Check("USB readers", True, "; ".join(found))
    pcsc = ("pcscd lists none but vpcd's virtual readers" if pcsc_readers is not None
            else "pcscd is not running to list any")
    return Check("USB readers", True, f"none seen: no USB contactless reader nfcpy supports and no USB smart-card "
                                      f"reader is plugged in, and {pcsc}")


def _pcsc_checks() -> list[Check]:
    """pcscd, the vpcd driver, pyscard, and what pcscd lists."""
    checks: list[Check] = []
    pcscd = shutil.which("pcscd") or shutil.which("pcscd", path="/usr/sbin:/sbin")
    checks.append(Check("pcscd binary", pcscd is not None, pcscd or "apt-get install pcscd"))
    config = VPCD_CONFIG.read_text(errors="replace") if VPCD_CONFIG.exists() else ""
    vpcd_ok = VPCD_DRIVER.exists() and "libifdvpcd" in config
    checks.append(Check("vpcd driver config", vpcd_ok,
                        f"{VPCD_DRIVER} via {VPCD_CONFIG}" if vpcd_ok
                        else "apt-get install vsmartcard-vpcd (driver + /etc/reader.conf.d/vpcd)"))
    pyscard_ok, pyscard_info = _importable("smartcard.scard")
    checks.append(Check("pyscard importable", pyscard_ok, pyscard_info if pyscard_ok else
                        "pip install pyscard (needs gcc, swig, libpcsclite-dev); " + pyscard_info))
    readers = listed_readers() if pyscard_ok else None
    fix_running = ("start it as root: `pcscd -f` (pcsc-lite 2.x: `pcscd -f --disable-polkit`)"
                   if pyscard_ok else "cannot ask pcscd without pyscard")
    checks.append(Check("pcscd running", readers is not None,
                        f"pid {read_pid()}, socket {PCSCD_SOCKET}" if readers is not None else fix_running))
    if readers:
        checks.append(Check("readers listed", True, ", ".join(readers)))
    else:
        checks.append(Check("readers listed", False,
                            "pcscd lists no readers: plug in a reader or install vsmartcard-vpcd and "
                            "restart pcscd" if readers is not None else "start pcscd first"))
    checks.append(usb_readers_check(readers))
    return checks


def run_checks() -> list[Check]:
    """Check what PC/SC, vpcd, NFC and trace work need on this machine, and say how to fix each gap."""
    checks = _pcsc_checks()
    nfc_ok, nfc_info = _importable("nfc")
    checks.append(Check("nfcpy importable", nfc_ok, nfc_info if nfc_ok else "pip install nfcpy; " + nfc_info))
    tshark = shutil.which("tshark")
    checks.append(Check("tshark present", tshark is not None, tshark or "apt-get install tshark"))
    return checks


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def doctor(as_json: bool) -> None:
    """Check pcscd, the vpcd driver, readers (virtual and USB), pyscard, nfcpy and tshark; say how to fix each problem."""
    checks = run_checks()
    if as_json:
        emit_json([{"check": c.check, "ok": c.ok, "detail" if c.ok else "fix": c.fix} for c in checks])
    else:
        for c in checks:
            click.echo(f"{'ok ' if c.ok else 'NO '} {c.check}: {c.fix}")
    if not all(c.ok for c in checks):
        raise SystemExit(1)
