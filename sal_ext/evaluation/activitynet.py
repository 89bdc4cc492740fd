"""The ActivityNet protocol from arrays (ActivityNet's Evaluation/eval_detection.py).

Units: seconds, as given. Filter: none. Matching: per class, predictions by descending
score, each takes the unmatched ground truth of its video with the highest tIoU if that
tIoU >= the threshold (``sal_ext.numpy_ops.detection_ap``). AP: interpolated (precision made
monotone, summed where recall changes). A prediction on a video without ground truth of its
class is a false positive.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from ..numpy_ops.checks import host_array
from ..numpy_ops.detection import check_thresholds, detection_ap
from .summary import summarize
from .thresholds import default_thresholds


def as_array(x, dtype, name, op="detection_map_arrays") -> np.ndarray:
    """x (array-like, or a torch tensor on any device) as a contiguous numpy array of dtype."""
    try:
        return np.ascontiguousarray(host_array(x).astype(dtype, copy=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: `{name}` must be array-like: {exc}") from None


def activitynet_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, num_classes, backend=None) -> np.ndarray:
    """[n_tiou, num_classes] AP (NaN for classes without ground truth)."""
    A = [as_array(x, d, n) for x, d, n in ((pv, np.int64, "pred_video"), (pl, np.int64, "pred_label"),
                                          (ps, np.float64, "pred_score"), (pseg, np.float64, "pred_segments"),
                                          (gv, np.int64, "gt_video"), (gl, np.int64, "gt_label"),
                                          (gseg, np.float64, "gt_segments"))]
    A[3], A[6] = A[3].reshape(-1, 2), A[6].reshape(-1, 2)
    return detection_ap(*A, thr, num_classes, backend=backend)


def detection_map_arrays(pred_video, pred_label, pred_score, pred_segments, gt_video, gt_label,
                         gt_segments, num_classes: Optional[int] = None, tiou_thresholds=None,
                         dataset: str = "thumos14", class_names: Optional[Sequence[Any]] = None,
                         per_class: bool = True, backend: Optional[str] = None) -> Dict[str, Any]:
    """ActivityNet-protocol mAP from arrays/tensors (integer video ids and class indices).

    Here the caller's ground truth defines the evaluation: a prediction for a video without
    ground truth of its class is a false positive (as in the official code); mAP averages
    the classes with at least one ground truth. ``num_classes`` defaults to
    ``max(label) + 1``. Returns the dict of :func:`sal_ext.evaluate.detection_map`.
    """
    thr = default_thresholds(dataset) if tiou_thresholds is None else check_thresholds(tiou_thresholds, "detection_map")
    gl = as_array(gt_label, np.int64, "gt_label")
    pl = as_array(pred_label, np.int64, "pred_label")
    if gl.size == 0:
        raise ValueError("detection_map: the ground truth is empty")
    if num_classes is None:
        num_classes = int(max(gl.max(), pl.max() if pl.size else 0)) + 1
    ap = activitynet_ap(pred_video, pl, pred_score, pred_segments, gt_video, gl, gt_segments, thr,
                        num_classes, backend)
    return summarize(ap, gl, thr, num_classes, pl.size, "activitynet", dataset, class_names, per_class)
