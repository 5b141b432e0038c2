"""File layouts of the T-Union card and PSAM: one class per file, record or FCI, each with its vectors.

Adding a file = writing a class (identifiers, a construct codec, vectors) and listing it in ``ALL``; the
generic test then checks its vectors both ways. ``names`` names what the layouts share (AIDs, SFIs, PSAM
FIDs, key types) and ``view.LayoutView`` is the decoded view the host API returns. Look layouts up by name (``by_name('15')``), by SFI
(``by_sfi(0x15)``) or, for EF1A, by record number (``for_1a_record(0x01)``).
"""
from __future__ import annotations

from ykt_card.layouts.base import FileLayout, LayoutError, StructLayout
from ykt_card.layouts.ef15 import EF15
from ykt_card.layouts.ef16 import EF16
from ykt_card.layouts.ef17 import EF17
from ykt_card.layouts.ef18 import EF18, TRANSACTION_TYPES, transaction_type_name
from ykt_card.layouts.ef1a import EF1ABus, EF1AMetro, EF1AOther, blank_record, record_name, record_size
from ykt_card.layouts.ef1e import EF1EA, EF1EB
from ykt_card.layouts.fci import AdfFci, PpseEntry, PpseFci
from ykt_card.layouts.psam import PsamEF15, PsamEF16, PsamEF17
from ykt_card.layouts.view import LayoutView

__all__ = [
    "ALL", "by_name", "by_sfi", "for_1a_record", "FileLayout", "StructLayout", "LayoutError",
    "PpseFci", "AdfFci", "EF15", "EF16", "EF17", "EF18", "EF1AMetro", "EF1ABus", "EF1AOther",
    "EF1EA", "EF1EB", "PsamEF15", "PsamEF16", "PsamEF17",
    "TRANSACTION_TYPES", "transaction_type_name", "record_size", "record_name", "blank_record", "PpseEntry",
    "LayoutView",
]

ALL: tuple[type[FileLayout], ...] = (
    PpseFci, AdfFci, EF15, EF16, EF17, EF18, EF1AMetro, EF1ABus, EF1AOther, EF1EA, EF1EB,
    PsamEF15, PsamEF16, PsamEF17,
)

_BY_KEY: dict[str, type[FileLayout]] = {}
for _layout in ALL:  # a name or alias used twice is caught by the registry test
    for _key in (_layout.name, *_layout.aliases):
        _BY_KEY.setdefault(_key.lower(), _layout)


def by_name(name: str) -> type[FileLayout]:
    """The layout called ``name`` or one of its aliases, any case: 'EF15', '15', 'ppse', 'EF1E-B'."""
    layout = _BY_KEY.get(str(name).strip().lower())
    if layout is None:
        raise LayoutError("layouts", "name", f"no layout {name!r}; known: "
                          + ", ".join(layout.name for layout in ALL))
    return layout


def for_1a_record(record_no: int) -> type[FileLayout]:
    """EF1A layout for a record number: 01 metro, 02 bus, anything else opaque."""
    return {EF1AMetro.record_id: EF1AMetro, EF1ABus.record_id: EF1ABus}.get(record_no, EF1AOther)


def by_sfi(sfi: int, *, app: str = "card", record_no: int | None = None,
           layout: str | None = None) -> type[FileLayout]:
    """The layout of file ``sfi`` of the card ('card') or the PSAM ('psam').

    EF1A needs ``record_no`` (its records have different layouts); EF1E needs ``layout`` 'A' or 'B'
    (D8: the terminal's city profile decides).
    """
    if app == "card" and sfi == 0x1A:
        if record_no is None:
            raise LayoutError("layouts", "record_no", "EF1A records differ by record number; give record_no")
        return for_1a_record(record_no)
    if app == "card" and sfi == 0x1E:
        if layout is None or layout.upper() not in ("A", "B"):
            raise LayoutError("layouts", "layout", f"EF1E has layouts A and B (D8); got {layout!r}")
        return EF1EA if layout.upper() == "A" else EF1EB
    for candidate in ALL:
        if candidate.app == app and candidate.sfi == sfi:
            return candidate
    raise LayoutError("layouts", "sfi", f"no {app} file with SFI {sfi!r}")
