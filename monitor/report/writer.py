"""Writing the report's folder so that a reader never sees a half-written site.

The new site is written into a fresh temporary folder beside the target (same file
system), then swapped in: on Linux with `renameat2(RENAME_EXCHANGE)`, which exchanges the
two folders in one step (a reader sees the old site or the new one, never neither);
elsewhere by two renames (old aside, new in: for that instant the folder is missing, but
never partial). The old site is removed afterwards. A build that fails or is killed
leaves the target untouched; its temporary folder is removed by the next build.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_TEMP_MARK = ".building-"
_OLD_MARK = ".old-"


class SiteWriter:
    """Collects the files of one build in a temporary folder beside the target."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def write(self, relative: str, content: str | bytes) -> None:
        target = self.folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode("utf-8") if isinstance(content, str) else content
        target.write_bytes(data)


@contextmanager
def atomic_site(out_dir: Path) -> Iterator[SiteWriter]:
    """Yield a writer; on a clean exit the written site replaces `out_dir` in one swap."""
    out_dir = Path(out_dir)
    parent = out_dir.resolve().parent
    parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(parent, out_dir.name)
    temp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}{_TEMP_MARK}", dir=parent))
    try:
        os.chmod(temp, 0o777 & ~_umask())  # mkdtemp makes 0700; a report is for reading
        yield SiteWriter(temp)
        _swap_in(temp, parent / out_dir.name)
    finally:
        if temp.exists():
            shutil.rmtree(temp, ignore_errors=True)


def _swap_in(new: Path, target: Path) -> None:
    if not target.exists():
        os.rename(new, target)
        return
    if _exchange(new, target):
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old site
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}{_OLD_MARK}", dir=target.parent))
    os.rmdir(old)
    os.rename(target, old)
    os.rename(new, target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Exchange two paths atomically (Linux renameat2); False where that is not available."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    renameat2.restype = ctypes.c_int
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: the file system cannot
        return False
    raise OSError(errno, os.strerror(errno), str(b))


def _remove_leftovers(parent: Path, name: str) -> None:
    """Temporary folders of builds that were killed before they finished."""
    for mark in (_TEMP_MARK, _OLD_MARK):
        for leftover in parent.glob(f".{name}{mark}*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
