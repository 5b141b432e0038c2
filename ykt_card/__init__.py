"""ykt_card: the T-Union application — file layouts, the virtual card OS, its state and images.

Imports are lazy so that `import ykt_card.layouts` (decoding a dump) does not pull in the card OS.
"""
from __future__ import annotations

from ykt_card import status as _status  # noqa: F401 - registers the purse's status words

import importlib
from typing import Any

_EXPORTS = {
    "CardState": "card.state", "FaultInjector": "card.state", "PowerLoss": "card.state", "Lock": "card.state",
    "PersistentStore": "card.state", "StateError": "card.state", "Proof": "proof", "PpseEntry": "layouts.fci",
    "TUnionCardOS": "card.cos",
    "ImageError": "card.image", "load_card": "card.image", "save_card": "card.image", "read_image": "card.image",
    "saver": "card.image", "card_to_doc": "card.image", "card_from_doc": "card.image",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ykt_card' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
