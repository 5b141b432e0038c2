"""Versioned card lists a validator downloads: the black list (card numbers) and the issuer white list.

File format (plain text, UTF-8, one item a line, so a list can be diffed and signed as it is)::

    # comments and blank lines are ignored
    kind: blacklist            # or: issuers
    version: 2024112401        # YYYYMMDDnn: the date the list was cut and a 2-digit issue number
    03104870300000000017       # blacklist: one card number a line, 20 digits (EF15 bytes 10..19)
    02205810                   # issuers: an issuer ID prefix, 8 hex digits (org ‖ city) or 16

Both headers come first, each once; every refusal names the file, the line and the reason. The
version is what each outcome carries as ``list_version`` (design.md): clearing can tell which list a
terminal used. Acceptance (tunion.md 5.1 steps 3 and 4): a card of this city is always accepted, any
other card only when its EF17 says interoperable (0001); a white list, when configured, narrows that
to the issuers it names.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "ListError", "BlackList", "IssuerWhiteList", "load_blacklist", "load_whitelist", "parse_list",
    "acceptance_refusal", "INTEROPERABLE",
]

INTEROPERABLE = "0001"
_VERSION = re.compile(r"\d{10}")
_CARD_NO = re.compile(r"\d{20}")
_ISSUER = re.compile(r"[0-9A-Fa-f]{8}(?:[0-9A-Fa-f]{8})?")
_KINDS = ("blacklist", "issuers")


class ListError(ValueError):
    """A list file refused: ``file:line: reason`` in one line."""


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


def _version(text: str, fail) -> str:
    if not _VERSION.fullmatch(text):
        raise fail(f"version: expected 10 digits YYYYMMDDnn, got {text!r}")
    try:
        _dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise fail(f"version: {text[:8]} is not a date") from None
    return text


def parse_list(text: str, source: str = "<memory>") -> BlackList | IssuerWhiteList:
    """Parse a list file's text; the kind header decides which list it is."""
    headers: dict[str, tuple[str, int]] = {}
    items: list[tuple[str, int]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue

        def fail(reason: str, n: int = number) -> ListError:
            return ListError(f"{source}:{n}: {reason}")

        if ":" in line:
            key, _, value = (part.strip() for part in line.partition(":"))
            if key not in ("kind", "version"):
                raise fail(f"unknown header {key!r} (known: kind, version)")
            if key in headers:
                raise fail(f"{key}: given twice (first on line {headers[key][1]})")
            if items:
                raise fail(f"{key}: headers must come before the entries")
            headers[key] = (value, number)
        else:
            items.append((line, number))

    def fail_at(reason: str, n: int | None = None) -> ListError:
        return ListError(f"{source}:{n}: {reason}" if n else f"{source}: {reason}")

    for key in ("kind", "version"):
        if key not in headers:
            raise fail_at(f"{key}: missing header")
    kind, kind_line = headers["kind"]
    if kind not in _KINDS:
        raise fail_at(f"kind: expected one of {', '.join(_KINDS)}, got {kind!r}", kind_line)
    version_text, version_line = headers["version"]
    version = _version(version_text, lambda reason: fail_at(reason, version_line))

    seen: dict[str, int] = {}
    if kind == "blacklist":
        for item, n in items:
            if not _CARD_NO.fullmatch(item):
                raise fail_at(f"not a 20-digit card number: {item!r}", n)
            if item in seen:
                raise fail_at(f"card {item} listed twice (first on line {seen[item]})", n)
            seen[item] = n
        return BlackList(version, frozenset(seen), source)
    for item, n in items:
        if not _ISSUER.fullmatch(item):
            raise fail_at(f"not an issuer ID prefix of 8 or 16 hex digits: {item!r}", n)
        prefix = item.upper()
        if prefix in seen:
            raise fail_at(f"issuer {prefix} listed twice (first on line {seen[prefix]})", n)
        seen[prefix] = n
    if not seen:
        raise fail_at("an issuer white list with no issuers would refuse every card")
    return IssuerWhiteList(version, tuple(seen), source)


def _read(path: str | Path) -> tuple[str, str]:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8"), p.name
    except FileNotFoundError:
        raise ListError(f"{p}: no such list file") from None
    except UnicodeDecodeError:
        raise ListError(f"{p}: not UTF-8 text") from None
    except OSError as exc:
        raise ListError(f"{p}: cannot read: {exc.strerror}") from None


def _load(path: str | Path, kind: type, expected: str, other: str):
    text, name = _read(path)
    result = parse_list(text, name)
    if not isinstance(result, kind):
        raise ListError(f"{name}: kind: expected {expected}, got {other}")
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
