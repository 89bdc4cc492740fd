"""What a file really is, from its first bytes: for messages that name the real problem when
a loader (np.load, torch.load) fails on a file that is not what its name says.

No numpy or torch: only the file's first bytes are read.
"""
from __future__ import annotations

import os

_HEAD = 64


def sniff(path) -> str:
    """One of "empty", "npy" (NumPy .npy), "zip" (an .npz, or a torch.save checkpoint of
    torch >= 1.6), "pickle" (a Python pickle: a legacy torch.save file too), "text", "binary"."""
    with open(path, "rb") as f:
        head = f.read(_HEAD)
    if not head:
        return "empty"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        return "pickle"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of the head
            return "binary"
    return "text"


def describe(path) -> str:
    """A phrase for what `path` holds: "an empty file (0 bytes)", "a text file starting
    with '1 2 3'", ..."""
    kind = sniff(path)
    if kind == "text":
        with open(path, "rb") as f:
            first = f.read(_HEAD).decode("utf-8", "replace").strip().splitlines()
        start = first[0][:30] if first else ""
        return f"a text file starting with {start!r}"
    return {
        "empty": "an empty file (0 bytes)",
        "npy": "a NumPy .npy file",
        "zip": "a zip archive (an .npz, or a torch.save checkpoint)",
        "pickle": "a Python pickle",
        "binary": f"a binary file of {os.path.getsize(path)} bytes in no format this program reads",
    }[kind]
