"""oic_proposals: C++ kernel vs the vectorised torch fallback vs the per-video numpy/python
loop of the reference (upsample with interp1d arithmetic, np.where, grouping, np.mean)."""
import os
import sys

import numpy as np
import torch

from harness import Case
from bench_postprocess import synthetic_split
from sal_ext.inference import THUMOS_ACT_THRESHOLDS, InferenceConfig, predict_classes, video_scores
from sal_ext.ops.proposals import oic_proposals_batched

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                                "python_tests"))
import sal_reference_np as R  # noqa: E402


def _python_loop(combined_np, s_np, pred_np, thresholds):
    """The reference's proposal step, one video at a time (no NMS)."""
    out = []
    T = combined_np.shape[1]
    for n in range(combined_np.shape[0]):
        pred = np.nonzero(pred_np[n])[0]
        cas_pred = R.upsample(combined_np[n][:, pred].reshape(T, -1, 1), 24)
        for thr in thresholds:
            tmp = cas_pred.copy()
            tmp[np.where(tmp[:, :, 0] < thr)] = 0
            seg_list = [np.where(tmp[:, k, 0] > 0) for k in range(len(pred))]
            out += R.proposals_oic(seg_list, cas_pred, s_np[n], pred, 24, 1000, 25, T, 0.2, 0.2)
    return out


def cases(device, quick):
    N, T, C = (24, 750, 20) if quick else (212, 750, 20)
    cas, a_rgb, a_flow, sc, *_ = synthetic_split(N, T, C)
    with torch.no_grad():
        combined, s = video_scores(cas, a_rgb, a_flow, sc, InferenceConfig())
    pred = predict_classes(s, 0.25)
    thr = THUMOS_ACT_THRESHOLDS
    n_props = oic_proposals_batched(combined, thr, s, pred, outer_ratio=0.2).score.numel()
    comb_np, s_np, pred_np = combined.numpy(), s.numpy(), pred.numpy()
    shape = f"N={N} T={T} cols={int(pred.sum())} M={n_props}"
    variants = {
        "kernel": lambda: oic_proposals_batched(combined, thr, s, pred, outer_ratio=0.2, backend="kernel"),
        "torch": lambda: oic_proposals_batched(combined, thr, s, pred, outer_ratio=0.2, backend="torch"),
        "python": lambda: _python_loop(comb_np, s_np, pred_np, thr),
    }
    if device.type == "cuda":  # inputs on the GPU: the front copies them to the CPU kernel
        cd, sd, pd = combined.to(device), s.to(device), pred.to(device)
        variants = {"kernel": lambda: oic_proposals_batched(cd, thr, sd, pd, outer_ratio=0.2),
                    "torch": lambda: oic_proposals_batched(cd, thr, sd, pd, outer_ratio=0.2, backend="torch")}
    return [Case("oic_proposals split", shape, variants, repeats=5)]
