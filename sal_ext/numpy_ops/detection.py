"""ActivityNet detection AP on numpy arrays: the evaluator's front of the ``detection_ap`` kernel.

``detection_ap`` is the per-(tIoU threshold, class) average precision of the ActivityNet
detection protocol (``compute_average_precision_detection`` of ActivityNet's
Evaluation/eval_detection.py, which SAL's eval/eval_detection.py copies), with its
ambiguities pinned down:

* tIoU has no +1: ``inter = max(0, min(e1, e2) - max(s1, s2))``,
  ``union = (len1 + len2) - inter``. Two zero-length segments have tIoU 0 (the official
  code divides 0 by 0, gets NaN, and NaN passes its ``tiou < thr`` test, so it counts a
  zero-length prediction on a zero-length ground truth as a match: that bug is not copied).
  A zero-length segment therefore never matches anything (thresholds must be > 0).
* Per class, predictions are processed by descending score; equal scores: the prediction
  later in the input goes first (the official ``argsort()[::-1]``, with a stable argsort).
* Each prediction, for each threshold, takes the not-yet-matched ground truth of its video
  and class with the highest tIoU, if that tIoU >= threshold (equality matches; thresholds
  are used exactly as given, unrounded); equal tIoU: the later ground truth (again the
  official descending argsort, stable). Otherwise it is a false positive. A prediction for
  a video without ground truth of its class is a false positive.
* AP is the official interpolated AP: precision made monotone from the right (with a
  trailing 0), summed over the points where recall changes.
* A class with ground truth but no prediction gets AP 0. A class without ground truth gets
  NaN (AP is undefined; the official code returns 0 when that class also has no
  predictions and NaN when it has some, and never asks, since its classes come from the
  ground truth). Means over classes should skip NaN (``sal_ext.evaluate`` averages over the
  classes present in the ground truth).

The C++ kernel (``detection_ap_cpu``) does the work; without ``_C`` (or with
``backend="torch"``) :func:`detection_ap_reference`, written independently of it, does.
``sal_ext.ops.detection_ap`` (torch tensors, any device) checks its tensors' types and shapes
and then runs :func:`run_detection_ap`, as :func:`detection_ap` does for numpy arrays.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np

from .. import _backend
from . import checks

INT_DTYPES = ("int64",)


def detection_ap(
    pred_video: np.ndarray,
    pred_label: np.ndarray,
    pred_score: np.ndarray,
    pred_segments: np.ndarray,
    gt_video: np.ndarray,
    gt_label: np.ndarray,
    gt_segments: np.ndarray,
    tiou_thresholds: Union[Sequence[float], np.ndarray],
    num_classes: int,
    *,
    backend: Optional[str] = None,
) -> np.ndarray:
    """ActivityNet detection AP for every (tIoU threshold, class); see the module docstring.

    Args:
        pred_video: [P] int64 video id of each prediction (any integers).
        pred_label: [P] int64 class in [0, num_classes).
        pred_score: [P] float32/float64, no NaN (+-inf allowed: only the order matters).
        pred_segments: [P, 2] float32/float64 (start, end), finite, end >= start.
        gt_video: [G] int64; gt_label: [G] int64 in [0, num_classes);
        gt_segments: [G, 2] float32/float64, finite, end >= start.
        tiou_thresholds: 1-D, values in (0, 1], used exactly as given (float64).
        num_classes: int >= 1.
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch" (the numpy fallback).

    Returns:
        ap: float64 numpy array [n_tiou, num_classes]; NaN for a class without ground truth,
        0 for a class with ground truth and no prediction.
    """
    op = "detection_ap"
    P = _check_1d(pred_video, "pred_video", op, INT_DTYPES)
    _check_1d(pred_label, "pred_label", op, INT_DTYPES, P)
    _check_1d(pred_score, "pred_score", op, checks.FLOAT_DTYPES, P)
    _check_segments(pred_segments, "pred_segments", op, P, "pred_video")
    G = _check_1d(gt_video, "gt_video", op, INT_DTYPES)
    _check_1d(gt_label, "gt_label", op, INT_DTYPES, G)
    _check_segments(gt_segments, "gt_segments", op, G, "gt_video")
    return run_detection_ap(pred_video, pred_label, pred_score, pred_segments, gt_video, gt_label, gt_segments,
                            tiou_thresholds, num_classes, backend)


def _check_1d(a, name, op, dtypes, n=None) -> int:
    return checks.check_length(checks.check_array(a, name, op, ndim=1, dtypes=dtypes).shape, name, op, n)


def _check_segments(a, name, op, n, like):
    checks.check_segment_shape(checks.check_array(a, name, op, ndim=2, dtypes=checks.FLOAT_DTYPES).shape,
                               name, op, n, like)


def run_detection_ap(pred_video, pred_label, pred_score, pred_segments, gt_video, gt_label, gt_segments,
                     tiou_thresholds, num_classes, backend=None, op: str = "detection_ap") -> np.ndarray:
    """What both fronts do once the arguments' types and shapes are checked: checks
    ``num_classes``, the thresholds and the values (labels in range, no NaN score, valid
    segments), then runs the kernel or the fallback. Arrays of those checked types; the
    kernel's copies (int64, float64, contiguous) are made here where needed."""
    num_classes = checks.check_num_classes(num_classes, op)
    thr = check_thresholds(tiou_thresholds, op)
    pv, pl, gv, gl = (np.ascontiguousarray(a, np.int64) for a in (pred_video, pred_label, gt_video, gt_label))
    ps = np.ascontiguousarray(pred_score, np.float64)
    pseg, gseg = (np.ascontiguousarray(a, np.float64) for a in (pred_segments, gt_segments))
    checks.check_labels(pl, "pred_label", op, num_classes)
    checks.check_labels(gl, "gt_label", op, num_classes)
    checks.check_no_nan(ps, "pred_score", op)
    checks.check_segment_values(pseg, "pred_segments", op)
    checks.check_segment_values(gseg, "gt_segments", op)
    if not _backend.use_kernel(op, "detection_ap", "cpu", backend):
        return detection_ap_reference(pv, pl, ps, pseg, gv, gl, gseg, thr, num_classes)
    ap = np.empty((len(thr), num_classes), np.float64)
    _backend.call_cpu("detection_ap", *(a.ctypes.data for a in (pv, pl, ps, pseg)), len(pv),
                      *(a.ctypes.data for a in (gv, gl, gseg)), len(gv), thr.ctypes.data, len(thr),
                      num_classes, ap.ctypes.data)
    return ap


def check_thresholds(tiou_thresholds, op: str = "detection_ap") -> np.ndarray:
    """tIoU thresholds as a contiguous float64 numpy array; 1-D, non-empty, each in (0, 1].
    Accepts a sequence, a numpy array or a torch tensor (any device)."""
    try:
        thr = np.asarray(checks.host_array(tiou_thresholds), dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: `tiou_thresholds` must be a sequence of floats, got {tiou_thresholds!r}") from None
    thr = np.atleast_1d(thr)
    if thr.ndim != 1 or thr.size == 0:
        raise ValueError(f"{op}: `tiou_thresholds` must be a non-empty 1-D sequence, got shape {thr.shape}")
    if not np.all((thr > 0) & (thr <= 1)):
        raise ValueError(f"{op}: `tiou_thresholds` must be in (0, 1], got {thr.tolist()}")
    return np.ascontiguousarray(thr)


def detection_ap_reference(pred_video, pred_label, pred_score, pred_segments, gt_video, gt_label,
                           gt_segments, tiou_thresholds, num_classes) -> np.ndarray:
    """Numpy/Python detection_ap (the fallback), on already checked numpy arrays.

    Same rules as the kernel; written independently of it (per class: one vectorised tIoU
    matrix against the GT of each prediction's video, then the greedy scan per threshold).
    """
    thr = np.asarray(tiou_thresholds, dtype=np.float64)
    T = len(thr)
    ap = np.full((T, num_classes), np.nan)
    pred_score = np.asarray(pred_score, dtype=np.float64)
    for c in range(num_classes):
        gi = np.flatnonzero(gt_label == c)
        if len(gi) == 0:
            continue
        pi = np.flatnonzero(pred_label == c)
        if len(pi) == 0:
            ap[:, c] = 0.0
            continue
        order = pi[np.argsort(pred_score[pi], kind="stable")[::-1]]
        by_video = {}
        for k, g in enumerate(gi):
            by_video.setdefault(int(gt_video[g]), []).append(k)
        gs, ge = gt_segments[gi, 0], gt_segments[gi, 1]
        cand = []  # per prediction: GT (class-local index) in descending (tIoU, index), with tIoU
        for i in order:
            ks = by_video.get(int(pred_video[i]))
            if not ks:
                cand.append(((), ()))
                continue
            ks = np.asarray(ks)
            s, e = pred_segments[i]
            inter = np.clip(np.minimum(e, ge[ks]) - np.maximum(s, gs[ks]), 0, None)
            union = ((e - s) + (ge[ks] - gs[ks])) - inter
            iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
            srt = np.argsort(iou, kind="stable")[::-1]
            cand.append((ks[srt].tolist(), iou[srt].tolist()))
        npos = float(len(gi))
        for t, th in enumerate(thr):
            locked = np.zeros(len(gi), dtype=bool)
            tp = np.zeros(len(order))
            for n, (ks, ious) in enumerate(cand):
                for k, v in zip(ks, ious):
                    if v < th:
                        break
                    if not locked[k]:
                        locked[k] = True
                        tp[n] = 1.0
                        break
            tpc = np.cumsum(tp)
            fpc = np.cumsum(1.0 - tp)
            ap[t, c] = interpolated_ap(tpc / (tpc + fpc), tpc / npos)
    return ap


def interpolated_ap(precision: np.ndarray, recall: np.ndarray) -> float:
    """Interpolated AP (VOC 2011 / ActivityNet): monotone precision, summed where recall changes."""
    mprec = np.concatenate([[0.0], precision, [0.0]])
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mprec = np.maximum.accumulate(mprec[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))
