"""The ActivityNet protocol from arrays (ActivityNet's Evaluation/eval_detection.py).

Units: seconds, as given. Filter: none. Matching: per class, predictions by descending
score, each takes the unmatched ground truth of its video with the highest tIoU if that
tIoU >= the threshold (``sal_ext.ops.detection_ap``). AP: interpolated (precision made
monotone, summed where recall changes). A prediction on a video without ground truth of its
class is a false positive.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np
import torch

from ..ops.detection import check_thresholds, detection_ap
from .summary import summarize
from .thresholds import default_thresholds


def as_tensor(x, dtype, name, op="detection_map_arrays"):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(dtype).contiguous()
    try:
        return torch.as_tensor(np.asarray(x), dtype=dtype).contiguous()
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: `{name}` must be array-like: {exc}") from None


def activitynet_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, num_classes, backend=None) -> np.ndarray:
    """[n_tiou, num_classes] AP (NaN for classes without ground truth)."""
    T = [as_tensor(x, d, n) for x, d, n in ((pv, torch.int64, "pred_video"), (pl, torch.int64, "pred_label"),
                                           (ps, torch.float64, "pred_score"), (pseg, torch.float64, "pred_segments"),
                                           (gv, torch.int64, "gt_video"), (gl, torch.int64, "gt_label"),
                                           (gseg, torch.float64, "gt_segments"))]
    T[3], T[6] = T[3].reshape(-1, 2), T[6].reshape(-1, 2)
    return detection_ap(*T, thr, num_classes, backend=backend).numpy()


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
    gl = as_tensor(gt_label, torch.int64, "gt_label")
    pl = as_tensor(pred_label, torch.int64, "pred_label")
    if gl.numel() == 0:
        raise ValueError("detection_map: the ground truth is empty")
    if num_classes is None:
        num_classes = int(max(gl.max().item(), pl.max().item() if pl.numel() else 0)) + 1
    ap = activitynet_ap(pred_video, pl, pred_score, pred_segments, gt_video, gl, gt_segments, thr,
                        num_classes, backend)
    return summarize(ap, gl.numpy(), thr, num_classes, pl.numel(), "activitynet", dataset, class_names, per_class)
