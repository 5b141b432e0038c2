"""Versioned card lists a validator downloads: the black list (card numbers) and the issuer white list.

File format (plain text, UTF-8, one item a line, so a list can be diffed and signed as it is)::

    # comments and blank lines are ignored
    kind: blacklist            # or: issuers
    version: 2024112401        # YYYYMMDDnn: the date the list was cut and a 2-digit issue number
    03104870300000000017       # blacklist: one card number a line, 20 digits (EF15 bytes 10..19)
    02205810                   # issuers: an issuer ID prefix, 8 hex digits (org ‖ city) or 16

Both headers come first, each once; every refusal names the file, the line and the reason (the text
form is read here, the headers and entries are checked by the models of the schema layer). The
version is what each outcome carries as ``list_version`` (design.md): clearing can tell which list a
terminal used. Acceptance (tunion.md 5.1 steps 3 and 4): a card of this city is always accepted, any
other card only when its EF17 says interoperable (0001); a white list, when configured, narrows that
to the issuers it names.
"""
from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ValidationInfo, model_validator

from ykt_files.schema import DocumentError, Model, problem, read_text, validate

__all__ = [
    "ListError", "BlackList", "IssuerWhiteList", "BlackListFile", "IssuerListFile", "load_blacklist",
    "load_whitelist", "parse_list", "acceptance_refusal", "INTEROPERABLE",
]

INTEROPERABLE = "0001"
_VERSION = re.compile(r"\d{10}")
_CARD_NO = re.compile(r"\d{20}")
_ISSUER = re.compile(r"[0-9A-Fa-f]{8}(?:[0-9A-Fa-f]{8})?")
_KINDS = ("blacklist", "issuers")
_HEADERS = ("kind", "version")


class ListError(DocumentError):
    """A list file refused: ``file:line: reason`` in one line (``file: field: reason`` for a missing header)."""


@dataclass(frozen=True)
class BlackList:
    """Card numbers a terminal must refuse (and lock, tunion.md 5.1 step 4)."""

    version: str
    cards: frozenset[str]
    source: str = "<memory>"

    def __contains__(self, card_no: object) -> bool:
        return card_no in self.cards

    def is_newer_than(self, other: "BlackList") -> bool:
        return self.version > other.version


@dataclass(frozen=True)
class IssuerWhiteList:
    """Issuer ID prefixes (8 or 16 hex digits, upper case) whose cards this terminal accepts."""

    version: str
    prefixes: tuple[str, ...]
    source: str = "<memory>"

    def accepts(self, issuer_id: str) -> bool:
        wanted = issuer_id.upper()
        return any(wanted.startswith(prefix) for prefix in self.prefixes)

    def is_newer_than(self, other: "IssuerWhiteList") -> bool:
        return self.version > other.version


# -- the documents: headers and entries, checked by the schema layer ---------------------------------

def _version(value: Any) -> str:
    if not isinstance(value, str) or not _VERSION.fullmatch(value):
        raise problem(f"expected 10 digits YYYYMMDDnn, got {value!r}")
    try:
        _dt.date(int(value[:4]), int(value[4:6]), int(value[6:8]))
    except ValueError:
        raise problem(f"{value[:8]} is not a date") from None
    return value


def _entry(pattern: re.Pattern[str], what: str) -> Any:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise problem(f"not {what}: {value!r}")
        return value.upper()
    return Annotated[str, BeforeValidator(check)]


Version = Annotated[str, BeforeValidator(_version)]
CardNo = _entry(_CARD_NO, "a 20-digit card number")
IssuerPrefix = _entry(_ISSUER, "an issuer ID prefix of 8 or 16 hex digits")


def _each_once(entries: list[str], field: str, info: ValidationInfo, say: Callable[[str], str]) -> None:
    """An entry listed twice is refused where it repeats, naming the line it was first on."""
    lines = (info.context or {}).get("lines") or list(range(1, len(entries) + 1))
    first: dict[str, int] = {}
    for i, entry in enumerate(entries):
        if entry in first:
            raise problem(f"{say(entry)} listed twice (first on line {lines[first[entry]]})", at=f"{field}[{i}]")
        first[entry] = i


class BlackListFile(Model):
    """``kind: blacklist``: one 20-digit card number a line (EF15 bytes 10..19)."""

    kind: Literal["blacklist"]
    version: Version
    cards: list[CardNo]

    @model_validator(mode="after")
    def _once(self, info: ValidationInfo) -> "BlackListFile":
        _each_once(self.cards, "cards", info, lambda card: f"card {card}")
        return self


class IssuerListFile(Model):
    """``kind: issuers``: issuer ID prefixes, 8 hex digits (org ‖ city) or 16 (a whole issuer ID)."""

    kind: Literal["issuers"]
    version: Version
    issuers: list[IssuerPrefix]

    @model_validator(mode="after")
    def _once(self, info: ValidationInfo) -> "IssuerListFile":
        _each_once(self.issuers, "issuers", info, lambda issuer: f"issuer {issuer}")
        if not self.issuers:
            raise problem("an issuer white list with no issuers would refuse every card")
        return self


_MODELS: dict[str, tuple[type[Model], str]] = {"blacklist": (BlackListFile, "cards"),
                                               "issuers": (IssuerListFile, "issuers")}


# -- the text form --------------------------------------------------------------------------------------

def _tokens(text: str, source: str) -> tuple[dict[str, tuple[str, int]], list[tuple[str, int]]]:
    """Headers (each once, before the entries) and entries, with their line numbers."""
    headers: dict[str, tuple[str, int]] = {}
    items: list[tuple[str, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if ":" not in line:
            items.append((line, number))
            continue
        key, _, value = (part.strip() for part in line.partition(":"))
        where = f"{source}:{number}"
        if key not in _HEADERS:
            raise ListError(where, None, f"unknown header {key!r} (known: kind, version)")
        if key in headers:
            raise ListError(where, key, f"given twice (first on line {headers[key][1]})")
        if items:
            raise ListError(where, key, "headers must come before the entries")
        headers[key] = (value, number)
    return headers, items


def parse_list(text: str, source: str = "<memory>") -> BlackList | IssuerWhiteList:
    """Parse a list file's text; the kind header decides which list it is."""
    headers, items = _tokens(text, source)
    for key in _HEADERS:
        if key not in headers:
            raise ListError(source, key, "missing header")
    kind, kind_line = headers["kind"]
    if kind not in _MODELS:
        raise ListError(f"{source}:{kind_line}", "kind", f"expected one of {', '.join(_KINDS)}, got {kind!r}")
    model, field = _MODELS[kind]
    version, version_line = headers["version"]
    lines = [n for _, n in items]
    doc = {"kind": kind, "version": version, field: [item for item, _ in items]}
    try:
        checked = validate(model, doc, source, ListError, {"lines": lines})
    except ListError as exc:
        raise _at_line(exc, source, field, version_line, lines) from None
    if isinstance(checked, BlackListFile):
        return BlackList(checked.version, frozenset(checked.cards), source)
    assert isinstance(checked, IssuerListFile)
    return IssuerWhiteList(checked.version, tuple(checked.issuers), source)


def _at_line(exc: ListError, source: str, field: str, version_line: int, lines: list[int]) -> ListError:
    """A fault the model found, told by the line it stands on (an entry's line, or the version header's)."""
    if exc.field == "version":
        return ListError(f"{source}:{version_line}", "version", exc.reason)
    match = re.fullmatch(rf"{field}\[(\d+)\]", exc.field or "")
    if match:
        return ListError(f"{source}:{lines[int(match.group(1))]}", None, exc.reason)
    return exc


def _load(path: str | Path, kind: type, expected: str, other: str) -> Any:
    p = Path(path)
    result = parse_list(read_text(p, "list", ListError), p.name)
    if not isinstance(result, kind):
        raise ListError(p.name, "kind", f"expected {expected}, got {other}")
    return result


def load_blacklist(path: str | Path) -> BlackList:
    """Load a black list file; a file of another kind is refused."""
    return _load(path, BlackList, "blacklist", "issuers")


def load_whitelist(path: str | Path) -> IssuerWhiteList:
    """Load an issuer white list file; a file of another kind is refused."""
    return _load(path, IssuerWhiteList, "issuers", "blacklist")


def acceptance_refusal(*, issuer_id: str, card_city: str, interop: str, local_city: str,
                       whitelist: IssuerWhiteList | None = None) -> str | None:
    """Why this terminal refuses a card by its issuer, or None when it accepts it.

    ``issuer_id`` is EF15 bytes 0..7 (16 hex), ``card_city`` and ``interop`` come from EF17.
    """
    if card_city != local_city and interop != INTEROPERABLE:
        return f"card of city {card_city} is not interoperable (EF17 interop {interop})"
    if whitelist is not None and not whitelist.accepts(issuer_id):
        return f"issuer {issuer_id.upper()} is not on issuer list {whitelist.version}"
    return None
