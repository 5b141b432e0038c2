"""A provincial programme as data: its cities (area codes, names) and their issuance targets (附表1).

`ykt report stats` reads it to name cities and to draw issuance against the target; the file is
`specs/programmes/<name>.yaml` (shipped: ``guangdong-2020``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ykt_files.schema import Digits, DocumentError, Model, NonEmpty, load_document, problem
from pydantic import model_validator

PROGRAMMES_DIR = Path(__file__).parent / "programmes"
DEFAULT_PROGRAMME = "guangdong-2020"


class ProgrammeError(DocumentError):
    """A programme file refused: `<file>: <field>: <reason>`."""


class CityFile(Model):
    code: Digits(4)
    name: NonEmpty
    name_en: NonEmpty
    target: int


class ProgrammeFile(Model):
    name: NonEmpty
    province: Digits(4)
    target_year: int
    target_unit: int
    cities: list[CityFile]

    @model_validator(mode="after")
    def _unique(self) -> "ProgrammeFile":
        codes = [c.code for c in self.cities]
        if len(set(codes)) != len(codes):
            raise problem("a city code is listed twice", at="cities")
        return self


@dataclass(frozen=True)
class City:
    code: str
    name: str
    name_en: str
    target_cards: int          # the 附表1 target in cards (the file gives it in target_unit)


@dataclass(frozen=True)
class Programme:
    name: str
    province: str
    target_year: int
    cities: dict[str, City]

    def city(self, text: str) -> City:
        """A city by area code (5810), Chinese name (广州) or English name (guangzhou, any case)."""
        for c in self.cities.values():
            if text in (c.code, c.name) or text.lower() == c.name_en.lower():
                return c
        known = ", ".join(f"{c.code} {c.name_en}" for c in self.cities.values())
        raise LookupError(f"--city {text!r}: not a city of {self.name} (known: {known})")


def load_programme(name_or_path: str = DEFAULT_PROGRAMME) -> Programme:
    text = str(name_or_path)
    path = Path(text) if ("/" in text or text.endswith((".yaml", ".yml"))) else PROGRAMMES_DIR / f"{text}.yaml"
    f = load_document(path, ProgrammeFile, "yaml", "programme", ProgrammeError)
    cities = {c.code: City(c.code, c.name, c.name_en, c.target * f.target_unit) for c in f.cities}
    return Programme(f.name, f.province, f.target_year, cities)
