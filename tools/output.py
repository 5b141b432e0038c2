"""Rendering helpers: stable JSON for machines, rich tables for people."""
from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console
from rich.table import Table


def emit_json(obj: Any) -> None:
    """Deterministic JSON (sorted keys off: field order is meaningful; ASCII escapes off for Chinese text)."""
    click.echo(json.dumps(obj, ensure_ascii=False, indent=None, separators=(",", ": ")))


def console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    t = Table(title=title, show_lines=False, title_justify="left")
    for c in columns:
        t.add_column(c)
    for r in rows:
        t.add_row(*[str(x) for x in r])
    return t
