"""1-D (temporal) non-maximum suppression: hard NMS, iterative Soft-NMS and SAL's one-pass variant.

``nms_1d(segments, scores, labels, iou_threshold=..., method=...)`` returns
``(keep, new_scores)``: int64 indices into the input and the (possibly decayed) scores, in
output order.

Methods (``iou`` is the IoU with the proposal just selected):

* ``"hard"``: greedy by descending score; a proposal is dropped when ``iou > iou_threshold``
  (strictly greater, as torchvision's ``nms``). Output: kept proposals in selection order,
  original scores.
* ``"linear"``: iterative Soft-NMS (ActionFormer's ``softnms``): select the highest current
  score, multiply every remaining score by ``(1 - iou)`` where ``iou > iou_threshold`` (strictly),
  re-rank, repeat. Output in selection order with the score each had when selected.
* ``"gaussian"``: as linear with ``score *= exp(-iou**2 / sigma)`` for every remaining proposal
  (``iou_threshold`` is not used).
* ``"sal"``: the SAL reference's one-pass variant (``basnet_nms`` with ``soft_nms=True`` in
  lizhilin-ustc/SAL): sort by score; take the best; every proposal left in the queue with
  ``iou >= iou_threshold`` leaves the queue and its score is multiplied once by
  ``exp(-iou**2 / sigma)`` (``sigma`` is the reference's ``nms_alpha``, 0.3 for THUMOS14).
  Output: all kept proposals in selection order (original scores), then the decayed ones in
  the order they were suppressed (per kept proposal, in queue order).

IoU: ``inter = max(0, min(e1, e2) - max(s1, s2))``, ``iou = inter / (len1 + len2 - inter)``,
0 when both segments have zero length. ``plus_one=True`` uses the reference's pixel-style
lengths on second-valued segments: ``inter = max(0, min(e) - max(s) + 1)``, ``len = e - s + 1``
(with the reference's operation order: ``method="sal", plus_one=True`` reproduces its output
order exactly and its scores bit for bit, except that a decayed score may differ in the last
bit where libm's ``exp`` and numpy's differ). All arithmetic is in float64 whatever the input
dtype; returned scores have the input dtype. (ActionFormer's C++ ``softnms`` decays linear at
``iou >= iou_threshold``; here it is ``>``, like ``"hard"``.)

Order and ties: processing is by descending score; equal scores go lower input index first,
except ``"sal"``, where the higher input index goes first, as the reference's
``scores.argsort()[::-1]`` does with a stable sort (numpy's default quicksort leaves ties in an
unspecified order; in practice tied OIC proposals are identical ones, so only the indices differ).
Soft-NMS re-ranking breaks ties of the current scores by lower input index.

``labels`` (optional, integer [N]): per-label NMS in one call. Every label group is processed
independently; the output holds the groups in ascending label order, each group's outputs in
its own order. A whole test split goes in one call with ``labels = video * num_classes + class``.

``min_score`` (default None: no filter): outputs whose final score is below it are dropped
(for hard / linear / gaussian this is the same as discarding proposals whose score falls below
it during the run, as ActionFormer does; for sal both kept and decayed outputs are filtered).
The SAL reference filters nothing and its proposal scores can be negative, so the default is
no filter. ``max_keep``: at most this many outputs per group (per call without labels),
the first ones in output order.
"""
from __future__ import annotations

import math
from typing import List, Optional, Tuple

import numpy as np
import torch

from . import _common as C

_OP = "nms_1d"
METHODS = {"hard": 0, "linear": 1, "gaussian": 2, "sal": 3}
# hard NMS on CUDA uses an IoU bitmask of sum_g n_g * ceil(n_g / 64) 64-bit words; beyond
# these limits (huge single groups) the one-block-per-group kernel is used instead.
_MASK_MAX_WORDS = 1 << 27  # 1 GiB
_MASK_MAX_BLOCKS = 4096    # shared memory of the scan: 32 KiB
# CPU kernel: prune IoU scans with a per-group start index: 0 never (plain O(n^2) scans),
# 1 for groups above 1024 proposals, 2 always (the tests compare them).
_CPU_WINDOWED = 1


def _check_values(segments, scores):
    """NaN/Inf and end < start checks (in numpy on CPU, see C.check_segment_values)."""
    C.check_segment_values(segments, "segments", _OP, torch.float64)  # IoU in float64
    if segments.device.type != "cpu":
        C.check_finite(scores, "scores", _OP)
    elif not np.isfinite(scores.numpy()).all():
        raise ValueError(f"{_OP}: `scores` contains NaN or Inf")


def _check(segments, scores, labels, iou_threshold, method, sigma, min_score, max_keep, plus_one):
    """Validates every argument; returns normalised (segments, scores, labels, params)."""
    segments = C.check_tensor(segments, "segments", _OP, ndim=2, dtypes=C.FLOAT_DTYPES, contiguous=False)
    if segments.shape[1] != 2:
        raise ValueError(f"{_OP}: `segments` must have shape [N, 2], got {tuple(segments.shape)}")
    n = segments.shape[0]
    scores = C.check_tensor(scores, "scores", _OP, ndim=1, dtypes=C.FLOAT_DTYPES, device=segments.device,
                   contiguous=False)
    if scores.shape[0] != n:
        raise ValueError(f"{_OP}: `scores` must have shape [{n}] like `segments`, got {tuple(scores.shape)}")
    C.check_same_dtype(_OP, segments=segments, scores=scores)
    if labels is not None:
        labels = C.check_tensor(labels, "labels", _OP, ndim=1, device=segments.device, contiguous=False)
        if labels.dtype.is_floating_point or labels.dtype == torch.bool or labels.is_complex():
            raise TypeError(f"{_OP}: `labels` must be an integer tensor (int64), got {labels.dtype}")
        if labels.shape[0] != n:
            raise ValueError(f"{_OP}: `labels` must have shape [{n}] like `segments`, got {tuple(labels.shape)}")
        labels = labels.detach().to(torch.int64).contiguous()
    if n >= 2**31 - 1:
        raise ValueError(f"{_OP}: at most 2**31 - 2 proposals per call, got {n}")
    segments = segments.detach().contiguous()
    scores = scores.detach().contiguous()
    _check_values(segments, scores)
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"{_OP}: `method` must be one of {tuple(METHODS)}, got {method!r}")
    if isinstance(iou_threshold, bool) or not isinstance(iou_threshold, (int, float)):
        raise TypeError(f"{_OP}: `iou_threshold` must be a float, got {type(iou_threshold).__name__}")
    iou_threshold = float(iou_threshold)
    if not 0.0 <= iou_threshold <= 1.0:  # an IoU is in [0, 1]: beyond, every method degenerates
        raise ValueError(f"{_OP}: `iou_threshold` must be in [0, 1] (an IoU), got {iou_threshold}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)):
        raise TypeError(f"{_OP}: `sigma` must be a float, got {type(sigma).__name__}")
    sigma = float(sigma)
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"{_OP}: `sigma` must be finite and > 0, got {sigma}")
    if min_score is None:
        min_score = -math.inf
    else:
        if isinstance(min_score, bool) or not isinstance(min_score, (int, float)):
            raise TypeError(f"{_OP}: `min_score` must be a float or None, got {type(min_score).__name__}")
        min_score = float(min_score)
        if math.isnan(min_score):
            raise ValueError(f"{_OP}: `min_score` must not be NaN")
    if max_keep is None:
        max_keep = -1
    else:
        if isinstance(max_keep, bool) or not isinstance(max_keep, int):
            raise TypeError(f"{_OP}: `max_keep` must be an int or None, got {type(max_keep).__name__}")
        if max_keep < 0:
            raise ValueError(f"{_OP}: `max_keep` must be >= 0, got {max_keep}")
        max_keep = min(max_keep, n)  # the same result; keeps it in the kernels' int64 range
    if not isinstance(plus_one, bool):
        raise TypeError(f"{_OP}: `plus_one` must be a bool, got {type(plus_one).__name__}")
    params = dict(iou_threshold=iou_threshold, method=method, sigma=sigma, min_score=min_score,
                  max_keep=max_keep, plus_one=plus_one)
    return segments, scores, labels, params


def nms_1d(
    segments: torch.Tensor,
    scores: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    *,
    iou_threshold: float,
    method: str = "hard",
    sigma: float = 0.5,
    min_score: Optional[float] = None,
    max_keep: Optional[int] = None,
    plus_one: bool = False,
    backend: Optional[str] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Temporal NMS over [start, end] segments, optionally per label (see the module docstring).

    Args:
        segments: [N, 2] float32/float64 (start, end) with end >= start, finite; any strides
            (as every op: a non-contiguous input is copied).
        scores: [N], same dtype and device, finite.
        labels: optional [N] integer labels: NMS runs per label, groups in ascending label order.
        iou_threshold: in [0, 1]. hard: drop IoU > it; linear: decay where IoU > it; sal:
            suppress IoU >= it (gaussian: checked, not used).
        method: "hard" | "linear" | "gaussian" | "sal".
        sigma: gaussian / sal decay exp(-iou**2 / sigma), finite and > 0 (sal: the reference's
            alpha, 0.3).
        min_score: drop outputs whose final score is below it (None: keep all).
        max_keep: at most this many outputs per label group (None: all).
        plus_one: the reference's +1 lengths in the IoU (SAL preset on second-valued segments).
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        (keep, new_scores): int64 [M] indices into the input, and [M] scores (input dtype),
        on the input's device, in output order. Not differentiable.
    """
    segments, scores, labels, p = _check(segments, scores, labels, iou_threshold, method, sigma,
                                         min_score, max_keep, plus_one)
    dev = C.kernel_device(segments.device)
    if not C.use_kernel(_OP, "nms_1d", dev, backend):
        return _reference(segments, scores, labels, **p)
    n = segments.shape[0]
    if n == 0:
        return (torch.empty(0, dtype=torch.int64, device=segments.device),
                torch.empty(0, dtype=scores.dtype, device=segments.device))
    if dev != "cpu":
        return _nms_cuda(segments, scores, labels, dev, **p)
    out_idx = torch.empty(n, dtype=torch.int64)
    out_sc = torch.empty(n, dtype=scores.dtype)
    m = C.call("nms_1d", "cpu", C.ptr(segments), C.ptr(scores), C.ptr(labels) if labels is not None else 0,
               n, METHODS[p["method"]], p["iou_threshold"], p["sigma"], p["min_score"], p["max_keep"],
               p["plus_one"], _CPU_WINDOWED, C.ptr(out_idx), C.ptr(out_sc), C.dtype_code(scores))
    # numpy copies (single-threaded; see _check_values)
    return torch.from_numpy(out_idx.numpy()[:m].copy()), torch.from_numpy(out_sc.numpy()[:m].copy())


def _sort_groups(scores, labels, sal_ties):
    """Device-side order (label asc, score desc, ties) and group sizes [G] (on the device)."""
    n = scores.shape[0]
    key = scores + 0.0  # -0.0 -> +0.0: equal keys for the radix sort as for the comparisons
    if sal_ties:  # equal scores: higher input index first
        perm = (n - 1) - torch.sort(key.flip(0), descending=True, stable=True).indices
    else:
        perm = torch.sort(key, descending=True, stable=True).indices
    if labels is None:
        return perm, torch.full((1,), n, dtype=torch.int64, device=scores.device)
    lab_sorted, p2 = torch.sort(labels[perm], stable=True)
    perm = perm[p2]
    _, sizes = torch.unique_consecutive(lab_sorted, return_counts=True)
    return perm, sizes


def _nms_cuda(segments, scores, labels, kdev="cuda", *, iou_threshold, method, sigma, min_score, max_keep, plus_one):
    dev = segments.device
    n = segments.shape[0]
    perm, sizes = _sort_groups(scores, labels, method == "sal")
    sizes_h = sizes.cpu()
    G = sizes_h.numel()
    offsets_h = torch.zeros(G + 1, dtype=torch.int64)
    torch.cumsum(sizes_h, 0, out=offsets_h[1:])
    max_group = int(sizes_h.max())
    offsets = offsets_h.to(dev)
    seg_s = segments[perm].contiguous()
    sc_s = scores[perm].contiguous()
    perm = perm.contiguous()
    out_idx = torch.empty(n, dtype=torch.int64, device=dev)
    out_sc = torch.empty(n, dtype=scores.dtype, device=dev)
    counts = torch.zeros(G, dtype=torch.int64, device=dev)
    ws_pos = torch.empty(n if method == "sal" else 0, dtype=torch.int64, device=dev)
    # sal: the second half receives the output scores in float64 (min_score is applied to them)
    ws_score = torch.empty({"hard": 0, "sal": 2 * n}.get(method, n), dtype=torch.float64, device=dev)
    ws_state = torch.empty(n if method != "hard" else 0, dtype=torch.int32, device=dev)
    mask = mask_off = tile_off = None
    total_tiles = 0
    if method == "hard":
        nb = (sizes_h + 63) // 64
        words = int((sizes_h * nb).sum())
        if words <= _MASK_MAX_WORDS and int(nb.max()) <= _MASK_MAX_BLOCKS:
            mask_off_h = torch.zeros(G + 1, dtype=torch.int64)
            torch.cumsum(sizes_h * nb, 0, out=mask_off_h[1:])
            tile_off_h = torch.zeros(G + 1, dtype=torch.int64)
            torch.cumsum(nb * nb, 0, out=tile_off_h[1:])
            total_tiles = int(tile_off_h[-1])
            mask = torch.empty(words, dtype=torch.int64, device=dev)  # uint64 bits
            mask_off, tile_off = mask_off_h.to(dev), tile_off_h.to(dev)
        else:  # huge groups: the greedy block kernel needs its state workspace
            ws_state = torch.empty(n, dtype=torch.int32, device=dev)
    z = 0
    C.call("nms_1d", kdev, C.ptr(seg_s), C.ptr(sc_s), C.ptr(perm), C.ptr(offsets), G, n, max_group,
           METHODS[method], iou_threshold, sigma, min_score, max_keep, plus_one,
           C.ptr(out_idx), C.ptr(out_sc), C.ptr(counts),
           C.ptr(ws_pos) if ws_pos.numel() else z, C.ptr(ws_score) if ws_score.numel() else z,
           C.ptr(ws_state) if ws_state.numel() else z,
           C.ptr(mask) if mask is not None else z, C.ptr(mask_off) if mask_off is not None else z,
           C.ptr(tile_off) if tile_off is not None else z, total_tiles,
           C.dtype_code(scores), C.device_index(segments), C.stream_of(segments))
    # compact: group g's outputs sit at [offsets[g], offsets[g] + counts[g]); then min_score and
    # max_keep (per group) in output order
    gid = torch.repeat_interleave(torch.arange(G, device=dev), sizes, output_size=n)
    local = torch.arange(n, device=dev) - offsets[gid]
    valid = local < counts[gid]
    # min_score: hard / linear / gaussian already stopped or dropped in the kernel (in float64);
    # sal filters here on the float64 scores (not on the rounded out_sc, as the CPU kernel)
    if min_score > -math.inf and method == "sal":
        valid &= ws_score[n:] >= min_score
    if max_keep >= 0:
        csum = torch.cumsum(valid.to(torch.int64), 0)
        excl = csum - valid.to(torch.int64)
        rank = excl - excl[offsets[gid]]
        valid &= rank < max_keep
    return out_idx[valid], out_sc[valid]


# ---------------------------------------------------------------------------------------------
# Reference (fallback and test oracle): plain torch, one group at a time, readable loops.

def nms_1d_reference(
    segments: torch.Tensor,
    scores: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    *,
    iou_threshold: float,
    method: str = "hard",
    sigma: float = 0.5,
    min_score: Optional[float] = None,
    max_keep: Optional[int] = None,
    plus_one: bool = False,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pure-torch nms_1d (same contract, no kernel): the fallback and the test oracle."""
    segments, scores, labels, p = _check(segments, scores, labels, iou_threshold, method, sigma,
                                         min_score, max_keep, plus_one)
    return _reference(segments, scores, labels, **p)


def _iou_row(s, e, length, i, rest, plus_one):
    """IoU (float64) of proposal i with proposals `rest`, in the kernels' operation order."""
    lo = torch.maximum(s[rest], s[i])
    hi = torch.minimum(e[rest], e[i])
    if plus_one:
        inter = torch.clamp((hi - lo) + 1.0, min=0.0)
        return inter / ((length[i] + length[rest]) - inter)
    inter = torch.clamp(hi - lo, min=0.0)
    union = (length[i] + length[rest]) - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, 1.0), 0.0)


def _group_order(sc: torch.Tensor, idx: torch.Tensor, sal_ties: bool) -> List[int]:
    """Positions of one group by descending score; ties: lower index first (sal: higher)."""
    items = list(zip(sc.tolist(), idx.tolist(), range(len(idx))))
    items.sort(key=lambda t: (-t[0], -t[1] if sal_ties else t[1]))
    return [t[2] for t in items]


def _reference_group(s, e, length, sc, idx, method, thr, sigma, min_score, max_keep, plus_one):
    """One group: returns lists (input indices, scores) in output order."""
    n = len(idx)
    out_i, out_s = [], []
    if method in ("hard", "sal"):
        queue = torch.tensor(_group_order(sc, idx, method == "sal"), dtype=torch.int64)
        kept, decayed = [], []
        while queue.numel():
            i = int(queue[0])
            kept.append((int(idx[i]), float(sc[i])))
            rest = queue[1:]
            iou = _iou_row(s, e, length, i, rest, plus_one)
            gone = iou > thr if method == "hard" else iou >= thr
            if method == "sal":  # decayed once, appended in queue order
                new = sc[rest[gone]] * torch.exp(-(iou[gone] * iou[gone]) / sigma)
                decayed += list(zip(idx[rest[gone]].tolist(), new.tolist()))
            queue = rest[~gone]
        for i, v in kept + decayed:
            if v >= min_score:
                out_i.append(i)
                out_s.append(v)
    else:  # iterative Soft-NMS
        cur = sc.clone()
        alive = torch.ones(n, dtype=torch.bool)
        alive &= cur >= min_score
        while bool(alive.any()):
            cand = torch.nonzero(alive).flatten()
            best = cur[cand].max()
            tied = cand[cur[cand] == best]
            i = int(tied[torch.argmin(idx[tied])])  # ties: lower input index
            out_i.append(int(idx[i]))
            out_s.append(float(cur[i]))
            alive[i] = False
            rest = torch.nonzero(alive).flatten()
            if rest.numel() == 0:
                break
            iou = _iou_row(s, e, length, i, rest, plus_one)
            if method == "gaussian":
                cur[rest] = cur[rest] * torch.exp(-(iou * iou) / sigma)
            else:
                cur[rest] = torch.where(iou > thr, cur[rest] * (1.0 - iou), cur[rest])
            alive[rest] = cur[rest] >= min_score
    if max_keep >= 0:
        out_i, out_s = out_i[:max_keep], out_s[:max_keep]
    return out_i, out_s


def _reference(segments, scores, labels, *, iou_threshold, method, sigma, min_score, max_keep, plus_one):
    dev, dtype = segments.device, scores.dtype
    seg = segments.detach().to("cpu", torch.float64)
    sc = scores.detach().to("cpu", torch.float64)
    s, e = seg[:, 0].contiguous(), seg[:, 1].contiguous()
    length = (e - s) + 1.0 if plus_one else e - s
    if labels is None:
        groups = [torch.arange(seg.shape[0])] if seg.shape[0] else []
    else:
        lab = labels.to("cpu")
        groups = [torch.nonzero(lab == v).flatten() for v in torch.unique(lab).tolist()]
    all_i, all_s = [], []
    for g in groups:
        gi, gs = _reference_group(s[g], e[g], length[g], sc[g], g, method, iou_threshold, sigma,
                                  min_score, max_keep, plus_one)
        all_i += gi
        all_s += gs
    return (torch.tensor(all_i, dtype=torch.int64, device=dev),
            torch.tensor(all_s, dtype=torch.float64).to(dtype).to(dev))
