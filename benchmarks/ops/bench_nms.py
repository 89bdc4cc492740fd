"""nms_1d on a THUMOS14-shaped test split: 212 videos x 3 predicted classes, ~200k proposals,
all (video, class) groups in ONE call (labels = video * 20 + class).

Variants: "kernel" (C++/CUDA), "torch" (the pure-torch fallback nms_1d_reference) and "numpy"
(the per-class numpy/Python loops WTAL repositories run: the SAL reference's basnet_nms for "sal"
and "hard", the classic numpy soft-NMS loop for "gaussian"; the proposals are already grouped
per class outside the timed region, which favours the numpy version).
The torch reference is too slow for the full split: the "subset" cases time every variant on
the first 20 videos, the "full" cases time kernel vs numpy on all 212.
"""
import numpy as np
import torch

from harness import Case
from sal_ext.ops.nms import nms_1d, nms_1d_reference

NUM_CLASSES = 20


def thumos_like(videos, classes_per_video=3, per_class=315, seed=0):
    """Clustered proposals like OIC's nine thresholds give: nested runs around a few actions."""
    rng = np.random.default_rng(seed)
    segs, scores, labels = [], [], []
    for v in range(videos):
        duration = rng.uniform(60, 400)
        for c in rng.choice(NUM_CLASSES, classes_per_video, replace=False):
            n_act = rng.integers(3, 25)
            centers = rng.uniform(0, duration, n_act)
            widths = rng.exponential(4.0, n_act) + 0.5
            which = rng.integers(0, n_act, per_class)
            w = widths[which] * rng.uniform(0.3, 1.6, per_class)
            mid = centers[which] + rng.normal(0, 0.3, per_class) * widths[which]
            s = np.clip(mid - w / 2, 0, None)
            e = np.maximum(s + 0.04, mid + w / 2)
            segs.append(np.stack([s, e], 1))
            scores.append(rng.normal(0.3, 0.25, per_class))
            labels.append(np.full(per_class, v * NUM_CLASSES + c))
    seg = torch.from_numpy(np.concatenate(segs)).float()
    sc = torch.from_numpy(np.concatenate(scores)).float()
    lab = torch.from_numpy(np.concatenate(labels)).long()
    return seg, sc, lab


# ---- the straightforward numpy/Python versions (per class, as WTAL inference code runs) -------

def numpy_basnet_nms(props, thresh, soft, alpha):
    """props: [k, 3] (score, start, end). The SAL reference's loop (hard when soft=False)."""
    x1, x2, scores = props[:, 1], props[:, 2], props[:, 0]
    areas = x2 - x1 + 1
    order = scores.argsort()[::-1]
    keep, not_keep = [], []
    while order.size > 0:
        i = order[0]
        keep.append(props[i].tolist())
        xx1 = np.maximum(x1[i], x1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + 1)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        if soft:
            inv = np.where(iou >= thresh)[0]
            mod = props[order[inv + 1]]
            for k in range(mod.shape[0]):
                mod[k, 0] = mod[k, 0] * np.exp(-np.square(iou[inv][k]) / alpha)
            not_keep.extend(mod.tolist())
        order = order[np.where(iou < thresh)[0] + 1]
    return keep + not_keep


def numpy_gaussian_soft_nms(props, sigma):
    """Classic numpy iterative Soft-NMS loop (argmax, swap to front, decay the rest)."""
    dets = np.concatenate([props, (props[:, 2] - props[:, 1])[:, None]], 1)
    out = []
    while dets.shape[0] > 0:
        m = np.argmax(dets[:, 0])
        dets[[0, m]] = dets[[m, 0]]
        out.append(dets[0, :3].tolist())
        xx1 = np.maximum(dets[0, 1], dets[1:, 1])
        xx2 = np.minimum(dets[0, 2], dets[1:, 2])
        inter = np.maximum(xx2 - xx1, 0.0)
        iou = inter / (dets[0, 3] + dets[1:, 3] - inter)
        dets[1:, 0] *= np.exp(-(iou * iou) / sigma)
        dets = dets[1:]
    return out


def _grouped_numpy(seg, sc, lab):
    s, e, p, l = seg[:, 0].double().numpy(), seg[:, 1].double().numpy(), sc.double().numpy(), lab.numpy()
    order = np.argsort(l, kind="stable")
    bounds = np.flatnonzero(np.diff(l[order])) + 1
    return [np.stack([p[g], s[g], e[g]], 1) for g in np.split(order, bounds)]


def _variants(seg, sc, lab, method, groups, with_torch):
    kw = dict(iou_threshold=0.4, method=method, sigma=0.3 if method == "sal" else 0.5,
              plus_one=method == "sal")
    v = {"kernel": lambda: nms_1d(seg, sc, lab, backend="kernel", **kw)}
    if with_torch:
        v["torch"] = lambda: nms_1d_reference(seg, sc, lab, **kw)
    if groups is not None:
        if method == "gaussian":
            v["numpy"] = lambda: [numpy_gaussian_soft_nms(g.copy(), 0.5) for g in groups]
        else:
            v["numpy"] = lambda: [numpy_basnet_nms(g, 0.4, method == "sal", 0.3) for g in groups]
    return v


def cases(device, quick):
    videos = 8 if quick else 212
    sub = 4 if quick else 20
    seg, sc, lab = thumos_like(videos)
    n_sub = sub * 3 * 315
    out = []
    # the numpy loops run on CPU copies for every device (what WTAL inference code does); the
    # torch reference only on the subset (~13 s a call for gaussian on the full split)
    for method in ("sal", "hard", "gaussian"):
        s, p, l = seg[:n_sub], sc[:n_sub], lab[:n_sub]
        groups = _grouped_numpy(s, p, l)
        out.append(Case(f"nms_1d {method} (subset)", f"{sub} videos, {n_sub} props",
                        _variants(s.to(device), p.to(device), l.to(device), method, groups, True),
                        baseline="numpy", repeats=3))
    for method in ("sal", "hard", "gaussian"):
        groups = _grouped_numpy(seg, sc, lab)
        out.append(Case(f"nms_1d {method} (full split)", f"{videos} videos, {seg.shape[0]} props",
                        _variants(seg.to(device), sc.to(device), lab.to(device), method, groups,
                                  False),
                        baseline="numpy", repeats=3))
    return out
