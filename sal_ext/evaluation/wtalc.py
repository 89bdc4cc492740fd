"""The W-TALC / CO2-Net / DELU protocol: ActivityNet matching on snippet units, with the
predictions that touch an ambiguous segment removed.

As in CO2-Net's eval/eval_detection.py (``ANETdetection._import_ground_truth``,
``compute_average_precision_detection``) with proposal_methods.py's ``filter_segments``
(harlanhong/MM2021-CO2-Net; DELU and P-MIL copy them; W-TALC's detectionMAP.py has the same
conversion and filter):

* units: seconds -> snippet indices, ``round(t * fps / frames_per_snippet)`` (25 / 16 for
  THUMOS14's I3D features; Python's round, half to even), for ground truth and predictions;
* filter: a prediction of video v is removed (before ranking, whatever its class) when its
  snippet range ``range(start, end)`` shares a snippet with ``range(round(a * r), round(b * r))``
  of an ambiguous segment [a, b] of v (r = fps / frames_per_snippet). Where both ranges are
  empty the original divides 0 by 0 and stops; here that prediction is kept;
* matching and AP: ActivityNet's, on the snippet coordinates (see ``activitynet``). As there,
  a segment that rounds to zero length never matches (the original's 0/0 = NaN tIoU matches
  a zero-length prediction with any zero-length ground truth of its video; not copied);
* default thresholds 0.1:0.9 (step 0.1); averages 0.1:0.5, 0.3:0.7, 0.1:0.7 and 0.1:0.9.

W-TALC's own 2018 code (sujoyp/wtalc-pytorch detectionMAP.py) matched differently (first
ground truth whose snippet-set IoU passes, AP = sum of precision at true positives / number
of ground truths); the numbers papers compare since CO2-Net are the ones above.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def to_snippets(t: np.ndarray, fps: float, frames_per_snippet: float) -> np.ndarray:
    """Seconds -> snippet index: round(t * fps / frames_per_snippet), half to even (as
    Python's round); the products in the original's order."""
    return np.round(np.asarray(t, np.float64) * fps / frames_per_snippet)


def ambiguous_mask(pred_video: np.ndarray, pred_snippets: np.ndarray,
                   ambiguous: Sequence[Tuple[int, float, float]], fps: float,
                   frames_per_snippet: float) -> np.ndarray:
    """[P] bool: the prediction shares a snippet with an ambiguous segment of its video.

    ``ambiguous``: (video index, start s, end s) in seconds; ``pred_snippets`` [P, 2] already
    in snippet units."""
    hit = np.zeros(len(pred_video), bool)
    if not len(ambiguous) or not len(pred_video):
        return hit
    av = np.asarray([a[0] for a in ambiguous], np.int64)
    aseg = to_snippets(np.asarray([a[1:] for a in ambiguous], np.float64).reshape(-1, 2), fps, frames_per_snippet)
    for v in np.unique(av):
        sel = np.flatnonzero(pred_video == v)
        if not len(sel):
            continue
        a = aseg[av == v]
        p = pred_snippets[sel]
        lo = np.maximum(p[:, None, 0], a[None, :, 0])
        hi = np.minimum(p[:, None, 1], a[None, :, 1])
        hit[sel] = (lo < hi).any(axis=1)  # range(ps, pe) and range(as, ae) share an integer
    return hit
