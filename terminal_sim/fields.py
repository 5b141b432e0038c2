"""Field types of terminal_sim's documents (terminal profiles, outcomes) on the schema layer.

Each check takes the raw value (strict: YAML's 5810 is not "5810", true is not 1) and refuses with
`ykt_files.schema.problem`: what was expected and what was found, type and value, because a person
editing the file needs both and these documents hold no secrets. A refusal is a ValueError too, so the
same checks serve outside a model (`TerminalProfile.with_station`). `typed(kind, check)` makes a
pydantic field type of a check.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BeforeValidator

from ykt_files.schema import problem

__all__ = ["kind_of", "got", "text", "integer", "hex_digits", "hex_bytes", "decimal_digits", "one_of", "flag",
           "printable", "expect", "typed"]

Check = Callable[[Any], Any]


def kind_of(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def got(value: Any) -> str:
    """'int 5810', "str '01'": what a check found."""
    return f"{kind_of(value)} {value!r}"


def text(value: Any) -> str:
    if not isinstance(value, str):
        raise problem(f"expected a quoted string, got {got(value)}")
    return value


def integer(low: int, high: int) -> Check:
    """An integer (never a bool) in low..high."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise problem(f"expected an integer, got {got(value)}")
        if not low <= value <= high:
            raise problem(f"{value} out of range {low}..{high}")
        return value
    return check


def hex_digits(count: int) -> Check:
    """Exactly `count` hex digits, kept upper case."""
    pattern = re.compile(rf"[0-9A-Fa-f]{{{count}}}")

    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise problem(f"expected a quoted string of {count} hex digits, got {got(value)}")
        if not pattern.fullmatch(value):
            raise problem(f"expected {count} hex digits, got {value!r}")
        return value.upper()
    return check


def hex_bytes(low: int, high: int) -> Check:
    """Whole bytes of hex, `low`..`high` digits, kept upper case."""
    pattern = re.compile(rf"(?:[0-9A-Fa-f]{{2}}){{{low // 2},{high // 2}}}")

    def check(value: Any) -> str:
        if not pattern.fullmatch(text(value)):
            raise problem(f"expected {low} to {high} hex digits (whole bytes), got {value!r}")
        return value.upper()
    return check


def decimal_digits(count: int) -> Check:
    def check(value: Any) -> str:
        if not (len(text(value)) == count and value.isascii() and value.isdigit()):
            raise problem(f"expected {count} decimal digits, got {value!r}")
        return value
    return check


def one_of(*allowed: str, quoted: bool = False) -> Check:
    """One of a few names: 'expected one of a, b, got ...' (quoted: "expected 'A' or 'B', got ...")."""
    expected = ("expected " + " or ".join(repr(a) for a in allowed)) if quoted \
        else ("expected one of " + ", ".join(allowed))

    def check(value: Any) -> str:
        if text(value) not in allowed:
            raise problem(f"{expected}, got {value!r}")
        return value
    return check


def flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise problem(f"expected true or false, got {got(value)}")
    return value


def printable(longest: int) -> Check:
    """1..`longest` printable ASCII characters (a vehicle number)."""
    pattern = re.compile(rf"[\x21-\x7E]{{1,{longest}}}")

    def check(value: Any) -> str:
        if not pattern.fullmatch(text(value)):
            raise problem(f"expected 1 to {longest} printable ASCII characters, got {value!r}")
        return value
    return check


def expect(kind: type, what: str, non_empty: bool = False) -> Check:
    """A table or a list: the right container (and not empty), said the file's way."""
    def check(value: Any) -> Any:
        if not isinstance(value, kind) or (non_empty and not value):
            raise problem(f"expected {what}, got {kind_of(value)}")
        return value
    return check


def typed(kind: Any, *checks: Check) -> Any:
    """A pydantic field type of `kind` whose raw value passes `checks` in order first."""
    if len(checks) == 1:
        return Annotated[kind, BeforeValidator(checks[0])]

    def run(value: Any) -> Any:
        for check in checks:
            value = check(value)
        return value
    return Annotated[kind, BeforeValidator(run)]
