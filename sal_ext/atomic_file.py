"""Atomic file writes: the bytes go to a temporary file in the target's folder, are flushed to
disk and renamed over the target (os.replace), so a kill leaves the old file or the new one,
never half of one. The file gets the permissions a plain ``open(path, "w")`` would give it:
those of the file it replaces, else 0o666 less the umask (not mkstemp's 0o600)."""
from __future__ import annotations

import os
import stat
import tempfile


def open_mode(path: str) -> int:
    """The permission bits open(path, "w") leaves on path: an existing file keeps its own,
    a new one gets 0o666 less the process umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        mask = os.umask(0)  # the only portable way to read the umask: set it and put it back
        os.umask(mask)
        return 0o666 & ~mask


def atomic_write(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically (module doc), creating its folder."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    mode = open_mode(path)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
