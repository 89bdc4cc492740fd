"""The result dict every protocol returns: mAP per threshold, averages, per-class AP."""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from .thresholds import averages


def summarize(ap: np.ndarray, gt_label: np.ndarray, thr: np.ndarray, num_classes: int, num_pred: int,
              protocol: str, dataset: str, class_names: Optional[Sequence[Any]],
              per_class: bool) -> Dict[str, Any]:
    """ap [n_tiou, num_classes] -> {"tiou", "mAP", "average", "averages", "num_gt", "num_pred",
    "ap", "protocol"[, "per_class"]}; the mean is over the classes with ground truth."""
    num_gt = np.bincount(np.asarray(gt_label, np.int64), minlength=num_classes)
    present = np.flatnonzero(num_gt > 0)
    m_ap = ap[:, present].mean(axis=1)
    out = {"protocol": protocol, "tiou": np.asarray(thr).tolist(), "mAP": m_ap.tolist(),
           "average": float(m_ap.mean()), "averages": averages(thr, m_ap, protocol, dataset),
           "num_gt": int(num_gt.sum()), "num_pred": int(num_pred), "ap": ap}
    if per_class:
        names = list(class_names) if class_names is not None else list(range(num_classes))
        out["per_class"] = {names[c]: ap[:, c].tolist() for c in present}
    return out
