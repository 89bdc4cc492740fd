"""A tqdm bar around a loop over videos, shown only when it helps."""
from __future__ import annotations

import sys


def progress_iter(items, *, total=None, desc="", progress=None, min_items=50):
    """Wrap `items` in a tqdm bar: progress None = only on a terminal and for many items."""
    n = total if total is not None else (len(items) if hasattr(items, "__len__") else None)
    if progress is None:
        show = bool(n is not None and n >= min_items and sys.stderr.isatty())
    else:
        show = bool(progress)
    if not show:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, total=n, desc=desc, leave=False, file=sys.stderr)
