"""Temporal action detection evaluation: ActivityNet-protocol mAP at several tIoU thresholds.

Command line::

    python -m sal_ext.evaluate --gt gt.json --pred results.json [--subset test]
        [--tiou LIST | --dataset thumos14|activitynet] [--per-class] [--json]

prints a table of mAP (in %) per tIoU threshold and the dataset's averages (THUMOS14:
0.1:0.5, 0.3:0.7, 0.1:0.7; ActivityNet: 0.5:0.95), per-class AP with ``--per-class``; with
``--json`` the last line printed is a JSON object (fractions in [0, 1], not %)::

    {"tiou": [...], "mAP": [...], "average": x, "averages": {...}, "num_gt": n, "num_pred": n,
     "subset": s, "per_class": {...}}   # per_class only with --per-class

``--tiou`` is either a comma-separated list (``0.3,0.5,0.7``: the floats exactly as written)
or ``start:stop:step`` (``0.1:0.7:0.1``): like ``np.linspace(start, stop, n)`` with
``n = round((stop - start) / step) + 1``, i.e. both ends included, the values np.linspace
gives (so ``0.1:0.7:0.1`` is exactly the THUMOS14 default). Defaults: thumos14 =
``np.linspace(0.1, 0.7, 7)``, activitynet = ``np.linspace(0.5, 0.95, 10)``.

Files:
* ground truth: ``{"database": {video: {"subset": s, "annotations": [{"label": l,
  "segment": [start, end]}, ...]}}}`` (other keys ignored);
* predictions: ``{"results": {video: [{"label": l, "score": x, "segment": [start, end]}, ...]}}``.

Rules (the official ActivityNet evaluator, Evaluation/eval_detection.py, unless said):
* ``subset=None`` means "test" when some video has subset "test", else every video.
* Classes are the labels present in the ground truth of the subset; mAP is the mean of their
  APs. A class with no prediction gets AP 0.
* A prediction on a video that is not in the evaluated ground-truth subset (a video of
  another subset, or one absent from the ground truth) is a false positive of its class, as
  in the official code (its predictions enter the per-class ranking and can never match). So
  is a prediction on a subset video without annotations. ``drop_unknown_videos=True``
  (``--drop-unknown-videos``) instead ignores the predictions of videos outside the subset
  (one warning saying how many): an explicit opt-in, not the official number.
* A predicted label absent from the ground truth of the subset is ignored with one warning
  that says how many predictions were dropped (the official code raises KeyError there);
  the count is also in the result (``dropped``) and printed by the command line.
* Malformed input (missing key, non-numeric or non-finite segment, end < start, NaN or
  non-numeric score) raises ValueError naming the video and the field.
* Zero-length segments are legal and never match (the official code's 0/0 = NaN tIoU makes
  a zero-length prediction match a zero-length ground truth: not copied).
* Matching, tie rules and the interpolated AP: see ``sal_ext.ops.detection``.

Python API: ``detection_map(gt, pred, ...)`` (paths or loaded dicts),
``detection_map_arrays(...)`` (tensors/arrays, for the trainer) and
``average_recall_vs_proposals(gt, proposals, ...)`` (ActivityNet proposal metric, AR@AN).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from itertools import chain, repeat
from operator import itemgetter
from numbers import Real
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .ops.detection import check_thresholds, detection_ap

DATASETS = {
    "thumos14": {"tiou": np.linspace(0.1, 0.7, 7), "averages": [(0.1, 0.5), (0.3, 0.7), (0.1, 0.7)]},
    "activitynet": {"tiou": np.linspace(0.5, 0.95, 10), "averages": [(0.5, 0.95)]},
}

JsonLike = Union[str, "os.PathLike[str]", Dict[str, Any]]


# --------------------------------------------------------------------------- loading
def _load(obj: JsonLike, what: str) -> Dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        with open(obj, "r") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{what} file {os.fspath(obj)!r} is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{what} file {os.fspath(obj)!r} must hold a JSON object")
        return data
    raise TypeError(f"{what} must be a path or a dict, got {type(obj).__name__}")


def _number(x, where: str, field: str) -> float:
    if isinstance(x, bool) or not isinstance(x, Real):
        raise ValueError(f"{where}: `{field}` must be a number, got {x!r}")
    return float(x)


def _segment(seg, where: str) -> Tuple[float, float]:
    if not isinstance(seg, (list, tuple)) or len(seg) != 2:
        raise ValueError(f"{where}: `segment` must be [start, end], got {seg!r}")
    s, e = _number(seg[0], where, "segment"), _number(seg[1], where, "segment")
    if not (math.isfinite(s) and math.isfinite(e)):
        raise ValueError(f"{where}: `segment` must be finite, got {seg!r}")
    if e < s:
        raise ValueError(f"{where}: `segment` has end < start: {seg!r}")
    return s, e


def _label(lab, where: str):
    if isinstance(lab, bool) or not isinstance(lab, (str, int)):
        raise ValueError(f"{where}: `label` must be a string or an int, got {lab!r}")
    return lab


def load_ground_truth(gt: JsonLike, subset: Optional[str] = None):
    """Parses a ground-truth file/dict.

    Returns (subset, videos, classes, video_idx [G], label_idx [G], segments [G, 2]) where
    ``videos`` are the video names of the subset (annotated or not) and ``classes`` the labels
    present, in order of first appearance.
    """
    data = _load(gt, "ground truth")
    if "database" not in data:
        raise ValueError("ground truth: missing key `database`")
    db = data["database"]
    if not isinstance(db, dict):
        raise ValueError("ground truth: `database` must be an object {video: {...}}")
    for vid, v in db.items():
        if not isinstance(v, dict) or "subset" not in v:
            raise ValueError(f"ground truth video {vid!r}: missing field `subset`")
    if subset is None:
        subset = "test" if any(v["subset"] == "test" for v in db.values()) else None
    videos = [vid for vid, v in db.items() if subset is None or v["subset"] == subset]
    if not videos:
        have = sorted({str(v["subset"]) for v in db.values()})
        raise ValueError(f"ground truth: no video in subset {subset!r} (subsets: {have})")
    classes: Dict[Any, int] = {}
    vidx, lidx, segs = [], [], []
    for n, vid in enumerate(videos):
        anns = db[vid].get("annotations")
        if anns is None:
            raise ValueError(f"ground truth video {vid!r}: missing field `annotations`")
        if not isinstance(anns, list):
            raise ValueError(f"ground truth video {vid!r}: `annotations` must be a list")
        for k, ann in enumerate(anns):
            where = f"ground truth video {vid!r}, annotation {k}"
            if not isinstance(ann, dict):
                raise ValueError(f"{where}: must be an object with `label` and `segment`")
            for field in ("label", "segment"):
                if field not in ann:
                    raise ValueError(f"{where}: missing field `{field}`")
            lab = _label(ann["label"], where)
            segs.append(_segment(ann["segment"], where))
            lidx.append(classes.setdefault(lab, len(classes)))
            vidx.append(n)
    if not segs:
        raise ValueError(f"ground truth: subset {subset!r} has no annotations")
    return (subset, videos, list(classes), np.asarray(vidx, np.int64), np.asarray(lidx, np.int64),
            np.asarray(segs, np.float64).reshape(-1, 2))


class _SlowPath(Exception):
    """The fast parser met something unusual: the checking parser finds and names it."""


def _fast_predictions(res, vmap, cmap, with_labels):
    """Vectorised parse of well-formed predictions (the common case); _SlowPath otherwise.

    C-level loops only (map/itemgetter, np.fromiter): ~10x faster than a Python loop.
    """
    counts, vids = [], []
    for vid, items in res.items():
        if type(items) is not list:
            raise _SlowPath
        counts.append(len(items))
        vids.append(vmap.get(vid, -1))
    flat = list(chain.from_iterable(res.values()))
    n = len(flat)
    try:
        scores = list(map(itemgetter("score"), flat))
        segs = list(map(itemgetter("segment"), flat))
        labels = list(map(itemgetter("label"), flat)) if with_labels else None
    except (KeyError, TypeError, IndexError):
        raise _SlowPath from None
    if not set(map(type, scores)) <= {float, int} or not set(map(type, segs)) <= {list, tuple}:
        raise _SlowPath
    if n and set(map(len, segs)) != {2}:
        raise _SlowPath
    ends = list(chain.from_iterable(segs))
    if not set(map(type, ends)) <= {float, int}:
        raise _SlowPath
    score = np.fromiter(scores, dtype=np.float64, count=n)
    seg = np.fromiter(ends, dtype=np.float64, count=2 * n).reshape(n, 2)
    if np.isnan(score).any() or not np.isfinite(seg).all() or (seg[:, 1] < seg[:, 0]).any():
        raise _SlowPath
    if with_labels:
        if not set(map(type, labels)) <= {str, int}:
            raise _SlowPath
        lab = np.fromiter(map(cmap.get, labels, repeat(-1, n)), dtype=np.int64, count=n)
    else:
        lab = np.zeros(n, np.int64)
    vid = np.repeat(np.asarray(vids, np.int64), counts)
    return vid, lab, score, seg, labels


def _checked_predictions(res, vmap, cmap, with_labels, what):
    """Item-by-item parse that raises ValueError naming the video, entry and field."""
    vidx, lidx, scores, segs, labels = [], [], [], [], []
    for vid, items in res.items():
        if not isinstance(items, list):
            raise ValueError(f"{what} video {vid!r}: must be a list of predictions")
        for k, item in enumerate(items):
            where = f"{what} video {vid!r}, entry {k}"
            if not isinstance(item, dict):
                raise ValueError(f"{where}: must be an object")
            fields = ("label", "score", "segment") if with_labels else ("score", "segment")
            for field in fields:
                if field not in item:
                    raise ValueError(f"{where}: missing field `{field}`")
            score = _number(item["score"], where, "score")
            if math.isnan(score):
                raise ValueError(f"{where}: `score` is NaN")
            segs.append(_segment(item["segment"], where))
            scores.append(score)
            vidx.append(vmap.get(vid, -1))
            if with_labels:
                lab = _label(item["label"], where)
                labels.append(lab)
                lidx.append(cmap.get(lab, -1))
            else:
                lidx.append(0)
    return (np.asarray(vidx, np.int64), np.asarray(lidx, np.int64), np.asarray(scores, np.float64),
            np.asarray(segs, np.float64).reshape(-1, 2), labels)


def load_predictions(pred: JsonLike, videos: Sequence[str], classes: Sequence[Any], *,
                     with_labels: bool = True, what: str = "predictions",
                     drop_unknown_videos: bool = False, report: Optional[Dict[str, int]] = None):
    """Parses a prediction file/dict against the ground truth's videos and classes.

    Returns (video_idx [P], label_idx [P], score [P], segments [P, 2]). Videos of the subset
    get the index of ``videos``; a video outside it gets ``len(videos) + k`` (k-th such video
    in file order), so it has no ground truth and its predictions are false positives (the
    official rule); with ``drop_unknown_videos`` they are dropped with one warning instead.
    Predictions of labels absent from ``classes`` are dropped with one warning. ``report``,
    when given, receives ``unknown_videos`` (videos outside the subset), ``dropped_video``
    and ``dropped_label`` (numbers of predictions dropped).
    """
    data = _load(pred, what)
    if "results" not in data:
        raise ValueError(f"{what}: missing key `results`")
    res = data["results"]
    if not isinstance(res, dict):
        raise ValueError(f"{what}: `results` must be an object {{video: [...]}}")
    vmap = {v: i for i, v in enumerate(videos)}
    unknown_videos = [v for v in res if v not in vmap]
    for v in unknown_videos:
        vmap[v] = len(vmap)
    cmap = {c: i for i, c in enumerate(classes)}
    try:
        vid, lab, score, seg, labels = _fast_predictions(res, vmap, cmap, with_labels)
    except _SlowPath:
        vid, lab, score, seg, labels = _checked_predictions(res, vmap, cmap, with_labels, what)
    keep = np.ones(len(vid), bool)
    outside = vid >= len(videos)
    if drop_unknown_videos and unknown_videos:
        shown = ", ".join(repr(v) for v in unknown_videos[:5]) + (", ..." if len(unknown_videos) > 5 else "")
        warnings.warn(f"{what}: {len(unknown_videos)} video(s) not in the ground-truth subset ({shown}); "
                      f"their {int(outside.sum())} prediction(s) are ignored (drop_unknown_videos)",
                      stacklevel=3)
        keep &= ~outside
    bad_label = keep & (lab < 0)
    if bad_label.any():
        unknown = list(dict.fromkeys(labels[i] for i in np.flatnonzero(bad_label)))
        shown = ", ".join(repr(k) for k in unknown[:5]) + (", ..." if len(unknown) > 5 else "")
        warnings.warn(f"{what}: {len(unknown)} label(s) absent from the ground truth ({shown}); "
                      f"their {int(bad_label.sum())} prediction(s) are dropped", stacklevel=3)
    if report is not None:
        report.update(unknown_videos=len(unknown_videos),
                      dropped_video=int(outside.sum()) if drop_unknown_videos else 0,
                      dropped_label=int(bad_label.sum()))
    keep &= lab >= 0
    return vid[keep], lab[keep], score[keep], seg[keep]


# --------------------------------------------------------------------------- thresholds
def default_thresholds(dataset: str) -> np.ndarray:
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {sorted(DATASETS)}, got {dataset!r}")
    return DATASETS[dataset]["tiou"].copy()


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
            thr = np.asarray([float(p) for p in text.split(",") if p.strip()], dtype=np.float64)
    except ValueError:
        raise ValueError(f"--tiou: expected a comma-separated list (0.3,0.5) or start:stop:step "
                         f"(0.1:0.7:0.1, step dividing the range), got {text!r}") from None
    return check_thresholds(thr, "--tiou")


# --------------------------------------------------------------------------- mAP
def _averages(thr: np.ndarray, m_ap: np.ndarray, dataset: str) -> Dict[str, float]:
    out = {}
    for lo, hi in DATASETS[dataset]["averages"]:
        sel = (thr >= lo - 1e-9) & (thr <= hi + 1e-9)
        if sel.any():
            out[f"{lo:g}:{hi:g}"] = float(np.mean(m_ap[sel]))
    return out


def _as_tensor(x, dtype, name):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(dtype).contiguous()
    try:
        return torch.as_tensor(np.asarray(x), dtype=dtype).contiguous()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"detection_map_arrays: `{name}` must be array-like: {exc}") from None


def detection_map_arrays(pred_video, pred_label, pred_score, pred_segments, gt_video, gt_label,
                         gt_segments, num_classes: Optional[int] = None, tiou_thresholds=None,
                         dataset: str = "thumos14", class_names: Optional[Sequence[Any]] = None,
                         per_class: bool = True, backend: Optional[str] = None) -> Dict[str, Any]:
    """mAP from arrays/tensors (integer video ids and class indices).

    Here the caller's ground truth defines the evaluation: a prediction for a video without
    ground truth of its class is a false positive (as in the official code); mAP averages
    the classes with at least one ground truth. ``num_classes`` defaults to
    ``max(label) + 1``. Returns the dict of :func:`detection_map`.
    """
    thr = default_thresholds(dataset) if tiou_thresholds is None else check_thresholds(tiou_thresholds, "detection_map")
    pv = _as_tensor(pred_video, torch.int64, "pred_video")
    pl = _as_tensor(pred_label, torch.int64, "pred_label")
    ps = _as_tensor(pred_score, torch.float64, "pred_score")
    pseg = _as_tensor(pred_segments, torch.float64, "pred_segments").reshape(-1, 2)
    gv = _as_tensor(gt_video, torch.int64, "gt_video")
    gl = _as_tensor(gt_label, torch.int64, "gt_label")
    gseg = _as_tensor(gt_segments, torch.float64, "gt_segments").reshape(-1, 2)
    if gl.numel() == 0:
        raise ValueError("detection_map: the ground truth is empty")
    if num_classes is None:
        num_classes = int(max(gl.max().item(), pl.max().item() if pl.numel() else 0)) + 1
    ap = detection_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, num_classes, backend=backend).numpy()
    num_gt = np.bincount(gl.numpy(), minlength=num_classes)
    present = np.flatnonzero(num_gt > 0)
    m_ap = ap[:, present].mean(axis=1)
    out = {"tiou": thr.tolist(), "mAP": m_ap.tolist(), "average": float(m_ap.mean()),
           "averages": _averages(thr, m_ap, dataset), "num_gt": int(gl.numel()),
           "num_pred": int(pl.numel()), "ap": ap}
    if per_class:
        names = list(class_names) if class_names is not None else list(range(num_classes))
        out["per_class"] = {names[c]: ap[:, c].tolist() for c in present}
    return out


def detection_map(gt: JsonLike, pred: JsonLike, tiou_thresholds=None, subset: Optional[str] = None,
                  dataset: str = "thumos14", per_class: bool = True,
                  backend: Optional[str] = None, *, drop_unknown_videos: bool = False) -> Dict[str, Any]:
    """ActivityNet-protocol detection mAP of a prediction file against a ground-truth file.

    Args:
        gt, pred: paths to the JSON files or the already loaded dicts (see the module docstring).
        tiou_thresholds: sequence of floats in (0, 1], used exactly; None: the dataset default.
        subset: ground-truth subset; None: "test" if present, else all videos.
        dataset: "thumos14" or "activitynet" (default thresholds and named averages).
        per_class: include {class name: [AP per tIoU]}.
        drop_unknown_videos: ignore (instead of counting as false positives) the predictions
            of videos outside the ground-truth subset; not the official number.

    Returns:
        {"tiou": [...], "mAP": [... per tIoU, fraction ...], "average": mean of mAP,
         "averages": {"0.1:0.5": x, ...}, "per_class": {...}, "num_gt": G, "num_pred": P,
         "subset": s, "ap": ndarray [n_tiou, n_classes],
         "dropped": {"unknown_label": n, "unknown_video": n}, "unknown_videos": n}
    """
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {sorted(DATASETS)}, got {dataset!r}")
    subset, videos, classes, gv, gl, gseg = load_ground_truth(gt, subset)
    report: Dict[str, int] = {}
    pv, pl, ps, pseg = load_predictions(pred, videos, classes, drop_unknown_videos=drop_unknown_videos,
                                        report=report)
    out = detection_map_arrays(pv, pl, ps, pseg, gv, gl, gseg, len(classes), tiou_thresholds,
                               dataset, classes, per_class, backend)
    out["subset"] = subset
    out["dropped"] = {"unknown_label": report["dropped_label"], "unknown_video": report["dropped_video"]}
    out["unknown_videos"] = report["unknown_videos"]
    return out


# --------------------------------------------------------------------------- AR@AN
def average_recall_vs_proposals(gt: JsonLike, proposals: JsonLike, max_avg_nr_proposals: float = 100,
                                tiou_thresholds=np.linspace(0.5, 0.95, 10),
                                subset: Optional[str] = None, *,
                                drop_unknown_videos: bool = False) -> Dict[str, Any]:
    """ActivityNet proposal metric: average recall vs average number of proposals per video.

    Follows ``average_recall_vs_avg_nr_proposals`` of ActivityNet's Evaluation/eval_proposal.py:
    per video (with ground truth), proposals by descending score (ties: later first), the
    first ``int(n * ratio)`` kept, ``ratio = max_avg_nr_proposals * n_videos / n_proposals``;
    recall at 100 fractions of the kept proposals; a ground truth counts as recalled at
    threshold t when some kept proposal has tIoU >= t. Labels are ignored. Proposals of videos
    outside the ground-truth subset count in ``ratio``'s denominator, as in the official code
    (``drop_unknown_videos=True`` ignores them, with one warning). Difference: a zero-length
    segment never matches.

    Returns {"an": [100 average numbers of proposals per video], "recall": [n_tiou][100],
    "ar": [100] (recall averaged over thresholds), "area": trapezoid area of ar over an,
    "auc": 100 * area / an[-1] (the number ActivityNet reports), "ar_at_max": ar[-1],
    "tiou": [...]}.
    """
    thr = check_thresholds(tiou_thresholds, "average_recall_vs_proposals")
    subset, videos, classes, gv, gl, gseg = load_ground_truth(gt, subset)
    pv, _, ps, pseg = load_predictions(proposals, videos, classes, with_labels=False, what="proposals",
                                       drop_unknown_videos=drop_unknown_videos)
    gt_videos = np.unique(gv)  # videos with ground truth (the official video list)
    n_videos = len(gt_videos)
    if not np.isin(pv, gt_videos).any():
        raise ValueError("average_recall_vs_proposals: no proposal on a ground-truth video")
    ratio = max_avg_nr_proposals * float(n_videos) / len(ps)
    per_video = []  # (first proposal rank reaching tIoU >= t per ground truth [n_tiou, n_gt], n_cols)
    total = 0
    for v in gt_videos:
        g = gseg[gv == v]
        sel = np.flatnonzero(pv == v)
        if len(sel) == 0:
            per_video.append((np.full((len(thr), len(g)), np.inf), 1))
            continue
        order = sel[np.argsort(ps[sel], kind="stable")[::-1]]
        keep = min(int(len(order) * ratio), len(order))
        total += keep
        p = pseg[order[:keep]]
        inter = np.clip(np.minimum(g[:, None, 1], p[None, :, 1]) - np.maximum(g[:, None, 0], p[None, :, 0]), 0, None)
        union = ((p[None, :, 1] - p[None, :, 0]) + (g[:, None, 1] - g[:, None, 0])) - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)  # [n_gt, keep]
        hit = iou[None, :, :] >= thr[:, None, None]  # [n_tiou, n_gt, keep]
        first = np.where(hit.any(axis=2), hit.argmax(axis=2), np.inf) if keep else np.full((len(thr), len(g)), np.inf)
        per_video.append((first, keep))
    if total == 0:
        raise ValueError("average_recall_vs_proposals: max_avg_nr_proposals keeps no proposal")
    pcn = np.arange(1, 101) / 100.0 * (max_avg_nr_proposals * float(n_videos) / total)
    matches = np.zeros((len(thr), len(pcn)))
    positives = 0
    for first, cols in per_video:
        positives += first.shape[1]
        n_prop = np.minimum((cols * pcn).astype(np.int64), cols)  # [100]
        matches += (first[:, :, None] < n_prop[None, None, :]).sum(axis=1)
    recall = matches / positives
    ar = recall.mean(axis=0)
    an = pcn * (float(total) / n_videos)
    area = float(np.sum((ar[1:] + ar[:-1]) * np.diff(an)) / 2.0)
    return {"tiou": thr.tolist(), "an": an.tolist(), "recall": recall.tolist(), "ar": ar.tolist(),
            "area": area, "auc": 100.0 * area / an[-1], "ar_at_max": float(ar[-1])}


# --------------------------------------------------------------------------- command line
def format_table(res: Dict[str, Any]) -> str:
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
    """One line on what was not evaluated as given: unknown labels and videos outside the subset."""
    d, n_vid = res["dropped"], res["unknown_videos"]
    parts = [f"{d['unknown_label']} prediction(s) with a label absent from the ground truth dropped"]
    if d["unknown_video"]:
        parts.append(f"{d['unknown_video']} prediction(s) on {n_vid} video(s) outside the subset dropped "
                     "(--drop-unknown-videos)")
    elif n_vid:
        parts.append(f"predictions on {n_vid} video(s) outside the subset counted as false positives")
    return "; ".join(parts)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    p = argparse.ArgumentParser(prog="python -m sal_ext.evaluate",
                                description="ActivityNet-protocol detection mAP of a prediction file.",
                                epilog="--tiou: '0.3,0.5,0.7' (exact values) or 'start:stop:step' "
                                       "(np.linspace, both ends included).")
    p.add_argument("--gt", required=True, help="ground-truth JSON ({'database': ...})")
    p.add_argument("--pred", required=True, help="prediction JSON ({'results': ...})")
    p.add_argument("--subset", default=None, help="ground-truth subset (default: 'test' if present, else all)")
    p.add_argument("--dataset", default="thumos14", choices=sorted(DATASETS),
                   help="default thresholds and named averages (default thumos14)")
    p.add_argument("--tiou", default=None, help="thresholds: comma list or start:stop:step")
    p.add_argument("--per-class", action="store_true", help="also print per-class AP")
    p.add_argument("--drop-unknown-videos", action="store_true",
                   help="ignore predictions on videos outside the ground-truth subset (default: "
                        "false positives, as the official ActivityNet code counts them)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on the last line")
    args = p.parse_args(argv)
    try:
        thr = parse_tiou(args.tiou) if args.tiou is not None else None
        res = detection_map(args.gt, args.pred, thr, args.subset, args.dataset, per_class=args.per_class,
                            drop_unknown_videos=args.drop_unknown_videos)
    except (ValueError, OSError) as exc:
        msg = f"{exc.filename}: {exc.strerror}" if isinstance(exc, OSError) and exc.filename else exc
        p.exit(2, f"sal_ext.evaluate: error: {msg}\n")
    print(f"subset {res['subset']!r}: {res['num_gt']} ground truths, {res['num_pred']} predictions, "
          f"{res['ap'].shape[1]} classes")
    print(dropped_line(res))
    print(format_table(res))
    if args.json:
        out = {k: v for k, v in res.items() if k != "ap"}
        if "per_class" in out:
            out["per_class"] = {str(k): v for k, v in out["per_class"].items()}
        print(json.dumps(out))
    sys.stdout.flush()
    return res


if __name__ == "__main__":
    main()
