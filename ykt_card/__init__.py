"""ykt_card: the T-Union application — file layouts, the virtual card OS, its state and images.

Imports are lazy so that `import ykt_card.layouts` (decoding a dump) does not pull in the card OS.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CardState": "state", "FaultInjector": "state", "PowerLoss": "state", "Lock": "state",
    "Proof": "state", "PpseEntry": "state", "PersistentStore": "state", "StateError": "state",
    "TUnionCardOS": "cos",
    "ImageError": "image", "load_card": "image", "save_card": "image", "read_image": "image",
    "write_json_atomic": "image", "saver": "image", "card_to_doc": "image", "card_from_doc": "image",
    "DocReader": "image",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ykt_card' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
