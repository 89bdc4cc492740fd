"""Straightforward per-video re-statement of SAL's post-processing (numpy/python, as the
reference code base does it: inference_thumos.py + utils/misc_utils.py of lizhilin-ustc/SAL).

Written from SAL_SPEC.md and a reading of the reference; used as the test oracle of
``sal_ext.inference.postprocess`` and ``sal_ext.ops.oic_proposals`` and as the "python"
baseline of the benchmarks. Deliberately loop-based and unoptimised.
"""
from __future__ import annotations

import numpy as np
import torch

THUMOS_THRESHOLDS = np.arange(0.1, 1.0, 0.1)


def upsample(arr: np.ndarray, scale: int) -> np.ndarray:
    """scipy interp1d(arange(T), arr, kind="linear", axis=0, fill_value="extrapolate")
    evaluated at np.arange(0, T, 1/scale), with scipy's own arithmetic (_call_linear)."""
    T = arr.shape[0]
    x = np.arange(0, T)
    x_new = np.arange(0, T, 1 / scale)
    if T == 1:  # interp1d rejects a single point; the package defines it as constant
        return np.repeat(arr.astype(np.float64), len(x_new), axis=0)
    hi = np.searchsorted(x, x_new).clip(1, T - 1).astype(int)
    lo = hi - 1
    shape = (-1,) + (1,) * (arr.ndim - 1)
    slope = (arr[hi] - arr[lo]) / (x[hi] - x[lo]).reshape(shape)
    return slope * (x_new - x[lo]).reshape(shape) + arr[lo]


def grouping(arr):
    return np.split(arr, np.where(np.diff(arr) != 1)[0] + 1)


def proposals_oic(seg_list, wtcam, final_score, c_pred, scale, v_len, fps, num_segments,
                  lambda_=0.25, gamma=0.2, frames=16):
    t_factor = (frames * v_len) / (scale * num_segments * fps)
    out = []
    for i in range(len(seg_list)):
        c_temp = []
        pos = np.array(seg_list[i])[0]
        if pos.any():
            for g in grouping(pos):
                inner = np.mean(wtcam[g, i, 0])
                n = len(g)
                os_ = max(0, int(g[0] - lambda_ * n))
                oe = min(int(wtcam.shape[0] - 1), int(g[-1] + lambda_ * n))
                outer_idx = list(range(os_, int(g[0]))) + list(range(int(g[-1] + 1), oe + 1))
                outer = 0 if len(outer_idx) == 0 else np.mean(wtcam[outer_idx, i, 0])
                score = inner - outer + gamma * final_score[c_pred[i]]
                c_temp.append([c_pred[i], score, g[0] * t_factor, (g[-1] + 1) * t_factor])
        out.append(c_temp)
    return out


def proposals_one_video(combined_cols: np.ndarray, thresholds, scores: np.ndarray, pred,
                        scale=24, outer_ratio=0.2, gamma=0.2):
    """Index-valued proposals (t_factor = 1 * scale... kept as upsampled indices) in the
    reference's order (threshold outer, class inner): rows (k, score, start, end + 1)."""
    T, K = combined_cols.shape
    up = upsample(combined_cols.reshape(T, K, 1), scale)
    rows = []
    for thr in thresholds:
        tmp = up.copy()
        tmp[np.where(tmp[:, :, 0] < thr)] = 0
        seg_list = [np.where(tmp[:, c, 0] > 0) for c in range(K)]
        # v_len chosen so that t_factor == 1: positions stay upsampled indices
        props = proposals_oic(seg_list, up.copy(), scores, np.arange(K), scale, scale * T, 1,
                              T, outer_ratio, gamma, frames=1)
        for p in props:
            rows += p
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def soft_nms(proposals, thresh, soft=True, alpha=0.3, plus_one=True):
    """basnet_nms of the reference (soft: decayed once, appended after every kept one).
    Ties of equal scores: the later proposal first (stable argsort, reversed)."""
    proposals = np.array(proposals)
    x1, x2, scores = proposals[:, 2], proposals[:, 3], proposals[:, 1]
    one = 1 if plus_one else 0
    areas = x2 - x1 + one
    order = scores.argsort(kind="stable")[::-1]
    keep, not_keep = [], []
    while order.size > 0:
        i = order[0]
        keep.append(proposals[i].tolist())
        xx1 = np.maximum(x1[i], x1[order[1:]])
        xx2 = np.minimum(x2[i], x2[order[1:]])
        inter = np.maximum(0.0, xx2 - xx1 + one)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        if soft:
            inv = np.where(iou >= thresh)[0]
            mod = proposals[order[inv + 1]]
            for k in range(mod.shape[0]):
                mod[k, 1] = mod[k, 1] * np.exp(-np.square(iou[inv][k]) / alpha)
            not_keep.extend(mod.tolist())
        order = order[np.where(iou < thresh)[0] + 1]
    if soft:
        keep.extend(not_keep)
    return keep


def postprocess_reference(cas, a_rgb, a_flow, sc, t_orig, video_ids, class_names, *,
                          class_thresh=0.25, beta=0.35, r=8, thresholds=THUMOS_THRESHOLDS,
                          scale=24, outer_ratio=0.2, gamma=0.2, nms_thresh=0.4, nms_alpha=0.3,
                          fps=25, frames=16, fuse=None, labels=None):
    """The reference's test loop, one video at a time (batch 1), on stacked network outputs.

    fuse: None for (softmax + a_flow + a_rgb) / 3 as instance_selection_function computes it,
    else (w0, w1, w2) for w0*softmax + w1*a_rgb + w2*a_flow (the ActivityNet code).
    Returns (results dict vid -> list of dicts, pred multi-hot [N, C], accuracy or None).
    """
    N, T, C = cas.shape
    results, preds = {}, []
    n_correct = 0
    for n in range(N):
        c = cas[n:n + 1]
        fr, ff = a_rgb[n:n + 1, :, None], a_flow[n:n + 1, :, None]
        p = torch.softmax(c, -1)
        if fuse is None:
            combined = (p + sum((ff, fr))) / 3
        else:
            combined = fuse[0] * p + fuse[1] * fr + fuse[2] * ff
        _, idx = torch.topk(combined, T // r, dim=1)
        cas_top = torch.mean(torch.gather(c, 1, idx), dim=1)
        cas_top = beta * cas_top + (1 - beta) * sc[n:n + 1]
        score_supp = torch.softmax(cas_top, dim=1)
        score_np = score_supp[0].numpy().copy()
        score_np[np.where(score_np < class_thresh)] = 0
        score_np[np.where(score_np >= class_thresh)] = 1
        if np.all(score_np == 0):
            score_np[np.argmax(score_supp[0].numpy())] = 1
        preds.append(score_np.copy())
        if labels is not None:
            n_correct += int(np.sum(labels[n].numpy() == score_np) == C)
        pred = np.where(score_np > class_thresh)[0]
        if len(pred) == 0:
            continue
        cas_pred = combined[0].numpy()[:, pred].reshape(T, -1, 1)
        cas_pred = upsample(cas_pred, scale)
        prop_dict = {}
        for thr in thresholds:
            tmp = cas_pred.copy()
            tmp[np.where(tmp[:, :, 0] < thr)] = 0
            seg_list = [np.where(tmp[:, k, 0] > 0) for k in range(len(pred))]
            props = proposals_oic(seg_list, cas_pred.copy(), score_supp[0].numpy(), pred, scale,
                                  int(t_orig[n]), fps, T, outer_ratio, gamma, frames)
            for pj in props:
                if not pj:
                    continue
                prop_dict.setdefault(pj[0][0], [])
                prop_dict[pj[0][0]] += pj
        final = [soft_nms(prop_dict[k], nms_thresh, True, nms_alpha) for k in prop_dict]
        results[video_ids[n]] = [
            {"label": class_names[int(q[0])], "score": q[1], "segment": [q[2], q[3]]}
            for group in final for q in group]
    acc = None if labels is None else n_correct / N
    return results, np.stack(preds), acc
