"""The THUMOS14 challenge's protocol (its Matlab evaluation kit, TH14evalDet.m).

Restated from the public TH14evalDet_Updated.m (zhengshou/scnn experiments/THUMOS14/eval/,
also in sunnyxiaohu/R-C3D.pytorch: the kit's TH14evalDet.m with an error analysis added, the
version S-CNN, CDC and R-C3D report with), its ``TH14eventdetpr`` and
``intervaloverlapvalseconds.m``. Checked against that .m file run under GNU Octave 7.3 on 8
random cases (4 with tied scores): equal to the last bit.

* units: seconds, as given; ground truth from gt.json or the challenge's per-class
  ``<class>_test.txt`` files; ``Ambiguous`` segments are not a class;
* overlap: ``(min(e1, e2) - max(s1, s2)) / (max(e1, e2) - min(s1, s2))`` when positive, else 0
  (tIoU for overlapping intervals);
* matching, per class and video: detections by descending score (input order on ties); each
  ground truth in turn (file order) takes the still-free detection with the largest overlap
  (the first on ties) if that overlap is *strictly greater* than the threshold;
* filter: an unmatched detection that overlaps an ambiguous segment of its video is
  removed (neither true nor false positive); matched ones stay;
* ranking: all kept detections by descending score; ties keep the order videos were visited
  (video names sorted) and, within a video, the score order;
* AP: not interpolated: the sum of the precisions at the true positives divided by the number
  of ground truths; a class without any detection has AP 0;
* a detection on a video without ground truth of its class is a false positive (the kit
  walks the union of ground-truth and detection videos);
* default thresholds 0.1:0.7 (the kit evaluates one threshold per call; the 2014 kit
  evaluated 0.1:0.5 and used an 11-point interpolated AP, TH14eventdetpr.m).
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def overlap(g: np.ndarray, d: np.ndarray) -> np.ndarray:
    """[G, D] intervaloverlapvalseconds: intersection / hull where the intersection is > 0."""
    iw = np.minimum(g[:, None, 1], d[None, :, 1]) - np.maximum(g[:, None, 0], d[None, :, 0])
    ua = np.maximum(g[:, None, 1], d[None, :, 1]) - np.minimum(g[:, None, 0], d[None, :, 0])
    return np.where(iw > 0, iw / np.where(iw > 0, ua, 1.0), 0.0)


def thumos14_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, num_classes: int, video_names: Sequence[str],
                ambiguous: Sequence[Tuple[int, float, float]] = ()) -> np.ndarray:
    """[n_tiou, num_classes] AP (NaN for classes without ground truth).

    Videos are integer ids indexing ``video_names`` (whose sort order is the tie rule);
    ``ambiguous``: (video id, start, end) in seconds."""
    pv, pl, gv, gl = (np.asarray(x, np.int64) for x in (pv, pl, gv, gl))
    ps = np.asarray(ps, np.float64)
    pseg, gseg = np.asarray(pseg, np.float64).reshape(-1, 2), np.asarray(gseg, np.float64).reshape(-1, 2)
    thr = np.asarray(thr, np.float64)
    amb_v = np.asarray([a[0] for a in ambiguous], np.int64)
    amb_s = np.asarray([a[1:] for a in ambiguous], np.float64).reshape(-1, 2)
    rank = np.empty(len(video_names), np.int64)
    rank[sorted(range(len(video_names)), key=lambda i: video_names[i])] = np.arange(len(video_names))
    ap = np.full((len(thr), num_classes), np.nan)
    for c in range(num_classes):
        g_all = np.flatnonzero(gl == c)
        if not len(g_all):
            continue
        d_all = np.flatnonzero(pl == c)
        if not len(d_all):
            ap[:, c] = 0.0
            continue
        conf = [[] for _ in thr]
        flag = [[] for _ in thr]
        for v in sorted(np.unique(pv[d_all]), key=lambda v: rank[v]):
            d = d_all[pv[d_all] == v]
            d = d[np.argsort(-ps[d], kind="stable")]
            g = g_all[gv[g_all] == v]
            a = amb_s[amb_v == v]
            amb = (overlap(a, pseg[d]) > 0).any(axis=0) if len(a) else np.zeros(len(d), bool)
            if not len(g):  # nothing to match: the detections not on an ambiguous segment are FPs
                for t in range(len(thr)):
                    conf[t].append(ps[d][~amb])
                    flag[t].append(np.zeros(int((~amb).sum()), bool))
                continue
            ov = overlap(gseg[g], pseg[d])
            for t, th in enumerate(thr):
                free = np.ones(len(d), bool)
                for k in range(len(g)):
                    ind = np.flatnonzero(free)
                    if not len(ind):
                        break
                    j = ind[np.argmax(ov[k, ind])]
                    if ov[k, j] > th:
                        free[j] = False
                keep = ~free | ~amb
                conf[t].append(ps[d][keep])
                flag[t].append(~free[keep])
        npos = len(g_all)
        for t in range(len(thr)):
            sc, tp = np.concatenate(conf[t]), np.concatenate(flag[t])
            order = np.argsort(-sc, kind="stable")
            tp = tp[order]
            ctp = np.cumsum(tp)
            prec = ctp / np.arange(1, len(tp) + 1)
            ap[t, c] = prec[tp].sum() / npos
    return ap
