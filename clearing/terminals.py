"""The terminal registry: which terminals exist, where, for whom, on which line and vehicle or gate.

A CSV file with a header row; one terminal per row (docs/clearing.md):

    terminal_id,city,operator,mode,line,vehicle,interoperable
    440300000001,5810,0301,bus,0002,A10002,true

* ``terminal_id`` — 12 hex digits, the PSAM terminal number in clearing records; unique;
* ``city`` — the 4-digit area code of the city the terminal works in (guangdong.md);
* ``operator`` — 4 hex digits, the operator that acquires its transactions (with the city it names the
  acquiring party of the settlement, ``operator‖city``);
* ``mode`` — ``bus``, ``metro``, ``tram``, ``taxi``, ``ferry``, ``county-bus``, ``rural``, ``bicycle``,
  ``load`` (ticket office) or ``other``;
* ``line`` — the line (4 hex digits) or empty (taxis, ticket offices);
* ``vehicle`` — the vehicle (bus number) or gate the terminal is mounted on (1 to 16 printable characters);
* ``interoperable`` — optional, ``true`` (default) when the terminal accepts the interoperable card; a
  ``false`` row counts in the monthly return's "all" columns only.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import field_validator

from ykt_files.schema import DocumentError, Model, problem, read_text, validate

__all__ = ["TerminalRegistry", "Terminal", "RegistryError", "MODES"]

MODES = ("bus", "metro", "tram", "taxi", "ferry", "county-bus", "rural", "bicycle", "load", "other")
COLUMNS = ("terminal_id", "city", "operator", "mode", "line", "vehicle", "interoperable")


class RegistryError(DocumentError):
    """A terminal registry refused: `<file>: <row/field>: <reason>`."""


class Terminal(Model):
    terminal_id: str
    city: str
    operator: str
    mode: Literal["bus", "metro", "tram", "taxi", "ferry", "county-bus", "rural", "bicycle", "load", "other"]
    line: str | None = None
    vehicle: str
    interoperable: bool = True

    @field_validator("terminal_id")
    @classmethod
    def _tid(cls, v: str) -> str:
        if len(v) != 12 or any(c not in "0123456789ABCDEFabcdef" for c in v):
            raise problem("expected 12 hex digits")
        return v.upper()

    @field_validator("city")
    @classmethod
    def _city(cls, v: str) -> str:
        if len(v) != 4 or not (v.isascii() and v.isdigit()):
            raise problem("expected a 4-digit area code")
        return v

    @field_validator("operator", "line")
    @classmethod
    def _hex4(cls, v: str | None) -> str | None:
        if v is not None and (len(v) != 4 or any(c not in "0123456789ABCDEFabcdef" for c in v)):
            raise problem("expected 4 hex digits")
        return v.upper() if v is not None else None

    @field_validator("vehicle")
    @classmethod
    def _vehicle(cls, v: str) -> str:
        if not 1 <= len(v) <= 16 or not all(0x21 <= ord(c) <= 0x7E for c in v):
            raise problem("expected 1 to 16 printable ASCII characters")
        return v

    @property
    def acquirer(self) -> str:
        """The acquiring party: operator ‖ city (8 hex digits, the form of an issuer's org ‖ city)."""
        return self.operator + self.city


@dataclass(frozen=True)
class TerminalRegistry:
    terminals: dict[str, Terminal]
    source: str

    @property
    def acquirers(self) -> dict[str, str]:
        """terminal ID -> acquiring party, the lookup the verifier makes per record."""
        return {tid: t.acquirer for tid, t in self.terminals.items()}

    @classmethod
    def load(cls, path: str | Path) -> "TerminalRegistry":
        source = str(path)
        text = read_text(path, "terminal registry", RegistryError)
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            raise RegistryError(source, None, "empty file (a header row is required)")
        header = [h.strip() for h in rows[0]]
        for name in header:
            if name not in COLUMNS:
                raise RegistryError(source, "header", f"unknown column {name!r} (columns: {', '.join(COLUMNS)})")
        for name in COLUMNS[:-1]:
            if name not in header:
                raise RegistryError(source, "header", f"column {name!r} missing")
        terminals: dict[str, Terminal] = {}
        for number, row in enumerate(rows[1:], 2):
            if not any(cell.strip() for cell in row):
                continue
            where = f"{source}: line {number}"
            if len(row) != len(header):
                raise RegistryError(source, f"line {number}", f"expected {len(header)} columns, got {len(row)}")
            data: dict[str, object] = {k: v.strip() for k, v in zip(header, row) if v.strip() != ""}
            if "interoperable" in data:
                flag = str(data["interoperable"]).lower()
                if flag not in ("true", "false"):
                    raise RegistryError(source, f"line {number}: interoperable", "expected true or false")
                data["interoperable"] = flag == "true"
            terminal = validate(Terminal, data, where, RegistryError)
            if terminal.terminal_id in terminals:
                raise RegistryError(source, f"line {number}: terminal_id",
                                    f"{terminal.terminal_id} is listed twice")
            terminals[terminal.terminal_id] = terminal
        return cls(terminals, source)
