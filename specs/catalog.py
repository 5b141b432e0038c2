"""Where the provincial specifications live as data: name → profile file.

`--profile reference` names a shipped profile; anything with a slash or a .yaml ending is a path.
"""
from __future__ import annotations

from pathlib import Path

PROFILES_DIR = Path(__file__).parent / "profiles"
CARD_PROFILES = PROFILES_DIR / "cards"
TERMINAL_PROFILES = PROFILES_DIR / "terminals"
DEFAULT_CARD_PROFILE = "reference"


def _resolve(kind: str, folder: Path, name: str) -> Path:
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise LookupError(f"no {kind} profile named {name!r} (shipped: {known})")
    return path


def card_profile_path(name: str = DEFAULT_CARD_PROFILE) -> Path:
    """The issuance profile file for a shipped name (`reference`, `gd-guangzhou`, …) or a path."""
    return _resolve("card", CARD_PROFILES, name)


def terminal_profile_path(name: str) -> Path:
    """The terminal profile file for a shipped name (`bus-flat`, `metro-entry`, …) or a path."""
    return _resolve("terminal", TERMINAL_PROFILES, name)


def card_profile_names() -> list[str]:
    return sorted(p.stem for p in CARD_PROFILES.glob("*.yaml"))


def terminal_profile_names() -> list[str]:
    return sorted(p.stem for p in TERMINAL_PROFILES.glob("*.yaml"))
