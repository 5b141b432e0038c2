"""The NFC reader (PCD) through nfcpy: `NfcReader` implements the Reader protocol for ISO 14443-4 Type A
cards on any nfcpy device (a USB reader, or the udp driver facing `apdu.transport.nfc.card`).

nfcpy's Type4ATag does the block protocol on this side (see the package docstring for what we correct).
"""
from __future__ import annotations

import contextlib
import errno
import socket
import time
from pathlib import Path

import nfc
import nfc.clf
import nfc.tag
import nfc.tag.tt4

from apdu.iso14443 import Ats, pseudo_atr
from apdu.isodep import s_deselect
from apdu.reader import ReaderError
from apdu.transport.nfc import SAK_ISO_DEP, parse_udp_path
from apdu.transport.usb import (DEVFS_USB, SYSFS_USB, UsbDevice, nfcpy_driver_table, nfcpy_readers, permission_fix,
                                usb_devices)

__all__ = ["NfcReader", "NfcError", "NfcDeviceError", "device_error", "NoCard", "NotIsoDep", "CardRemoved", "FIELD_RESET_S"]

#: How long the reader keeps its field off after releasing a card (ISO 14443-3 t_RESET ≥ 5.1 ms): the
#: card gets time to go back to listening before the next poll.
FIELD_RESET_S = 0.0051

_RATS = 0xE0


class NfcError(ReaderError):
    """An NFC link failure seen by `NfcReader`."""


class NfcDeviceError(NfcError):
    """nfcpy cannot open the device path (nothing there, no permission, busy, bad host)."""


class NoCard(NfcError):
    """No ISO 14443-4 Type A card answered within the timeout."""


class NotIsoDep(NfcError):
    """A Type A card is in the field but does not speak ISO 14443-4 (its SAK says so): no APDUs."""


class CardRemoved(NfcError):
    """The card stopped answering during the session (left the field, lost power)."""


class _Frontend(nfc.clf.ContactlessFrontend):
    """nfcpy's frontend, remembering the answer to RATS: Type4ATag reads the ATS but keeps no copy."""

    rats_answer: bytes | None = None

    def exchange(self, send_data, timeout):  # type: ignore[no-untyped-def]
        data = super().exchange(send_data, timeout)
        if send_data and len(send_data) == 2 and send_data[0] == _RATS:
            self.rats_answer = None if data is None else bytes(data)
        return data


class NfcReader:
    """An nfcpy contactless reader, implementing the Reader protocol for ISO 14443-4 Type A cards.

    `path` is an nfcpy device path: `usb[:...]`, `tty:PORT:DRIVER`, `udp[:HOST[:PORT]]`. The frontend is
    opened at the first `connect`/`card_present` and kept (`close()` releases it). `connect` waits up to
    `timeout` seconds for a card and returns the PC/SC pseudo-ATR of its ATS, so tools see the same ATR
    as through pcscd. After connect: `uid`, `sak`, `ats`.
    """

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        if not path:
            raise ValueError("nfc device path: empty (try usb or udp:HOST:PORT)")
        if path.split(":")[0] == "udp":
            parse_udp_path(path)
        if timeout < 0:
            raise ValueError(f"nfc timeout: {timeout} s is negative")
        self.path = path
        self.name = f"nfc:{path}"
        self.timeout = timeout
        self.uid: bytes | None = None
        self.sak: int | None = None
        self.ats: Ats | None = None
        self._clf: _Frontend | None = None
        self._tag: nfc.tag.tt4.Type4Tag | None = None
        self._fwt = 0.0
        self._gone = False
        self._seen = False

    def __repr__(self) -> str:
        state = "connected" if self._tag is not None else "idle"
        return f"NfcReader({self.path!r}, {state})"

    # --- Reader protocol --------------------------------------------------------------------------------

    def connect(self) -> bytes:
        """Sense a Type A card, activate it (RATS/ATS) and return its pseudo-ATR."""
        if self._tag is not None:
            self.disconnect()
        clf = self._frontend()
        deadline = time.monotonic() + self.timeout
        why = f"no ISO 14443-4 Type A card in the field within {self.timeout:g} s"
        while True:
            target = self._sense(clf)
            if target is not None:
                self._seen = True
                tag = self._activate(clf, target)
                if tag is not None:
                    break
                why = (f"a card answered the anticollision but not RATS within nfcpy's 30 ms "
                       f"(UID {bytes(target.sdd_res).hex().upper()})")
            if time.monotonic() >= deadline:
                raise NoCard(f"{self.name}: {why}")
            time.sleep(0.01)
        assert self.ats is not None
        return pseudo_atr(self.ats.historical)

    def transmit(self, capdu: bytes) -> bytes:
        """Send one command APDU as I-block(s), return the response APDU (SW1 SW2 included)."""
        tag = self._tag
        if tag is None:
            raise NfcError(f"{self.name}: not connected (call connect() first)")
        if self._gone:
            raise CardRemoved(f"{self.name}: the card left the field; connect again")
        try:
            rapdu = tag.transceive(bytes(capdu))
        except (nfc.tag.TagCommandError, nfc.clf.CommunicationError) as exc:
            self._gone = True
            raise CardRemoved(f"{self.name}: the card stopped answering during the exchange, it left the "
                              f"field ({_describe(exc)})") from None
        except OSError as exc:
            self._gone = True
            raise CardRemoved(f"{self.name}: the link failed during the exchange "
                              f"({exc.strerror or exc})") from None
        if rapdu is None or len(rapdu) < 2:
            self._gone = True
            raise CardRemoved(f"{self.name}: the card answered no status word ({0 if rapdu is None else len(rapdu)} "
                              "bytes)")
        return bytes(rapdu)

    def disconnect(self) -> None:
        """S(DESELECT) the card (unless it already left), then switch the field off; never raises."""
        tag, clf, gone = self._tag, self._clf, self._gone
        self._tag, self._gone = None, False
        if tag is None or clf is None:
            return
        if not gone:
            with contextlib.suppress(nfc.clf.CommunicationError, OSError):
                clf.exchange(s_deselect(), self._fwt)
        with contextlib.suppress(OSError):
            clf.device.mute()  # field off: the udp driver tells the card with RFOFF
        time.sleep(FIELD_RESET_S)

    def card_present(self) -> bool:
        """Connected: an R(NAK) presence check. Otherwise one anticollision (a card seen before gets a
        second one before it counts as gone, so a poll landing in its re-listen gap cannot fake a removal)."""
        tag = self._tag
        if tag is not None:
            if self._gone:
                return False
            try:
                present = bool(tag.is_present)
            except OSError:
                present = False
            self._gone = not present
            return present
        clf = self._frontend()
        found = self._sense(clf) is not None
        if not found and self._seen:
            found = self._sense(clf) is not None
        self._seen = found
        return found

    # --- extras -------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Open the device now (else the first `connect`/`card_present` does): NfcDeviceError when nfcpy cannot
        (no reader, no permission, busy), so a tool can tell a missing device from a missing card."""
        self._frontend()

    def close(self) -> None:
        """Release the device (the USB reader, the udp socket)."""
        self.disconnect()
        clf, self._clf = self._clf, None
        if clf is not None:
            clf.close()

    def __enter__(self) -> NfcReader:
        self.connect()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- internals ------------------------------------------------------------------------------------------

    def _frontend(self) -> _Frontend:
        if self._clf is not None:
            return self._clf
        try:
            self._clf = _Frontend(self.path)
        except OSError as exc:
            raise device_error(self.path, exc) from None
        except (ValueError, TypeError, OverflowError) as exc:
            raise NfcDeviceError(f"{self.name}: nfcpy cannot open {self.path!r} ({exc})") from None
        return self._clf

    def _sense(self, clf: _Frontend) -> nfc.clf.RemoteTarget | None:
        try:
            return clf.sense(nfc.clf.RemoteTarget("106A"))
        except nfc.clf.UnsupportedTargetError as exc:
            raise NfcDeviceError(f"{self.name}: the device cannot poll for Type A cards ({exc})") from None
        except nfc.clf.CommunicationError:
            return None
        except OSError as exc:
            if exc.errno in (errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH):
                return None  # a udp peer that is not there
            raise NfcDeviceError(f"{self.name}: the device failed while polling ({exc.strerror or exc})") from None

    def _activate(self, clf: _Frontend, target: nfc.clf.RemoteTarget) -> nfc.tag.tt4.Type4Tag | None:
        """RATS through nfcpy; None when the card did not answer it (the caller polls again)."""
        sak = target.sel_res[0] if target.sel_res else None
        if sak is None or not sak & SAK_ISO_DEP:
            what = "no SAK (a Type 1 tag)" if sak is None else f"SAK {sak:02X}"
            raise NotIsoDep(f"{self.name}: the card in the field has {what}: it is not ISO 14443-4 and takes no "
                            "APDUs")
        clf.rats_answer = None
        try:
            tag = nfc.tag.activate(clf, target)
        except IndexError:
            answer = (clf.rats_answer or b"").hex().upper()
            raise NfcError(f"{self.name}: the card's ATS {answer or '(none)'} is too short for nfcpy 1.0.4, which "
                           "reads FWI from its fourth byte (TB(1))") from None
        except OSError:
            return None
        if tag is None or clf.rats_answer is None:
            return None
        if not isinstance(tag, nfc.tag.tt4.Type4Tag):
            raise NotIsoDep(f"{self.name}: nfcpy activated a {type(tag).__name__}, not a Type 4 tag")
        try:
            ats = Ats.parse(clf.rats_answer)
            pseudo_atr(ats.historical)  # more than 15 historical bytes fit no ATR
        except ValueError as exc:
            raise NfcError(f"{self.name}: the card answered RATS with a bad ATS "
                           f"{clf.rats_answer.hex().upper()}: {exc}") from None
        # nfcpy assumed TA(1) and TB(1) present; set frame size and waiting time from the real ATS.
        fsc = min(ats.fsc, 256, clf.max_send_data_size)
        tag._dep.miu = fsc - 3
        tag._dep.fwt = ats.fwt_us / 1e6
        self._fwt = tag._dep.fwt + tag._dep.delta_fwt
        self.uid, self.sak, self.ats = bytes(target.sdd_res), sak, ats
        self._tag, self._gone = tag, False
        return tag


_NO_DEVICE_HINT = "plug a reader in, or serve a card on nfcpy's udp driver and read it with udp:HOST:PORT"


def device_error(path: str, exc: OSError, *, sysfs: Path = SYSFS_USB, devfs: Path = DEVFS_USB) -> NfcDeviceError:
    """The one-line refusal for nfcpy failing to open `path` with `exc`, naming the cause and the fix.

    nfcpy raises OSError(ENODEV) when nothing is found, and also when every reader it found was one this
    user may not open (it skips those silently unless the path names the device, `usb:BBB:DDD`, when it
    raises EACCES); sysfs tells these apart (apdu.transport.usb). EBUSY: another process holds the device.
    """
    name = f"nfc:{path}"
    usb = path.split(":")[0] == "usb"
    if exc.errno == errno.EACCES:
        denied = _usb_denied(path, sysfs, devfs) if usb else []
        fix = (permission_fix(denied[0]) if denied else
               "run as root, or add a udev rule giving the plugdev group the reader (`python -m nfc` prints it) "
               "and add your user to plugdev")
        return NfcDeviceError(f"{name}: permission denied opening {path!r}: {fix}")
    if exc.errno == errno.ENODEV:
        if usb:
            denied = _usb_denied(path, sysfs, devfs)
            if denied:
                return NfcDeviceError(f"{name}: nfcpy skipped the reader it may not open: {permission_fix(denied[0])}")
            return NfcDeviceError(f"{name}: no NFC readers found on nfcpy path {path!r}: no USB contactless reader "
                                  f"nfcpy supports is plugged in ({_supported_names()}); plug one in and check "
                                  "with `ykt doctor`, or read a served card with nfc:udp:HOST:PORT")
        return NfcDeviceError(f"{name}: no NFC readers found on nfcpy path {path!r} ({_NO_DEVICE_HINT})")
    if exc.errno == errno.EBUSY:
        return NfcDeviceError(f"{name}: {path!r} is in use by another process (pcscd holds readers it serves: "
                              "stop it, or read through --reader pcsc)")
    if isinstance(exc, socket.gaierror):
        return NfcDeviceError(f"{name}: host of {path!r} not found ({exc.strerror})")
    return NfcDeviceError(f"{name}: nfcpy cannot open {path!r} ({exc.strerror or exc})")


def _usb_denied(path: str, sysfs: Path, devfs: Path) -> list[UsbDevice]:
    """nfcpy-supported USB readers this user may not open (matching `usb:BBB:DDD` when the path names one)."""
    table = nfcpy_driver_table() or {}
    readers = [d for d, _ in nfcpy_readers(usb_devices(sysfs, devfs), table)]
    parts = path.split(":")
    if len(parts) == 3 and all(p.isdigit() for p in parts[1:]):
        readers = [d for d in readers if (d.bus, d.address) == (int(parts[1]), int(parts[2]))]
    return [d for d in readers if not d.accessible()]


def _supported_names() -> str:
    drivers = sorted(set((nfcpy_driver_table() or {}).values()))
    return "readers with " + ", ".join(drivers) + " chips" if drivers else "nfcpy's driver table is unavailable"


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
