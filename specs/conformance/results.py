"""What a run produces: per-case verdicts with reasons and the annotated exchange; shared by both suites.

Verdicts: `pass`; `fail` (the DUT did something the case forbids: the reasons name the defect);
`inconclusive` (the case could not be judged: the card could not be put in the state the case needs,
the link failed, the outcome a verdict needs never came; not a pass); `not applicable` (the case does
not apply to this DUT, key sets, profile or ICS; the reason says why).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from ykt_card.host.annotate import describe_command, describe_response

__all__ = ["Verdict", "VERDICTS", "Exchanged", "CaseResult", "RunResult", "CaseFailed", "Inconclusive",
           "NotApplicable", "resolve"]

Verdict = Literal["pass", "fail", "inconclusive", "not applicable"]
VERDICTS: tuple[str, ...] = ("pass", "fail", "inconclusive", "not applicable")


class CaseFailed(Exception):
    """Stops a case with verdict fail; the message is the reason (it names the defect)."""


class Inconclusive(Exception):
    """Stops a case with verdict inconclusive; the message says what could not be established."""


class NotApplicable(Exception):
    """The case does not apply (found out while running, e.g. the card has no such record)."""


@dataclass(frozen=True)
class Exchanged:
    """One command and its answer, as the report shows it: phase, bytes, and the reference's names."""

    phase: str
    command: bytes
    response: bytes | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "phase": self.phase,
            "command": self.command.hex().upper(),
            "command_text": describe_command(self.command),
        }
        if self.response is not None:
            out["response"] = self.response.hex().upper()
            out["response_text"] = describe_response(self.response)
        if self.error is not None:
            out["error"] = self.error
        return out


@dataclass
class CaseResult:
    case_id: str
    title: str
    suite: str
    tags: list[str]
    reference: list[str]
    verdict: Verdict
    reasons: list[str] = field(default_factory=list)
    exchange: list[Exchanged] = field(default_factory=list)
    duration: float | None = None
    covers: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.case_id, "title": self.title, "suite": self.suite, "tags": self.tags,
            "reference": self.reference, "verdict": self.verdict, "reasons": self.reasons,
            "covers": self.covers, "exchange": [e.to_json() for e in self.exchange],
        }
        if self.duration is not None:
            out["duration_s"] = round(self.duration, 4)
        return out


@dataclass
class RunResult:
    suite: str
    suite_version: str
    run: dict[str, Any]
    dut: dict[str, Any]
    environment: dict[str, Any]
    results: list[CaseResult]
    coverage: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out = {v: 0 for v in VERDICTS}
        for r in self.results:
            out[r.verdict] += 1
        return out

    @property
    def passed(self) -> bool:
        """The exit-status rule: no applicable case failed or was inconclusive."""
        return not any(r.verdict in ("fail", "inconclusive") for r in self.results)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1, "suite": self.suite, "suite_version": self.suite_version, "run": self.run,
            "dut": self.dut, "environment": self.environment, "summary": self.counts(),
            "passed": self.passed, "cases": [r.to_json() for r in self.results], "coverage": self.coverage,
        }


_TOKEN = re.compile(r"\s*([+-])?\s*(\$[A-Za-z_][A-Za-z0-9_.]*|\d+)\s*")


def resolve(value: Any, variables: dict[str, Any]) -> Any:
    """A case value: plain data as it is; `"$name"`, `"$a + 1"`, `"$max_balance - $balance"` evaluated.

    Only names, integers, `+` and `-`: cases stay data, not programs. An unknown name raises
    Inconclusive (the run lacks what the case needs, e.g. `$max_balance` without --profile).
    """
    if not isinstance(value, str) or "$" not in value:
        return value
    total: Any = None
    pos = 0
    text = value.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ValueError(f"expression {value!r}: only $names, integers, + and -")
        sign, atom = m.group(1) or "+", m.group(2)
        if atom.startswith("$"):
            item: Any = variables
            for part in atom[1:].split("."):
                if not isinstance(item, dict) or part not in item or item[part] is None:
                    raise Inconclusive(f"{atom} is not known in this run")
                item = item[part]
        else:
            item = int(atom)
        if total is None:
            if sign == "-":
                item = -item
            total = item
        elif sign == "+":
            total = total + item
        else:
            total = total - item
        pos = m.end()
    return total
