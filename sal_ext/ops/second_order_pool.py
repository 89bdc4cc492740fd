"""Second-order (bilinear / covariance) pooling, the MSL branch of SAL.

P(X) for X [B, D, T]: G = X X^T * s, signed square root sign(g) * sqrt(|g| + eps),
then L2 normalisation of each flattened row, as the reference ``BilinearPooling``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from . import _common as C

_OP = "second_order_pool"
SCALES = ("sal", "mean")


def second_order_pool(
    x: torch.Tensor,
    lengths: Optional[torch.Tensor] = None,
    *,
    scale: str = "sal",
    center: bool = False,
    eps: float = 1e-5,
    normalize: bool = True,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """Batched second-order pooling.

    Args:
        x: [B, D, T] float32/float64, contiguous.
        lengths: optional [B] ints in 1..T; video b uses only its first lengths[b] steps
            (and T in the scale becomes lengths[b]).
        scale: "sal" (G / T^2, the reference) or "mean" (G / T).
        center: subtract each channel's temporal mean first (covariance pooling).
        eps: inside the signed square root, sign(g) * sqrt(|g| + eps).
        normalize: L2-normalise each row of the result (F.normalize, eps 1e-12).
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        [B, D*D] tensor of x's dtype. Differentiable w.r.t. x.
    """
    C.check_tensor(x, "x", _OP, ndim=3, dtypes=C.FLOAT_DTYPES)
    B, D, T = x.shape
    if B == 0 or D == 0 or T == 0:
        raise ValueError(f"{_OP}: `x` must have non-zero sizes, got shape {tuple(x.shape)}")
    if scale not in SCALES:
        raise ValueError(f"{_OP}: `scale` must be one of {SCALES}, got {scale!r}")
    lengths = C.check_lengths(lengths, "lengths", _OP, B, T, x.device)
    return second_order_pool_reference(x, lengths, scale=scale, center=center, eps=eps, normalize=normalize)


def second_order_pool_reference(
    x: torch.Tensor,
    lengths: Optional[torch.Tensor] = None,
    *,
    scale: str = "sal",
    center: bool = False,
    eps: float = 1e-5,
    normalize: bool = True,
) -> torch.Tensor:
    """Pure-torch second_order_pool (the fallback and the test oracle)."""
    B, D, T = x.shape
    if lengths is None:
        n = torch.full((B,), T, dtype=x.dtype, device=x.device)
        xm = x
    else:
        mask = (torch.arange(T, device=x.device)[None, :] < lengths[:, None]).to(x.dtype)
        n = lengths.to(x.dtype)
        xm = x * mask[:, None, :]
    if center:
        mean = xm.sum(-1, keepdim=True) / n[:, None, None]
        xm = xm - mean
        if lengths is not None:
            xm = xm * mask[:, None, :]
    s = 1.0 / (n * n) if scale == "sal" else 1.0 / n
    g = torch.bmm(xm, xm.transpose(1, 2)) * s[:, None, None]
    g = g.reshape(B, D * D)
    g = torch.sign(g) * torch.sqrt(torch.abs(g) + eps)
    if normalize:
        g = F.normalize(g, dim=1)
    return g
