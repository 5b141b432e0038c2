"""USB readers on this machine, from Linux's sysfs: which contactless readers nfcpy can drive, which are
smart-card (CCID) readers for pcscd, and whether this user may open them.

Why: nfcpy's own `usb` search skips a reader it may not open and then reports "no such device", so a
user with a reader plugged in and no udev rule is told there is none. Reading sysfs (no libusb, no
device opened) tells the two apart, for `ykt doctor` and for the message of `--reader nfc:usb`.

sysfs layout (Documentation/ABI/stable/sysfs-bus-usb): each device is a folder of
/sys/bus/usb/devices holding `idVendor`, `idProduct` (hex), `busnum`, `devnum` (decimal), optional
`manufacturer`/`product` strings, and one sub-folder per interface with `bInterfaceClass` (0b = CCID).
Its device node, which libusb opens, is /dev/bus/usb/BBB/DDD.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SYSFS_USB", "DEVFS_USB", "CCID_CLASS", "UsbDevice", "usb_devices", "nfcpy_driver_table",
           "nfcpy_readers", "ccid_readers", "udev_rule", "permission_fix"]

SYSFS_USB = Path("/sys/bus/usb/devices")
DEVFS_USB = Path("/dev/bus/usb")
#: USB interface class of smart-card readers (CCID), which pcscd's ccid driver serves.
CCID_CLASS = 0x0B


@dataclass(frozen=True)
class UsbDevice:
    """One USB device as sysfs describes it."""

    bus: int
    address: int
    vid: int
    pid: int
    manufacturer: str | None
    product: str | None
    interface_classes: frozenset[int]
    devnode: Path

    @property
    def id(self) -> str:
        """`vvvv:pppp`, as lsusb prints it."""
        return f"{self.vid:04x}:{self.pid:04x}"

    @property
    def nfcpy_path(self) -> str:
        """nfcpy's path for exactly this device: `usb:BBB:DDD`."""
        return f"usb:{self.bus:03d}:{self.address:03d}"

    @property
    def label(self) -> str:
        """How a person recognises it: maker and product strings, else the vendor:product id."""
        name = " ".join(part for part in (self.manufacturer, self.product) if part)
        return f"{name} ({self.id})" if name else self.id

    def accessible(self) -> bool:
        """This user may open the device node read-write (what libusb, hence nfcpy, needs)."""
        return os.access(self.devnode, os.R_OK | os.W_OK)


def _read(folder: Path, name: str) -> str | None:
    try:
        return (folder / name).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _device(folder: Path, devfs: Path) -> UsbDevice | None:
    """The device in one sysfs folder; None for interfaces, hubs' ports and folders missing an id."""
    vid, pid, bus, dev = (_read(folder, n) for n in ("idVendor", "idProduct", "busnum", "devnum"))
    if not (vid and pid and bus and dev):
        return None
    try:
        ids = int(vid, 16), int(pid, 16), int(bus), int(dev)
    except ValueError:
        return None
    classes = set()
    for child in folder.glob(f"{folder.name}:*"):
        value = _read(child, "bInterfaceClass")
        if value:
            try:
                classes.add(int(value, 16))
            except ValueError:
                pass
    return UsbDevice(bus=ids[2], address=ids[3], vid=ids[0], pid=ids[1], manufacturer=_read(folder, "manufacturer"),
                     product=_read(folder, "product"), interface_classes=frozenset(classes),
                     devnode=devfs / f"{ids[2]:03d}" / f"{ids[3]:03d}")


def usb_devices(sysfs: Path = SYSFS_USB, devfs: Path = DEVFS_USB) -> list[UsbDevice]:
    """Every USB device sysfs lists, by bus and address; empty when there is no USB bus (a container)."""
    try:
        folders = sorted(sysfs.iterdir())
    except OSError:
        return []
    found = (_device(folder, devfs) for folder in folders if ":" not in folder.name)
    return sorted((d for d in found if d is not None), key=lambda d: (d.bus, d.address))


def nfcpy_driver_table() -> dict[tuple[int, int], str] | None:
    """nfcpy's own table of the USB readers it drives ((vid, pid) -> driver); None without nfcpy."""
    try:
        from nfc.clf.device import usb_device_map
    except ImportError:
        return None
    return dict(usb_device_map)


def nfcpy_readers(devices: list[UsbDevice], table: dict[tuple[int, int], str]) -> list[tuple[UsbDevice, str]]:
    """The devices nfcpy has a driver for, each with the driver's name (pn533, acr122, rcs380...)."""
    return [(d, table[(d.vid, d.pid)]) for d in devices if (d.vid, d.pid) in table]


def ccid_readers(devices: list[UsbDevice]) -> list[UsbDevice]:
    """The smart-card (CCID class) readers, which pcscd serves."""
    return [d for d in devices if CCID_CLASS in d.interface_classes]


def udev_rule(device: UsbDevice) -> str:
    """The udev rule giving the plugdev group this reader (the form `python -m nfc` suggests)."""
    return (f'SUBSYSTEM=="usb", ACTION=="add", ATTRS{{idVendor}}=="{device.vid:04x}", '
            f'ATTRS{{idProduct}}=="{device.pid:04x}", GROUP="plugdev"')


def permission_fix(device: UsbDevice) -> str:
    """One sentence: why this reader cannot be opened and how to allow it."""
    return (f"{device.label} at {device.nfcpy_path}: no read-write permission on {device.devnode}; add the udev "
            f"rule `{udev_rule(device)}` to /etc/udev/rules.d/nfcdev.rules, run `udevadm control --reload` and "
            "replug the reader, and add your user to the plugdev group (`python -m nfc` prints the same rule)")
