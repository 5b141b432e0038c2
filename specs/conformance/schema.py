"""The conformance case format (YAML under specs/cases/<suite>/), shared by the card and terminal suites.

A case file holds `cases:`, a list of cases. A case is data: who it is (id, title, purpose, reference),
when it applies (tags, applies), the state the DUT must be put in first (`card`, `terminal`), what to
do (`steps`, each one named action with its parameters and an optional expectation), what must hold at
the end (`checks`), what to undo whatever happened (`cleanup`) and which cells of the coverage matrix
it fills (`covers`). Only the actions and checks are code; a suite names its vocabulary and the loader
validates every step's parameters against it, so a typo is refused at load time as
`<file>: cases[3].steps[2].debit.mac1: <reason>`.

    - id: TU-CARD-062
      title: DEBIT with a wrong MAC1 is refused and changes nothing
      reference: [§3.3, §2]
      tags: [core, purchase, negative, 3des]
      card: {balance_at_least: 100}
      steps:
        - initialize_purchase: {amount: 1}
        - debit: {mac1: wrong}
          expect: {sw: "9302"}
          defect: the card accepts a DEBIT whose MAC1 is wrong (MAC1 unchecked)
      checks:
        - unchanged: [balance, offline_counter, ef18]
          defect: a DEBIT refused for its MAC1 still changed the purse
      covers: [debit/wrong_mac]
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ykt_files.schema import (DocumentError, Model, NonEmpty, load_document, parse_document, problem, read_text,
                              validate)

__all__ = [
    "LoadedCase", "CaseError", "Expect", "Step", "Check", "Applies", "CardSetting", "Case", "CaseFile", "Ics",
    "TOPIC_TAGS", "LEVEL_TAGS", "load_case_file", "load_cases", "CASES_DIR", "validate_params",
]

CASES_DIR = Path(__file__).resolve().parent.parent / "cases"

LEVEL_TAGS = ("core", "profile", "issuance", "destructive")
"""core: the purse core every card must pass; profile: what only the reference's [L]/[U] text or a
project decision (D1-D18) settles, so a vendor's card is not failed for our choices; issuance: the
personalisation against `--profile`; destructive: leaves the card unusable, runs only when asked."""
TOPIC_TAGS = (
    "identification", "files", "balance", "load", "purchase", "capp", "proof", "sm", "block", "pin",
    "commands", "tearing", "limits", "negative", "3des", "sm4", "dual", "counters", "terminal",
    "prechecks", "recovery", "lists", "records", "fares", "robustness", "metro", "bus", "mac2", "qr",
)
STATUS_PATTERN = re.compile(r"[0-9A-F]{2}([0-9A-F]{2}|[0-9A-F]x|xx)")
REFERENCE_PATTERN = re.compile(r"(D([1-9]|1[0-8])|(mobile\.md )?§\d+(\.\d+)*)")


@dataclass(frozen=True)
class LoadedCase:
    """A case with its steps', checks' and cleanup's parameters parsed by the suite's vocabulary."""

    case: "Case"
    steps: dict[int, Any]
    checks: dict[int, Any]
    cleanup: dict[int, Any]
    path: Path
    cards: dict[str, Any] = field(default_factory=dict)


class CaseError(DocumentError):
    """A case file refused: `<file>: <field>: <reason>`."""


def _status(value: str) -> str:
    text = str(value).upper().replace("X", "x")
    if not STATUS_PATTERN.fullmatch(text):
        raise problem(f"status word {value!r}: four hex digits, the last one or two may be x (6Cxx, 63Cx)")
    return text


class Expect(Model):
    """What the answer of one step must be. Unset fields are not checked.

    sw: one status word or a list of acceptable ones (`6Cxx`, `63Cx` patterns allowed);
    refused: true = any status word but 9000 (and not 61xx); false = 9000;
    length: bytes of response data; data: the exact data (hex, or `$name` of a saved value);
    decode: a layout name (ykt_card.layouts.by_name) the data must decode with; fields: values the
    decoded fields must have (`$name` values allowed).
    """

    sw: str | list[str] | None = None
    refused: bool | None = None
    length: int | None = None
    data: str | None = None
    decode: str | None = None
    fields: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _rules(self) -> "Expect":
        sws = [self.sw] if isinstance(self.sw, str) else list(self.sw or [])
        for s in sws:
            if not STATUS_PATTERN.fullmatch(str(s).upper().replace("X", "x")):
                raise problem(f"status word {s!r}: four hex digits, the last one or two may be x "
                              "(6Cxx, 63Cx)", at="sw")
        if self.fields is not None and self.decode is None:
            raise problem("fields need a layout to decode with (decode)", at="fields")
        return self

    def statuses(self) -> list[str]:
        sws = [self.sw] if isinstance(self.sw, str) else list(self.sw or [])
        return [_status(s) for s in sws]


def _one_named(data: Any, fixed: set[str], what: str) -> Any:
    """`{name: params, fixed...}` → `{"name": name, "params": params, fixed...}` (the YAML short form)."""
    if not isinstance(data, Mapping):
        raise problem(f"a {what} is a mapping: {{{what}_name: parameters}}")
    named = [k for k in data if k not in fixed and k not in ("name", "params")]
    if "name" in data:
        return data
    if len(named) != 1:
        listed = ", ".join(map(str, named)) or "none"
        raise problem(f"a {what} names exactly one {what} (found: {listed})")
    key = named[0]
    params = data[key]
    out = {k: v for k, v in data.items() if k in fixed}
    out["name"] = str(key)
    out["params"] = params if params is not None else {}
    return out


class Step(Model):
    """One action with its parameters; `expect` judges its answer, `defect` names what a miss means."""

    name: str
    params: Any = None
    expect: Expect | None = None
    defect: str | None = None
    note: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return _one_named(data, {"expect", "defect", "note"}, "action")


class Check(Model):
    """One end-state check with its parameters; `defect` names what a failure means."""

    name: str
    params: Any = None
    defect: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, data: Any) -> Any:
        return _one_named(data, {"defect"}, "check")


class Applies(Model):
    """When a case applies; otherwise it is reported `not applicable` with the reason.

    algorithm: a key set of this algorithm must be given (`dual`: both); profile: `--profile` must be
    given; ef1e_layout: the run's EF1E layout; features: what the DUT (adapter) must offer (card
    suite: `tear`, power cut inside a command) or the ICS must claim (terminal suite).
    """

    algorithm: Literal["3des", "sm4", "dual"] | None = None
    profile: bool = False
    ef1e_layout: Literal["A", "B"] | None = None
    features: list[str] = Field(default_factory=list)
    modes: list[str] = Field(default_factory=list)


class CardSetting(Model):
    """The card state a card-suite case needs, established first (never assumed: cards have history).

    balance_at_least: fen, loaded with the issuer key set when short; balance_at_most: fen, spent down
    with purchases when above; unlocked: a temporarily locked application is unblocked first.
    """

    balance_at_least: int | None = Field(default=None, ge=0, le=0x7FFFFFFF)
    balance_at_most: int | None = Field(default=None, ge=0, le=0x7FFFFFFF)
    unlocked: bool = True


class Case(Model):
    id: str
    title: NonEmpty
    purpose: NonEmpty
    reference: list[str] = Field(min_length=1)
    tags: list[str] = Field(min_length=1)
    applies: Applies = Field(default_factory=Applies)
    card: CardSetting = Field(default_factory=CardSetting)
    terminal: dict[str, Any] | None = None
    cards: dict[str, Any] = Field(default_factory=dict)
    steps: list[Step] = Field(min_length=1)
    checks: list[Check] = Field(default_factory=list)
    cleanup: list[Step] = Field(default_factory=list)
    covers: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rules(self) -> "Case":
        if not re.fullmatch(r"TU-(CARD|TERM)-\d{3}", self.id):
            raise problem(f"{self.id!r}: case IDs are TU-CARD-NNN or TU-TERM-NNN", at="id")
        for i, ref in enumerate(self.reference):
            if not REFERENCE_PATTERN.fullmatch(ref):
                raise problem(f"{ref!r}: a decision D1..D18, a section of tunion.md (§3.3) or of mobile.md "
                              "(mobile.md §1.5)",
                              at=f"reference[{i}]")
        for i, tag in enumerate(self.tags):
            if tag not in LEVEL_TAGS and tag not in TOPIC_TAGS:
                raise problem(f"unknown tag {tag!r} (known: {', '.join(LEVEL_TAGS + TOPIC_TAGS)})",
                              at=f"tags[{i}]")
        levels = [t for t in self.tags if t in ("core", "profile", "issuance")]
        if len(levels) != 1:
            raise problem("exactly one of core, profile, issuance", at="tags")
        if "issuance" in self.tags and not self.applies.profile:
            raise problem("issuance cases check against --profile: set applies.profile", at="applies")
        return self

    @property
    def suite(self) -> str:
        return "card" if self.id.startswith("TU-CARD") else "terminal"

    def summary(self) -> dict[str, Any]:
        """The JSON form `ykt conformance list --json` prints."""
        return {"id": self.id, "title": self.title, "suite": self.suite, "tags": list(self.tags),
                "reference": list(self.reference), "purpose": self.purpose,
                "applies": self.applies.model_dump(exclude_defaults=True), "covers": list(self.covers)}


class CaseFile(Model):
    description: str | None = None
    cases: list[Case] = Field(min_length=1)


class Ics(Model):
    """Implementation conformance statement (`--ics FILE`): what the DUT claims.

    name, vendor, version, notes: identity; algorithms: 3des/sm4; modes: the terminal profile names it
    implements (bus-flat, …); fare: fen, the flat fare (or a taxi meter amount); optional: recovery,
    blacklist, load, discounts, capp, clock (with `clock_option`, the option that sets its time), qr (it
    scans MOT QR codes: `terminal.scan(code, amount)`, its profile's qr table).
    Terminal suite extras: recovery_window (s, D12's 120 when absent), blacklisted_cards (card numbers
    on its black list), list_version (the black list version its records carry), keeps_psam_session
    (whether the PSAM session of a torn purchase survives until the card returns, D12: in-process
    terminals do, a program run once per tap does not unless it says so), psam (a python: DUT's PSAM
    reader), suite_psam (whether an in-process DUT may be given a PSAM the suite controls, for the PSAM
    fault cases: by default `ykt`, and `python:` without its own `psam`), suite_journal (whether it
    takes the seam's `journal`, for the journal fault cases: by default `ykt` only).
    """

    name: NonEmpty
    vendor: str | None = None
    version: str | None = None
    algorithms: list[Literal["3des", "sm4"]] = Field(default_factory=list)
    modes: list[str] = Field(default_factory=list)
    fare: int | None = Field(default=None, ge=0)
    optional: list[Literal["recovery", "blacklist", "load", "discounts", "capp", "clock", "qr"]] = Field(
        default_factory=list)
    clock_option: str | None = None
    recovery_window: int | None = Field(default=None, ge=1, le=86400)
    blacklisted_cards: list[str] | None = None
    list_version: str | None = None
    keeps_psam_session: bool | None = None
    psam: str | None = None
    suite_psam: bool | None = None
    suite_journal: bool | None = None
    notes: str | None = None

    @model_validator(mode="after")
    def _rules(self) -> "Ics":
        for i, number in enumerate(self.blacklisted_cards or []):
            if not re.fullmatch(r"\d{20}", str(number)):
                raise problem(f"{number!r}: a card number is 20 digits (EF15 bytes 10..19)",
                              at=f"blacklisted_cards[{i}]")
        if "clock" in self.optional and not self.clock_option:
            raise problem("the DUT claims `clock`: say which option takes the time (e.g. --clock)",
                          at="clock_option")
        return self


def validate_params(models: Mapping[str, type[Model] | None], item: Step | Check, where: str,
                    source: str) -> Any:
    """The parameters of one step or check, validated by its vocabulary's model."""
    kind = "action" if isinstance(item, Step) else "check"
    if item.name not in models:
        raise CaseError(source, where, f"unknown {kind} {item.name!r} (known: {', '.join(sorted(models))})")
    model = models[item.name]
    params = item.params
    if model is None:
        if params not in ({}, None):
            raise CaseError(source, f"{where}.{item.name}", "takes no parameters")
        return None
    if not isinstance(params, Mapping):
        params = {"value": params}
    try:
        return validate(model, dict(params), source, CaseError)
    except CaseError as exc:
        field = f"{where}.{item.name}" + (f".{exc.field}" if exc.field else "")
        raise CaseError(source, field, exc.reason) from None


def load_case_file(path: Path, actions: Mapping[str, type[Model] | None],
                   checks: Mapping[str, type[Model] | None],
                   cards: type[Model] | None = None) -> list[LoadedCase]:
    """Parse and validate one case file: each case with its parsed step, check and cleanup parameters
    (and, for a suite that serves test cards, the parameters of each of the case's `cards`)."""
    source = str(path)
    doc = parse_document(read_text(path, "case", CaseError), "yaml", source, CaseError)
    parsed = validate(CaseFile, doc, source, CaseError)
    out = []
    for ci, case in enumerate(parsed.cases):
        base = f"cases[{ci}]"
        steps = {i: validate_params(actions, s, f"{base}.steps[{i}]", source) for i, s in enumerate(case.steps)}
        cleanup = {i: validate_params(actions, s, f"{base}.cleanup[{i}]", source)
                   for i, s in enumerate(case.cleanup)}
        chk = {i: validate_params(checks, c, f"{base}.checks[{i}]", source) for i, c in enumerate(case.checks)}
        if case.cards and cards is None:
            raise CaseError(source, f"{base}.cards", "this suite serves no test cards")
        served = {name: _card_params(cards, params, f"{base}.cards.{name}", source)
                  for name, params in case.cards.items()} if cards is not None else {}
        out.append(LoadedCase(case, steps, chk, cleanup, path, served))
    return out


def _card_params(model: type[Model], params: Any, where: str, source: str) -> Any:
    if not isinstance(params, Mapping):
        raise CaseError(source, where, "a test card is a mapping: {personality: NAME, ...}")
    try:
        return validate(model, dict(params), source, CaseError)
    except CaseError as exc:
        raise CaseError(source, where + (f".{exc.field}" if exc.field else ""), exc.reason) from None


def load_cases(folder: Path, actions: Mapping[str, type[Model] | None], checks: Mapping[str, type[Model] | None],
               coverage: Sequence[str] = (), conditions: Sequence[str] = (),
               cards: type[Model] | None = None) -> list[LoadedCase]:
    """Every case of a suite folder, in ID order; IDs are unique and `covers` names matrix cells."""
    seen: dict[str, str] = {}
    out = []
    for path in sorted(folder.glob("*.yaml")):
        for entry in load_case_file(path, actions, checks, cards):
            case = entry.case
            if case.id in seen:
                raise CaseError(str(path), "id", f"{case.id} is also defined in {seen[case.id]}")
            seen[case.id] = path.name
            for i, cell in enumerate(case.covers):
                command, _, condition = cell.partition("/")
                if coverage and (command not in coverage or condition not in conditions):
                    raise CaseError(str(path), f"{case.id}.covers[{i}]",
                                    f"{cell!r}: COMMAND/CONDITION with a command of the matrix "
                                    f"({', '.join(coverage)}) and a condition ({', '.join(conditions)})")
            out.append(entry)
    out.sort(key=lambda e: e.case.id)
    return out


class Vocabulary:
    """What a suite's cases may name: the actions and checks of its registries (name -> (parameter model,
    what runs it, ...)), as the parameter models `load_cases` validates a case's steps against."""

    action_registry: Mapping[str, tuple] = {}
    check_registry: Mapping[str, tuple] = {}

    @property
    def actions(self) -> dict[str, type[Model] | None]:
        return {k: v[0] for k, v in self.action_registry.items()}

    @property
    def checks(self) -> dict[str, type[Model] | None]:
        return {k: v[0] for k, v in self.check_registry.items()}


def load_ics(path: str) -> Ics:
    """An implementation conformance statement (YAML) on the schema layer: what the DUT claims to support."""
    return load_document(path, Ics, "yaml", "ICS", CaseError)
