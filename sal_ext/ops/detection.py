"""Temporal IoU and ActivityNet detection AP (the mAP of temporal action localization).

``segment_iou(a, b)`` is the [N, M] tIoU matrix of [start, end] segments; ``detection_ap``
is the per-(tIoU threshold, class) average precision of the ActivityNet detection protocol
(``compute_average_precision_detection`` of ActivityNet's Evaluation/eval_detection.py,
which SAL's eval/eval_detection.py copies). Its rules (tIoU without +1, ties, zero-length
segments, interpolated AP, NaN for a class without ground truth) and its CPU work are in
``sal_ext.numpy_ops.detection``, the numpy front the evaluator uses without torch: this
front checks its tensors' types, shapes and devices and hands their CPU numpy views to
it. ``segment_iou`` has the same tIoU arithmetic (no +1; a zero-length segment has tIoU
0 with everything).

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

from ..numpy_ops import detection as np_detection
from ..numpy_ops.checks import host_array
from ..numpy_ops.detection import check_thresholds, detection_ap_reference, interpolated_ap  # noqa: F401 (API)
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
    # Types, shapes and devices here; the values are checked, and the AP computed, on the CPU
    # copies by the numpy core (the kernel runs on the CPU anyway, and numpy does not wake
    # torch's intra-op thread pool, which costs more than these checks on a busy machine).
    P = _check_1d(pred_video, "pred_video", op, _INT_DTYPES, dev)
    _check_1d(pred_label, "pred_label", op, _INT_DTYPES, dev, P)
    _check_1d(pred_score, "pred_score", op, C.FLOAT_DTYPES, dev, P)
    _check_seg_shape(pred_segments, "pred_segments", op, dev, P, "pred_video")
    G = _check_1d(gt_video, "gt_video", op, _INT_DTYPES, dev)
    _check_1d(gt_label, "gt_label", op, _INT_DTYPES, dev, G)
    _check_seg_shape(gt_segments, "gt_segments", op, dev, G, "gt_video")
    ap = np_detection.run_detection_ap(*(host_array(t) for t in (pred_video, pred_label, pred_score, pred_segments,
                                                                  gt_video, gt_label, gt_segments)),
                                       tiou_thresholds, num_classes, backend, op)
    return torch.from_numpy(ap).to(dev)


def _check_seg_shape(t, name, op, device, n, like):
    t = C.check_tensor(t, name, op, ndim=2, dtypes=C.FLOAT_DTYPES, device=device, contiguous=False)
    C.check_segment_shape(tuple(t.shape), name, op, n, like)


def _check_1d(t, name, op, dtypes, device, n=None) -> int:
    t = C.check_tensor(t, name, op, ndim=1, dtypes=dtypes, device=device, contiguous=False)
    return C.check_length(tuple(t.shape), name, op, n)
