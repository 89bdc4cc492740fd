"""Statistics of a seed sweep: for each checkpoint selection, per tIoU threshold and per
average, the mean, standard deviation, min and max over the seeds, and their text and
markdown tables.

The standard deviation is the sample one (ddof=1, numpy.std(..., ddof=1)): the spread a
reader should expect between two runs of different seeds. With one seed it is undefined
(None, printed as "-"). Values are fractions in the JSON, percentages in the tables.
"""
from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .run_results import SELECTION_TITLES, SELECTIONS, columns, values


def summarize(per_seed: Mapping[Any, Mapping[str, Optional[Dict[str, Any]]]]) -> Dict[str, Any]:
    """{selection: {"columns", "n", "seeds", "steps", "mean", "std", "min", "max"}} over the
    seeds that have that selection (selections no seed has are left out).

    per_seed: {seed: run_results.selections(run)}. Every seed's entries of one selection
    must have the same columns (one preset); ValueError otherwise."""
    out: Dict[str, Any] = {}
    for sel in SELECTIONS:
        have = [(s, e[sel]) for s, e in per_seed.items() if e.get(sel) is not None]
        if not have:
            continue
        cols = columns(have[0][1])
        for s, e in have:
            if columns(e) != cols:
                raise ValueError(f"seed {s}: its {sel} columns {columns(e)} differ from seed "
                                 f"{have[0][0]}'s {cols}")
        x = np.array([values(e) for _, e in have], dtype=np.float64)   # [seeds, columns]
        std = np.std(x, axis=0, ddof=1).tolist() if len(have) > 1 else None
        out[sel] = {"columns": cols, "n": len(have), "seeds": [s for s, _ in have],
                    "steps": [int(e["step"]) for _, e in have],
                    "mean": np.mean(x, axis=0).tolist(), "std": std,
                    "min": np.min(x, axis=0).tolist(), "max": np.max(x, axis=0).tolist()}
    return out


def _cell(stats: Dict[str, Any], j: int) -> str:
    mean = 100 * stats["mean"][j]
    if stats["std"] is None:
        return "%.2f" % mean
    return "%.2f ± %.2f" % (mean, 100 * stats["std"][j])


def _range(stats: Dict[str, Any], j: int) -> str:
    return "%.2f–%.2f" % (100 * stats["min"][j], 100 * stats["max"][j])


def _steps(stats: Dict[str, Any]) -> str:
    return "steps " + ", ".join(str(s) for s in stats["steps"])


def format_text(summary: Dict[str, Any], title: str = "") -> str:
    """The summary as aligned text: per selection, a row of mean ± std and a row of min–max."""
    lines = [title] if title else []
    for sel in SELECTIONS:
        st = summary.get(sel)
        if st is None:
            continue
        cells = [_cell(st, j) for j in range(len(st["columns"]))]
        ranges = [_range(st, j) for j in range(len(st["columns"]))]
        w = max(len(c) for c in st["columns"] + cells + ranges) + 2
        lines.append(f"{SELECTION_TITLES[sel]}: {st['n']} seeds ({_steps(st)})")
        lines.append(" " * 10 + "".join(c.rjust(w) for c in st["columns"]))
        lines.append(("mean ± sd" if st["std"] is not None else "mean").ljust(10)
                     + "".join(c.rjust(w) for c in cells))
        lines.append("min–max".ljust(10) + "".join(c.rjust(w) for c in ranges))
    return "\n".join(lines)


def format_markdown(summary: Dict[str, Any], title: str = "") -> str:
    """The summary as markdown tables: rows = selections (mean ± sd, then min–max), columns =
    thresholds and averages, all in %."""
    have = [s for s in SELECTIONS if s in summary]
    if not have:
        return ""
    cols = summary[have[0]]["columns"]
    lines = [f"**{title}**", ""] if title else []
    lines.append("| selection | n | " + " | ".join(cols) + " |")
    lines.append("|---|---:|" + "---:|" * len(cols))
    for sel in have:
        st = summary[sel]
        lines.append(f"| {sel} | {st['n']} | " + " | ".join(_cell(st, j) for j in range(len(cols))) + " |")
        lines.append(f"| {sel} min–max | | " + " | ".join(_range(st, j) for j in range(len(cols))) + " |")
    return "\n".join(lines)


def per_seed_rows(per_seed: Mapping[Any, Mapping[str, Optional[Dict[str, Any]]]], sel: str,
                  column: str) -> List[Sequence[Any]]:
    """[(seed, step, value %)] of one selection and column (e.g. "avg 0.1:0.7")."""
    rows = []
    for s, e in per_seed.items():
        ent = e.get(sel)
        if ent is None:
            continue
        cols = columns(ent)
        if column in cols:
            rows.append((s, int(ent["step"]), 100 * values(ent)[cols.index(column)]))
    return rows
