"""The suite's own PSAMs: PSAM personalities for terminals that accept a PSAM the suite controls.

A terminal under test normally brings its own PSAM, so the suite cannot make it fail: its memory, its
link, its refusals and its limits stay out of reach. An in-process DUT takes its PSAM as a reader (the
seam's `psam_reader`), so a case can give it one the suite controls (`terminal: {psam: {...}}` in the
case, feature `suite_psam`: ICS `suite_psam`, by default true for `ykt` and for a `python:` DUT without
its own `psam`). Such a test PSAM is ykt's PSAM Card OS (ykt_card.psam.cos.PsamOS, reference section 4)
issued from the run's `--keyset`s with `--terminal-id`, in a *personality*:

- by configuration: `valid`; `last_sequence` (its terminal transaction number at `next_seq`, by
  default FFFFFFFF: the last one it can hand out; the 8070 after it answers 9402); `foreign_keys`
  (master keys of the right algorithm and version but not the run's: its MAC1 is wrong for every test
  card, which answers DEBIT 9302); `algorithm: 3des|sm4` (only that key set: 8070 for a card of the
  other algorithm answers 9403);
- by behaviour (the Card OS behind a thin wrapper that bends one exchange, `times` times):
  `memory_failure` (the command answered 6581, nothing done), `unexpected_sw` (answered `sw`, e.g.
  6988 or 9302 to 8070, nothing done), `link_lost` (the PSAM's link fails inside the command, `before`
  the PSAM processed it or `after`: a PSAM pulled from its slot; it answers again once the terminal
  powers it up), `malformed` (the answer data of 8070 or a READ BINARY cut short).

Every test PSAM records what it saw (`TestPsam.seen`, with the tap number), so cases check the PSAM's
side of the exchange as they check the card's (`psam_sequence`, `psam_not_sent`).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field, model_validator

from apdu.cardos import CardPowerLoss
from apdu.transport.inprocess import InProcessReader
from keysets import KeySet
from keysets.keyset import KeyEntry
from keysets.randomness import RandomSource
from keysets.secret import SecretKey
from ykt_card.psam.cos import PsamOS
from ykt_card.psam.issue import issue_psam
from ykt_files.schema import Model, problem

from ..results import Exchanged
from .personalities import Seen

__all__ = ["PSAM_PERSONALITIES", "PSAM_COMMANDS", "PsamParams", "TestPsam", "build_psam", "psam_command_name",
           "psam_params_of", "PsamSequenceParams", "PsamNotSentParams", "check_psam_sequence",
           "check_psam_not_sent", "psam_exchange"]

PSAM_PERSONALITIES = ("valid", "last_sequence", "foreign_keys", "memory_failure", "unexpected_sw", "link_lost",
                      "malformed")
PSAM_COMMANDS = {
    "select": (0x00, 0xA4), "read_binary": (0x00, 0xB0), "get_challenge": (0x00, 0x84),
    "get_response": (0x00, 0xC0), "init_purchase": (0x80, 0x70), "verify_mac2": (0x80, 0x72),
    "des_init": (0x80, 0x1A), "des_compute": (0x80, 0xFA),
}
"""The commands of reference section 4 a terminal sends its PSAM, by name: (CLA, INS)."""
_BEHAVIOURS = ("memory_failure", "unexpected_sw", "link_lost", "malformed")
_FOREIGN = bytes.fromhex("5A" * 16)
"""XORed into every master key of a `foreign_keys` PSAM: keys of another (made-up) scheme."""


def psam_command_name(c: bytes) -> str:
    """The reference's name of a command APDU a PSAM receives (section 4)."""
    if len(c) < 2:
        return "malformed"
    for name, (cla, ins) in PSAM_COMMANDS.items():
        if c[0] == cla and c[1] == ins:
            return name
    return f"INS {c[1]:02X}"


class PsamParams(Model):
    """The PSAM a case gives the terminal (`terminal: {psam: {personality: link_lost, command: verify_mac2}}`).

    algorithm: which of the run's key sets the PSAM holds (`dual`: all given). next_seq: the terminal
    transaction number the next 8070 hands out (last_sequence). command/when/times/sw: the behaviour,
    as for test cards.
    """

    personality: Literal[PSAM_PERSONALITIES] = "valid"  # type: ignore[valid-type]
    algorithm: Literal["3des", "sm4", "dual"] = "dual"
    next_seq: int = Field(default=0xFFFFFFFF, ge=1, le=0xFFFFFFFF)
    command: Literal[tuple(PSAM_COMMANDS)] | None = None  # type: ignore[valid-type]
    when: Literal["before", "after"] = "before"
    times: int = Field(default=1, ge=1, le=100)
    sw: str | None = Field(default=None, pattern=r"^[0-9A-Fa-f]{4}$")

    @model_validator(mode="after")
    def _rules(self) -> "PsamParams":
        p = self.personality
        if p in _BEHAVIOURS and self.command is None:
            raise problem(f"a {p} PSAM needs the command it bends (command: init_purchase, …)", at="command")
        if p == "unexpected_sw" and self.sw is None:
            raise problem("an unexpected_sw PSAM needs the status word it answers (sw: 6988)", at="sw")
        if p == "malformed" and self.command not in ("init_purchase", "read_binary", "des_compute"):
            raise problem("only an answer with data can be cut short: init_purchase, read_binary, des_compute",
                          at="command")
        if p not in _BEHAVIOURS and self.command is not None:
            raise problem(f"a {p} PSAM bends no command", at="command")
        return self


def psam_params_of(terminal: Mapping[str, Any] | None, source: str, where: str) -> PsamParams | None:
    """The case's `terminal.psam`, validated (None: the DUT keeps its own PSAM)."""
    from ..schema import CaseError
    from ykt_files.schema import validate
    if not terminal:
        return None
    unknown = sorted(set(terminal) - {"psam", "journal"})
    if unknown:
        raise CaseError(source, f"{where}.terminal.{unknown[0]}", "unknown terminal setting (known: psam, journal)")
    if "psam" not in terminal:
        return None
    params = terminal.get("psam")
    if not isinstance(params, Mapping):
        raise CaseError(source, f"{where}.terminal.psam", "a test PSAM is a mapping: {personality: NAME, ...}")
    try:
        return validate(PsamParams, dict(params), source, CaseError)
    except CaseError as exc:
        raise CaseError(source, f"{where}.terminal.psam" + (f".{exc.field}" if exc.field else ""),
                        exc.reason) from None


class TestPsam:
    """A test PSAM: the PSAM Card OS, the behaviour bending its exchanges, and what it saw (per tap)."""

    __test__ = False  # not a pytest class

    def __init__(self, params: PsamParams, os: PsamOS) -> None:
        self.params = params
        self.os = os
        self.seen: list[Seen] = []
        self.tap = 0
        self.bent = 0
        self._cut_next_response = False

    def __repr__(self) -> str:
        return f"TestPsam({self.params.personality})"

    # -- the Card OS seam ------------------------------------------------------------------------
    def power_on(self) -> bytes:
        self._cut_next_response = False
        return self.os.power_on()

    def power_off(self) -> None:
        self.os.power_off()

    def process(self, capdu: bytes) -> bytes:
        capdu = bytes(capdu)
        entry = Seen(self.tap, capdu, None)
        self.seen.append(entry)
        try:
            rapdu = self._answer(capdu)
        except CardPowerLoss:
            entry.note = "the PSAM's link failed inside this command: no answer"
            raise
        entry.response = bytes(rapdu)
        return entry.response

    def _answer(self, capdu: bytes) -> bytes:
        p = self.params
        if self._cut_next_response and psam_command_name(capdu) == "get_response":
            self._cut_next_response = False
            rapdu = self.os.process(capdu)
            return rapdu[: (len(rapdu) - 2) // 2] + rapdu[-2:] if rapdu[-2:] == b"\x90\x00" else rapdu
        if p.personality not in _BEHAVIOURS or psam_command_name(capdu) != p.command or self.bent >= p.times:
            return self.os.process(capdu)
        self.bent += 1
        if p.personality in ("memory_failure", "unexpected_sw"):
            return bytes.fromhex("6581" if p.personality == "memory_failure" else (p.sw or "6F00"))
        if p.personality == "link_lost":
            if p.when == "after":
                self.os.process(capdu)
            self.os.power_off()
            raise CardPowerLoss(f"test PSAM: link lost {p.when} {capdu[:4].hex().upper()}")
        rapdu = self.os.process(capdu)                       # malformed
        if rapdu[:1] == b"\x61":                             # T=0: the data follows with GET RESPONSE
            self._cut_next_response = True
            return rapdu
        if rapdu[-2:] != b"\x90\x00" or len(rapdu) < 4:
            return rapdu
        return rapdu[: (len(rapdu) - 2) // 2] + rapdu[-2:]

    def seen_in(self, tap: int) -> list[Seen]:
        return [s for s in self.seen if s.tap == tap]


def _foreign(ks: KeySet) -> KeySet:
    keys = {role: KeyEntry(role, e.index, e.version,
                           SecretKey(ks.algorithm, bytes(a ^ b for a, b in zip(e.key.value, _FOREIGN))))
            for role, e in ks.keys.items()}
    return dataclasses.replace(ks, name=f"{ks.name} [foreign]", keys=keys, source=f"{ks.source} (foreign)")


def build_psam(params: PsamParams, keysets: list[KeySet], terminal_id: bytes,
               rng: RandomSource) -> tuple[TestPsam, InProcessReader]:
    """Issue the test PSAM `params` describes and put it in a reader, ready for the terminal to start."""
    chosen = [ks for ks in keysets if params.algorithm == "dual" or ks.algorithm.value == params.algorithm]
    if not chosen:
        from ..results import NotApplicable
        raise NotApplicable(f"the test PSAM needs a {params.algorithm} key set (--keyset)")
    if params.personality == "foreign_keys":
        chosen = [_foreign(ks) for ks in chosen]
    next_seq = params.next_seq if params.personality == "last_sequence" else 1
    psam = TestPsam(params, PsamOS(issue_psam(chosen, terminal_id, next_terminal_seq=next_seq), random=rng))
    return psam, InProcessReader(psam, name=f"suite test PSAM ({params.personality})")


def psam_exchange(psam: TestPsam, tap: int, phase: str) -> list[Exchanged]:
    """The PSAM's side of tap `tap`, for the report's annotated exchange."""
    return [Exchanged(f"{phase} PSAM", s.command, s.response, s.note) for s in psam.seen_in(tap)]


# ---------------------------------------------------------------------------------------------------
# checks on the PSAM's side of the exchange

PsamCommand = Literal[tuple(PSAM_COMMANDS)]  # type: ignore[valid-type]


class PsamSequenceParams(Model):
    tap: int | Literal["last"] = "last"
    commands: list[PsamCommand] = Field(min_length=1)  # type: ignore[valid-type]


class PsamNotSentParams(Model):
    tap: int | Literal["last", "all"] = "last"
    commands: list[PsamCommand] = Field(min_length=1)  # type: ignore[valid-type]


def _psam(ctx: Any) -> TestPsam:
    from ..results import Inconclusive
    psam = getattr(ctx, "psam", None)
    if psam is None:
        raise Inconclusive("a PSAM check in a case that gives the terminal no test PSAM (terminal.psam)")
    return psam


def check_psam_sequence(ctx: Any, p: PsamSequenceParams) -> list[str]:
    """The PSAM saw these commands, in this order (others may come between), during the tap."""
    record = ctx.tap_record(p.tap)
    sent = [psam_command_name(s.command) for s in _psam(ctx).seen_in(record.number)]
    pos = 0
    for wanted in p.commands:
        hit = next((i for i in range(pos, len(sent)) if sent[i] == wanted), None)
        if hit is None:
            return [f"tap {record.number}: the PSAM saw {' → '.join(sent) or 'nothing'}; expected "
                    f"{' → '.join(p.commands)} in this order ({wanted} missing)"]
        pos = hit + 1
    return []


def check_psam_not_sent(ctx: Any, p: PsamNotSentParams) -> list[str]:
    psam = _psam(ctx)
    records = ctx.taps if p.tap == "all" else [ctx.tap_record(p.tap)]
    out = []
    for record in records:
        sent = [psam_command_name(s.command) for s in psam.seen_in(record.number)]
        bad = [c for c in p.commands if c in sent]
        if bad:
            out.append(f"tap {record.number}: the PSAM received {', '.join(bad)} (it saw {' → '.join(sent)})")
    return out
