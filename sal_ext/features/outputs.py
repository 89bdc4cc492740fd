"""Where features go and how they are written.

Layout (THUMOS14's, what ``sal_ext.data`` reads)::

    OUT/features/<split>/rgb/<video>.npy     [T, 1024] float32
    OUT/features/<split>/flow/<video>.npy    [T, 1024] float32
    OUT/features.json                        {"settings": {...}, "videos": {"<split>/<video>": {...}}}

Every file is written to a temporary file in its folder and renamed over the target
(os.replace), with the permissions a plain new file gets under the umask: a kill leaves the
old file or the new one, never half of one. A video counts as done (and is skipped when the
command runs again) when features.json lists it, with the same settings, and both arrays exist
with its T rows.
"""
from __future__ import annotations

import io
import json
import os
from typing import Any, Dict, Optional

import numpy as np

from ..atomic_file import atomic_write  # noqa: F401  (re-export: one place for atomic writes)

FEATURES_JSON = "features.json"


def save_npy(path: str, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array, dtype=np.float32))
    atomic_write(path, buf.getvalue())


def save_json(path: str, obj: Any) -> None:
    atomic_write(path, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode())


def feature_paths(out: str, split: str, video: str) -> Dict[str, str]:
    base = os.path.join(out, "features", split)
    return {m: os.path.join(base, m, video + ".npy") for m in ("rgb", "flow")}


def record_key(split: str, video: str) -> str:
    """A video's key in features.json's "videos": "<split>/<video>"."""
    return f"{split}/{video}"


def read_record(out: str) -> Optional[Dict[str, Any]]:
    """OUT/features.json, or None when there is none; ValueError (one line) when unreadable."""
    path = os.path.join(out, FEATURES_JSON)
    if not os.path.exists(path):
        return None
    try:
        with open(path, "r", encoding="utf-8") as f:
            rec = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read it ({' '.join(str(exc).split())[:150]}); "
                         "remove it or use another --out") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("settings"), dict) or not isinstance(rec.get("videos"), dict):
        raise ValueError(f"{path}: not a features.json of sal_ext.features; remove it or use another --out")
    return rec


def is_done(out: str, split: str, video: str, entry: Optional[Dict[str, Any]]) -> bool:
    """The outputs of `video` exist and match its features.json entry (T rows of 1024)."""
    if not isinstance(entry, dict) or not isinstance(entry.get("T"), int) or entry.get("split") != split:
        return False
    for path in feature_paths(out, split, video).values():
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError, EOFError):
            return False
        if arr.shape != (entry["T"], 1024) or arr.dtype != np.float32:
            return False
    return True
