"""Top-k MIL selection: the mean of the k best time steps per (video, class).

Ties go to the lower time index, deterministically, on every backend.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from . import _common as C

_OP = "topk_mil"


def _resolve_k(op, T, k, r, lengths, device):
    """Per-video k as an int64 tensor [B] (or an int when uniform)."""
    if k is None:
        if not isinstance(r, int) or isinstance(r, bool) or r < 1:
            raise ValueError(f"{op}: `r` must be a positive int, got {r!r}")
        if lengths is None:
            return max(1, T // r)
        return torch.clamp(lengths // r, min=1)
    if not isinstance(k, int) or isinstance(k, bool):
        raise TypeError(f"{op}: `k` must be an int or None, got {type(k).__name__}")
    if k < 1:
        raise ValueError(f"{op}: `k` must be >= 1, got {k}")
    limit = T if lengths is None else int(lengths.min())
    if k > limit:
        raise ValueError(f"{op}: `k`={k} exceeds the number of time steps ({limit})")
    return k


def _order(score: torch.Tensor) -> torch.Tensor:
    """Time indices [B, T, C] sorted by descending score, ties by ascending index."""
    # stable sort of -score keeps equal scores in ascending time order
    return torch.sort(-score, dim=1, stable=True).indices


def topk_mil(
    score: torch.Tensor,
    value: Optional[torch.Tensor] = None,
    *,
    k: Optional[int] = None,
    r: int = 8,
    lengths: Optional[torch.Tensor] = None,
    backend: Optional[str] = None,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Top-k multiple-instance pooling.

    Args:
        score: [B, T, C] float32/float64: selects the time steps.
        value: [B, T, C] (default: score): averaged at the selected steps. Differentiable.
        k: number of steps; None means max(1, T // r) (per video with `lengths`).
        r: divisor used when k is None (8 in the reference).
        lengths: optional [B] ints in 1..T; only the first lengths[b] steps are candidates.
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        (pooled [B, C], indices [B, k_max, C] int64). With per-video k, rows past k_b are -1.
    """
    C.check_tensor(score, "score", _OP, ndim=3, dtypes=C.FLOAT_DTYPES)
    if value is None:
        value = score
    C.check_tensor(value, "value", _OP, ndim=3, dtypes=C.FLOAT_DTYPES, device=score.device)
    C.check_same_dtype(_OP, score=score, value=value)
    if value.shape != score.shape:
        raise ValueError(f"{_OP}: `value` must have the shape of `score` {tuple(score.shape)}, got {tuple(value.shape)}")
    B, T, Cn = score.shape
    if T == 0:
        raise ValueError(f"{_OP}: `score` has no time steps")
    lengths = C.check_lengths(lengths, "lengths", _OP, B, T, score.device)
    kk = _resolve_k(_OP, T, k, r, lengths, score.device)
    return topk_mil_reference(score.detach(), value, kk, lengths)


def topk_mil_reference(score, value, k: Union[int, torch.Tensor], lengths=None):
    """Pure-torch topk_mil (the fallback and the test oracle). k: int or [B] tensor."""
    B, T, Cn = score.shape
    if lengths is not None:
        t = torch.arange(T, device=score.device)[None, :, None]
        score = score.masked_fill(t >= lengths[:, None, None], float("-inf"))
    order = _order(score)
    if isinstance(k, int):
        idx = order[:, :k, :]
        pooled = torch.gather(value, 1, idx).mean(1)
        return pooled, idx
    kmax = int(k.max())
    idx = order[:, :kmax, :]
    valid = (torch.arange(kmax, device=score.device)[None, :, None] < k[:, None, None])
    picked = torch.gather(value, 1, idx) * valid.to(value.dtype)
    pooled = picked.sum(1) / k[:, None].to(value.dtype)
    return pooled, torch.where(valid, idx, torch.full_like(idx, -1))


def topk_mask(
    score: torch.Tensor,
    k: Union[int, None] = None,
    lengths: Optional[torch.Tensor] = None,
    *,
    r: int = 8,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """{0, 1} mask [B, T, C] (score's dtype) of the time steps topk_mil would select."""
    op = "topk_mask"
    C.check_tensor(score, "score", op, ndim=3, dtypes=C.FLOAT_DTYPES)
    B, T, Cn = score.shape
    if T == 0:
        raise ValueError(f"{op}: `score` has no time steps")
    lengths = C.check_lengths(lengths, "lengths", op, B, T, score.device)
    kk = _resolve_k(op, T, k, r, lengths, score.device)
    return topk_mask_reference(score.detach(), kk, lengths)


def topk_mask_reference(score, k, lengths=None):
    """Pure-torch topk_mask (the fallback and the test oracle)."""
    _, idx = topk_mil_reference(score, score, k, lengths)
    mask = torch.zeros_like(score)
    valid = idx >= 0
    mask.scatter_add_(1, idx.clamp(min=0), valid.to(score.dtype))
    return mask
