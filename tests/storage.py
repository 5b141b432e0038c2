"""Real storage faults for tests: a small tmpfs (a disk that fills up, remounted read-only), and an ext4
image on a loop device that the kernel forces read-only under an open writer (errors=remount-ro).

These need root (the test machine runs the suite as root; `mount` is required). Nothing here fakes a
failure: SQLite and the atomic writers meet ENOSPC and EROFS from the kernel itself. Root bypasses
permission bits (chmod 0444), so a read-only *mount* is the only honest read-only file here.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path


def _run(*args: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr.strip()}"


def _unmount(point: Path) -> None:
    proc = subprocess.run(["umount", str(point)], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:                 # still busy (a connection a failing test left open): detach it
        subprocess.run(["umount", "-l", str(point)], capture_output=True, text=True, timeout=60)


class Tmpfs:
    """A tmpfs of `size` mounted at `point`."""

    def __init__(self, point: Path) -> None:
        self.point = point

    def read_only(self, on: bool = True) -> None:
        """Remount read-only (fails if a file is open for writing on it) or read-write again."""
        _run("mount", "-o", f"remount,{'ro' if on else 'rw'}", str(self.point))

    @property
    def is_read_only(self) -> bool:
        return bool(os.statvfs(self.point).f_flag & os.ST_RDONLY)

    def fill(self) -> Path:
        """Fill the file system to the last byte (a filler file); returns it (delete it to free the space)."""
        filler = self.point / "filler"
        chunk = b"\0" * 65536
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for size in (65536, 4096, 512, 1):
                try:
                    while True:
                        os.write(fd, chunk[:size])
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)
        return filler


@contextlib.contextmanager
def tmpfs(point: Path, size: str = "4m") -> Iterator[Tmpfs]:
    """Mount a fresh tmpfs at `point` (created); unmounted afterwards whatever happens."""
    point.mkdir(parents=True, exist_ok=True)
    _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(point))
    try:
        yield Tmpfs(point)
    finally:
        _unmount(point)


class Ext4:
    """An ext4 file system on a loop device, mounted with errors=remount-ro."""

    def __init__(self, point: Path) -> None:
        self.point = point

    def device(self) -> str:
        """The loop device's name (`loopN`), read from /proc/mounts for this mount point only."""
        for line in Path("/proc/mounts").read_text().splitlines():
            source, target = line.split()[:2]
            if target == str(self.point):
                name = Path(source).name
                assert re.fullmatch(r"loop\d+", name), f"{self.point} is not on a loop device: {source}"
                return name
        raise AssertionError(f"{self.point} is not mounted")

    def fail_read_only(self) -> None:
        """Make the kernel force this file system read-only now, with files open for writing on it (an
        ext4 error with errors=remount-ro: what a failing disk does). Only this loop device is touched."""
        trigger = Path("/sys/fs/ext4") / self.device() / "trigger_fs_error"
        trigger.write_text("ykt test: forced read-only")
        assert self.is_read_only

    @property
    def is_read_only(self) -> bool:
        """True when a new file cannot be created here: EROFS (statvfs does not show an emergency remount)."""
        try:
            (self.point / ".probe").touch()
        except OSError as exc:
            assert exc.errno == errno.EROFS, exc
            return True
        (self.point / ".probe").unlink()
        return False


@contextlib.contextmanager
def ext4(point: Path, size_mb: int = 16) -> Iterator[Ext4]:
    """An ext4 image file beside `point`, loop-mounted at `point`; unmounted (and the loop freed) after."""
    image = point.with_name(point.name + ".img")
    with open(image, "wb") as out:
        out.truncate(size_mb * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", str(image))
    point.mkdir(parents=True, exist_ok=True)
    _run("mount", "-o", "loop,errors=remount-ro", str(image), str(point))
    try:
        yield Ext4(point)
    finally:
        _unmount(point)
        image.unlink(missing_ok=True)


def copy_journal(src: Path, dst_dir: Path) -> Path:
    """Copy a journal file (and its -wal/-shm when present) into `dst_dir`."""
    for suffix in ("", "-wal", "-shm"):
        part = src.with_name(src.name + suffix)
        if part.exists():
            shutil.copyfile(part, dst_dir / part.name)
    return dst_dir / src.name
