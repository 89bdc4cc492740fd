"""segment_iou and detection_ap: kernel vs the torch / numpy fallbacks, same inputs.

detection_ap runs on the CPU for every device (see sal_ext/ops/detection.py); on CUDA its
case measures the round trip of CUDA inputs.
"""
import numpy as np
import torch

from harness import Case
from sal_ext.ops import detection_ap, segment_iou


def _segments(n, device, dtype=torch.float32):
    s = torch.rand(n, device=device, dtype=dtype) * 500
    return torch.stack([s, s + torch.rand(n, device=device, dtype=dtype) * 30], 1).contiguous()


def thumos_like(n_pred, n_videos=212, n_gt=3000, n_classes=20, seed=0):
    """THUMOS14-shaped arrays: ~14 instances per video in 1-2 classes, most predictions
    overlapping some instance of their video, distinct scores."""
    rng = np.random.default_rng(seed)
    gv = np.sort(rng.integers(0, n_videos, n_gt))
    vcls = rng.integers(0, n_classes, (n_videos, 2))
    gl = vcls[gv, rng.integers(0, 2, n_gt)]
    s = rng.uniform(0, 600, n_gt)
    gseg = np.stack([s, s + rng.uniform(1, 15, n_gt)], 1)
    src = rng.integers(0, n_gt, n_pred)
    pv, pl = gv[src].copy(), gl[src].copy()
    d = (gseg[src, 1] - gseg[src, 0])[:, None] * rng.normal(0, 0.3, (n_pred, 2))
    pseg = np.sort(gseg[src] + d, axis=1)
    noise = rng.random(n_pred) < 0.3
    pl[noise] = rng.integers(0, n_classes, noise.sum())
    ps = rng.permutation(n_pred) / n_pred
    return [torch.as_tensor(x) for x in (pv, pl, ps, pseg, gv, gl, gseg)]


def cases(device, quick):
    n = 300 if quick else 2000
    a, b = _segments(n, device), _segments(n, device)
    out = [Case("segment_iou", f"{n}x{n} float32",
                {"kernel": lambda: segment_iou(a, b, backend="kernel"),
                 "torch": lambda: segment_iou(a, b, backend="torch")},
                extra={"GB/s": 4.0 * n * n})]
    P = 20_000 if quick else 200_000
    arrs = [t.to(device) for t in thumos_like(P)]
    thr = np.linspace(0.1, 0.7, 7)
    out.append(Case("detection_ap", f"P={P} G=3000 C=20 tIoU=7",
                    {"kernel": lambda: detection_ap(*arrs, thr, 20, backend="kernel"),
                     "torch": lambda: detection_ap(*arrs, thr, 20, backend="torch")},
                    baseline="torch", repeats=3))
    return out
