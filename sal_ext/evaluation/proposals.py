"""ActivityNet's proposal metric: average recall vs average number of proposals per video."""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from ..numpy_ops.detection import check_thresholds
from .loading import JsonLike, load_ground_truth, load_predictions


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
