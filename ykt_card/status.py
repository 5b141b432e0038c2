"""The status words of the T-Union (PBOC) purse: names for the codes cards, PSAMs and terminals act on.

ISO/IEC 7816-4 leaves 9xxx to applications and lets them give warnings their own sense; the PBOC purse
uses 9302 for a wrong MAC, 9401 for insufficient balance, 6283 for a (black-listed) locked application
and so on (reference section 2, "Status words"). Importing this module registers their meanings with
`apdu.status`, so every trace, report and error prints the purse's words.
"""
from __future__ import annotations

from apdu.status import register_meanings

__all__ = [
    "SW_APP_LOCKED", "SW_APP_LOCKED_PERM", "SW_APP_LOCKED_PBOC", "SW_STATE", "SW_CAPP_UPDATE_FAILED",
    "SW_MAC_INVALID", "SW_INSUFFICIENT_BALANCE", "SW_COUNTER_MAX", "SW_KEY_INDEX_UNSUPPORTED", "SW_NO_PROOF",
    "PURSE_STATUS_WORDS",
]

SW_APP_LOCKED = 0x6283            # application temporarily locked (BJ treats it as black-listed)
SW_APP_LOCKED_PBOC = 0x6284       # application permanently locked, as PBOC cards seen by BJ answer it
SW_STATE = 0x6901                 # command not allowed in this state (DEBIT without INITIALIZE)
SW_CAPP_UPDATE_FAILED = 0x6974    # UPDATE CAPP DATA CACHE failed (vendor list)
SW_MAC_INVALID = 0x9302           # MAC1 wrong on DEBIT, MAC2 wrong on CREDIT, MAC2 wrong at the PSAM
SW_APP_LOCKED_PERM = 0x9303       # application permanently locked
SW_INSUFFICIENT_BALANCE = 0x9401
SW_COUNTER_MAX = 0x9402
SW_KEY_INDEX_UNSUPPORTED = 0x9403
SW_NO_PROOF = 0x9406              # GET TRANSACTION PROVE for a counter the card holds no proof of

PURSE_STATUS_WORDS: dict[int, str] = {
    0x6283: "application temporarily locked (ISO: selected file invalidated)",
    0x6284: "application permanently locked (ISO: FCI not formatted)",
    0x6901: "command not allowed in this state",
    0x6974: "UPDATE CAPP DATA CACHE failed",
    0x6A81: "function not supported (Huada: application locked)",
    0x9302: "MAC invalid",
    0x9303: "application permanently locked",
    0x9401: "insufficient balance",
    0x9402: "transaction counter at maximum",
    0x9403: "key index not supported",
    0x9406: "required MAC or TAC not available",
}
"""The purse's meanings (reference section 2); they replace ISO's words for the same codes."""

register_meanings(PURSE_STATUS_WORDS)
