"""The common pre-checks of a validator, reference 5.1, in the reference's order.

A validator asks these questions of every card before it spends a PSAM sequence number on it, and
every "no" is a `Refusal` with a one-line reason (the validator turns it into a `declined` outcome):

1. Find and SELECT the T-Union application, physical or phone (mobile.md M2, 2.2): SELECT the PPSE and take
   the entry whose AID starts with MOT_T_EP (A000000632 ‖ 010105; the highest priority first), then SELECT
   that AID; a card without PPSE, or whose PPSE lists no such entry, is asked by partial selection
   (`SELECT A000000632010105`, P2 00: the first application whose name starts with it, which on a
   physical card is the whole name). 6283 = temporarily locked (black-listed), 9303/6284 = permanently
   locked, 6A82 = not a T-Union card. The FCI's tag 84 is the AID found (`Selected.aid`).
2. EF15: the application type must include the electronic purse (02 or 03), today must lie between
   the start and expiry dates. The FCI of SELECT carries EF15 (tag 9F0C); only a card whose FCI lacks
   it is asked `READ BINARY 15` (no extra read, no extra 20 ms on a real card).
3. EF17 (`READ BINARY 17`): a card of another city must be interoperable (互通卡种 0001).
4. The issuer white list (when the profile names one) and the black list by card number. A black-listed
   card is locked on the spot: GET CHALLENGE on the card, the MAC from the PSAM (801A with the card's
   block key, 80FA 05), APPLICATION BLOCK `84 1E 00 00 04 MAC`; then refused.
5. The flow's EF1A record (when the profile writes one: metro 01, bus 02): its lock flag (应用锁定标识)
   must be 00. The flows read the record's data from this same read.

Not sent, on purpose (the flows need them not): EF18 record 1 (the last transaction: nothing in the
flows uses it; recovery asks the card for a proof instead) and GET BALANCE (INITIALIZE reports the
balance, and a card that cannot pay answers 9401 there).

The lists are versioned files (terminal_sim.lists); `Lists` re-reads a file when it changes on disk, so
a terminal picks up a new list between two taps, and every outcome carries the black-list version it was
checked against. A list file that turns unreadable keeps the last good version in force.
"""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass
from pathlib import Path

from apdu.status import SW_FILE_NOT_FOUND, SW_RECORD_NOT_FOUND, CardError, describe
from keysets import Algorithm
from ykt_card.host.card import CardResponseError, Fci, Management, Ppse, PpseEntry, PublicData, TUnionCard
from ykt_card.layouts.names import MOT_T_EP, is_tunion_ep
from ykt_card.host.psam import Psam

from .lists import BlackList, IssuerWhiteList, ListError, acceptance_refusal, load_blacklist, load_whitelist
from .profile import TerminalProfile

__all__ = ["Refusal", "Selected", "CardView", "Lists", "select_card", "find_in_ppse", "check_card", "lock_card",
           "algorithm_of_key_index", "card_medium", "EP_APP_TYPES", "PHYSICAL_AID_MAX"]

EP_APP_TYPES = (0x02, 0x03)
"""EF15 应用类型标识 values with an electronic purse: 02 EP only, 03 ED + EP (01 is ED only)."""

KEY_INDEX_ALGORITHMS = {1: Algorithm.TDES, 2: Algorithm.SM4}
"""D16 on the reference profile: key index 01 is the 3DES key set, 02 the SM4 one."""


PHYSICAL_AID_MAX = 8
"""M4: an application name (FCI tag 84) longer than this is a phone's extended AID (mobile.md §2.1)."""


def card_medium(df_name: bytes) -> str:
    """The medium a card record carries (mobile.md M4): ``virtual`` when the DF name the card's FCI gave
    (tag 84) is longer than 8 bytes, the extended AID of a phone's T-Union card; else ``physical``."""
    return "virtual" if len(df_name) > PHYSICAL_AID_MAX else "physical"


def algorithm_of_key_index(key_index: int) -> Algorithm:
    """The algorithm of the terminal's key index (D16), which sets the block size of the PSAM's
    APPLICATION BLOCK MAC. Indexes other than 01 and 02 are taken as 3DES (no profile uses them)."""
    return KEY_INDEX_ALGORITHMS.get(key_index, Algorithm.TDES)


@dataclass(frozen=True)
class Refusal:
    """Why a card is refused before any debit (one line, for the outcome's reason)."""

    reason: str


@dataclass(frozen=True)
class Selected:
    """Step 1 passed: the application answered its FCI, and EF15 is known.

    `fci.aid` (hex) and `aid` (bytes) are the FCI's tag 84, the application's whole name: 8 bytes on a
    physical card, 9..16 on a phone card (mobile.md M4 tells the medium by it). `via` says how it was
    found: "ppse" (the PPSE's entry) or "partial" (partial selection of MOT_T_EP).
    """

    fci: Fci
    public: PublicData
    via: str = "ppse"

    @property
    def aid(self) -> bytes:
        return bytes.fromhex(self.fci.aid)

    @property
    def card_no(self) -> str:
        return self.public.card_no

    @property
    def issuer_id(self) -> str:
        return self.public.issuer_id

    @property
    def medium(self) -> str:
        """``physical`` or ``virtual``, from the DF name of the card's FCI (M4)."""
        return card_medium(bytes.fromhex(self.fci.aid))


@dataclass(frozen=True)
class CardView:
    """Everything the pre-checks read, which is everything the flows need to price and record a ride."""

    public: PublicData
    management: Management
    capp_record: bytes | None

    @property
    def card_no(self) -> str:
        return self.public.card_no

    @property
    def issuer_id8(self) -> bytes:
        return self.public.factors[0]

    @property
    def issuer_id(self) -> str:
        return self.public.issuer_id

    @property
    def serial8(self) -> bytes:
        return self.public.factors[1]

    @property
    def card_type(self) -> str:
        """EF17's card type (卡种类型) as 2 hex digits: the key of the discount table."""
        return self.management.card_type

    @property
    def card_city(self) -> str:
        return self.management.city


class Lists:
    """The black list and the optional issuer white list of a profile, re-read when their files change."""

    def __init__(self, blacklist: Path, whitelist: Path | None = None) -> None:
        self._black_path = Path(blacklist)
        self._white_path = Path(whitelist) if whitelist is not None else None
        self._black_stamp: tuple[int, int] | None = None
        self._white_stamp: tuple[int, int] | None = None
        self.blacklist: BlackList = load_blacklist(self._black_path)
        self._black_stamp = _stamp(self._black_path)
        self.whitelist: IssuerWhiteList | None = None
        if self._white_path is not None:
            self.whitelist = load_whitelist(self._white_path)
            self._white_stamp = _stamp(self._white_path)

    @classmethod
    def of(cls, profile: TerminalProfile) -> "Lists":
        return cls(profile.blacklist, profile.whitelist)

    @property
    def version(self) -> str:
        """The black list's version: what every outcome carries as list_version."""
        return self.blacklist.version

    def refresh(self) -> None:
        """Pick up a changed list file; a file that no longer parses leaves the last good list in force."""
        stamp = _stamp(self._black_path)
        if stamp is not None and stamp != self._black_stamp:
            try:
                self.blacklist = load_blacklist(self._black_path)
            except ListError:
                pass
            self._black_stamp = stamp
        if self._white_path is not None:
            stamp = _stamp(self._white_path)
            if stamp is not None and stamp != self._white_stamp:
                try:
                    self.whitelist = load_whitelist(self._white_path)
                except ListError:
                    pass
                self._white_stamp = stamp


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _sw(exc: CardError) -> str:
    return f"{exc.sw:04X} {describe(exc.sw)}"


# -- step 1 -------------------------------------------------------------------------------------------

def find_in_ppse(ppse: Ppse) -> PpseEntry | None:
    """The T-Union EP entry of a PPSE directory: the AID starts with MOT_T_EP (A000000632 ‖ 010105); of
    several, the highest priority (tag 87, lowest value; an entry without one comes last), then the first."""
    entries = [e for e in ppse.entries if is_tunion_ep(e.aid)]
    if not entries:
        return None
    return min(entries, key=lambda e: 256 if e.priority is None else e.priority)


def _find_application(card: TUnionCard) -> tuple[Fci, str, bytes]:
    """SELECT through the PPSE or, without a usable one, by partial selection: (FCI, how, name sent)."""
    try:
        entry = find_in_ppse(card.select_ppse())
    except (CardError, CardResponseError):
        entry = None                    # no PPSE (6A82), or one this terminal cannot read: ask by name
    if entry is not None:
        return card.select(entry.aid), "ppse", entry.aid
    return card.select(MOT_T_EP), "partial", MOT_T_EP


def select_card(card: TUnionCard) -> Selected | Refusal:
    """Find and SELECT the T-Union EP (PPSE, else partial selection); EF15 from the FCI (READ BINARY 15
    only when the FCI lacks it)."""
    try:
        fci, via, name = _find_application(card)
    except CardError as exc:
        if exc.sw == SW_FILE_NOT_FOUND:
            return Refusal("not a T-Union card: SELECT answered 6A82 (no such application)")
        return Refusal(f"SELECT refused: {_sw(exc)}")
    except CardResponseError as exc:
        return Refusal(f"card answered SELECT with a malformed FCI: {exc.reason}")
    if not bytes.fromhex(fci.aid).startswith(name):
        return Refusal(f"SELECT {name.hex().upper()} answered the FCI of another application ({fci.aid})")
    if fci.locked == "temporary":
        return Refusal(f"application temporarily locked ({fci.sw:04X}): a black-listed card")
    if fci.locked == "permanent":
        return Refusal(f"application permanently locked ({fci.sw:04X})")
    public = fci.public_data
    if public is None:
        try:
            public = card.read_public_data()
        except CardError as exc:
            return Refusal(f"EF15 unreadable: {_sw(exc)}")
        except CardResponseError as exc:
            return Refusal(f"EF15 malformed: {exc.reason}")
    return Selected(fci, public, via)


# -- steps 2 to 5 -------------------------------------------------------------------------------------

def _date_refusal(public: PublicData, today: _dt.date) -> str | None:
    # the layout decodes the dates (a card with impossible ones is refused as malformed); an empty date
    # (all zeros) reads as 00000000, as the card stores it
    start, expiry = ((d or "0000-00-00").replace("-", "") for d in (public.start_date, public.expiry_date))
    day = today.strftime("%Y%m%d")
    if day < start:
        return f"card not valid before {start} (today {day})"
    if day > expiry:
        return f"card expired on {expiry} (today {day})"
    return None


def check_card(card: TUnionCard, psam: Psam, profile: TerminalProfile, lists: Lists, selected: Selected,
               today: _dt.date) -> CardView | Refusal:
    """Steps 2 to 5 on a selected card. Sends READ BINARY 17, the EF1A record read when the profile
    writes one, and the APPLICATION BLOCK exchange for a black-listed card; nothing else."""
    public = selected.public
    # step 2: application type and dates
    if int(public.app_type, 16) not in EP_APP_TYPES:
        return Refusal(f"application type {public.app_type} has no electronic purse (EF15 byte 8)")
    refusal = _date_refusal(public, today)
    if refusal is not None:
        return Refusal(refusal)
    # step 3: interoperability (and, with step 4, the issuer white list)
    try:
        management = card.read_management()
    except CardError as exc:
        return Refusal(f"EF17 unreadable: {_sw(exc)}")
    except CardResponseError as exc:
        return Refusal(f"EF17 malformed: {exc.reason}")
    refusal = acceptance_refusal(issuer_id=public.issuer_id, card_city=management.city,
                                 interop=management.interop, local_city=profile.local_city, whitelist=lists.whitelist)
    if refusal is not None:
        return Refusal(refusal)
    # step 4: the black list, and the lock on the spot
    if public.card_no in lists.blacklist:
        return Refusal(lock_card(card, psam, public, profile.key_index, lists.version))
    # step 5: the flow's EF1A record and its lock flag
    record: bytes | None = None
    if profile.ef1a_record is not None:
        rid = profile.ef1a_record
        try:
            record = card.read_capp_record(rid)
        except CardError as exc:
            if exc.sw == SW_RECORD_NOT_FOUND:
                return Refusal(f"card has no EF1A record {rid:02X} for this {profile.mode} terminal")
            return Refusal(f"EF1A record {rid:02X} unreadable: {_sw(exc)}")
        if len(record) < 6 or record[1] != rid:
            return Refusal(f"EF1A record {rid:02X} malformed (header {record[:6].hex().upper()})")
        if record[5] != 0x00:
            return Refusal(f"EF1A record {rid:02X} is locked (应用锁定标识 {record[5]:02X})")
    return CardView(public, management, record)


def lock_card(card: TUnionCard, psam: Psam, public: PublicData, key_index: int, list_version: str) -> str:
    """Lock a black-listed card (APPLICATION BLOCK, temporary) with a MAC from the PSAM; the reason text.

    A card that refuses, or a PSAM that cannot make the MAC, still leaves the card refused: the reason
    says the lock did not happen. A card leaving the field raises ReaderError to the caller.
    """
    listed = f"card {public.card_no} is on black list {list_version}"
    try:
        challenge = card.get_challenge(4)
    except (CardError, CardResponseError) as exc:
        return f"{listed}; not locked: GET CHALLENGE failed ({_why(exc)})"
    try:
        issuer_id8, serial8 = public.factors
        mac = psam.block_mac(serial8, issuer_id8, challenge,
                             algorithm=algorithm_of_key_index(key_index), key_index=key_index)
    except (CardError, CardResponseError) as exc:
        return f"{listed}; not locked: the PSAM gave no block MAC ({_why(exc)})"
    try:
        card.application_block(mac)
    except (CardError, CardResponseError) as exc:
        return f"{listed}; not locked: APPLICATION BLOCK refused ({_why(exc)})"
    return f"{listed}; application locked (APPLICATION BLOCK)"


def _why(exc: Exception) -> str:
    return _sw(exc) if isinstance(exc, CardError) else str(exc)

