"""Atomic file writes: a reader (or a power cut, or kill -9) sees the old content or the new, never a mix.

Card and PSAM images, clearing files, reports and anything else that must survive a crash use these.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["write_text_atomic", "write_json_atomic"]


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write `text` so that `path` holds either the old or the new content, never a mix.

    Temp file in the same directory (mode 0600: images hold test keys), fsync, rename over the
    target, fsync the directory. A failure (disk full, read-only file system) leaves the old file and
    no temp file behind, and raises the OSError.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str | os.PathLike[str], doc: Any) -> None:
    """Write `doc` as indented JSON (UTF-8, one trailing newline), atomically."""
    write_text_atomic(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
