"""Printing results: one protocol's table, the protocols side by side, the JSON line."""
from __future__ import annotations

from typing import Any, Dict, List

import numpy as np


def format_table(res: Dict[str, Any]) -> str:
    """mAP (%) per threshold and their mean, the named averages, per-class AP if present."""
    thr = res["tiou"]
    lines = [f"{'tIoU':>10s} " + " ".join(f"{t:7.3g}" for t in thr) + "     avg",
             f"{'mAP (%)':>10s} " + " ".join(f"{100 * m:7.2f}" for m in res["mAP"]) + f" {100 * res['average']:7.2f}"]
    for name, v in res["averages"].items():
        lines.append(f"average mAP@{name}: {100 * v:.2f}")
    if res.get("per_class"):
        width = max(10, max(len(str(k)) for k in res["per_class"]))
        lines.append("")
        lines.append(f"{'class':>{width}s} " + " ".join(f"{t:7.3g}" for t in thr) + "     avg")
        for name, aps in res["per_class"].items():
            lines.append(f"{str(name):>{width}s} " + " ".join(f"{100 * a:7.2f}" for a in aps)
                         + f" {100 * float(np.mean(aps)):7.2f}")
    return "\n".join(lines)


def dropped_line(res: Dict[str, Any]) -> str:
    """One line on what was not evaluated as given: unknown labels, videos outside the subset."""
    d, n_vid = res["dropped"], res["unknown_videos"]
    parts = [f"{d['unknown_label']} prediction(s) with a label absent from the ground truth dropped"]
    if d["unknown_video"]:
        parts.append(f"{d['unknown_video']} prediction(s) on {n_vid} video(s) outside the subset dropped "
                     "(--drop-unknown-videos)")
    elif n_vid:
        parts.append(f"predictions on {n_vid} video(s) outside the subset counted as false positives")
    return "; ".join(parts)


def table_columns(results: Dict[str, Dict[str, Any]]):
    """(thresholds: the union, sorted; average labels: the union, in order of appearance)."""
    thr: List[float] = []
    for r in results.values():
        for t in r["tiou"]:
            if not any(abs(t - u) <= 1e-9 for u in thr):
                thr.append(t)
    labels = list(dict.fromkeys(k for r in results.values() for k in r["averages"]))
    return sorted(thr), labels


def table_rows(results: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """{"tiou": [...], "averages": [labels], "rows": {protocol: {"mAP": [x or None per
    threshold], "averages": {label: x}}}}: the side-by-side table as data (fractions)."""
    thr, labels = table_columns(results)
    rows = {}
    for name, r in results.items():
        m = [next((v for t, v in zip(r["tiou"], r["mAP"]) if abs(t - u) <= 1e-9), None) for u in thr]
        rows[name] = {"mAP": m, "averages": {k: r["averages"][k] for k in labels if k in r["averages"]}}
    return {"tiou": thr, "averages": labels, "rows": rows}


def format_protocol_table(results: Dict[str, Dict[str, Any]]) -> str:
    """Rows = protocols, columns = thresholds then averages (mAP %); '-' where not evaluated."""
    tab = table_rows(results)
    heads = [f"{t:g}" for t in tab["tiou"]] + [f"avg {k}" for k in tab["averages"]]
    w = [max(6, len(h)) for h in heads]
    first = max(len("protocol"), max(len(p) for p in results))
    lines = [f"{'mAP (%)':<{first}s} " + " ".join(f"{h:>{n}s}" for h, n in zip(heads, w))]
    for name, row in tab["rows"].items():
        vals = row["mAP"] + [row["averages"].get(k) for k in tab["averages"]]
        lines.append(f"{name:<{first}s} " + " ".join(
            f"{'-' if v is None else f'{100 * v:.2f}':>{n}s}" for v, n in zip(vals, w)))
    return "\n".join(lines)


def to_json(res: Dict[str, Any]) -> Dict[str, Any]:
    out = {k: v for k, v in res.items() if k != "ap"}
    if "per_class" in out:
        out["per_class"] = {str(k): v for k, v in out["per_class"].items()}
    return out
