"""The provincial monthly return (附表3, 市全国交通一卡通互联互通情况统计表) of one city and month.

Two tables, from three sources:

* **issuance by medium** (发卡统计) — physical cards, virtual cards (phone, SIM), QR codes: *issued*
  (发行量: lines of the issuance registry, ``ykt card issue --registry``, for cards of the city issued up to
  the month's end), *sold* (销售量: of those, the ones issued at a price above 0; not applicable to QR),
  *transactions* and *amount* (交易量, 交易金额: accepted purchases of the month in the clearing store by
  the city's cards, the medium from the registry, else ``virtual`` when the card's records said so (M4);
  a card neither knows counts as physical and the return says how many such cards there were; for QR
  codes, the accepted QR rides of the month at the city's terminals, replays left out), amount in yuan;
* **coverage by mode** (应用覆盖统计) — bus, rail (metro and tram), taxi, ferry, county bus, rural
  passenger, public bicycle, other, total: vehicles or gates, terminals and lines of the terminal registry
  in the city, all of them and those covered by the interoperable card (``interoperable`` true; a vehicle
  or line is covered when one of its terminals is). Ticket offices (mode ``load``) are not acceptance and
  are left out.

Rendered as CSV (one file per table), Markdown and one self-contained HTML page whose two charts
(matplotlib, inline SVG, no network) set issuance against the city's 附表1 target and coverage against the
plan's requirement that every vehicle and gate accept the card. Output is byte-for-byte repeatable: the
SVG ids are salted with a constant and carry no date.
"""
from __future__ import annotations

import calendar
import csv
import datetime as _dt
import html
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ConfigDict

from ykt_files.atomic import write_text_atomic
from ykt_files.schema import DocumentError, Model, validate

from .terminals import Terminal

__all__ = ["MonthlyReturn", "IssuanceLine", "build_return", "read_issuance_registry", "MEDIA", "COVERAGE_ROWS"]

MEDIA = (("physical", "实体卡", "Physical cards"), ("virtual", "虚拟卡", "Virtual cards"), ("qr", "二维码", "QR codes"))
COVERAGE_ROWS = (
    ("bus", "公交", "Bus", ("bus",)),
    ("rail", "轨道交通", "Rail (metro, tram)", ("metro", "tram")),
    ("taxi", "出租车", "Taxi", ("taxi",)),
    ("ferry", "轮渡", "Ferry", ("ferry",)),
    ("county-bus", "县城公交", "County bus", ("county-bus",)),
    ("rural", "农村客运", "Rural passenger", ("rural",)),
    ("bicycle", "公共自行车", "Public bicycle", ("bicycle",)),
    ("other", "其他", "Other", ("other",)),
)


class RegistryLineError(DocumentError):
    """An issuance registry line refused: `<file>: line N: <field>: <reason>`."""


class IssuanceLine(Model):
    """The fields of an issuance registry line (ykt_card.issuance) that the return needs."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)

    card_no: str
    issuer_id: str
    city: str
    medium: str
    issued_on: str
    price: int


def read_issuance_registry(path: str | Path) -> list[IssuanceLine]:
    """Every line of an issuance registry (JSON Lines), each checked; a bad line names file and line."""
    lines = []
    source = str(path)
    with open(path, encoding="utf-8") as fh:
        for number, text in enumerate(fh, 1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RegistryLineError(source, f"line {number}", f"not JSON ({exc.msg})") from None
            line = validate(IssuanceLine, data, f"{source}: line {number}", RegistryLineError)
            if line.medium not in {m for m, _, _ in MEDIA}:
                raise RegistryLineError(source, f"line {number}: medium", f"{line.medium!r} is not physical, "
                                                                          "virtual or qr")
            lines.append(line)
    return lines


@dataclass
class MonthlyReturn:
    month: str                       # YYYY-MM
    city: str                        # area code
    city_name: str
    city_name_en: str
    target_cards: int | None         # the 附表1 target (cards), if the programme sets one
    target_year: int | None
    issuance: dict[str, dict[str, int | None]]
    coverage: dict[str, dict[str, tuple[int, int, int]]]
    notes: list[str] = field(default_factory=list)

    # -- tables ---------------------------------------------------------------------------------------
    def issuance_rows(self) -> list[list[str]]:
        rows = []
        for key, zh, en in (("issued", "发行量（张）", "issued (cards)"), ("sold", "销售量（张）", "sold (cards)"),
                            ("transactions", "交易量（笔）", "transactions"),
                            ("amount", "交易金额（元）", "amount (yuan)")):
            cells = []
            for medium, _, _ in MEDIA:
                value = self.issuance[medium][key]
                if value is None:
                    cells.append("—")
                elif key == "amount":
                    cells.append(f"{value // 100}.{value % 100:02d}")
                else:
                    cells.append(str(value))
            rows.append([f"{zh} {en}", *cells])
        return rows

    def coverage_rows(self) -> list[list[str]]:
        rows = []
        for key, zh, en, _ in (*COVERAGE_ROWS, ("total", "合计", "Total", ())):
            (va, ta, la), (vc, tc, lc) = self.coverage[key]["all"], self.coverage[key]["covered"]
            rows.append([f"{zh} {en}", str(va), str(ta), str(la), str(vc), str(tc), str(lc)])
        return rows

    ISSUANCE_HEADER = ["", *(f"{zh} {en}" for _, zh, en in MEDIA)]
    COVERAGE_HEADER = ["", "车辆/闸机 vehicles/gates (all)", "终端 terminals (all)", "线路 lines (all)",
                       "车辆/闸机 vehicles/gates (covered)", "终端 terminals (covered)", "线路 lines (covered)"]

    @property
    def title(self) -> str:
        return f"{self.city_name}市全国交通一卡通互联互通情况统计表 — {self.city_name_en} ({self.city}), {self.month}"

    # -- renderings ----------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, object]:
        return {"month": self.month, "city": self.city, "city_name": self.city_name, "target_cards": self.target_cards,
                "issuance": self.issuance,
                "coverage": {k: {"all": list(v["all"]), "covered": list(v["covered"])} for k, v in self.coverage.items()},
                "notes": self.notes}

    def csv_tables(self) -> tuple[str, str]:
        return _csv(self.ISSUANCE_HEADER, self.issuance_rows()), _csv(self.COVERAGE_HEADER, self.coverage_rows())

    def markdown(self) -> str:
        out = [f"# {self.title}", "", "## 表1 发卡统计 Issuance (cumulative issued and sold; transactions of the month)", ""]
        out += _md_table(self.ISSUANCE_HEADER, self.issuance_rows())
        out += ["", "## 表2 应用覆盖统计 Coverage by mode", ""]
        out += _md_table(self.COVERAGE_HEADER, self.coverage_rows())
        if self.notes:
            out += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(out) + "\n"

    def html(self) -> str:
        from .charts import coverage_chart, issuance_chart   # matplotlib only when a page is drawn

        issued = sum(int(self.issuance[m]["issued"] or 0) for m, _, _ in MEDIA)
        parts = [
            "<!DOCTYPE html>", '<html lang="zh-CN"><head><meta charset="utf-8">',
            f"<title>{html.escape(self.title)}</title>",
            "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;"
            "margin:1em 0}th,td{border:1px solid #999;padding:.3em .6em;text-align:right}th:first-child,"
            "td:first-child{text-align:left}th{background:#eee}figure{margin:1em 0}</style></head><body>",
            f"<h1>{html.escape(self.title)}</h1>",
            "<h2>表1 发卡统计 Issuance</h2>", _html_table(self.ISSUANCE_HEADER, self.issuance_rows()),
            f"<figure>{issuance_chart(self.issuance, issued, self.target_cards, self.target_year)}</figure>",
            "<h2>表2 应用覆盖统计 Coverage by mode</h2>", _html_table(self.COVERAGE_HEADER, self.coverage_rows()),
            f"<figure>{coverage_chart(self.coverage, [(k, en) for k, _, en, _ in COVERAGE_ROWS])}</figure>",
        ]
        if self.notes:
            parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in self.notes) + "</ul>")
        parts.append("</body></html>")
        return "\n".join(parts) + "\n"

    def write(self, folder: Path) -> list[Path]:
        """stats-CITY-YYYY-MM-issuance.csv, -coverage.csv, .md and .html, written atomically."""
        folder.mkdir(parents=True, exist_ok=True)
        stem = f"stats-{self.city}-{self.month}"
        issuance_csv, coverage_csv = self.csv_tables()
        outputs = {folder / f"{stem}-issuance.csv": issuance_csv, folder / f"{stem}-coverage.csv": coverage_csv,
                   folder / f"{stem}.md": self.markdown(), folder / f"{stem}.html": self.html()}
        for path, text in outputs.items():
            write_text_atomic(path, text)
        return list(outputs)


def _csv(header: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def month_end(month: str) -> _dt.date:
    year, mon = int(month[:4]), int(month[5:7])
    return _dt.date(year, mon, calendar.monthrange(year, mon)[1])


def build_return(month: str, city: str, city_name: str, city_name_en: str, *,
                 usage: Iterable[tuple[str, str, int, int]], issuance: Iterable[IssuanceLine],
                 terminals: Iterable[Terminal], target_cards: int | None = None,
                 target_year: int | None = None, virtual_cards: Iterable[str] = (),
                 qr_usage: Iterable[tuple[str, int, int]] = ()) -> MonthlyReturn:
    """The return from the month's per-card usage (card, issuer ID, purchases, amount in fen: the store's
    `month_usage`), the cards whose records said virtual (`virtual_cards`), the month's QR rides per city
    (city, rides, amount in fen: `month_qr_usage`), the issuance registry and the terminal registry."""
    end = month_end(month).isoformat()
    table: dict[str, dict[str, int | None]] = {m: {"issued": 0, "sold": 0 if m != "qr" else None,
                                                   "transactions": 0, "amount": 0} for m, _, _ in MEDIA}
    medium_of: dict[str, str] = {}
    for line in issuance:
        if line.city != city:
            continue
        medium_of[line.card_no] = line.medium
        if line.issued_on <= end:
            table[line.medium]["issued"] += 1
            if line.medium != "qr" and line.price > 0:
                table[line.medium]["sold"] += 1
    unknown = 0
    virtual = set(virtual_cards)
    for card, issuer_id, count, amount in usage:
        if issuer_id[4:8] != city:
            continue
        medium = medium_of.get(card)
        if medium is None and card in virtual:
            medium = "virtual"
        elif medium is None:
            unknown += 1
            medium = "physical"
        table[medium]["transactions"] += count
        table[medium]["amount"] += amount
    for ride_city, count, amount in qr_usage:
        if ride_city == city:
            table["qr"]["transactions"] += count
            table["qr"]["amount"] += amount
    notes = []
    if unknown:
        notes.append(f"{unknown} card(s) of the city used this month are not in the issuance registry; "
                     "counted as physical cards.")
    coverage = _coverage([t for t in terminals if t.city == city])
    return MonthlyReturn(month, city, city_name, city_name_en, target_cards, target_year, table, coverage, notes)


def _coverage(terminals: list[Terminal]) -> dict[str, dict[str, tuple[int, int, int]]]:
    out: dict[str, dict[str, tuple[int, int, int]]] = {}
    acceptance = [t for t in terminals if t.mode != "load"]

    def counts(ts: list[Terminal]) -> tuple[int, int, int]:
        return (len({(t.mode, t.vehicle) for t in ts}), len(ts), len({(t.mode, t.line) for t in ts if t.line}))

    for key, _, _, modes in COVERAGE_ROWS:
        ts = [t for t in acceptance if t.mode in modes]
        out[key] = {"all": counts(ts), "covered": counts([t for t in ts if t.interoperable])}
    out["total"] = {"all": counts(acceptance), "covered": counts([t for t in acceptance if t.interoperable])}
    return out
