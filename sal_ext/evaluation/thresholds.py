"""tIoU thresholds: each protocol's defaults, the ``--tiou`` syntax, and the named averages.

An average is reported only where the thresholds cover its range (both ends present), and is
labelled by what it really averages: ``"lo:hi"`` when those are exactly the protocol's default
thresholds in that range (the names papers use: ``0.1:0.7``, ``0.5:0.95``), ``"lo:hi:step"``
for another evenly spaced grid, else the list (``"0.1,0.3,0.7"``).
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np

from ..numpy_ops.detection import check_thresholds

PROTOCOLS = ("activitynet", "wtalc", "thumos14")

# (protocol, dataset) -> default thresholds and named average ranges; the dataset matters for
# the activitynet protocol only (the other two are THUMOS14's).
_THUMOS = {"tiou": np.linspace(0.1, 0.7, 7), "averages": [(0.1, 0.5), (0.3, 0.7), (0.1, 0.7)]}
DEFAULTS = {
    ("activitynet", "thumos14"): _THUMOS,
    ("activitynet", "activitynet"): {"tiou": np.linspace(0.5, 0.95, 10), "averages": [(0.5, 0.95)]},
    ("wtalc", None): {"tiou": np.linspace(0.1, 0.9, 9),
                      "averages": [(0.1, 0.5), (0.3, 0.7), (0.1, 0.7), (0.1, 0.9)]},
    ("thumos14", None): _THUMOS,
}
DATASETS = ("thumos14", "activitynet")
_EPS = 1e-9


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"`protocol` must be one of {list(PROTOCOLS)}, got {protocol!r}")
    return protocol


def _defaults(protocol: str, dataset: str):
    check_protocol(protocol)
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {sorted(DATASETS)}, got {dataset!r}")
    return DEFAULTS[(protocol, dataset if protocol == "activitynet" else None)]


def default_thresholds(dataset: str = "thumos14", protocol: str = "activitynet") -> np.ndarray:
    return _defaults(protocol, dataset)["tiou"].copy()


def parse_tiou(text: str) -> np.ndarray:
    """``"a,b,c"`` -> those floats exactly; ``"start:stop:step"`` -> np.linspace inclusive."""
    text = text.strip()
    try:
        if ":" in text:
            parts = [float(p) for p in text.split(":")]
            if len(parts) != 3:
                raise ValueError
            start, stop, step = parts
            if step <= 0 or stop < start:
                raise ValueError
            steps = (stop - start) / step
            n = int(round(steps))
            if abs(steps - n) > 1e-6:
                raise ValueError
            thr = np.linspace(start, stop, n + 1)
        else:
            thr = np.asarray([float(p) for p in text.split(",")], dtype=np.float64)  # "" raises
    except ValueError:
        raise ValueError(f"--tiou: expected a comma-separated list (0.3,0.5) or start:stop:step "
                         f"(0.1:0.7:0.1, step dividing the range), got {text!r}") from None
    return check_unique(check_thresholds(thr, "--tiou"), "--tiou")


def check_unique(thr: np.ndarray, name: str) -> np.ndarray:
    """thr itself; ValueError naming `name` when a threshold is given twice (its AP would
    count twice in every average)."""
    values, counts = np.unique(thr, return_counts=True)
    if (counts > 1).any():
        twice = ", ".join(f"{v:g}" for v in values[counts > 1])
        raise ValueError(f"{name}: each threshold once, got {twice} more than once in {thr.tolist()}")
    return thr


def _label(sel: np.ndarray, lo: float, hi: float, default: np.ndarray) -> str:
    dsel = default[(default >= lo - _EPS) & (default <= hi + _EPS)]
    if len(sel) == len(dsel) and np.allclose(sel, dsel, rtol=0, atol=_EPS):
        return f"{lo:g}:{hi:g}"
    if len(sel) >= 3:
        step = np.diff(sel)
        if np.allclose(step, step[0], rtol=0, atol=1e-7):
            return f"{sel[0]:g}:{sel[-1]:g}:{step[0]:.6g}"
    return ",".join(f"{t:g}" for t in sel)


def averages(thr: np.ndarray, m_ap: np.ndarray, protocol: str = "activitynet",
             dataset: str = "thumos14") -> Dict[str, float]:
    """{label: mean mAP} for the protocol's named ranges that ``thr`` covers (module docstring)."""
    d = _defaults(protocol, dataset)
    thr = np.asarray(thr, np.float64)
    order = np.argsort(thr, kind="stable")
    thr, m_ap = thr[order], np.asarray(m_ap)[order]
    out: Dict[str, float] = {}
    for lo, hi in d["averages"]:
        sel = (thr >= lo - _EPS) & (thr <= hi + _EPS)
        if not sel.any() or abs(thr[sel][0] - lo) > _EPS or abs(thr[sel][-1] - hi) > _EPS:
            continue  # the range is not covered: no number under its name
        out.setdefault(_label(thr[sel], lo, hi, d["tiou"]), float(np.mean(m_ap[sel])))
    return out


def average_ranges(protocol: str, dataset: str = "thumos14") -> Tuple[Tuple[float, float], ...]:
    return tuple(_defaults(protocol, dataset)["averages"])
