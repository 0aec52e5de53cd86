"""Files tracekit creates are its user's alone: 0600 for files, 0700 for directories.

The store holds prompts, tool outputs and whatever secrets slipped past redaction, so the store, its WAL, the log,
export files and state files must not be readable by other local users. Directories the user chose (and that exist)
are left as they are; directories tracekit creates are owner-only.

DuckDB creates the store's WAL itself, deleting and re-creating it at every checkpoint with the process umask, so
`restrict_umask()` (called once by the `tracekit` command) is what keeps the WAL owner-only; the helpers below give
every file tracekit opens itself the right mode whatever the umask.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700
OWNER_ONLY_UMASK = 0o077


def restrict_umask() -> None:
    """Make everything this process creates from now on owner-only (files DuckDB creates included)."""
    os.umask(os.umask(OWNER_ONLY_UMASK) | OWNER_ONLY_UMASK)


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents as 0700 directories; existing ones keep their mode."""
    missing: list[Path] = []
    current = Path(path)
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, DIRECTORY_MODE)
        except FileExistsError:
            pass
    return Path(path)


def _private_opener(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, FILE_MODE)


def open_private(path: Path, mode: str = "w", **kwargs: Any) -> IO[Any]:
    """`open()` that creates the file 0600 (and refuses to follow a symlink planted at `path`)."""
    private_dir(Path(path).parent)
    return open(path, mode, opener=_private_opener, **kwargs)


def write_private_atomically(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a fresh 0600 temporary file beside it and an atomic rename.

    The temporary file gets an unpredictable name and is created exclusively (mkstemp), so nobody can pre-create it
    to read what is written, and the rename replaces whatever sits at `path` without following it.
    """
    private_dir(Path(path).parent)
    fd, temporary = tempfile.mkstemp(prefix=f".{Path(path).name}.", suffix=".tmp", dir=Path(path).parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def untrusted_reason(st: os.stat_result, uid: int | None = None) -> str | None:
    """Why a file with this stat must not be trusted by user `uid` (default: this process's), or None if it can be.

    A file another user owns, or one that others can write, may have been planted to redirect or fool tracekit.
    """
    uid = os.getuid() if uid is None else uid
    if not stat.S_ISREG(st.st_mode):
        return "it is not a regular file"
    if st.st_uid != uid:
        return f"it is owned by uid {st.st_uid}, not by this user (uid {uid})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return f"others can write it (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def read_trusted(path: Path, uid: int | None = None) -> bytes:
    """The content of `path` if this user may trust it (see `untrusted_reason`); raise PermissionError otherwise.

    Opened without following symlinks and checked on the open descriptor, so the file cannot be swapped in between.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    try:
        reason = untrusted_reason(os.fstat(fd), uid)
        if reason is not None:
            raise PermissionError(f"{path}: {reason}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            return handle.read()
    finally:
        os.close(fd)
