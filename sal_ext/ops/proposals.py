"""SAL's proposal generator: upsampled score columns, thresholded runs, outer-inner-contrast.

For one score column y (length T, e.g. the ``combined`` CAS column of a predicted class):

1. Upsample: ``v[i] = interp(i / upsample)`` for ``i`` in ``0 .. L-1``,
   ``L = ceil(T / (1 / upsample))`` (``len(np.arange(0, T, 1 / upsample))``), by linear
   interpolation over index space 0..T-1 that extrapolates past the end, computed exactly as
   the reference's ``scipy.interpolate.interp1d(arange(T), y, fill_value="extrapolate")``
   does (slope ``y[hi] - y[lo]`` rounded in y's dtype, then float64; hi = clip(ceil(x), 1, T-1)).
   T = 1 gives a constant column.
2. For each threshold: every maximal run ``[s, e]`` of positions with ``v >= thr`` (and
   ``v > 0``: the reference zeroes values below the threshold, then keeps the positive ones)
   is a proposal. Reference quirk kept by default (``skip_first_only``): a threshold whose
   only selected position is 0 gives no proposal (the reference tests ``positions.any()``).
3. Score: ``inner - outer + gamma * video_score`` with inner = mean of ``v[s..e]``, outer =
   mean over ``[os, s)`` and ``(e, oe]``, ``os = max(0, int(s - r*len))``,
   ``oe = min(L-1, int(e + r*len))`` (int() truncates), 0 when both flanks are empty.

The C++ kernel never materialises the upsampled column: the column is linear between two
input rows, so values and threshold levels are monotone inside each interpolation interval;
runs are counted from the interval ends (O(T) per column), run boundaries are located by
binary search with the reference's exact arithmetic (positions are bit-exact), and every
inner/outer mean is O(1) from closed-form float64 prefix sums (~1e-12 from the reference's
``np.mean``). Two passes (count, fill), parallel over columns. The torch fallback
materialises the column (cumsum prefix sums) and is the test oracle. ``gamma *
video_score`` is computed in float64 (under numpy >= 2 the reference multiplies a float32
score, a difference below 1e-8 that is the same for every proposal of a class).

There is no CUDA kernel on purpose: the input of a whole test split is small ([N, T, C]
float32, 13 MB for THUMOS14: a few ms to copy), the output size needs a host round trip
anyway, the work is O(T) per column (~15 ms of one CPU core for THUMOS14's test split), and
the detections end in a JSON file. CUDA inputs are copied to the CPU and the results are
returned on the input's device.
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Sequence

import numpy as np
import torch

from . import _common as C

_OP = "oic_proposals"
# Most upsampled positions per column, L = ceil(T * upsample): the C++ kernel keeps a 20-byte
# position table of L entries (shared by the columns of a call), the torch fallback works on
# [columns, L] float64 blocks (chunked to _FALLBACK_BLOCK elements). 2**24 (335 MB of table)
# allows T = 699,050 feature steps at SAL's upsample=24; larger L is refused before any
# allocation (upsample=10_000_000 used to allocate gigabytes before failing).
MAX_UPSAMPLED_LENGTH = 2**24
_FALLBACK_BLOCK = 2**22  # ~32 MB per float64 array of the fallback's column chunk


class OICProposals(NamedTuple):
    """Proposals of many (video, class) columns; all [M] tensors on the input's device.

    Order: video ascending, then threshold (in the order given), then class (ascending),
    then start position ascending -- the reference's loop order within a video.
    """

    video: torch.Tensor      # int64 video (row) index n
    label: torch.Tensor      # int64 class (column) index c
    threshold: torch.Tensor  # int64 index into `thresholds`
    score: torch.Tensor      # float64 OIC score
    start: torch.Tensor      # int64 first upsampled position s
    end: torch.Tensor        # int64 last upsampled position + 1 (e + 1)


def upsampled_length(T: int, upsample: int) -> int:
    """len(np.arange(0, T, 1 / upsample)), the reference's upsampled length."""
    return int(math.ceil(T / (1.0 / upsample)))


def _check_thresholds(thresholds, op) -> torch.Tensor:
    if isinstance(thresholds, torch.Tensor):
        thr = C.resolve(thresholds).detach().to("cpu", torch.float64).reshape(-1)
        if thresholds.dim() > 1:
            raise ValueError(f"{op}: `thresholds` must be 1-D, got shape {tuple(thresholds.shape)}")
    else:
        try:
            thr = torch.tensor([float(t) for t in thresholds], dtype=torch.float64)
        except (TypeError, ValueError):
            raise TypeError(f"{op}: `thresholds` must be a sequence of numbers or a 1-D tensor") from None
    if thr.numel() == 0:
        raise ValueError(f"{op}: `thresholds` must not be empty")
    if thr.numel() > 255:
        raise ValueError(f"{op}: at most 255 `thresholds` are supported, got {thr.numel()}")
    if not bool(torch.isfinite(thr).all()):
        raise ValueError(f"{op}: `thresholds` contains NaN or Inf")
    return thr.contiguous()


def _as_float(v, name, op) -> float:
    if isinstance(v, bool):
        raise TypeError(f"{op}: `{name}` must be a float, got bool")
    try:
        return float(v)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{op}: `{name}` must be a float, got {type(v).__name__}") from None


def _check_scalars(upsample, outer_ratio, gamma, op):
    if isinstance(upsample, bool) or not isinstance(upsample, int):
        raise TypeError(f"{op}: `upsample` must be an int, got {type(upsample).__name__}")
    if upsample < 1:
        raise ValueError(f"{op}: `upsample` must be >= 1, got {upsample}")
    outer_ratio, gamma = _as_float(outer_ratio, "outer_ratio", op), _as_float(gamma, "gamma", op)
    if not math.isfinite(outer_ratio) or outer_ratio < 0:
        raise ValueError(f"{op}: `outer_ratio` must be finite and >= 0, got {outer_ratio}")
    if not math.isfinite(gamma):
        raise ValueError(f"{op}: `gamma` must be finite, got {gamma}")
    return upsample, outer_ratio, gamma


def oic_proposals_batched(
    values: torch.Tensor,
    thresholds: Sequence[float] | torch.Tensor,
    video_scores: torch.Tensor,
    columns: Optional[torch.Tensor] = None,
    *,
    upsample: int = 24,
    outer_ratio: float = 0.25,
    gamma: float = 0.2,
    skip_first_only: bool = True,
    backend: Optional[str] = None,
) -> OICProposals:
    """OIC proposals of the selected columns of a whole split in one kernel call pair.

    Args:
        values: [N, T, C] float32/float64 score columns (``combined`` of N videos).
        thresholds: 1-D sequence of finite thresholds (any order; <= 255 of them).
        video_scores: [N, C] video-level class scores (gamma bonus), any float dtype.
        columns: optional [N, C] bool mask of the columns to process (default: all).
        upsample: upsampling factor (24 in SAL); ceil(T * upsample) must be
            <= MAX_UPSAMPLED_LENGTH (2**24), checked before anything is allocated.
        outer_ratio: flank length / proposal length (the reference's ``lambda_``; SAL's
            inference actually passes 0.2).
        gamma: weight of the video score in the proposal score.
        skip_first_only: reproduce the reference's ``positions.any()`` test (see module doc).
        backend: "auto" | "kernel" | "torch" | None (env SAL_EXT_BACKEND, else auto).

    Returns:
        OICProposals (see its doc for the order), tensors on values' device.
    """
    op = _OP
    values = C.check_tensor(values, "values", op, ndim=3, dtypes=C.FLOAT_DTYPES)
    N, T, K = values.shape
    if T < 1:
        raise ValueError(f"{op}: `values` must have T >= 1 rows, got shape {tuple(values.shape)}")
    C.check_finite(values, "values", op)
    video_scores = C.check_tensor(video_scores, "video_scores", op, ndim=2, dtypes=C.FLOAT_DTYPES,
                   device=values.device, contiguous=False)
    if tuple(video_scores.shape) != (N, K):
        raise ValueError(f"{op}: `video_scores` must have shape [{N}, {K}], got {tuple(video_scores.shape)}")
    C.check_finite(video_scores, "video_scores", op)
    if columns is not None:
        columns = C.check_tensor(columns, "columns", op, ndim=2, dtypes=(torch.bool,), device=values.device,
                       contiguous=False)
        if tuple(columns.shape) != (N, K):
            raise ValueError(f"{op}: `columns` must have shape [{N}, {K}], got {tuple(columns.shape)}")
    thr = _check_thresholds(thresholds, op)
    upsample, outer_ratio, gamma = _check_scalars(upsample, outer_ratio, gamma, op)
    L = upsampled_length(T, upsample)
    if L > MAX_UPSAMPLED_LENGTH:
        raise ValueError(f"{op}: `upsample` * T must be <= {MAX_UPSAMPLED_LENGTH} upsampled positions "
                         f"per column, got {L} (upsample={upsample}, T={T})")
    if not isinstance(skip_first_only, bool):
        raise TypeError(f"{op}: `skip_first_only` must be a bool, got {type(skip_first_only).__name__}")
    device = values.device
    # The work is on the CPU (see the module doc); the kernel choice is for the CPU.
    use_k = C.use_kernel(op, "oic_count", torch.device("cpu"), backend)
    vals = values.detach().to("cpu").contiguous()
    vs = video_scores.detach().to("cpu", torch.float64).contiguous()
    if columns is None:
        pair_video = torch.arange(N, dtype=torch.int64).repeat_interleave(K)
        pair_class = torch.arange(K, dtype=torch.int64).repeat(N)
    else:
        pair_video, pair_class = columns.detach().to("cpu").nonzero(as_tuple=True)
    pair_video, pair_class = pair_video.contiguous(), pair_class.contiguous()
    if use_k:
        out = _kernel(vals, vs, pair_video, pair_class, thr, upsample, L, outer_ratio, gamma,
                      skip_first_only)
    else:
        out = _reference(vals, vs, pair_video, pair_class, thr, upsample, L, outer_ratio, gamma,
                         skip_first_only)
    if device.type != "cpu":
        out = OICProposals(*(t.to(device) for t in out))
    return out


def _empty_result() -> OICProposals:
    e = torch.empty(0, dtype=torch.int64)
    return OICProposals(e, e.clone(), e.clone(), torch.empty(0, dtype=torch.float64), e.clone(), e.clone())


def _kernel(vals, vs, pair_video, pair_class, thr, upsample, L, ratio, gamma, skip) -> OICProposals:
    P, n_thr = pair_video.numel(), thr.numel()
    if P == 0:
        return _empty_result()
    N, T, K = vals.shape
    thr_sorted, thr_index = torch.sort(thr, stable=True)
    thr_sorted, thr_index = thr_sorted.contiguous(), thr_index.contiguous()
    shape_args = (C.ptr(vals), N, T, K, C.ptr(pair_video), C.ptr(pair_class), P, C.ptr(thr_sorted),
                  C.ptr(thr_index), n_thr, upsample, L, bool(skip))
    counts = torch.empty(P, n_thr, dtype=torch.int64)
    C.call("oic_count", "cpu", *shape_args, C.ptr(counts), C.dtype_code(vals))
    offsets = _offsets(counts, pair_video)
    M = int(counts.sum())
    score = torch.empty(M, dtype=torch.float64)
    start, end, pair, tidx = (torch.empty(M, dtype=torch.int64) for _ in range(4))
    if M:
        C.call("oic_fill", "cpu", *shape_args, C.ptr(offsets), C.ptr(vs), ratio, gamma, C.ptr(score),
               C.ptr(start), C.ptr(end), C.ptr(pair), C.ptr(tidx), C.dtype_code(vals))
    return OICProposals(pair_video[pair], pair_class[pair], tidx, score, start, end)


def _offsets(counts: torch.Tensor, pair_video: torch.Tensor) -> torch.Tensor:
    """Exclusive scan of counts [P, n_thr] in the order (video, threshold, pair)."""
    P, n_thr = counts.shape
    t = torch.arange(n_thr, dtype=torch.int64)
    p = torch.arange(P, dtype=torch.int64)
    key = (pair_video[:, None] * n_thr + t[None, :]) * P + p[:, None]  # pairs sorted by video
    order = torch.argsort(key.reshape(-1))
    flat = counts.reshape(-1)[order]
    excl = torch.cumsum(flat, 0) - flat
    offsets = torch.empty(P * n_thr, dtype=torch.int64)
    offsets[order] = excl
    return offsets.reshape(P, n_thr).contiguous()


def upsample_reference(cols: torch.Tensor, upsample: int, L: Optional[int] = None) -> torch.Tensor:
    """[P, T] columns -> [P, L] float64, interp1d(..., fill_value="extrapolate") exactly."""
    P, T = cols.shape
    L = upsampled_length(T, upsample) if L is None else L
    x = torch.arange(L, dtype=torch.float64) * (1.0 / upsample)
    if T == 1:
        return cols.to(torch.float64).expand(P, L).clone()
    hi = torch.ceil(x).to(torch.int64).clamp_(1, T - 1)
    lo = hi - 1
    ylo, yhi = cols[:, lo], cols[:, hi]
    slope = (yhi - ylo).to(torch.float64)  # difference rounded in the input dtype, as scipy
    return slope * (x - lo.to(torch.float64)) + ylo.to(torch.float64)


def _reference(vals, vs, pair_video, pair_class, thr, upsample, L, ratio, gamma, skip) -> OICProposals:
    """Vectorised pure-torch version (the fallback and the kernel's test oracle).

    Columns go in chunks of about _FALLBACK_BLOCK upsampled values, so memory stays bounded
    whatever the number of columns."""
    P, n_thr = pair_video.numel(), thr.numel()
    if P == 0:
        return _empty_result()
    step = max(1, _FALLBACK_BLOCK // L)
    parts = []
    for p0 in range(0, P, step):
        p1 = min(P, p0 + step)
        parts += _reference_chunk(vals, vs, pair_video[p0:p1], pair_class[p0:p1], p0, thr, upsample,
                                  L, ratio, gamma, skip)
    sp, tt, score, s, e1 = (torch.cat(x) for x in zip(*parts))
    # order: video, threshold, pair (class ascending within a video), start
    key = torch.stack([pair_video[sp], tt, sp, s])
    order = torch.from_numpy(np.lexsort(key.flip(0).numpy()))
    sp, tt, score, s, e1 = sp[order], tt[order], score[order], s[order], e1[order]
    return OICProposals(pair_video[sp], pair_class[sp], tt, score, s, e1)


def _reference_chunk(vals, vs, pair_video, pair_class, p0, thr, upsample, L, ratio, gamma, skip):
    """Proposals of pairs p0 .. p0 + len(pair_video) - 1: a list (per threshold) of
    (pair index, threshold index, score, start, end + 1) tensors, unordered across thresholds."""
    P, n_thr = pair_video.numel(), thr.numel()
    cols = vals[pair_video, :, pair_class]  # [P, T]
    v = upsample_reference(cols, upsample, L)
    prefix = torch.zeros(P, L + 1, dtype=torch.float64)
    prefix[:, 1:] = torch.cumsum(v, 1)
    bonus = gamma * vs[pair_video, pair_class]
    parts = []
    for t in range(n_thr):
        keep = (v >= thr[t]) & (v > 0)
        pad = torch.zeros(P, 1, dtype=torch.bool)
        edge = torch.diff(torch.cat([pad, keep, pad], 1).to(torch.int8), dim=1)  # [P, L+1]
        sp, s = (edge == 1).nonzero(as_tuple=True)
        _, e1 = (edge == -1).nonzero(as_tuple=True)  # e1 = e + 1; same (p, order) as starts
        if skip and sp.numel():
            n_runs = torch.bincount(sp, minlength=P)
            drop = (s == 0) & (e1 == 1) & (n_runs[sp] == 1)
            sp, s, e1 = sp[~drop], s[~drop], e1[~drop]
        length = (e1 - s).to(torch.float64)
        inner = (prefix[sp, e1] - prefix[sp, s]) / length
        reach = ratio * length
        lo = s.to(torch.float64) - reach
        hi = (e1 - 1).to(torch.float64) + reach
        os_ = torch.where(lo <= 0, torch.zeros_like(s), torch.trunc(lo).to(torch.int64))
        oe = torch.where(hi >= L - 1, torch.full_like(s, L - 1), torch.trunc(hi).to(torch.int64))
        n_left = (s - os_).clamp(min=0)
        n_right = (oe - (e1 - 1)).clamp(min=0)
        left = torch.where(n_left > 0, prefix[sp, s] - prefix[sp, os_], torch.zeros_like(inner))
        right = torch.where(n_right > 0, prefix[sp, (oe + 1).clamp(max=L)] - prefix[sp, e1],
                            torch.zeros_like(inner))
        n_out = (n_left + n_right).to(torch.float64)
        outer = torch.where(n_out > 0, (left + right) / n_out.clamp(min=1), torch.zeros_like(inner))
        score = (inner - outer) + bonus[sp]
        parts.append((sp + p0, torch.full_like(sp, t), score, s, e1))
    return parts


def oic_proposals(
    cas: torch.Tensor,
    thresholds: Sequence[float] | torch.Tensor,
    video_scores: torch.Tensor,
    *,
    upsample: int = 24,
    outer_ratio: float = 0.25,
    gamma: float = 0.2,
    skip_first_only: bool = True,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """SAL proposals of one video: K score columns -> [M, 4] float64 proposals.

    Args:
        cas: [T, K] float32/float64 score columns (``combined[:, pred]`` of the K predicted
            classes in the reference).
        thresholds: thresholds (0.1 .. 0.9 in SAL).
        video_scores: [K] scores of those classes (the gamma bonus).
        upsample, outer_ratio, gamma, skip_first_only, backend: see oic_proposals_batched.

    Returns:
        [M, 4] float64 rows (k = column index, score, start index, end index + 1) in the
        reference's order: threshold outer, then column, then start position; indices are
        upsampled positions (seconds = index * 16 * T_orig / (upsample * T * fps)).
    """
    cas = C.check_tensor(cas, "cas", _OP, ndim=2, dtypes=C.FLOAT_DTYPES, contiguous=False)
    video_scores = C.check_tensor(video_scores, "video_scores", _OP, ndim=1, dtypes=C.FLOAT_DTYPES,
                   device=cas.device, contiguous=False)
    if cas.shape[0] < 1:
        raise ValueError(f"{_OP}: `cas` must have T >= 1 rows, got shape {tuple(cas.shape)}")
    C.check_finite(cas, "cas", _OP)
    if video_scores.shape[0] != cas.shape[1]:
        raise ValueError(f"{_OP}: `video_scores` must have shape [{cas.shape[1]}] (one per column of "
                         f"`cas`), got {tuple(video_scores.shape)}")
    r = oic_proposals_batched(cas.contiguous()[None], thresholds, video_scores[None], upsample=upsample,
                              outer_ratio=outer_ratio, gamma=gamma, skip_first_only=skip_first_only,
                              backend=backend)
    return torch.stack([r.label.to(torch.float64), r.score, r.start.to(torch.float64),
                        r.end.to(torch.float64)], 1)
