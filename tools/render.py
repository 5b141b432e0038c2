"""How `ykt` shows a card dump and a decoded file to people: rich tables, stable plain text when piped.

ykt_card hands out data (`read_card` → a dump dict, `decode_ef` → a decoded dict); this module alone
turns it into text. Output goes through a rich Console that never colours and has a fixed width when
stdout is not a terminal (`WIDTH`), so `ykt card read > file` gives the same bytes on every machine;
on a terminal it uses the terminal's width. Trailing blanks of rich's column padding are stripped.
Amounts (fields a layout declares as money) are also shown in yuan.
"""
from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Callable, Iterable
from typing import Any

from rich.console import Console, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ykt_card.layouts import LayoutError, StructLayout, by_name

__all__ = ["WIDTH", "output_width", "render_card", "render_decoded", "yuan"]

WIDTH = 120
"""Columns of the text when stdout is not a terminal (files, pipes, tests)."""

_RECORD_HEADERS = {
    "EF18": ("record", "counter", "type", "amount", "terminal", "date-time"),
    "EF1E": ("record", "type", "amount", "balance after", "date-time", "terminal"),
}


def output_width() -> int:
    """The terminal's width on a terminal, else `WIDTH`."""
    return shutil.get_terminal_size((WIDTH, 24)).columns if sys.stdout.isatty() else WIDTH


def _render(renderables: Iterable[RenderableType], width: int | None) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width or WIDTH, force_terminal=False, color_system=None,
                      highlight=False, markup=False, emoji=False, soft_wrap=False)
    for renderable in renderables:
        console.print(renderable)
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


# -- values ------------------------------------------------------------------------------------------------

def yuan(fen: Any) -> str:
    """Fen as yuan with two decimals ('-1.00'); '-' for anything that is not an amount."""
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


def _amount_fields(file: str | None) -> set[str]:
    """Names of the fields a layout declares as money, so the text can show them in yuan."""
    try:
        layout = by_name(file or "")
    except LayoutError:
        return set()
    if not issubclass(layout, StructLayout):
        return set()
    return {name for name, kind in layout.field_kinds().items() if kind == "amount"}


def _shown(value: Any, is_amount: bool) -> str:
    if is_amount and isinstance(value, int) and not isinstance(value, bool):
        return f"{value} ({yuan(value)} yuan)"
    return _value(value)


# -- building blocks -----------------------------------------------------------------------------------------

def _indented(renderable: RenderableType, indent: int) -> RenderableType:
    return Padding(renderable, (0, 0, 0, indent)) if indent else renderable


def _pairs(rows: list[tuple[str, str]], indent: int, gap: int = 1) -> RenderableType:
    """Aligned `name value` lines (the name column as wide as its longest entry)."""
    grid = Table.grid(padding=(0, gap))
    grid.add_column(no_wrap=True)
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(Text(name), Text(value))
    return _indented(grid, indent)


def _fields(fields: dict[str, Any], amounts: set[str], indent: int) -> RenderableType:
    return _pairs([(f"{name}:", _shown(value, name in amounts)) for name, value in fields.items()], indent)


def _columns(header: tuple[str, ...], rows: list[tuple[str, ...]], indent: int) -> RenderableType:
    table = Table(box=None, show_header=True, header_style=None, pad_edge=False, padding=(0, 1),
                  show_edge=False)
    for title in header:
        table.add_column(Text(title), no_wrap=True)
    for row in rows:
        table.add_row(*(Text(cell) for cell in row))
    return _indented(table, indent)


def _refused(section: Any) -> str | None:
    if isinstance(section, dict) and "error" in section and "sw" in section:
        return f"refused: {section['sw']} {section['error']}"
    return None


# -- ykt card read -----------------------------------------------------------------------------------------

def render_card(dump: dict[str, Any], width: int | None = None) -> str:
    """A readable report of a card dump (what `ykt card read` prints without --json)."""
    return _render(_card(dump), width)


def _card(dump: dict[str, Any]) -> Iterable[RenderableType]:
    yield from _card_header(dump)
    for key, title in (("public_data", "Public data (EF15)"), ("holder", "Holder (EF16)"),
                       ("management", "Management (EF17)")):
        yield Text("")
        yield Text(title)
        yield _file_section(dump.get(key, {}), 2)
    yield Text("")
    yield Text(_balance_line(dump.get("balance", {})))
    yield Text("")
    yield from _record_table("Transactions (EF18, newest first)", dump.get("transactions", []), "EF18",
                             lambda f: (str(f["counter"]), f"{f['type']} {f['type_name']}", yuan(f["amount"]),
                                        f["terminal_id"], _value(f["datetime"])))
    yield Text("")
    yield from _transit_records(dump.get("transit_records", []))
    yield Text("")
    history = dump.get("history", {})
    yield from _record_table(f"Transit history (EF1E, layout {history.get('layout', '?')}, newest first)",
                             history.get("records", []), "EF1E",
                             lambda f: (f["type"], yuan(f["amount"]), yuan(f["balance_after"]),
                                        _value(f["datetime"]), f["terminal_id"]))


def _card_header(dump: dict[str, Any]) -> Iterable[RenderableType]:
    app = dump.get("application", {})
    public = dump.get("public_data", {})
    f15 = public.get("fields", {}) if isinstance(public, dict) else {}
    number = f15.get("card_no_printed") or dump.get("card_no") or "?"
    yield Text(f"T-Union card {number}")
    state = "open" if app.get("locked") is None else f"LOCKED ({app['locked']}, SW {app.get('sw')})"
    rows = [("application", f"{app.get('aid', '?')} version {_value(app.get('app_version'))}, {state}")]
    if app.get("decode_error"):
        rows.append(("FCI", f"{app.get('fci')} cannot decode: {app['decode_error']}"))
    ppse = dump.get("ppse")
    if _refused(ppse):
        rows.append(("PPSE", _refused(ppse)))  # type: ignore[arg-type]
    elif isinstance(ppse, dict):
        apps = ", ".join(f"{e['label'] or '?'} {e['aid']} (priority {_value(e['priority'])})"
                         for e in ppse.get("entries", []))
        rows.append(("PPSE", apps or "(empty directory)"))
    yield _pairs(rows, 2, gap=2)


def _file_section(entry: Any, indent: int) -> RenderableType:
    """A decoded file or record: its fields, or its raw hex and why it does not decode, or the refusal."""
    refused = _refused(entry)
    if refused:
        return _indented(Text(refused), indent)
    if "decode_error" in entry:
        return _pairs([("raw:", entry["raw"]), ("cannot decode:", entry["decode_error"])], indent)
    return _fields(entry.get("fields", {}), _amount_fields(entry.get("file")), indent)


def _balance_line(balance: Any) -> str:
    refused = _refused(balance)
    if refused:
        return f"Balance  {refused}"
    return (f"Balance  {yuan(balance.get('real'))} yuan (overdraft limit {yuan(balance.get('limit'))}, "
            f"total available {yuan(balance.get('total'))})")


def _record_table(title: str, entries: Any, header: str,
                  cells: Callable[[dict[str, Any]], tuple[str, ...]]) -> Iterable[RenderableType]:
    """A titled table of records (EF18, EF1E); a refused read or an undecodable record still shows."""
    yield Text(title)
    if _refused(entries):
        yield _indented(Text(_refused(entries)), 2)  # type: ignore[arg-type]
        return
    if not entries:
        yield _indented(Text("(none)"), 2)
        return
    rows = []
    for e in entries:
        f = e.get("fields")
        rows.append((str(e["record"]), *(cells(f) if f is not None else ("?", "?", "?", "?", e.get("decode_error", "")))))
    yield _columns(_RECORD_HEADERS[header], rows, 2)


def _transit_records(records: list[dict[str, Any]]) -> Iterable[RenderableType]:
    yield Text("Transit records (EF1A)")
    if not records:
        yield _indented(Text("(none)"), 2)
    for rec in records:
        yield _indented(Text(f"record {rec['record_id']} {rec['name']}"), 2)
        yield _file_section(rec, 4)


# -- ykt decode --------------------------------------------------------------------------------------------

def render_decoded(decoded: dict[str, Any], width: int | None = None) -> str:
    """Aligned ``field: value`` lines under a title line; amounts also shown in yuan.

    Takes what `decode_ef` returns (or a bare fields dict). Nested values are flattened with dotted
    names (``ef15.card_no``, ``entries[0].aid``); None prints as '-'.
    """
    parts: list[RenderableType] = []
    fields = decoded
    amounts: set[str] = set()
    if "fields" in decoded and "file" in decoded:
        fields = decoded["fields"]
        head = f"{decoded['file']}: {decoded.get('title', '')}, {decoded.get('length', '?')} bytes"
        if decoded.get("sw"):
            head += f" (SW {decoded['sw']})"
        parts.append(Text(head))
        amounts = _amount_fields(decoded["file"])
    flat: list[tuple[str, Any]] = []
    _flatten(fields, "", flat)
    rows = [(f"{name}:", "(none)" if value is _NONE else _shown(value, name in amounts)) for name, value in flat]
    parts.append(_pairs(rows, 2 if parts else 0))
    return _render(parts, width).rstrip("\n")


_NONE = object()
"""An empty list (shown as '(none)')."""


def _flatten(value: Any, prefix: str, out: list[tuple[str, Any]]) -> None:
    if isinstance(value, dict):
        for key, sub in value.items():
            _flatten(sub, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list):
        if not value:
            out.append((prefix, _NONE))
        for i, sub in enumerate(value):
            _flatten(sub, f"{prefix}[{i}]", out)
    else:
        out.append((prefix, value))
