"""One schema layer for every file ykt reads: declarative models on pydantic v2, one error formatter.

Why pydantic: key sets, profiles, images, scripts, lists and outcomes are nested documents whose every
field has a type, a range and cross-field rules. pydantic gives declarative models with strict types
(no silent coercion of "1" to 1 or 1 to True), `extra="forbid"` for unknown fields, and errors that
carry the exact location of each fault, which is what the one formatter below turns into the project's
single message form::

    <file>: <field>: <reason>          e.g.  card.json: purse.balance: 200001 out of range -16777215..100000

Field paths are dotted, list items indexed: ``keys.purchase.kcv``, ``entries[2].aid``. Reasons never
repeat the value of a hex field (it may be a key): validators of secret-bearing fields raise their own
messages, and the generic ones below name types and ranges, not inputs.

Each domain keeps its own error class (a subclass of `DocumentError`, e.g. ``KeySetError``), so callers
and the command line still catch the error they know.
"""
from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

__all__ = [
    "DocumentError", "ProfileError", "Model", "problem", "validate", "field_path", "read_text", "parse_document",
    "load_document", "Byte", "UInt", "IntRange", "HexBytes", "HexString", "Digits", "NonEmpty",
]

M = TypeVar("M", bound=BaseModel)


class DocumentError(ValueError):
    """A file (or document) refused: `source`, the dotted `field` (None for the whole file) and `reason`."""

    def __init__(self, source: str, field: str | None, reason: str) -> None:
        self.source = source
        self.field = field
        self.reason = reason
        super().__init__(f"{source}: {field}: {reason}" if field else f"{source}: {reason}")


class ProfileError(DocumentError):
    """A profile refused (card issuance, PSAM or terminal profile): `<file>: <field>: <reason>`."""


class Model(BaseModel):
    """Base of every document model: strict types, unknown fields refused, immutable once built."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


def problem(reason: str, at: str | None = None) -> PydanticCustomError:
    """An error a validator raises with its own reason (printed as it is).

    `at` names the field below the validator's own place, for rules a model checks across its fields
    (``problem("must say TEST", at="name")`` from a model validator points at ``name``).
    """
    # the reason travels in the context: pydantic fills `{name}` of a template from it and has no escape
    return PydanticCustomError("ykt", "{reason}", {"reason": reason, "at": at})


# -- the formatter ---------------------------------------------------------------------------------

def field_path(loc: Sequence[int | str]) -> str:
    """('keys', 'purchase', 'kcv') -> 'keys.purchase.kcv'; ('entries', 2, 'aid') -> 'entries[2].aid'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_TYPE_REASONS = {
    "missing": "missing", "extra_forbidden": "unknown field",
    "int_type": "must be an integer", "int_parsing": "must be an integer",
    "bool_type": "must be true or false", "bool_parsing": "must be true or false",
    "string_type": "must be a string", "list_type": "must be a list", "tuple_type": "must be a list",
    "dict_type": "must be a table of fields", "model_type": "must be a table of fields",
    "model_attributes_type": "must be a table of fields", "float_type": "must be a number",
    "bytes_type": "must be a hex string", "none_required": "must be empty (null)",
}


def _reason(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "ykt":
        return str(error["msg"])
    if kind in _TYPE_REASONS:
        return _TYPE_REASONS[kind]
    if kind in ("literal_error", "enum"):
        return f"must be {error.get('ctx', {}).get('expected', 'one of the listed values')}"
    if kind in ("too_short", "too_long"):
        return str(error["msg"]).replace("List", "list").replace("Value", "value")
    if kind.startswith("union_tag"):
        return str(error["msg"])
    return str(error["msg"])


def _first(errors: list[Any]) -> Any:
    """The error a user should see first: a custom or structural fault before type noise of a union."""
    for error in errors:
        if error["type"] in ("ykt", "missing", "extra_forbidden"):
            return error
    return errors[0]


def validate(model: type[M], data: Any, source: str, error: type[DocumentError] = DocumentError,
             context: Mapping[str, Any] | None = None) -> M:
    """Build `model` from parsed data; the first fault becomes `error(source, field, reason)`."""
    try:
        return model.model_validate(data, context=dict(context or {}))
    except ValidationError as exc:
        first = _first(exc.errors(include_url=False, include_input=False))
        loc = [p for p in first["loc"] if not str(p).startswith("function-")]
        reason = _reason(first)
        if loc and loc[-1] == "[key]":  # a mapping's key is not one of the allowed names
            loc.pop()
            expected = str((first.get("ctx") or {}).get("expected", "")).replace("'", "").replace(" or ", ", ")
            reason = f"unknown entry (known: {expected})" if expected else f"unknown entry: {reason}"
        at = (first.get("ctx") or {}).get("at")
        if at:
            loc.extend(at.split("."))
        raise error(source, field_path(loc) or None, reason) from None


# -- reading files ---------------------------------------------------------------------------------

def read_text(path: str | Path, what: str, error: type[DocumentError] = DocumentError) -> str:
    """The UTF-8 text of a file, or `error` naming the file: missing, a directory, unreadable, not UTF-8."""
    p = Path(path)
    source = str(p)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(source, None, f"no such {what} file") from None
    except IsADirectoryError:
        raise error(source, None, f"is a directory, not a {what} file") from None
    except UnicodeDecodeError:
        raise error(source, None, f"not UTF-8 text; is it a {what} file?") from None
    except OSError as exc:
        raise error(source, None, f"cannot read: {exc.strerror or type(exc).__name__}") from None


def _json(text: str) -> Any:
    return json.loads(text)


def parse_document(text: str, fmt: str, source: str, error: type[DocumentError] = DocumentError) -> Any:
    """Parse `text` as 'toml', 'yaml' or 'json'; a syntax error names the line and column."""
    try:
        if fmt == "toml":
            return tomllib.loads(text)
        if fmt == "yaml":
            return yaml.safe_load(text)
        if fmt == "json":
            return _json(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(source, None, f"not valid TOML: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(source, None, f"not valid YAML: {' '.join(str(exc).split())}") from None
    except json.JSONDecodeError as exc:
        raise error(source, None, f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                                  "truncated or corrupt") from None
    raise ValueError(f"format {fmt!r} is not one of toml, yaml, json")


def load_document(path: str | Path, model: type[M], fmt: str, what: str,
                  error: type[DocumentError] = DocumentError,
                  context: Mapping[str, Any] | None = None) -> M:
    """Read, parse and validate one file into `model`; every refusal is one `error` naming file and field."""
    source = str(path)
    data = parse_document(read_text(path, what, error), fmt, source, error)
    return validate(model, data, source, error, context)


# -- field types -----------------------------------------------------------------------------------

def _int_range(lo: int, hi: int) -> Callable[[int], int]:
    def check(value: int) -> int:
        if not lo <= value <= hi:
            raise problem(f"{value} out of range {lo}..{hi}")
        return value
    return check


def IntRange(lo: int, hi: int) -> Any:  # noqa: N802 - a type factory reads like a type
    """An integer (never a bool) within lo..hi, with a message that gives the range."""
    return Annotated[int, AfterValidator(_int_range(lo, hi))]


Byte = IntRange(0, 0xFF)
UInt = IntRange(0, 0xFFFFFFFF)


def _hex(size: int | None, lo: int, hi: int) -> Callable[[Any], bytes]:
    def parse(value: Any) -> bytes:
        if not isinstance(value, str):
            raise problem("must be a hex string")
        text = value.replace(" ", "")
        if not re.fullmatch(r"(?:[0-9A-Fa-f]{2})*", text):
            raise problem("not hexadecimal (whole bytes, 0-9 A-F)")
        data = bytes.fromhex(text)
        if size is not None and len(data) != size:
            raise problem(f"must be {size} bytes, got {len(data)}")
        if not lo <= len(data) <= hi:
            raise problem(f"must be {lo}..{hi} bytes, got {len(data)}")
        return data
    return parse


def HexBytes(size: int | None = None, lo: int = 0, hi: int = 65536) -> Any:  # noqa: N802
    """Hex text in the file, bytes in the model; errors never repeat the text (it may be a key)."""
    return Annotated[bytes, BeforeValidator(_hex(size, lo, hi))]


def _hex_string(digits: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if not isinstance(value, str):
            raise problem(f"must be {digits} hex digits")
        if len(value) != digits or not re.fullmatch(r"[0-9A-Fa-f]*", value):
            raise problem(f"must be {digits} hex digits, got {value!r}")
        return value.upper()
    return parse


def HexString(digits: int) -> Any:  # noqa: N802
    """An identifier written as hex (issuer ID, terminal ID, KCV): kept as upper-case text."""
    return Annotated[str, BeforeValidator(_hex_string(digits))]


def _digits(lo: int, hi: int) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value.isascii() or not value.isdigit() \
                or not lo <= len(value) <= hi:
            size = f"{lo}" if lo == hi else f"{lo}..{hi}"
            raise problem(f"must be {size} decimal digits, got {value!r}")
        return value
    return parse


def Digits(lo: int, hi: int | None = None) -> Any:  # noqa: N802
    """A number written as decimal digits (area codes, card numbers); YAML's 5810 is taken as '5810'."""
    return Annotated[str, BeforeValidator(_digits(lo, lo if hi is None else hi))]


def _non_empty(value: str) -> str:
    if not value.strip():
        raise problem("missing or empty")
    return value.strip()


NonEmpty = Annotated[str, AfterValidator(_non_empty)]
