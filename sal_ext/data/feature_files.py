"""Feature files (.npy): opening them, checking their shape and values, reading rows lazily.

Like the ground-truth checks, these collect problems (one line each, naming the video and
the file) instead of raising.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np


def open_npy(path: str, what: str, vid: str, mmap: bool):
    """np.load a feature file; (array or None, problems). mmap=True reads only the header."""
    if not os.path.isfile(path):
        return None, [f"video {vid}: missing {what} file [{path}]"]
    try:
        if mmap:
            try:
                arr = np.load(path, mmap_mode="r", allow_pickle=False)
            except ValueError:
                # empty arrays cannot be memory-mapped; object arrays fail again just below
                arr = np.load(path, allow_pickle=False)
        else:
            arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any reading failure is reported, not raised
        return None, [f"video {vid}: unreadable {what} file: {type(exc).__name__}: {exc} [{path}]"]
    if not isinstance(arr, np.ndarray):
        return None, [f"video {vid}: {what} file holds a {type(arr).__name__}, not one array [{path}]"]
    return arr, []


def array_problems(arr, what: str, vid: str, path: str, width: Optional[int], content: bool) -> list[str]:
    """Shape/dtype problems of a [T, width] feature array; NaN/Inf too when content=True."""
    tail = f" [{path}]"
    if not isinstance(arr, np.ndarray):
        return [f"video {vid}: {what} is a {type(arr).__name__}, not a numeric array" + tail]
    if arr.dtype.kind not in "fiu":
        return [f"video {vid}: {what} have dtype {arr.dtype}, not a real number type" + tail]
    if arr.ndim != 2:
        return [f"video {vid}: {what} have shape {tuple(arr.shape)}, expected [T, {width or 'D'}]" + tail]
    out = []
    if width is not None and arr.shape[1] != width:
        out.append(f"video {vid}: {what} have width {arr.shape[1]}, expected {width}" + tail)
    if arr.shape[0] < 1:
        out.append(f"video {vid}: {what} have no rows (T = 0)" + tail)
    if content and arr.size and not out:
        bad = ~np.isfinite(np.asarray(arr, dtype=np.float32))
        if bad.any():
            row = int(np.argwhere(bad.any(axis=1))[0, 0])
            out.append(
                f"video {vid}: {what} contain {int(bad.sum())} NaN/Inf value(s) (first in row {row}) "
                "(or values too large for float32)" + tail
            )
    return out


class LazyRows:
    """Rows of one video read on demand (memory-mapped), for datasets built with cache=False."""

    def __init__(self, vid: str, paths: Sequence[str], whats: Sequence[str]):
        self.vid = vid
        self.paths = list(paths)
        self.whats = list(whats)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        parts = []
        for path, what in zip(self.paths, self.whats):
            arr, probs = open_npy(path, what, self.vid, mmap=True)
            if probs:
                raise ValueError(probs[0])
            part = np.asarray(arr[idx], dtype=np.float32)
            bad = array_problems(part, what, self.vid, path, None, content=True)
            if bad:
                raise ValueError(bad[0])
            parts.append(part)
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
