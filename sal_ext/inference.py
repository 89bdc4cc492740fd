"""SAL post-processing: network outputs of a whole split -> detections (ActivityNet results JSON).

Exactly the reference's test loop (lizhilin-ustc/SAL ``inference_thumos.py``; SAL_SPEC.md
"Inference"), but batched over the split: one OIC proposal kernel call pair and one grouped
NMS call for all videos. Per video (rows of the stacked outputs):

1. ``combined = (softmax_C(cas) + a_flow + a_rgb) / 3`` (THUMOS; evaluated in the reference's
   order ``(p + (a_flow + a_rgb)) / 3``), or ``w0*softmax + w1*a_rgb + w2*a_flow`` for other
   ``fuse_weights`` (ActivityNet: 0.6/0.2/0.2, evaluated left to right as its code does).
2. ``cas_top`` = mean of ``cas`` at the top-``T // topk_r`` time steps of ``combined`` (per
   class); video scores ``s = softmax(w * cas_top + (1 - w) * sc)``, ``w = score_weight``.
3. Predicted classes: ``s >= class_threshold``, the argmax when none (classification
   accuracy: the multi-hot equals the label exactly).
4. OIC proposals of the predicted classes' ``combined`` columns (x24 upsampling, thresholds
   0.1..0.9, ``outer_ratio`` 0.2 as the reference effectively passes, gamma 0.2), see
   :mod:`sal_ext.ops.proposals`. Seconds: ``index * f``, ``f = 16 * T_orig / (24 * T * 25)``.
5. Per class, NMS on the second-valued segments (SAL: soft-NMS thresh 0.4, alpha 0.3, lengths
   +1). Classes of a video are emitted in the reference's dict order (first threshold with a
   proposal, then class index); within a class in NMS output order.
"""
from __future__ import annotations

import gc
import json
import time
from typing import Optional, Sequence

import numpy as np
import torch

from .atomic_file import atomic_write
from .inference_config import THUMOS_ACT_THRESHOLDS, InferenceConfig  # noqa: F401  (re-exported)
from .ops import nms_1d
from .ops._common import check_finite
from .ops.proposals import oic_proposals_batched


def _fuse(p: torch.Tensor, a_rgb: torch.Tensor, a_flow: torch.Tensor, w) -> torch.Tensor:
    w = tuple(float(x) for x in w)
    if len(w) != 3:
        raise ValueError(f"postprocess: `fuse_weights` must have 3 entries, got {len(w)}")
    if all(abs(x - 1 / 3) < 1e-9 for x in w):
        # instance_selection_function: (cas + sum((a_flow, a_rgb))) / 3, in this order
        return (p + (a_flow + a_rgb)) / 3
    return w[0] * p + w[1] * a_rgb + w[2] * a_flow


def video_scores(cas, a_rgb, a_flow, sc, cfg: "InferenceConfig"):
    """combined [N,T,C] and video scores s [N,C] (steps 1-2 of the module doc)."""
    T = cas.shape[1]
    p = torch.softmax(cas, -1)
    combined = _fuse(p, a_rgb[..., None], a_flow[..., None], cfg.fuse_weights)
    k = max(1, T // int(cfg.topk_r))
    idx = torch.topk(combined, k, dim=1).indices
    cas_top = torch.gather(cas, 1, idx).mean(1)
    beta = float(cfg.score_weight)
    s = torch.softmax(beta * cas_top + (1 - beta) * sc, dim=1)
    return combined, s


def predict_classes(s: torch.Tensor, class_threshold: float) -> torch.Tensor:
    """Multi-hot [N, C] bool: s >= threshold, the argmax where no class reaches it."""
    pred = s >= class_threshold
    none = ~pred.any(1)
    if bool(none.any()):
        rows = none.nonzero(as_tuple=True)[0]
        pred[rows, s[rows].argmax(1)] = True
    return pred


def _check(cas, a_rgb, a_flow, sc, t_orig, video_ids, class_names, labels):
    op = "postprocess"
    if not isinstance(cas, torch.Tensor) or cas.dim() != 3 or not cas.dtype.is_floating_point:
        raise ValueError(f"{op}: `cas` must be a float tensor [N, T, C]")
    N, T, C = cas.shape
    if N < 1 or T < 1 or C < 1:
        raise ValueError(f"{op}: `cas` must be non-empty, got shape {tuple(cas.shape)}")
    for name, t, shape in (("a_rgb", a_rgb, (N, T)), ("a_flow", a_flow, (N, T)), ("sc", sc, (N, C))):
        if not isinstance(t, torch.Tensor) or not t.dtype.is_floating_point:
            raise TypeError(f"{op}: `{name}` must be a float tensor")
        if tuple(t.shape) != shape:
            raise ValueError(f"{op}: `{name}` must have shape {list(shape)}, got {tuple(t.shape)}")
    t_orig = torch.as_tensor(t_orig).to("cpu")
    if t_orig.dtype.is_floating_point or t_orig.dtype == torch.bool or tuple(t_orig.shape) != (N,):
        raise ValueError(f"{op}: `t_orig` must be {N} integers (rows before sampling)")
    if N and int(t_orig.min()) < 1:
        raise ValueError(f"{op}: `t_orig` must be >= 1")
    if len(video_ids) != N:
        raise ValueError(f"{op}: `video_ids` must have {N} entries, got {len(video_ids)}")
    if len(class_names) != C:
        raise ValueError(f"{op}: `class_names` must have {C} entries, got {len(class_names)}")
    if labels is not None and (not isinstance(labels, torch.Tensor) or tuple(labels.shape) != (N, C)):
        raise ValueError(f"{op}: `labels` must be a tensor of shape [{N}, {C}]")
    for name, t in (("cas", cas), ("a_rgb", a_rgb), ("a_flow", a_flow), ("sc", sc)):
        check_finite(t, name, op)
    return t_orig.to(torch.int64)


def _nms(segments, scores, groups, cfg):
    keep, new_scores = nms_1d(segments, scores, groups, iou_threshold=float(cfg.nms_threshold),
                              method=cfg.nms_method, sigma=float(cfg.nms_sigma),
                              min_score=None, plus_one=bool(cfg.nms_plus_one))
    return keep, new_scores  # output order: groups ascending, then each group's NMS order


def postprocess(cas: torch.Tensor, a_rgb: torch.Tensor, a_flow: torch.Tensor, sc: torch.Tensor,
                t_orig, video_ids: Sequence[str], class_names: Sequence[str],
                cfg: Optional[InferenceConfig] = None, labels: Optional[torch.Tensor] = None) -> dict:
    """Detections of a whole split from the stacked network outputs.

    Args:
        cas: [N, T, C] class activation sequences (T = num_segments, uniform sampling).
        a_rgb, a_flow: [N, T] actionness of the two streams.
        sc: [N, C] second-order video logits.
        t_orig: [N] ints, feature rows of each video before sampling (index -> seconds).
        video_ids: N names; class_names: C names (JSON labels).
        cfg: InferenceConfig (default: THUMOS14 reference settings).
        labels: optional [N, C] multi-hot video labels (for the classification accuracy).

    Returns:
        {"results": {"version", "results": {vid: [{"label", "score", "segment": [s, e]}]},
         "external_data"}, "pred_multi_hot": [N, C] float32, "video_scores": [N, C],
         "classification_accuracy": float or None,
         "timings": {"proposals": s, "nms": s, "json": s}}.
        Every video with a predicted class has a (possibly empty) entry, in input order.
    """
    cfg = InferenceConfig() if cfg is None else cfg
    t0 = time.perf_counter()
    t_orig = _check(cas, a_rgb, a_flow, sc, t_orig, video_ids, class_names, labels)
    N, T, C = cas.shape
    with torch.no_grad():
        combined, s = video_scores(cas.detach(), a_rgb.detach(), a_flow.detach(), sc.detach(), cfg)
        pred = predict_classes(s, cfg.class_threshold)
        combined, s, pred = combined.cpu(), s.cpu(), pred.cpu()
        # the reference localizes np.where(multi_hot > class_threshold) (in float32)
        localize = pred if np.float32(1) > np.float32(cfg.class_threshold) else torch.zeros_like(pred)
        props = oic_proposals_batched(combined.contiguous(), cfg.act_thresholds, s, localize,
                                      upsample=int(cfg.upsample), outer_ratio=cfg.outer_ratio,
                                      gamma=cfg.gamma, skip_first_only=cfg.oic_skip_first_only)
        f = (cfg.frames_per_snippet * t_orig.to(torch.float64)) / (cfg.upsample * T * cfg.fps)
        fv = f[props.video]
        segments = torch.stack([props.start.to(torch.float64) * fv, props.end.to(torch.float64) * fv], 1)
        # NMS groups in the reference's order: video, first threshold with a proposal, class
        n_thr = len(cfg.act_thresholds)
        col = props.video * C + props.label
        first = torch.full((N * C,), n_thr, dtype=torch.int64)
        first.scatter_reduce_(0, col, props.threshold, reduce="amin")
        groups = (props.video * n_thr + first[col]) * C + props.label
        t1 = time.perf_counter()
        if props.score.numel():
            keep, new_scores = _nms(segments.contiguous(), props.score.contiguous(), groups, cfg)
        else:
            keep, new_scores = torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.float64)
        keep_video = props.video[keep]
        if cfg.max_detections is not None:
            keep, new_scores, keep_video = _cap(keep, new_scores, keep_video, int(cfg.max_detections))
        t2 = time.perf_counter()
        results = _to_json(keep, new_scores, keep_video, props.label, segments, localize,
                           video_ids, class_names)
        acc = None
        if labels is not None:
            acc = int((labels.detach().cpu().float() == pred.float()).all(1).sum()) / N
    t3 = time.perf_counter()
    return {
        "results": {"version": cfg.version, "results": results, "external_data": dict(cfg.external_data)},
        "pred_multi_hot": pred.float(),
        "video_scores": s,
        "classification_accuracy": acc,
        "timings": {"proposals": t1 - t0, "nms": t2 - t1, "json": t3 - t2},
    }


def _cap(keep, scores, video, k):
    """Keeps the k highest-scoring detections of each video (output order preserved)."""
    if keep.numel() == 0:
        return keep, scores, video
    order = torch.from_numpy(np.lexsort((-scores.numpy(), video.numpy())))  # video, then score desc
    vs = video[order]
    start = torch.searchsorted(vs, vs, right=False)
    rank = torch.arange(vs.numel()) - start
    sel = torch.zeros(keep.numel(), dtype=torch.bool)
    sel[order[rank < k]] = True
    return keep[sel], scores[sel], video[sel]


def _to_json(keep, scores, video, label, segments, localize, video_ids, class_names) -> dict:
    # Building ~10^5 small dicts triggers the cyclic GC over every live object many times
    # (15x the cost of the build itself); none of these objects can form a cycle.
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _build_json(keep, scores, video, label, segments, localize, video_ids, class_names)
    finally:
        if enabled:
            gc.enable()


def _build_json(keep, scores, video, label, segments, localize, video_ids, class_names) -> dict:
    names = list(class_names)
    seg = segments[keep].tolist()
    lab = label[keep].tolist()
    sco = scores.tolist()
    entries = [{"label": names[c], "score": x, "segment": s} for c, x, s in zip(lab, sco, seg)]
    counts = torch.bincount(video, minlength=len(video_ids)).tolist()  # keep is sorted by video
    has = localize.any(1).tolist()
    out, pos = {}, 0
    for n, vid in enumerate(video_ids):
        if has[n]:
            out[str(vid)] = entries[pos:pos + counts[n]]
        pos += counts[n]
    return out


def save_results(results: dict, path: str) -> None:
    """Writes an ActivityNet results JSON atomically (temp file in the same folder, rename).

    `results` is the JSON dict, or the whole dict returned by :func:`postprocess`. The file
    gets the permissions a plain ``open(path, "w")`` would give it: those of the file it
    replaces, else 0o666 less the umask (not mkstemp's 0o600).
    """
    if "pred_multi_hot" in results and "results" in results:
        results = results["results"]
    atomic_write(path, json.dumps(results).encode())


__all__ = ["InferenceConfig", "postprocess", "save_results", "video_scores", "predict_classes",
           "THUMOS_ACT_THRESHOLDS"]
