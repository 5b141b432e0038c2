"""An independent terminal for the verifier's tests: clearing files with planted faults it is not told of.

It knows nothing of `clearing` or `terminal_sim`: it writes the design's record format by hand (JSON Lines
and CSV), computes every TAC with `keysets` directly (`KeySet.card_keys`, `purchase_tac`, `load_tac`), and
plants faults as an attacker or a broken terminal would make them. It returns the exact verdicts expected
for every line, so a test asserts that exactly the planted records are rejected, for the planted reason.
"""
from __future__ import annotations

import csv
import io
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keysets import Algorithm, KeySet, load_tac, purchase_tac

# The record's fields in the design's order (design.md, "Outcome / clearing record"): the CSV header.
CSV_FIELDS = ("status", "reason", "type", "card_no", "issuer_id", "amount", "balance_before", "balance_after",
              "overdraft_limit", "card_counter", "terminal_id", "terminal_seq", "datetime", "key_version",
              "algorithm", "tac", "mac2_verified", "list_version", "mode", "city", "operator", "line", "station",
              "vehicle", "direction", "card_type", "full_fare", "entry_city", "entry_station", "entry_terminal",
              "entry_time")

ISSUERS = {"5810": "02205810FFFFFFFF", "5840": "02215840FFFFFFFF", "5880": "02775880FFFFFFFF"}
PREFIX = {"5810": "031048703", "5840": "031048704", "5880": "031048707"}
FAULTS = ("tac", "duplicate", "counter-gap", "balance-chain", "grey-open", "malformed", "unknown-terminal")


@dataclass
class Terminal:
    terminal_id: str
    city: str
    operator: str
    mode: str
    line: str | None
    vehicle: str
    seq: int = 0
    registered: bool = True


@dataclass
class Day:
    """The generated upload: file name -> records (dicts, or raw text for malformed lines); the expected
    reasons per (file, line); the terminals; the registry CSV text."""

    files: dict[str, list] = field(default_factory=dict)
    expected: dict[tuple[str, int], set[str]] = field(default_factory=dict)
    terminals: list[Terminal] = field(default_factory=list)
    planted: dict[str, int] = field(default_factory=dict)
    money: list[dict] = field(default_factory=list)       # every record that should be accepted and moved money

    def write(self, folder: Path, fmt: str = "jsonl") -> list[Path]:
        """Write each file as JSON Lines or CSV; returns the paths in a fixed order. Fills `expected` lines."""
        paths, self.expected = [], {}
        for name, items in sorted(self.files.items()):
            path = folder / f"{name}.{fmt}"
            lines = [",".join(CSV_FIELDS)] if fmt == "csv" else []
            for rec, reasons in items:
                if isinstance(rec, str):
                    lines.append(rec)
                elif fmt == "csv":
                    buf = io.StringIO()
                    csv.writer(buf, lineterminator="").writerow([_cell(rec.get(k)) for k in CSV_FIELDS])
                    lines.append(buf.getvalue())
                else:
                    lines.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
                if reasons:
                    self.expected[(str(path), len(lines))] = set(reasons)
            path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
            paths.append(path)
        return paths

    def registry_csv(self) -> str:
        rows = ["terminal_id,city,operator,mode,line,vehicle"]
        for t in self.terminals:
            if t.registered:
                rows.append(f"{t.terminal_id},{t.city},{t.operator},{t.mode},{t.line or ''},{t.vehicle}")
        return "\n".join(rows) + "\n"


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Generator:
    """Cards that ride and load through a day; `faults` chooses how many of each fault to plant."""

    def __init__(self, keysets: Sequence[KeySet], seed: int = 1, cards: int = 12, rides: int = 6,
                 faults: dict[str, int] | None = None, day: str = "20261124", unknown_terminals: bool = False) -> None:
        self.rng = random.Random(seed)
        self.keysets = {ks.algorithm.value: ks for ks in keysets}
        self.cards, self.rides, self.day = cards, rides, day
        self.faults = dict(faults or {})
        self.out = Day()
        modes = [("bus", "0301", "0002"), ("metro", "0101", "0003"), ("ferry", "0501", "0007"), ("taxi", "0601", None)]
        for i in range(8):
            mode, operator, line = modes[i % len(modes)]
            city = list(ISSUERS)[i % 3]
            self.out.terminals.append(Terminal(f"4403{i + 1:08d}", city, operator, mode, line, f"V{i:04d}"))
        self.loaders = [Terminal(f"4403{9000 + i:08d}", city, "0220", "load", None, f"OFFICE{i}")
                        for i, city in enumerate(ISSUERS)]
        self.out.terminals += self.loaders
        if unknown_terminals:
            self.stranger = Terminal("4403DEAD0001", "5810", "0301", "bus", "0009", "X0001", registered=False)
            self.out.terminals.append(self.stranger)

    # -- records -------------------------------------------------------------------------------------
    def _tac_key(self, algorithm: str, issuer: str, card_no: str) -> bytes:
        ks = self.keysets[algorithm]
        return ks.card_keys(bytes.fromhex(issuer), bytes.fromhex(card_no[4:])).entry("tac").key.value

    def _purchase(self, card: dict, t: Terminal, amount: int, when: str, *, status: str = "approved") -> dict:
        t.seq += 1
        rec = {"status": status, "type": "09" if t.mode == "metro" else "06", "card_no": card["no"],
               "issuer_id": card["issuer"], "amount": amount, "balance_before": card["balance"],
               "balance_after": card["balance"] - amount, "overdraft_limit": 0, "card_counter": card["offline"],
               "terminal_id": t.terminal_id, "terminal_seq": t.seq, "datetime": when, "key_version": 1,
               "algorithm": card["alg"], "mac2_verified": True, "list_version": "2026112401", "mode": t.mode,
               "city": t.city, "operator": t.operator, "line": t.line, "vehicle": t.vehicle, "card_type": "01",
               "full_fare": amount}
        if status == "recovered":
            rec["reason"] = "recovered with GET TRANSACTION PROVE"
        rec = {k: v for k, v in rec.items() if v is not None}
        rec["tac"] = purchase_tac(Algorithm(card["alg"]), card["dtk"], amount, int(rec["type"], 16),
                                  bytes.fromhex(t.terminal_id), t.seq, bytes.fromhex(when)).hex().upper()
        return _ordered(rec)

    def _load(self, card: dict, t: Terminal, amount: int, when: str) -> dict:
        rec = {"status": "approved", "type": "02", "card_no": card["no"], "issuer_id": card["issuer"],
               "amount": amount, "balance_before": card["balance"], "balance_after": card["balance"] + amount,
               "card_counter": card["online"], "terminal_id": t.terminal_id, "datetime": when, "key_version": 1,
               "algorithm": card["alg"], "mac2_verified": True, "mode": "load"}
        rec["tac"] = load_tac(Algorithm(card["alg"]), card["dtk"], card["balance"] + amount, card["online"], amount,
                              bytes.fromhex(t.terminal_id), bytes.fromhex(when)).hex().upper()
        return _ordered(rec)

    def _file_of(self, t: Terminal) -> list:
        return self.out.files.setdefault(f"t{t.terminal_id}", [])

    def _emit(self, t: Terminal, rec, reasons: Sequence[str] = ()) -> None:
        self._file_of(t).append((rec, tuple(reasons)))
        if not reasons and isinstance(rec, dict) and rec["status"] != "torn":
            self.out.money.append(rec)
        for r in reasons:
            self.out.planted[r] = self.out.planted.get(r, 0) + 1

    def _take(self, fault: str) -> bool:
        if self.faults.get(fault, 0) > 0 and self.rng.random() < 0.35:
            self.faults[fault] -= 1
            return True
        return False

    # -- a day -----------------------------------------------------------------------------------------
    def day_files(self) -> Day:
        for c in range(self.cards):
            city = list(ISSUERS)[c % 3]
            no = f"{PREFIX[city]}{c + 1:011d}"
            alg = "sm4" if c % 4 == 3 else "3des"
            card = {"no": no, "issuer": ISSUERS[city], "alg": alg, "balance": self.rng.randrange(0, 3000),
                    "online": self.rng.randrange(0, 20), "offline": self.rng.randrange(0, 300), "purchases": 0}
            card["dtk"] = self._tac_key(alg, card["issuer"], no)
            self._card_day(card, c)
        leftover = {k: v for k, v in self.faults.items() if v > 0 and k != "grey-closed"}
        assert not leftover, f"could not plant all faults, raise cards or rides: {leftover}"
        return self.out

    def _card_day(self, card: dict, c: int) -> None:
        minute = 6 * 60 + c
        replay_later: list[tuple[Terminal, dict]] = []
        for ride in range(self.rides):
            minute += self.rng.randrange(7, 40)
            when = f"{self.day}{minute // 60:02d}{minute % 60:02d}{self.rng.randrange(60):02d}"
            if card["balance"] < 600 or self.rng.random() < 0.12:
                t = self.rng.choice(self.loaders)
                rec = self._load(card, t, self.rng.choice([1000, 2000, 5000]), when)
                self._emit(t, rec)
                card["balance"], card["online"] = rec["balance_after"], card["online"] + 1
                continue
            t = self.rng.choice([t for t in self.out.terminals if t.mode != "load" and t.registered])
            amount = self.rng.choice([0, 100, 200, 300, 450]) if t.mode == "metro" else self.rng.choice([100, 200, 250])
            reasons: tuple[str, ...] = ()
            if card["purchases"] and self._take("counter-gap"):
                card["offline"] += 1                      # a purchase that never reached clearing
                reasons = ("counter-gap",)
            elif ride > 0 and self._take("balance-chain"):
                card["balance"] += 700                    # the purse changed outside any record
                reasons = ("balance-chain",)
            elif hasattr(self, "stranger") and self._take("unknown-terminal"):
                t = self.stranger
                reasons = ("unknown-terminal",)
            elif self.faults.get("grey-closed", 0) > 0 and self.rng.random() < 0.3:
                self.faults["grey-closed"] -= 1           # torn, then recovered: both accepted
                torn = self._purchase(card, t, amount, when, status="approved")
                grey = {k: v for k, v in torn.items() if k not in ("tac", "mac2_verified", "balance_after")}
                grey.update(status="torn", reason="card left during DEBIT")
                self._emit(t, _ordered(grey))
                recovered = dict(torn, status="recovered", reason="recovered with GET TRANSACTION PROVE",
                                 mac2_verified=False)
                self._emit(t, _ordered(recovered))
                card["balance"], card["offline"] = torn["balance_after"], card["offline"] + 1
                card["purchases"] += 1
                continue
            rec = self._purchase(card, t, amount, when)
            if self._take("tac"):
                rec = dict(rec, tac=f"{int(rec['tac'], 16) ^ 0x00000100:08X}")
                reasons = reasons + ("tac",)
            self._emit(t, rec, reasons)
            card["balance"], card["offline"] = rec["balance_after"], card["offline"] + 1
            card["purchases"] += 1
            if not reasons and self._take("duplicate"):
                replay_later.append((t, rec))
        if self.faults.get("grey-open", 0) > 0 and self.rng.random() < 0.5:
            self.faults["grey-open"] -= 1                 # the card left and never came back
            t = self.rng.choice([t for t in self.out.terminals if t.mode == "bus"])
            minute += 20
            grey = self._purchase(card, t, 200, f"{self.day}{minute // 60:02d}{minute % 60:02d}00")
            grey = {k: v for k, v in grey.items() if k not in ("tac", "mac2_verified", "balance_after")}
            grey.update(status="torn", reason="card left during DEBIT")
            self._emit(t, _ordered(grey), ("grey-open",))
        for t, rec in replay_later:                       # the same record uploaded again, later in the file
            self._emit(t, dict(rec), ("duplicate",))
        if self.faults.get("malformed", 0) > 0:
            self.faults["malformed"] -= 1
            t = self.rng.choice(self.out.terminals)
            bad = self.rng.choice(['{"status":"approved","type":"06"', "not json at all",
                                   json.dumps({"status": "approved", "type": "06", "terminal_id": t.terminal_id,
                                               "datetime": f"{self.day}250000"})])
            self._emit(t, bad, ("malformed",))


_ORDER = {name: i for i, name in enumerate(CSV_FIELDS)}


def _ordered(rec: dict) -> dict:
    return dict(sorted(rec.items(), key=lambda kv: _ORDER[kv[0]]))
