"""Decoded views of a file: what the host API hands out instead of bytes to slice.

A view holds the file's bytes (``raw``) and, as read-only attributes, every field its layout decodes,
derived ones included: ``PublicData(raw).card_no``, ``.serial8``, ``.expiry_date``. The layout is the only
description of the file, so a view never knows an offset; bytes that do not decode are refused when the
view is made (a `LayoutError` naming the field and the byte), never later when an attribute is read.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ykt_card.layouts.base import FileLayout, to_bytes

__all__ = ["LayoutView"]


class LayoutView:
    """A file decoded by ``layout``: ``raw``, ``fields()`` and one attribute per decoded field.

    Subclasses name the layout: ``class PublicData(LayoutView): layout = EF15``. Views are immutable,
    compare equal when their bytes are equal, and print their fields (files a terminal reads without
    keys, so there is nothing secret in them).
    """

    layout: ClassVar[type[FileLayout]]
    __slots__ = ("_raw", "_fields")

    def __init__(self, raw: bytes) -> None:
        raw = to_bytes(self.layout.name, raw)
        object.__setattr__(self, "_fields", self.layout.decode(raw))
        object.__setattr__(self, "_raw", raw)

    @classmethod
    def from_fields(cls, fields: Mapping[str, Any]) -> LayoutView:
        """A view of decoded fields (e.g. EF15 inside an FCI); ``raw`` is encoded from them when asked for."""
        view = cls.__new__(cls)
        object.__setattr__(view, "_fields", dict(fields))
        object.__setattr__(view, "_raw", None)
        return view

    @property
    def raw(self) -> bytes:
        raw = object.__getattribute__(self, "_raw")
        if raw is None:
            raw = self.layout.encode(object.__getattribute__(self, "_fields"))
            object.__setattr__(self, "_raw", raw)
        return raw

    def fields(self) -> dict[str, Any]:
        """The layout's decoded form: a plain JSON-able dict (a copy)."""
        return dict(object.__getattribute__(self, "_fields"))

    def __getattr__(self, name: str) -> Any:
        fields = object.__getattribute__(self, "_fields")
        try:
            return fields[name]
        except KeyError:
            raise AttributeError(f"{type(self).__name__} ({self.layout.name}) has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.raw == self.raw  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self.raw))

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.raw,)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(object.__getattribute__(self, "_fields")))

    def __repr__(self) -> str:
        fields = object.__getattribute__(self, "_fields")
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"
