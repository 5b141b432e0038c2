"""Card and PSAM timing profiles: how long a T-Union card or PSAM works on each command, from YAML.

Why: the air is priced by the standard (`apdu.airtime`, `apdu.t0time`), but the card's own time depends on its
chip and COS; vendors need to try "a fast card" and "a typical card" and, best, the times they measured. A profile
is read by one declarative model of the schema layer and gives, per command (CLA INS) and algorithm (3DES, SM4),
the processing time in µs, plus the EEPROM bytes the command commits, priced per byte and per page.

Card profile fields (``*`` required): ``name``\\*, ``source``\\* (where the figures come from), ``default_us``\\*
(a command not listed), ``eeprom``\\* (``page_bytes``, ``per_page_us``, ``per_byte_us``), ``commands``\\* (list
of ``{cla, ins, name, us, eeprom_bytes}``; ``us`` is one number or ``{3des: N, sm4: N}``).
PSAM profile: the same, with ``link``\\* (``clock_hz``, ``f``, ``d``, ``n``: the T=0 contact link) instead of
``eeprom``. Each command's time is its ``us`` plus, for a card, ``eeprom_bytes`` (and the CAPP records cached
for a DEBIT, which the card commits with it) priced as ceil(bytes / page_bytes) pages plus bytes × per_byte.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from apdu.t0time import T0Link
from ykt_files.schema import (DocumentError, HexString, IntRange, Model, NonEmpty, load_document, problem)

__all__ = ["TimingProfileError", "CardTiming", "PsamTiming", "load_card_timing", "load_psam_timing",
           "MEASURED", "ALGORITHMS"]

MEASURED = "measured"
"""The profile name that takes each command's time from the trace instead of a file."""
ALGORITHMS = ("3des", "sm4")
Micros = IntRange(0, 10_000_000)


class TimingProfileError(DocumentError):
    """A timing profile refused: `<file>: <field>: <reason>`."""


class PerAlgorithm(Model):
    """A time that depends on the algorithm of the transaction's key."""

    model_config = Model.model_config | {"populate_by_name": True}
    tdes: Micros
    sm4: Micros

    @model_validator(mode="before")
    @classmethod
    def _names(cls, data: object) -> object:
        if isinstance(data, dict) and "3des" in data:
            data = dict(data)
            data["tdes"] = data.pop("3des")
        return data


class CommandTime(Model):
    cla: HexString(2)
    ins: HexString(2)
    name: NonEmpty
    us: Micros | PerAlgorithm
    eeprom_bytes: IntRange(0, 65536) = 0

    def time_us(self, algorithm: str) -> int:
        if isinstance(self.us, int):
            return self.us
        return self.us.tdes if algorithm == "3des" else self.us.sm4


class Eeprom(Model):
    page_bytes: IntRange(1, 4096)
    per_page_us: Micros
    per_byte_us: Micros


class Link(Model):
    clock_hz: IntRange(1_000_000, 20_000_000)
    f: IntRange(1, 2048)
    d: IntRange(1, 64)
    n: IntRange(0, 254) = 0


class _Profile(Model):
    name: NonEmpty
    source: NonEmpty
    default_us: Micros
    commands: list[CommandTime]

    @model_validator(mode="after")
    def _unique(self) -> "_Profile":
        seen: set[tuple[str, str]] = set()
        for i, command in enumerate(self.commands):
            key = (command.cla, command.ins)
            if key in seen:
                raise problem(f"CLA {command.cla} INS {command.ins} is listed twice", at=f"commands.{i}.ins")
            seen.add(key)
        return self

    def entry(self, cla: int, ins: int) -> CommandTime | None:
        key = (f"{cla:02X}", f"{ins:02X}")
        return next((c for c in self.commands if (c.cla, c.ins) == key), None)

    def command_us(self, cla: int, ins: int, algorithm: str) -> float:
        entry = self.entry(cla, ins)
        return float(self.default_us if entry is None else entry.time_us(algorithm))


class CardTiming(_Profile):
    """A card timing profile (see the module docstring)."""

    kind: Literal["card"]
    eeprom: Eeprom

    def eeprom_us(self, nbytes: int) -> float:
        if nbytes <= 0:
            return 0.0
        e = self.eeprom
        return math.ceil(nbytes / e.page_bytes) * e.per_page_us + nbytes * e.per_byte_us

    def card_us(self, cla: int, ins: int, algorithm: str, extra_eeprom_bytes: int = 0) -> float:
        """Processing time of one command; `extra_eeprom_bytes` are committed with it (CAPP records at DEBIT)."""
        entry = self.entry(cla, ins)
        written = (entry.eeprom_bytes if entry is not None else 0) + extra_eeprom_bytes
        return self.command_us(cla, ins, algorithm) + self.eeprom_us(written)


class PsamTiming(_Profile):
    """A PSAM timing profile: processing per command and the T=0 link it sits on."""

    kind: Literal["psam"]
    link: Link

    @property
    def t0(self) -> T0Link:
        return T0Link(self.link.clock_hz, self.link.f, self.link.d, self.link.n)


def load_card_timing(path: str | Path) -> CardTiming:
    return load_document(path, CardTiming, "yaml", "card timing profile", TimingProfileError)


def load_psam_timing(path: str | Path) -> PsamTiming:
    return load_document(path, PsamTiming, "yaml", "PSAM timing profile", TimingProfileError)
