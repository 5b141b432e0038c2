"""The records the suite writes through UPDATE CAPP DATA CACHE, built with ykt_card.layouts.

Templates: `bus` (EF1A record 02, boarded), `metro` (EF1A record 01, entered), `history` (an EF1E
record in the run's layout, A or B, D8), `blank` (an EF1A record of any ID: header, zero body, at the
size of the Cardlan index, D9). Their content is what a validator would write; the cases only need the
card to keep exactly what it was given, when the DEBIT commits (D6).
"""
from __future__ import annotations

from typing import Any

from ykt_card.layouts import EF1ABus, EF1AMetro, by_sfi, record_size

from .context import CardCase

__all__ = ["record_for"]


def _iso(bcd7: bytes) -> str:
    d = bcd7.hex()
    return f"{d[0:4]}-{d[4:6]}-{d[6:8]} {d[8:10]}:{d[10:12]}:{d[12:14]}"


def record_for(case: CardCase, template: str, record: int) -> bytes:
    """The bytes of one CAPP write; a hex template is taken as it is."""
    s = case.s
    issuer = s.ef15[0:8].hex().upper()
    city = s.ef15[2:4].hex().upper()
    terminal8 = "0000" + s.terminal_id.hex().upper()
    when = _iso(s.now())
    serial = f"{s.terminal_seq + 1:016d}"
    pending = case.pending
    amount = pending.amount if pending is not None else 0
    if template == "bus":
        fields: dict[str, Any] = {**EF1ABus.blank(), "trade_serial": serial, "status": "01", "on_city": city,
                                  "on_issuer": issuer, "on_terminal": terminal8, "on_time": when,
                                  "mark_amount": amount, "direction": "AB"}
        return EF1ABus.encode(fields)
    if template == "metro":
        fields = {**EF1AMetro.blank(), "trade_serial": serial, "status": "01", "in_city": city,
                  "in_issuer": issuer, "in_terminal": terminal8, "in_time": when, "max_fare": 900}
        return EF1AMetro.encode(fields)
    if template == "history":
        layout = by_sfi(0x1E, layout=s.ef1e_layout)
        balance = (pending.balance - pending.overdraft_limit - amount) if pending is not None else 0
        fields = {**layout.blank(), "type": "09" if pending is None or pending.kind == "capp" else "06",
                  "terminal_id": terminal8, "amount": amount, "balance_after": balance, "datetime": when,
                  "city": city, "institution_id": issuer}
        return layout.encode(fields)
    if template == "blank":
        size = record_size(record)
        return bytes((0x27, record, size - 3, 0x01, 0x01, 0x00)) + bytes(size - 6)
    return bytes.fromhex(template)
