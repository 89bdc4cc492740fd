"""Temporal IoU and ActivityNet detection AP (the mAP of temporal action localization).

``segment_iou(a, b)`` is the [N, M] tIoU matrix of [start, end] segments; ``detection_ap``
is the per-(tIoU threshold, class) average precision of the ActivityNet detection protocol
(``compute_average_precision_detection`` of ActivityNet's Evaluation/eval_detection.py,
which SAL's eval/eval_detection.py copies), with its ambiguities pinned down:

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

Why detection_ap has no CUDA kernel: the matching is a sequential greedy scan per
(class, threshold) (whether a prediction matches depends on every higher-scored one), the
inputs are small (~200k predictions, a few thousand ground truths: a few MB) and the CPU
kernel takes milliseconds. A GPU version would parallelise only over the ~20 x 7
(class, threshold) pairs, with one thread doing a long dependent scan, slower than one CPU
core; so CUDA inputs are copied to the CPU on purpose and the result is returned on the
input device. ``segment_iou`` (embarrassingly parallel) has a CUDA kernel.
"""
from __future__ import annotations

from typing import Optional, Sequence, Union

import numpy as np
import torch

from . import _common as C

_INT_DTYPES = (torch.int64,)


# --------------------------------------------------------------------------- segment_iou
def segment_iou(a: torch.Tensor, b: torch.Tensor, *, backend: Optional[str] = None) -> torch.Tensor:
    """tIoU of every segment of ``a`` with every segment of ``b``.

    Args:
        a: [N, 2] (start, end) float32/float64 (any strides), finite, end >= start.
        b: [M, 2] same dtype and device.
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        [N, M] tensor of a's dtype on a's device. No +1 on lengths; a zero-length segment
        has tIoU 0 with everything (never NaN).
    """
    op = "segment_iou"
    a = _check_segments(a, "a", op)
    b = _check_segments(b, "b", op, device=a.device)
    C.check_same_dtype(op, a=a, b=b)
    dev = C.kernel_device(a.device)
    if not C.use_kernel(op, "segment_iou", dev, backend):
        return segment_iou_reference(a, b)
    N, M = a.shape[0], b.shape[0]
    out = torch.empty(N, M, dtype=a.dtype, device=a.device)
    args = (C.ptr(a), C.ptr(b), C.ptr(out), N, M, C.dtype_code(a))
    if dev != "cpu":
        args += (C.device_index(a), C.stream_of(a))
    C.call("segment_iou", dev, *args)
    return out


def segment_iou_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pure-torch segment_iou (the fallback and the test oracle); same arithmetic as the kernel."""
    s1, e1 = a[:, 0:1], a[:, 1:2]
    s2, e2 = b[:, 0].unsqueeze(0), b[:, 1].unsqueeze(0)
    inter = (torch.minimum(e1, e2) - torch.maximum(s1, s2)).clamp(min=0)
    union = ((e1 - s1) + (e2 - s2)) - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)),
                       torch.zeros_like(union))


def _check_segments(t, name, op, device=None, dtypes=C.FLOAT_DTYPES):
    """Checks [n, 2] segments; returns them resolved (C.resolve)."""
    t = C.check_tensor(t, name, op, ndim=2, dtypes=dtypes, device=device)
    if t.shape[1] != 2:
        raise ValueError(f"{op}: `{name}` must have shape [n, 2] (start, end), got {tuple(t.shape)}")
    C.check_segment_values(t, name, op)
    return t


# --------------------------------------------------------------------------- detection_ap
def detection_ap(
    pred_video: torch.Tensor,
    pred_label: torch.Tensor,
    pred_score: torch.Tensor,
    pred_segments: torch.Tensor,
    gt_video: torch.Tensor,
    gt_label: torch.Tensor,
    gt_segments: torch.Tensor,
    tiou_thresholds: Union[torch.Tensor, Sequence[float], np.ndarray],
    num_classes: int,
    *,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """ActivityNet detection AP for every (tIoU threshold, class); see the module docstring.

    Args:
        pred_video: [P] int64 video id of each prediction (any integers; the Python layer
            maps video names to ints).
        pred_label: [P] int64 class in [0, num_classes).
        pred_score: [P] float32/float64, no NaN (+-inf allowed: only the order matters).
        pred_segments: [P, 2] float32/float64 (start, end), finite, end >= start.
        gt_video: [G] int64; gt_label: [G] int64 in [0, num_classes);
        gt_segments: [G, 2] float32/float64, finite, end >= start.
        tiou_thresholds: 1-D, values in (0, 1], used exactly as given (float64).
        num_classes: int >= 1.
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch" (numpy fallback).

    Returns:
        ap: float64 [n_tiou, num_classes] on the input device; NaN for a class without
        ground truth, 0 for a class with ground truth and no prediction. All inputs are
        processed on the CPU (see the module docstring for why).
    """
    op = "detection_ap"
    dev = pred_video.device if isinstance(pred_video, torch.Tensor) else torch.device("cpu")
    # Types, shapes and devices first; values are checked on the CPU copies, in numpy (the
    # kernel runs on the CPU anyway, and numpy does not wake torch's intra-op thread pool,
    # which costs more than these checks on a busy machine).
    P = _check_1d(pred_video, "pred_video", op, _INT_DTYPES, dev)
    _check_1d(pred_label, "pred_label", op, _INT_DTYPES, dev, P)
    _check_1d(pred_score, "pred_score", op, C.FLOAT_DTYPES, dev, P)
    _check_seg_shape(pred_segments, "pred_segments", op, dev, P, "pred_video")
    G = _check_1d(gt_video, "gt_video", op, _INT_DTYPES, dev)
    _check_1d(gt_label, "gt_label", op, _INT_DTYPES, dev, G)
    _check_seg_shape(gt_segments, "gt_segments", op, dev, G, "gt_video")
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"{op}: `num_classes` must be an int >= 1, got {num_classes!r}")
    num_classes = int(num_classes)
    thr = check_thresholds(tiou_thresholds, op)

    pv, pl, gv, gl = (_np(t, np.int64) for t in (pred_video, pred_label, gt_video, gt_label))
    ps = _np(pred_score, np.float64)
    pseg, gseg = _np(pred_segments, np.float64), _np(gt_segments, np.float64)
    for name, lab in (("pred_label", pl), ("gt_label", gl)):
        if lab.size:
            lo, hi = int(lab.min()), int(lab.max())
            if lo < 0 or hi >= num_classes:
                raise ValueError(f"{op}: `{name}` must be in [0, {num_classes}), got {lo if lo < 0 else hi}")
    if np.isnan(ps).any():
        raise ValueError(f"{op}: `pred_score` contains NaN")
    C.check_segment_values(pseg, "pred_segments", op)
    C.check_segment_values(gseg, "gt_segments", op)

    if C.use_kernel(op, "detection_ap", torch.device("cpu"), backend):
        ap = torch.empty(len(thr), num_classes, dtype=torch.float64)
        t = [torch.from_numpy(x) for x in (pv, pl, ps, pseg, gv, gl, gseg, thr)]
        C.call("detection_ap", "cpu", *(C.ptr(x) for x in t[:4]), P, *(C.ptr(x) for x in t[4:7]), G,
               C.ptr(t[7]), len(thr), num_classes, C.ptr(ap))
    else:
        ap = torch.from_numpy(detection_ap_reference(pv, pl, ps, pseg, gv, gl, gseg, thr, num_classes))
    return ap.to(dev)


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    """A contiguous CPU numpy array of `dtype` (a view when nothing needs converting) holding
    t's values (C.resolve: a negative/conjugate bit is materialised, not dropped)."""
    return np.ascontiguousarray(C.resolve(t).detach().cpu().numpy(), dtype=dtype)


def _check_seg_shape(t, name, op, device, n, like):
    C.check_tensor(t, name, op, ndim=2, dtypes=C.FLOAT_DTYPES, device=device, contiguous=False)
    if t.shape[1] != 2:
        raise ValueError(f"{op}: `{name}` must have shape [n, 2] (start, end), got {tuple(t.shape)}")
    if t.shape[0] != n:
        raise ValueError(f"{op}: `{name}` must have {n} rows like `{like}`, got {t.shape[0]}")


def _check_1d(t, name, op, dtypes, device, n=None) -> int:
    C.check_tensor(t, name, op, ndim=1, dtypes=dtypes, device=device, contiguous=False)
    if n is not None and t.shape[0] != n:
        raise ValueError(f"{op}: `{name}` must have length {n}, got {t.shape[0]}")
    return t.shape[0]


def check_thresholds(tiou_thresholds, op: str = "detection_ap") -> np.ndarray:
    """tIoU thresholds as a float64 numpy array; 1-D, non-empty, each in (0, 1]."""
    if isinstance(tiou_thresholds, torch.Tensor):
        thr = C.resolve(tiou_thresholds).detach().cpu().double().numpy()
    else:
        try:
            thr = np.asarray(tiou_thresholds, dtype=np.float64)
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
