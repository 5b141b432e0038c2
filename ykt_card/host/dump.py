"""Everything a terminal can read from a T-Union card without keys, as plain data.

This backs `ykt card read` (which renders it, tools/render.py): PPSE, FCI, EF15/16/17, the three
balances (D3), the EF18 log, the EF1A transit records and the EF1E history, each kept as its raw hex and
decoded by ykt_card.layouts. A dump is a JSON-able dict whose content depends only on the card, so the
same card gives the same JSON byte for byte; it holds nothing secret (no key, PIN or session value is
readable without keys).

A refusal does not end the dump: a section the card refuses holds ``{"sw": "6A82", "error": ...}``
and a file or record whose bytes do not decode holds its raw hex and ``decode_error``, because a reader
of a strange card wants to see all that *can* be read. Only a refused SELECT of the application ends it
(CardError: this is not a T-Union card).
"""
from __future__ import annotations

import json
from typing import Any, Callable

from apdu.status import SW_RECORD_NOT_FOUND, CardError, describe

from ykt_card.host.card import TUNION_AID, TUnionCard
from ykt_card.layouts import (EF15, EF16, EF17, EF18, EF1EA, EF1EB, AdfFci, FileLayout, LayoutError, for_1a_record,
                              record_name)

__all__ = ["DUMP_FORMAT", "CAPP_RECORD_IDS", "read_card", "to_json"]

DUMP_FORMAT = 1
#: The record IDs of the Cardlan EF1A index a terminal may meet (01 metro .. 0D discount info).
CAPP_RECORD_IDS = tuple(range(0x01, 0x0E))


def _hex(raw: bytes) -> str:
    return raw.hex().upper()


def _refusal(exc: CardError) -> dict[str, Any]:
    return {"sw": f"{exc.sw:04X}", "error": describe(exc.sw)}


def _decoded(layout: type[FileLayout], raw: bytes) -> dict[str, Any]:
    """Raw hex plus the layout's fields, or plus the layout's precise complaint."""
    out: dict[str, Any] = {"file": layout.name, "raw": _hex(raw)}
    try:
        out["fields"] = layout.decode(raw)
    except LayoutError as exc:
        out["decode_error"] = str(exc)
    return out


def _section(read: Callable[[], Any]) -> Any:
    try:
        return read()
    except CardError as exc:
        return _refusal(exc)


def _binary(card: TUnionCard, layout: type[FileLayout]) -> dict[str, Any]:
    """A whole binary file as the card holds it (`00 B0 (80|SFI) 00 size`), decoded when it can be."""
    return _decoded(layout, card.read_binary(layout.sfi, length=layout.size))  # type: ignore[arg-type]


def read_card(card: TUnionCard, layout_1e: str = "A") -> dict[str, Any]:
    """Read and decode every keyless part of the card behind `card` (its reader already connected).

    `layout_1e` is 'A' or 'B' (D8: EF1E's layout belongs to the terminal's city, so the reader says
    which to decode with). Raises CardError when the T-Union application cannot be selected.
    """
    if not isinstance(layout_1e, str) or layout_1e.upper() not in ("A", "B"):
        raise ValueError(f"layout_1e must be 'A' or 'B', got {layout_1e!r}")
    history_layout = EF1EA if layout_1e.upper() == "A" else EF1EB
    dump: dict[str, Any] = {"format": DUMP_FORMAT}

    dump["ppse"] = _section(lambda: _ppse(card))
    dump["application"] = _application(card)
    public = _section(lambda: _binary(card, EF15))
    dump["card_no"] = public.get("fields", {}).get("card_no")
    dump["public_data"] = public
    dump["holder"] = _section(lambda: _binary(card, EF16))
    dump["management"] = _section(lambda: _binary(card, EF17))
    dump["balance"] = _section(lambda: {kind: card.get_balance(kind)
                                        for kind in ("total", "limit", "real")})
    dump["transactions"] = _section(lambda: [
        {"record": n, **_decoded(EF18, raw)}
        for n, raw in enumerate(card.read_transaction_records(), start=1)])
    dump["transit_records"] = _capp_records(card)
    dump["history"] = {"layout": layout_1e.upper(), "records": _section(lambda: [
        {"record": n, **_decoded(history_layout, raw)}
        for n, raw in enumerate(card.read_history(), start=1)])}
    return dump


def _ppse(card: TUnionCard) -> dict[str, Any]:
    ppse = card.select_ppse()
    return {"df_name": ppse.df_name, "entries": [e.fields() for e in ppse.entries]}


def _application(card: TUnionCard) -> dict[str, Any]:
    """The SELECT of the T-Union AID: its FCI decoded by `AdfFci` (an FCI that does not decode is kept raw)."""
    answer = card.select_response(TUNION_AID)
    out: dict[str, Any] = {"aid": _hex(TUNION_AID), "app_version": None, "locked": answer.locked,
                           "sw": f"{answer.sw:04X}", "ef15": None}
    if answer.fci:
        try:
            fci = AdfFci.decode(answer.fci)
        except LayoutError as exc:
            out.update(fci=_hex(answer.fci), decode_error=str(exc))
        else:
            ef15 = _hex(EF15.encode(fci["ef15"])) if fci["ef15"] is not None else None
            out.update(aid=fci["aid"], app_version=fci["app_version"], ef15=ef15)
    return out


def _capp_records(card: TUnionCard) -> list[dict[str, Any]]:
    """Every EF1A record ID of the index the card holds; absent IDs (6A83) are left out."""
    out: list[dict[str, Any]] = []
    for record_id in CAPP_RECORD_IDS:
        entry: dict[str, Any] = {"record_id": f"{record_id:02X}", "name": record_name(record_id)}
        try:
            raw = card.read_capp_record(record_id)
        except CardError as exc:
            if exc.sw == SW_RECORD_NOT_FOUND:
                continue
            out.append({**entry, **_refusal(exc)})
            continue
        out.append({**entry, **_decoded(for_1a_record(record_id), raw)})
    return out


def to_json(dump: dict[str, Any]) -> str:
    """The stable JSON form of a dump (`ykt card read --json`): key order as built, UTF-8 text."""
    return json.dumps(dump, indent=2, ensure_ascii=False) + "\n"
