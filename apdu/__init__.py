"""apdu: ISO/IEC 7816-4 APDUs, status words, BER-TLV, dispatch and the Card OS / Reader seams.

Knows nothing of any card application. Transports that need optional packages (pcsc, vpcd, nfc) and traces live
in their own modules and are imported from there, so `import apdu` needs nothing but the stdlib.
"""
from apdu import tlv
from apdu.cardos import CardOS
from apdu.command import ApduError, CommandApdu
from apdu.dispatch import CardApplication, InstructionTable, instruction, respond
from apdu.endpoint import CardEndpoint
from apdu.transport.inprocess import InProcessReader
from apdu.reader import Reader, ReaderError
from apdu.status import *  # noqa: F401,F403 - SW_* constants, ResponseApdu, CardError, describe...
from apdu.status import __all__ as _status_all
from apdu.t0 import Channel, get_response, transceive
from apdu.tlv import TAG_NAMES, Tlv, TlvError

__all__ = [
    "tlv", "CardOS", "CardEndpoint", "Reader", "ReaderError", "ApduError", "CommandApdu",
    "CardApplication", "InstructionTable", "instruction", "respond", "InProcessReader",
    "Channel", "get_response", "transceive", "Tlv", "TlvError", "TAG_NAMES",
    *_status_all,
]
