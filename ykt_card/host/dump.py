"""Everything a terminal can read from a T-Union card without keys, as plain data and as text.

This backs `ykt card read`: PPSE, FCI, EF15/16/17, the three balances (D3), the EF18 log, the EF1A
transit records and the EF1E history, each kept as its raw hex and decoded by ykt_card.layouts. A
dump is a JSON-able dict whose content depends only on the card, so the same card gives the same JSON
byte for byte; it holds nothing secret (no key, PIN or session value is readable without keys).

A refusal does not end the dump: a section the card refuses holds ``{"sw": "6A82", "error": ...}``
and a record whose bytes do not decode holds its raw hex and ``decode_error``, because a reader of a
strange card wants to see all that *can* be read. Only a failed SELECT of the application ends it
(CardError: this is not a T-Union card).
"""
from __future__ import annotations

import json
from typing import Any, Callable

from apdu.status import SW_RECORD_NOT_FOUND, CardError, describe

from ykt_card.host.card import TUNION_AID, TUnionCard
from ykt_card.layouts import (EF15, EF16, EF17, EF18, EF1EA, EF1EB, FileLayout, LayoutError, StructLayout,
                      by_name, for_1a_record, record_name)

__all__ = ["DUMP_FORMAT", "CAPP_RECORD_IDS", "read_card", "to_json", "render_text"]

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
    fci = card.select(TUNION_AID)
    dump["application"] = {
        "aid": _hex(fci.aid),
        "app_version": f"{fci.app_version:02X}" if fci.app_version is not None else None,
        "locked": fci.locked,
        "sw": f"{fci.sw:04X}",
        "ef15": _hex(fci.ef15) if fci.ef15 is not None else None,
    }
    public = _section(lambda: _decoded(EF15, card.read_public_data().raw))
    dump["card_no"] = public.get("fields", {}).get("card_no")
    dump["public_data"] = public
    dump["holder"] = _section(lambda: _decoded(EF16, card.read_holder().raw))
    dump["management"] = _section(lambda: _decoded(EF17, card.read_management().raw))
    dump["balance"] = _section(lambda: {kind: card.get_balance(kind)
                                        for kind in ("total", "limit", "real")})
    dump["transactions"] = _section(lambda: [
        {"record": n, **_decoded(EF18, rec.raw)}
        for n, rec in enumerate(card.read_transactions(), start=1)])
    dump["transit_records"] = _capp_records(card)
    dump["history"] = {"layout": layout_1e.upper(), "records": _section(lambda: [
        {"record": n, **_decoded(history_layout, raw)}
        for n, raw in enumerate(card.read_history(), start=1)])}
    return dump


def _ppse(card: TUnionCard) -> dict[str, Any]:
    ppse = card.select_ppse()
    return {
        "df_name": ppse.df_name.decode("ascii", "replace"),
        "entries": [{"aid": _hex(e.aid), "label": e.label, "priority": e.priority}
                    for e in ppse.entries],
    }


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


# -- text for humans ----------------------------------------------------------------------------------

_HEADERS = {
    "EF18": ("record", "counter", "type", "amount", "terminal", "date-time"),
    "EF1E": ("record", "type", "amount", "balance after", "date-time", "terminal"),
}


def _yuan(fen: Any) -> str:
    if not isinstance(fen, int) or isinstance(fen, bool):
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return str(v)


def _table(rows: list[tuple[str, ...]], indent: str = "  ") -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]


def _refused(section: Any) -> str | None:
    if isinstance(section, dict) and "error" in section and "sw" in section:
        return f"refused: {section['sw']} {section['error']}"
    return None


def _amount_fields(file: str | None) -> set[str]:
    """Names of the fields a layout declares as money, so the text can show them in yuan."""
    try:
        layout = by_name(file or "")
    except LayoutError:
        return set()
    if not issubclass(layout, StructLayout):
        return set()
    return {name for name, kind in layout.field_kinds().items() if kind == "amount"}


def _fields_lines(entry: dict[str, Any], indent: str) -> list[str]:
    if "decode_error" in entry:
        return [f"{indent}raw: {entry['raw']}", f"{indent}cannot decode: {entry['decode_error']}"]
    fields = entry.get("fields", {})
    amounts = _amount_fields(entry.get("file"))
    width = max((len(k) for k in fields), default=0) + 1
    lines = []
    for key, value in fields.items():
        shown = f"{value} ({_yuan(value)} yuan)" if key in amounts else _value(value)
        lines.append(f"{indent}{(key + ':').ljust(width)} {shown}".rstrip())
    return lines


def _record_table(title: str, entries: Any, header: str, cells: Callable[[dict[str, Any]], tuple[str, ...]]) -> list[str]:
    """A titled table of records (EF18, EF1E); a refused read or an undecodable record still shows."""
    lines = [title]
    if _refused(entries):
        return lines + [f"  {_refused(entries)}"]
    if not entries:
        return lines + ["  (none)"]
    rows = [_HEADERS[header]]
    for e in entries:
        f = e.get("fields")
        rows.append((str(e["record"]), *(cells(f) if f is not None else ("?", "?", "?", "?", e.get("decode_error", "")))))
    return lines + _table(rows)


def render_text(dump: dict[str, Any]) -> str:
    """A readable report of a dump (what `ykt card read` prints without --json)."""
    lines: list[str] = []
    app = dump.get("application", {})
    public = dump.get("public_data", {})
    f15 = public.get("fields", {}) if isinstance(public, dict) else {}
    number = f15.get("card_no_printed") or dump.get("card_no") or "?"
    lines.append(f"T-Union card {number}")
    state = "open" if app.get("locked") is None else f"LOCKED ({app['locked']}, SW {app.get('sw')})"
    lines.append(f"  application  {app.get('aid', '?')} version {_value(app.get('app_version'))}, "
                 f"{state}")

    ppse = dump.get("ppse")
    if _refused(ppse):
        lines.append(f"  PPSE         {_refused(ppse)}")
    elif isinstance(ppse, dict):
        apps = ", ".join(f"{e['label'] or '?'} {e['aid']} (priority {_value(e['priority'])})"
                         for e in ppse.get("entries", []))
        lines.append(f"  PPSE         {apps or '(empty directory)'}")

    lines.append("")
    lines.append("Public data (EF15)")
    lines += [f"  {_refused(public)}"] if _refused(public) else _fields_lines(public, "  ")
    for key, title in (("holder", "Holder (EF16)"), ("management", "Management (EF17)")):
        section = dump.get(key, {})
        lines.append("")
        lines.append(title)
        lines += [f"  {_refused(section)}"] if _refused(section) else _fields_lines(section, "  ")

    lines.append("")
    balance = dump.get("balance", {})
    if _refused(balance):
        lines.append(f"Balance  {_refused(balance)}")
    else:
        lines.append(f"Balance  {_yuan(balance.get('real'))} yuan (overdraft limit "
                     f"{_yuan(balance.get('limit'))}, total available {_yuan(balance.get('total'))})")

    lines.append("")
    lines += _record_table("Transactions (EF18, newest first)", dump.get("transactions", []), "EF18",
                           lambda f: (str(f["counter"]), f"{f['type']} {f['type_name']}", _yuan(f["amount"]),
                                      f["terminal_id"], _value(f["datetime"])))

    lines.append("")
    lines.append("Transit records (EF1A)")
    records = dump.get("transit_records", [])
    if not records:
        lines.append("  (none)")
    for rec in records:
        lines.append(f"  record {rec['record_id']} {rec['name']}")
        lines += [f"    {_refused(rec)}"] if _refused(rec) else _fields_lines(rec, "    ")

    lines.append("")
    history = dump.get("history", {})
    lines += _record_table(f"Transit history (EF1E, layout {history.get('layout', '?')}, newest first)",
                           history.get("records", []), "EF1E",
                           lambda f: (f["type"], _yuan(f["amount"]), _yuan(f["balance_after"]),
                                      _value(f["datetime"]), f["terminal_id"]))
    return "\n".join(lines) + "\n"
