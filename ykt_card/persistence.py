"""How a virtual card or PSAM makes a change last: apply it, save the image, or undo it and answer 6581.

A real chip writes its EEPROM before it answers; when the write fails it keeps its old content and answers
6581 (memory failure). The virtual card and the virtual PSAM keep their EEPROM in an image file, so the
same promise is one seam both use (`persist`): the change is already made in memory, the owner's save
runs, and if the save fails the change is undone in memory and a `MemoryFailure` (a `CardError` 6581) is
raised, which the card OS's dispatcher answers. The memory then equals the image on disk again, so a
later change that saves well never carries a debit the card refused (200 fen vanished that way before).

`ImageSaveError` is the one shape of a failed image save: the `OSError` of the atomic write (disk full,
read-only file system, I/O error) with the image's path, so every message names the file and the cause,
never the temporary file the atomic write used.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from apdu.status import SW_MEMORY_FAILURE, CardError

__all__ = ["MemoryFailure", "ImageSaveError", "persist", "image_saver"]

S = TypeVar("S")


class ImageSaveError(OSError):
    """An image could not be saved: `errno`, `strerror` and the image's own path as `filename`."""

    def __init__(self, what: str, path: str | os.PathLike[str], cause: OSError) -> None:
        super().__init__(cause.errno, cause.strerror or str(cause), str(path))
        self.what = what

    def __str__(self) -> str:
        return f"{self.filename}: cannot save the {self.what}: {self.strerror}"


class MemoryFailure(CardError):
    """6581: the state could not be saved, and the change was undone in memory (`cause`: why)."""

    def __init__(self, cause: OSError) -> None:
        super().__init__(SW_MEMORY_FAILURE, f"{cause}; the change was undone")
        self.cause = cause


def persist(save: Callable[[S], None] | None, state: S, undo: Callable[[], None]) -> None:
    """Save `state` after an in-memory change; if the save fails, `undo` the change first.

    An OSError becomes `MemoryFailure` (the answer 6581); anything else (an interrupt) is re-raised after
    the undo, so memory never holds a change its image does not.
    """
    if save is None:
        return
    try:
        save(state)
    except OSError as exc:
        undo()
        raise MemoryFailure(exc) from None
    except BaseException:
        undo()
        raise


def image_saver(what: str, path: str | os.PathLike[str],
                write: Callable[[str | os.PathLike[str], S], None]) -> Callable[[S], None]:
    """A save callback writing an image to `path` with `write`; a failure is an `ImageSaveError`."""
    def save(state: S) -> None:
        try:
            write(path, state)
        except ImageSaveError:
            raise
        except OSError as exc:
            raise ImageSaveError(what, path, exc) from None
    return save
