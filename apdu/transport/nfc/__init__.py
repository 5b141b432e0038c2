"""NFC through nfcpy: a reader (the PCD, `apdu.transport.nfc.reader.NfcReader`) and an ISO 14443-4 Type A
card endpoint (the PICC, `apdu.transport.nfc.card.NfcCardEndpoint`).

Why: with nfcpy's udp driver a terminal and a virtual card talk over the same activation and block
protocol as over the air, without hardware: `NfcReader('udp:localhost:54321')` senses, sends RATS and
exchanges I-blocks; `NfcCardEndpoint(card_os, 'udp:localhost:54321')` answers them. The same
`NfcReader('usb')` drives a real USB reader.

nfcpy 1.0.4 facts both halves lean on (measured, see platform-notes.md):
- Reader: `clf.sense(RemoteTarget('106A'))` runs the anticollision; `nfc.tag.activate` sends RATS
  (`E0 80`: FSD 256, CID 0), waits 30 ms for the ATS, and gives a Type4ATag whose `transceive` does
  the I-block chaining, R(NAK) retries and S(WTX). It keeps no copy of the ATS (we record it from
  the frontend's exchange) and reads FSCI from ATS byte 1 and FWI from byte 3, i.e. it assumes TA(1)
  and TB(1) are present: we set both from the parsed ATS.
- Card: nfcpy emulates only Type 3 tags. `clf.listen(LocalTarget('106A'))` answers the anticollision
  and returns on the first other frame (the RATS); everything after it (ATS, blocks) is ours: the
  ISO-DEP PICC engine of `apdu.isodep`.
- udp driver: frames travel as text datagrams without CRC_A, one card per UDP port (bound on all
  interfaces); an absent card costs the reader a 1 s SENS_REQ timeout (Linux reports no ICMP error on
  an unconnected UDP socket); a reader muting its field sends `RFOFF`. Neither side has RF timing, so
  the card asks for more time with S(WTX) when its Card OS works longer than half its FWT.
- nfcpy sets its logger to INFO on import; we turn it down to WARNING unless the application chose
  a level (set `logging.getLogger('nfc')` to DEBUG to see every frame).
"""
from __future__ import annotations

import logging

from apdu.iso14443 import DEFAULT_UID

try:
    import nfc
    import nfc.clf
    import nfc.tag
    import nfc.tag.tt4
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError("apdu.transport.nfc needs nfcpy (the 'nfc' extra): pip install nfcpy") from exc

__all__ = ["DEFAULT_UDP_HOST", "DEFAULT_UDP_PORT", "SAK_ISO_DEP", "DEFAULT_UID", "parse_udp_path"]

_NFCPY_LOG = logging.getLogger("nfc")
if _NFCPY_LOG.level == logging.INFO:  # nfcpy's own import-time choice, not the application's
    _NFCPY_LOG.setLevel(logging.WARNING)

#: nfcpy's udp driver defaults (`udp` = `udp:localhost:54321`).
DEFAULT_UDP_HOST = "localhost"
DEFAULT_UDP_PORT = 54321

#: SAK of an ISO 14443-4 compliant Type A PICC (b6 set, no cascade bit), as transit cards answer.
SAK_ISO_DEP = 0x20


def parse_udp_path(path: str) -> tuple[str, int]:
    """nfcpy's `udp[:HOST[:PORT]]` path -> (host, port), defaults localhost:54321; ValueError names the field."""
    parts = path.split(":")
    if parts[0] != "udp" or len(parts) > 3:
        raise ValueError(f"nfcpy path {path!r}: expected udp[:HOST[:PORT]]")
    host = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_UDP_HOST
    port_text = parts[2] if len(parts) > 2 else ""
    if not port_text:
        return host, DEFAULT_UDP_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"nfcpy path {path!r}: port {port_text!r} is not a UDP port")
    return host, int(port_text)
