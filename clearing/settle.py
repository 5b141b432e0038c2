"""Settlement of one day: what each issuer owes each acquirer and back, with fees, netted per pair.

Interoperability means a card issued in one city pays a ride in another: the issuer holds the rider's
prepaid money and owes it to the operator that carried the rider (the acquirer); for a load it is the
other way round, the acquirer took the cash and owes it to the issuer. From the accepted records of a day
that moved money (approved, recovered, failed with a TAC):

* parties: an issuer is ``org‖city`` (the first 4 bytes of the issuer ID, e.g. ``02205810``); an acquirer
  is ``operator‖city`` from the terminal registry, else from the record (``03015810``), else
  ``terminal:ID`` when neither says;
* **lines**: per payer, payee and mode — purchases (06, 09): the issuer pays the acquirer; loads (02): the
  acquirer pays the issuer; ``gross`` = the sum of amounts;
* **fees**: the fee schedule's rate for the acquirer and mode (`FeeSchedule`), applied once per line to
  the line's gross and rounded to the fen by the schedule's rule; the payer keeps the fee, so
  ``net = gross - fee``;
* **transfers**: one per payer and payee (the lines of all modes summed): one payment per direction;
* **payments**: the two directions between a pair netted into one payment from the party that owes more.
A party paying itself (an issuer's own load office) is an *on-us* line: shown, never paid.

Everything reconciles to the fen: sum of gross = sum of the accepted amounts; fee + net = gross on every
line; each party's net position is the same from the transfers and from the payments
(`Settlement.reconcile`).
"""
from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Literal

from pydantic import field_validator

from ykt_files.atomic import write_text_atomic
from ykt_files.schema import DocumentError, Model, load_document, problem

__all__ = ["FeeSchedule", "FeeScheduleError", "MoneyRecord", "Line", "Settlement", "settle", "party_of_issuer",
           "ROUNDING"]

ROUNDING = {"half-up": ROUND_HALF_UP, "half-even": ROUND_HALF_EVEN, "down": ROUND_DOWN}
FEE_MODES = ("bus", "metro", "ferry", "taxi", "load", "other")


class FeeScheduleError(DocumentError):
    """A fee schedule refused: `<file>: <field>: <reason>`."""


def _rate(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError("expected a rate such as \"0.006\"")
    try:
        rate = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not (rate.is_finite() and Decimal(0) <= rate < Decimal(1)):
        raise ValueError(f"{value} must be at least 0 and below 1 (a fraction of the amount)")
    return rate


class _FeeFile(Model):
    rounding: Literal["half-up", "half-even", "down"] = "half-up"
    default: str | int | float = "0"
    acquirers: dict[str, dict[Literal["bus", "metro", "ferry", "taxi", "load", "other"], str | int | float]] = {}

    @field_validator("default")
    @classmethod
    def _default(cls, v: object) -> object:
        try:
            _rate(v)
        except ValueError as exc:
            raise problem(str(exc)) from None
        return v

    @field_validator("acquirers")
    @classmethod
    def _acquirers(cls, v: dict) -> dict:
        for party, modes in v.items():
            if party != "*" and not (len(party) == 8 and all(c in "0123456789ABCDEF" for c in party)):
                raise problem(f"acquirer {party!r}: expected operator and city as 8 upper-case hex digits, or '*'")
            for mode, rate in modes.items():
                try:
                    _rate(rate)
                except ValueError as exc:
                    raise problem(f"{party}.{mode}: {exc}") from None
        return v


@dataclass(frozen=True)
class FeeSchedule:
    """Rates per acquirer and mode (fractions of the amount); '*' matches any acquirer; `default` the rest."""

    rates: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    default: Decimal = Decimal(0)
    rounding: str = "half-up"
    source: str = "<none: no fees>"

    @classmethod
    def load(cls, path: str | Path) -> "FeeSchedule":
        f = load_document(path, _FeeFile, "yaml", "fee schedule", FeeScheduleError)
        rates = {party: {mode: _rate(r) for mode, r in modes.items()} for party, modes in f.acquirers.items()}
        return cls(rates, _rate(f.default), f.rounding, str(path))

    def rate(self, acquirer: str, mode: str) -> Decimal:
        for party in (acquirer, "*"):
            modes = self.rates.get(party)
            if modes is not None and mode in modes:
                return modes[mode]
        return self.default

    def fee(self, gross: int, rate: Decimal) -> int:
        """gross x rate in fen, rounded once by the schedule's rule (half-up: 0.5 fen goes up)."""
        return int((Decimal(gross) * rate).quantize(Decimal(1), rounding=ROUNDING[self.rounding]))


@dataclass(frozen=True)
class MoneyRecord:
    """What settlement needs of an accepted record."""

    issuer_id: str
    acquirer: str | None
    terminal: str
    mode: str | None
    type: int
    amount: int


def party_of_issuer(issuer_id: str) -> str:
    """The issuing institution: org code ‖ city code, the first 4 bytes of the issuer ID."""
    return issuer_id[:8].upper()


@dataclass(frozen=True)
class Line:
    payer: str
    payee: str
    mode: str
    count: int
    gross: int
    rate: Decimal
    fee: int

    @property
    def net(self) -> int:
        return self.gross - self.fee

    @property
    def on_us(self) -> bool:
        return self.payer == self.payee


@dataclass
class Settlement:
    day: str
    lines: list[Line]
    records: int
    amount: int
    fees: FeeSchedule

    def transfers(self) -> list[tuple[str, str, int, int, int]]:
        """(payer, payee, gross, fee, net): one payment per direction, on-us lines left out."""
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
        for line in self.lines:
            if not line.on_us:
                s = sums[(line.payer, line.payee)]
                s[0] += line.gross
                s[1] += line.fee
                s[2] += line.net
        return [(a, b, *v) for (a, b), v in sorted(sums.items())]

    def payments(self) -> list[tuple[str, str, int]]:
        """(from, to, amount): the two directions of each pair netted into one payment."""
        owed: dict[tuple[str, str], int] = defaultdict(int)
        for payer, payee, _, _, net in self.transfers():
            owed[(payer, payee)] += net
        out = []
        for a, b in sorted({tuple(sorted(k)) for k in owed}):
            balance = owed.get((a, b), 0) - owed.get((b, a), 0)
            if balance > 0:
                out.append((a, b, balance))
            elif balance < 0:
                out.append((b, a, -balance))
        return out

    def positions(self, flows: Iterable[tuple[str, str, int]]) -> dict[str, int]:
        net: dict[str, int] = defaultdict(int)
        for payer, payee, amount in flows:
            net[payer] -= amount
            net[payee] += amount
        return {k: v for k, v in sorted(net.items()) if v}

    def reconcile(self) -> dict[str, object]:
        """The checks that make a settlement trustworthy; `ok` only when every one holds to the fen."""
        gross = sum(line.gross for line in self.lines)
        fee = sum(line.fee for line in self.lines)
        net = sum(line.net for line in self.lines)
        by_transfers = self.positions((a, b, n) for a, b, _, _, n in self.transfers())
        by_payments = self.positions(self.payments())
        checks = {
            "gross equals accepted amounts": gross == self.amount,
            "lines count accepted records": sum(line.count for line in self.lines) == self.records,
            "fee plus net equals gross": fee + net == gross and all(0 <= line.fee <= line.gross for line in self.lines),
            "payments keep every party's position": by_transfers == by_payments,
        }
        return {"ok": all(checks.values()), "checks": checks, "records": self.records, "amount": self.amount,
                "gross": gross, "fee": fee, "net": net}

    def to_dict(self) -> dict[str, object]:
        return {
            "day": self.day,
            "fee_schedule": {"source": self.fees.source, "rounding": self.fees.rounding},
            "lines": [{"payer": l.payer, "payee": l.payee, "mode": l.mode, "count": l.count, "gross": l.gross,
                       "rate": str(l.rate), "fee": l.fee, "net": l.net, "on_us": l.on_us} for l in self.lines],
            "transfers": [{"payer": a, "payee": b, "gross": g, "fee": f, "net": n}
                          for a, b, g, f, n in self.transfers()],
            "payments": [{"from": a, "to": b, "amount": n} for a, b, n in self.payments()],
            "reconciliation": self.reconcile(),
        }

    def write(self, folder: Path) -> list[Path]:
        """settlement-DAY.json (everything), -lines.csv, -transfers.csv and -payments.csv; atomic, repeatable."""
        day = f"{self.day[:4]}-{self.day[4:6]}-{self.day[6:]}"
        paths = {name: folder / f"settlement-{day}{suffix}" for name, suffix in
                 (("json", ".json"), ("lines", "-lines.csv"), ("transfers", "-transfers.csv"),
                  ("payments", "-payments.csv"))}
        write_text_atomic(paths["json"], json.dumps(self.to_dict(), ensure_ascii=False, indent=2) + "\n")
        write_text_atomic(paths["lines"], _csv(["payer", "payee", "mode", "count", "gross", "rate", "fee", "net",
                                                "on_us"],
                                               [[l.payer, l.payee, l.mode, l.count, l.gross, l.rate, l.fee, l.net,
                                                 str(l.on_us).lower()] for l in self.lines]))
        write_text_atomic(paths["transfers"], _csv(["payer", "payee", "gross", "fee", "net"], self.transfers()))
        write_text_atomic(paths["payments"], _csv(["from", "to", "amount"], self.payments()))
        return list(paths.values())


def _csv(header: list[str], rows: Iterable[Iterable[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def settle(day: str, records: Iterable[MoneyRecord], fees: FeeSchedule | None = None) -> Settlement:
    """The settlement of `day` (YYYYMMDD) from its accepted money records."""
    fees = fees or FeeSchedule()
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    count = amount = 0
    for r in records:
        issuer = party_of_issuer(r.issuer_id)
        acquirer = r.acquirer or f"terminal:{r.terminal}"
        mode = r.mode or ("load" if r.type == 0x02 else "other")
        payer, payee = (acquirer, issuer) if r.type == 0x02 else (issuer, acquirer)
        s = sums[(payer, payee, mode)]
        s[0] += 1
        s[1] += r.amount
        count += 1
        amount += r.amount
    lines = []
    for (payer, payee, mode), (n, gross) in sorted(sums.items()):
        acquirer = payer if mode == "load" else payee
        rate = fees.rate(acquirer, mode)
        lines.append(Line(payer, payee, mode, n, gross, rate, fees.fee(gross, rate)))
    return Settlement(day, lines, count, amount, fees)
