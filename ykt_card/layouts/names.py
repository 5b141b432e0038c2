"""The names a T-Union card, a PSAM and a terminal share, each defined once.

AIDs, the PPSE name and directory, the SFIs, the PSAM's file identifiers and the key types of the card's
WRITE KEY and of the PSAM's DES INIT (801A). Sizes and SFIs belong to the layout classes (``EF18.size``,
``EF18.capacity``, ``PsamEF17.df``); the SFI constants here only name them for code that addresses
files rather than decodes them. Source: tunion.md 1.2 (AIDs, PPSE), 1.3 (files), 4.1 (PSAM files).
"""
from __future__ import annotations

from ykt_card.layouts.ef15 import EF15
from ykt_card.layouts.ef16 import EF16
from ykt_card.layouts.ef17 import EF17
from ykt_card.layouts.ef18 import EF18
from ykt_card.layouts.ef1a import EF1AMetro
from ykt_card.layouts.ef1e import EF1EA
from ykt_card.layouts.fci import PpseEntry
from ykt_card.layouts.psam import PsamEF15, PsamEF16, PsamEF17

__all__ = [
    "MOT_T_EP", "MOT_T_CASH", "TUNION_RID", "LABEL_EP", "GD_VIRTUAL_AID", "extended_aid", "is_extended_aid",
    "is_tunion_ep", "ppse_for", "PPSE_NAME", "DEFAULT_PPSE", "SFI_PUBLIC", "SFI_HOLDER", "SFI_MANAGEMENT",
    "SFI_LOG", "SFI_CAPP", "SFI_HISTORY", "FILE_NAMES", "PSAM_MF", "PSAM_DF_TUNION", "PSAM_SFI_PUBLIC",
    "PSAM_SFI_TERMINAL_ID", "PSAM_SFI_APP_DATA", "WRITE_KEY_TYPES", "WRITE_KEY_TYPE_OF", "KEY_TYPE_PURCHASE",
    "KEY_TYPE_PIN_UNBLOCK", "KEY_TYPE_TAC", "KEY_TYPE_APP_MAINTENANCE", "KEY_TYPE_APP_BLOCK",
    "KEY_TYPE_APP_UNBLOCK", "PSAM_KEY_TYPES",
]

# -- applications (1.2) ----------------------------------------------------------------------------------

MOT_T_EP = bytes.fromhex("A000000632010105")
"""The T-Union electronic purse, the application the virtual card implements."""
MOT_T_CASH = bytes.fromhex("A000000632010106")
"""Listed in the reference PPSE; the virtual card does not implement it (SELECT answers 6A82)."""
TUNION_RID = MOT_T_EP[:5]
"""A000000632, the RID of the MOT (交通运输部) applications."""
LABEL_EP = "MOT_T_EP"
"""The PPSE label (tag 50) of the electronic purse, physical or virtual (mobile.md M2)."""
GD_VIRTUAL_AID = bytes.fromhex("A0000006320101055800022058100000")
"""The Guangdong (岭南通·羊城通) phone card: MOT_T_EP ‖ province 5800 ‖ issuer 0220 5810 ‖ 0000 (mobile.md M1, 2.1)."""
PPSE_NAME = b"2PAY.SYS.DDF01"
DEFAULT_PPSE = (PpseEntry(MOT_T_CASH, "MOT_T_CASH", 1), PpseEntry(MOT_T_EP, LABEL_EP, 2))
"""The reference PPSE (from HY personalisation data), byte for byte."""


def extended_aid(suffix: bytes) -> bytes:
    """A virtual (phone SE) card's AID: MOT_T_EP ‖ an issuer-chosen suffix of 1..8 bytes, opaque (mobile.md 2.1)."""
    if not 1 <= len(suffix) <= 16 - len(MOT_T_EP):
        raise ValueError(f"an AID suffix is 1..{16 - len(MOT_T_EP)} bytes, got {len(suffix)}")
    return MOT_T_EP + bytes(suffix)


def is_tunion_ep(aid: bytes) -> bool:
    """The T-Union EP, physical (MOT_T_EP itself) or virtual (MOT_T_EP ‖ suffix): what a validator selects."""
    return aid.startswith(MOT_T_EP) and len(aid) <= 16


def is_extended_aid(aid: bytes) -> bool:
    """An AID longer than MOT_T_EP's 8 bytes: the mark of a virtual card in FCI tag 84 (mobile.md M4)."""
    return is_tunion_ep(aid) and len(aid) > len(MOT_T_EP)


def ppse_for(aid: bytes) -> tuple[PpseEntry, ...]:
    """The PPSE a card with this EP AID answers: the reference directory for a physical card, the one
    extended AID labelled MOT_T_EP for a virtual card (mobile.md M2; the phone's EC AID is not implemented)."""
    return DEFAULT_PPSE if aid == MOT_T_EP else (PpseEntry(aid, LABEL_EP, 1),)

# -- the card's files (1.3): SFIs of the layouts ---------------------------------------------------------

SFI_PUBLIC = EF15.sfi        # binary, 30 B: public application data
SFI_HOLDER = EF16.sfi        # binary, 55 B: holder
SFI_MANAGEMENT = EF17.sfi    # binary, 60 B: management data
SFI_LOG = EF18.sfi           # cyclic, 23-byte records: the purse log, written by the card only
SFI_CAPP = EF1AMetro.sfi     # one record per record ID: transit (CAPP) records
SFI_HISTORY = EF1EA.sfi      # cyclic, 48-byte records: transit history (layout A or B, D8)
FILE_NAMES = {sfi: f"EF{sfi:02X}" for sfi in (SFI_PUBLIC, SFI_HOLDER, SFI_MANAGEMENT, SFI_LOG, SFI_CAPP,
                                              SFI_HISTORY)}

# -- the PSAM's files (4.1) -------------------------------------------------------------------------------

PSAM_MF = PsamEF15.df                 # 3F00: EF15 (serial) and EF16 (terminal ID)
PSAM_DF_TUNION = PsamEF17.df          # 8011: the T-Union DF, EF17 (key index, issuer, dates)
PSAM_SFI_PUBLIC = PsamEF15.sfi
PSAM_SFI_TERMINAL_ID = PsamEF16.sfi
PSAM_SFI_APP_DATA = PsamEF17.sfi

# -- key types --------------------------------------------------------------------------------------------

WRITE_KEY_TYPES: dict[int, str] = {
    0x30: "card_master",
    0x34: "tac",
    0x36: "app_maintenance",
    0x37: "pin_unblock",
    0x38: "pin_reload",
    0x39: "external_auth",
    0x3A: "app_block",
    0x3B: "app_unblock",
    0x3E: "purchase",
    0x3F: "load",
}
"""P1 of the card's WRITE KEY → key role. FMCOS-style key-type bytes; the table is this project's choice."""
WRITE_KEY_TYPE_OF = {role: p1 for p1, role in WRITE_KEY_TYPES.items()}

KEY_TYPE_PURCHASE = 0x02
KEY_TYPE_PIN_UNBLOCK = 0x03
KEY_TYPE_TAC = 0x04            # stored as a "PIN reload" key so the COS folds L⊕R (3DES)
KEY_TYPE_APP_MAINTENANCE = 0x05
KEY_TYPE_APP_BLOCK = 0x09      # ykt: the card's APPLICATION BLOCK key
KEY_TYPE_APP_UNBLOCK = 0x0A    # ykt: the card's APPLICATION UNBLOCK key
PSAM_KEY_TYPES: dict[int, tuple[str, ...]] = {
    KEY_TYPE_PURCHASE: ("purchase",),
    KEY_TYPE_PIN_UNBLOCK: ("pin_unblock",),
    KEY_TYPE_TAC: ("tac",),
    KEY_TYPE_APP_MAINTENANCE: ("app_maintenance",),
    KEY_TYPE_APP_BLOCK: ("app_block", "app_maintenance"),
    KEY_TYPE_APP_UNBLOCK: ("app_unblock", "app_maintenance"),
}
"""The PSAM's 801A key types (low 5 bits of the key-usage byte) → the key set roles behind them, first
found wins."""
