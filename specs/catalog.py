"""Where the shipped data lives, by name: key sets, card and terminal profiles, lists.

`--keyset gd-test-3des`, `--profile bus-flat` or a list name finds the shipped file; anything with a slash
or the kind's file ending is taken as a path. The same lookup serves an installed package (`pip install .`)
and a checkout, since every folder is found next to the code that ships it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from keysets import TEST_KEYSET_DIR
from ota import TEST_CREDENTIALS_DIR
from ykt_qr import TEST_PKI_DIR

PROFILES_DIR = Path(__file__).parent / "profiles"
CARD_PROFILES = PROFILES_DIR / "cards"
TERMINAL_PROFILES = PROFILES_DIR / "terminals"
LISTS_DIR = Path(__file__).parent / "lists"
TIMING_DIR = Path(__file__).parent / "timing"
DEFAULT_CARD_PROFILE = "reference"


@dataclass(frozen=True)
class Shelf:
    """One kind of shipped file: where it lies and how its files end."""

    kind: str
    folder: Path
    suffixes: tuple[str, ...]

    def names(self) -> list[str]:
        return sorted(p.stem for s in self.suffixes for p in self.folder.glob(f"*{s}"))

    def find(self, name: str) -> Path:
        """The shipped file called `name`, or `name` itself when it is a path (a slash or the file ending)."""
        text = str(name)
        if "/" in text or text.endswith(self.suffixes):
            return Path(text)
        for suffix in self.suffixes:
            path = self.folder / f"{text}{suffix}"
            if path.is_file():
                return path
        raise LookupError(f"no {self.kind} named {text!r} (shipped: {', '.join(self.names())}; "
                          "or give a path)")


SHELVES: dict[str, Shelf] = {
    "keyset": Shelf("key set", TEST_KEYSET_DIR, (".toml",)),
    "card-profile": Shelf("card profile", CARD_PROFILES, (".yaml", ".yml")),
    "terminal-profile": Shelf("terminal profile", TERMINAL_PROFILES, (".yaml", ".yml")),
    "list": Shelf("list", LISTS_DIR, (".txt",)),
    "qr-pki": Shelf("QR TEST PKI file", TEST_PKI_DIR, (".toml",)),
    "qr-roots": Shelf("QR root store", TEST_PKI_DIR, (".json",)),
    "wallet-credentials": Shelf("wallet credential file", TEST_CREDENTIALS_DIR, (".toml",)),
    "card-timing": Shelf("card timing profile", TIMING_DIR / "cards", (".yaml", ".yml")),
    "psam-timing": Shelf("PSAM timing profile", TIMING_DIR / "psam", (".yaml", ".yml")),
}


def find(kind: str, name: str) -> Path:
    """A shipped file of `kind` ('keyset', 'card-profile', 'terminal-profile', 'list', 'qr-pki', 'qr-roots',
    'wallet-credentials', 'card-timing', 'psam-timing') by name or path."""
    return SHELVES[kind].find(name)


def keyset_path(name: str) -> Path:
    """A shipped TEST key set (`gd-test-3des`, `gd-test-sm4`) or a path."""
    return find("keyset", name)


def card_profile_path(name: str = DEFAULT_CARD_PROFILE) -> Path:
    """The issuance profile file for a shipped name (`reference`, `gd-guangzhou`, …) or a path."""
    return find("card-profile", name)


def terminal_profile_path(name: str) -> Path:
    """The terminal profile file for a shipped name (`bus-flat`, `metro-entry`, …) or a path."""
    return find("terminal-profile", name)


def list_path(name: str) -> Path:
    """A shipped list (`blacklist-gd`, `issuers-gd`) or a path."""
    return find("list", name)


def card_profile_names() -> list[str]:
    return SHELVES["card-profile"].names()


def terminal_profile_names() -> list[str]:
    return SHELVES["terminal-profile"].names()
