"""Personalisation: a card profile, TEST key sets and a card number become a virtual card's state.

The same inputs give the same card (dates come from the caller's clock), so a batch can be re-issued
exactly. Keys are diversified per the key set's order (D2) unless the key set already holds card keys.
"""
from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from keysets import KeySet, KeySetError, SecretKey, Use

from ykt_files.schema import ProfileError

from ykt_card.card.files import BinaryFile, CyclicFile, RecordFile
from ykt_card.card.state import CardState, Pin, Purse, pin_bcd
from ykt_card.issuance.profile import CardProfile
from ykt_card.layouts import EF15, EF16, EF17, EF18, EF1EA
from ykt_card.layouts.names import (SFI_CAPP, SFI_HISTORY, SFI_HOLDER, SFI_LOG, SFI_MANAGEMENT, SFI_PUBLIC,
                                    ppse_for)


class IssueError(ValueError):
    """Issuance refused: names the option or field at fault."""


@dataclass(frozen=True)
class IssuedCard:
    """One card of a batch: its state and the line it adds to the issuance registry."""

    state: CardState
    card_no: str
    registry: dict[str, object]


def normalise_card_no(text: str) -> str:
    """A card number as 20 digits: accepts the 20-digit EF15 form or the 19-digit printed form."""
    digits = text.replace(" ", "")
    if not digits.isdigit():
        raise IssueError(f"--card-no {text!r}: only decimal digits")
    if len(digits) == 19:
        digits = "0" + digits
    if len(digits) != 20:
        raise IssueError(f"--card-no {text!r}: expected 20 digits (or the 19 printed ones), got {len(digits)}")
    return digits


def ef15_bytes(profile: CardProfile, card_no: str, start: _dt.date) -> bytes:
    """EF15 of a card of this profile, encoded by the EF15 layout."""
    return EF15.encode({
        "issuer_id": profile.issuer_id.hex().upper(),
        "app_type": f"{profile.app_type:02X}",
        "app_version": f"{profile.app_version:02X}",
        "card_no": card_no,
        "start_date": start.isoformat(),
        "expiry_date": profile.expiry(start).isoformat(),
        "issuer_data": profile.fci_custom,
    })


def ef17_bytes(profile: CardProfile) -> bytes:
    """EF17 of a card of this profile, encoded by the EF17 layout."""
    return EF17.encode({
        "country": profile.country,
        "province": profile.province,
        "city": profile.city,
        "interop": "0001" if profile.interoperable else "0000",
        "card_type": f"{profile.card_type:02X}",
        "settlement_unit": profile.settlement_unit,
    })


def select_key_sets(profile: CardProfile, keysets: Sequence[KeySet], algorithm: str | None) -> dict[int, KeySet]:
    """The card's key sets by key index (D16); --algorithm keeps one.

    The profile says which algorithms a card of this issuer carries; the key index is the one the key set's
    own keys carry, because that is what terminals send in INITIALIZE and PSAMs are issued with. (The
    shipped profiles and key sets agree: 01 3DES, 02 SM4.)
    """
    if not keysets:
        raise IssueError("--keyset: at least one key set is needed")
    chosen: dict[int, KeySet] = {}
    seen: set[str] = set()
    for ks in keysets:
        alg = ks.algorithm.value
        if alg in seen:
            raise IssueError(f"--keyset {ks.source}: two key sets for {alg}")
        seen.add(alg)
        if algorithm is not None and alg != algorithm:
            continue
        if not any(s.algorithm == alg for s in profile.keys):
            raise IssueError(f"--keyset {ks.source}: profile {profile.name} has no {alg} key slot")
        try:
            ks.require(Use.SIMULATION)
        except KeySetError as exc:
            raise IssueError(str(exc)) from None
        index = ks.entry("purchase").index
        if index in chosen:
            raise IssueError(f"--keyset {ks.source}: key index {index:02X} is already taken by {chosen[index].source}")
        chosen[index] = ks
    if not chosen:
        raise IssueError(f"--algorithm {algorithm}: none of the key sets given is {algorithm}")
    return chosen


def issue_card(profile: CardProfile, keysets: Sequence[KeySet], card_no: str, issued_on: _dt.date, *,
               balance: int = 0, algorithm: str | None = None) -> IssuedCard:
    """One personalised card; refuses a balance above the profile's maximum."""
    card_no = normalise_card_no(card_no)
    if not card_no.startswith(profile.card_no_prefix):
        raise IssueError(f"--card-no {card_no}: profile {profile.name} numbers start with {profile.card_no_prefix}")
    if not 0 <= balance <= profile.max_balance:
        raise IssueError(f"--balance {balance}: must be 0..{profile.max_balance} fen (the profile's max_balance)")
    slots = select_key_sets(profile, keysets, algorithm)
    state = CardState.new(
        ef15_bytes(profile, card_no, issued_on),
        slots,
        ef17=ef17_bytes(profile),
        capp_records=profile.capp_records,
        log_capacity=profile.ef18_records,
        history_capacity=profile.ef1e_records,
        balance=balance,
        overdraft_limit=profile.overdraft_limit,
        max_balance=profile.max_balance,
        pin=profile.pin,
        pin_required_for_load=profile.pin_required_for_load,
        app_version=profile.fci_app_version,
        ats_historical=profile.ats_historical,
        aid=profile.aid,
    )
    registry = {
        "card_no": card_no,
        "issuer_id": profile.issuer_id.hex().upper(),
        "city": profile.city,
        "medium": profile.medium,
        "aid": profile.aid.hex().upper(),
        "card_type": f"{profile.card_type:02X}",
        "issued_on": issued_on.isoformat(),
        "price": profile.price,
        "profile": profile.name,
        "algorithms": sorted(ks.algorithm.value for ks in slots.values()),
        "balance": balance,
    }
    return IssuedCard(state, card_no, registry)


def transport_key_for(slots: Mapping[int, KeySet]) -> SecretKey:
    """The transport key of a blank card for these key sets: the `card_master` of the lowest key index
    that has one, exactly as the key set holds it (for master key sets: the batch transport key the
    chips are delivered with; the personalisation script then replaces it by the card's own key)."""
    for index in sorted(slots):
        ks = slots[index]
        if ks.has("card_master"):
            return ks.entry("card_master").key
    names = ", ".join(ks.source for ks in slots.values())
    raise IssueError(f"--keyset {names}: no card_master (transport) key; a blank card and its script need one")


def blank_card(profile: CardProfile, transport_key: SecretKey) -> CardState:
    """A card as the chip maker delivers it for this profile: files created, nothing personalised.

    What the reference's commands cannot write is set here, as the vendor-specific creation commands
    would: the file structure (EF15/16/17 zero-filled at their sizes, EF18 and EF1E empty with the
    profile's capacities, the profile's EF1A records zero-filled at their sizes), the purse limits
    (0 fen, overdraft limit, maximum balance), the PIN and its load rule, the FCI version and the
    ATS. No key set: the only key is `transport_key`, which protects WRITE KEY (ykt_card.card.cos).
    `ykt_card.host.script` then turns this card into the one `issue_card` builds.
    """
    if not isinstance(transport_key, SecretKey):
        raise IssueError(f"transport key: must be a keysets.SecretKey, not {type(transport_key).__name__}")
    files = {
        SFI_PUBLIC: BinaryFile(SFI_PUBLIC, bytes(EF15.size)),  # type: ignore[arg-type]
        SFI_HOLDER: BinaryFile(SFI_HOLDER, bytes(EF16.size)),  # type: ignore[arg-type]
        SFI_MANAGEMENT: BinaryFile(SFI_MANAGEMENT, bytes(EF17.size)),  # type: ignore[arg-type]
        SFI_LOG: CyclicFile.empty(SFI_LOG, EF18.size, profile.ef18_records),  # type: ignore[arg-type]
        SFI_CAPP: RecordFile(SFI_CAPP, {rid: bytes(profile.capp_record_size(rid)) for rid in profile.capp_records}),
        SFI_HISTORY: CyclicFile.empty(SFI_HISTORY, EF1EA.size, profile.ef1e_records),  # type: ignore[arg-type]
    }
    state = CardState(
        files=files,
        key_sets={},
        purse=Purse(0, profile.overdraft_limit, profile.max_balance, 0, 0),
        pin=Pin(pin_bcd(profile.pin), 3, 3),
        pin_required_for_load=profile.pin_required_for_load,
        app_version=profile.fci_app_version,
        ats_historical=profile.ats_historical,
        aid=profile.aid,
        ppse=ppse_for(profile.aid),
        transport_key=transport_key,
    )
    state.validate()
    return state


def batch_numbers(profile: CardProfile, first_card_no: str, count: int) -> list[str]:
    """`count` consecutive card numbers from the first (the check-digit rule is not public, so none is computed)."""
    if count < 1:
        raise IssueError(f"--count {count}: must be at least 1")
    first = normalise_card_no(first_card_no)
    width = 20 - len(profile.card_no_prefix)
    if not first.startswith(profile.card_no_prefix):
        raise IssueError(f"--card-no {first}: profile {profile.name} numbers start with {profile.card_no_prefix}")
    start = int(first[len(profile.card_no_prefix):])
    if start + count > 10**width:
        raise IssueError(f"--count {count}: card numbers would run past {profile.card_no_prefix}{'9' * width}")
    try:
        return [profile.card_number(start + i) for i in range(count)]
    except ProfileError as exc:
        raise IssueError(str(exc)) from None


def issue_batch(profile: CardProfile, keysets: Sequence[KeySet], first_card_no: str, count: int,
                issued_on: _dt.date, **kwargs) -> list[IssuedCard]:
    """`count` cards with consecutive numbers (see batch_numbers)."""
    return [issue_card(profile, keysets, n, issued_on, **kwargs) for n in batch_numbers(profile, first_card_no, count)]


def append_registry(path: str | Path, lines: Sequence[dict[str, object]]) -> None:
    """Append one JSON line per card and fsync: the registry is the issuer's record of what exists."""
    import os

    with open(path, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
