"""The design's layering, checked on the source: lower layers never import upper ones."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ORDER = ["ykt_files", "apdu", "keysets", "ykt_card", "ykt_qr", "terminal_sim", "ota", "clearing", "specs", "tools"]
# ykt_files is the ground floor; keysets knows nothing of files or APDUs: it sits beside apdu, not on it.
# ykt_qr sits beside ykt_card on the same floor: neither imports the other, except ykt_qr's use of China
# time (ykt_card.clock), checked module by module below. ota (the over-the-air top-up host and wallet) sits
# just above terminal_sim, whose load host it builds on; clearing (verification of uploads) sits above both
# and may use either; specs and tools may use all of them.
FORBIDDEN = {
    "ykt_files": set(ORDER) - {"ykt_files"},
    "apdu": set(ORDER) - {"apdu", "ykt_files"},
    "keysets": set(ORDER) - {"keysets", "ykt_files"},
    "ykt_card": {"ykt_qr", "terminal_sim", "ota", "clearing", "specs", "tools"},
    "ykt_qr": {"apdu", "terminal_sim", "ota", "clearing", "specs", "tools"},
    "terminal_sim": {"ota", "clearing", "specs", "tools"},
    "ota": {"clearing", "specs", "tools"},
    "clearing": {"specs", "tools"},
    "specs": {"tools"},
    "tools": set(),
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", ORDER)
def test_no_upward_imports(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {', '.join(sorted(bad))}")
    assert not offenders, offenders


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def test_ykt_qr_takes_only_the_clock_from_ykt_card():
    offenders = []
    for path in sorted((ROOT / "ykt_qr").rglob("*.py")):
        for module in imported_modules(path):
            if module.split(".")[0] == "ykt_card" and module != "ykt_card.clock":
                offenders.append(f"{path.relative_to(ROOT)} imports {module}")
    assert not offenders, offenders
