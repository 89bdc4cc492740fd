"""Segment mix-up (the AAL branch of SAL) and its target helper.

``segment_mixup(x)`` sums every video with the previous video of the batch,
``x + roll(x, 1, dim=0)``, as the reference does; ``mix_targets`` builds the matching
pseudo-label targets. Differentiable; the backward is the same kernel with the shift negated.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from . import _common as C

_OP = "segment_mixup"


@torch.library.custom_op("sal_ext::segment_mixup", mutates_args=())
def _mixup_kernel(x: torch.Tensor, shift: int, a: float, c: float) -> torch.Tensor:
    out = torch.empty_like(x)
    B = x.shape[0]
    inner = x.numel() // B if B else 0
    args = (C.ptr(x), C.ptr(out), B, inner, shift, a, c, C.dtype_code(x))
    dev = C.kernel_device(x.device)
    if dev != "cpu":
        args += (C.device_index(x), C.stream_of(x))
    C.call("segment_mixup", dev, *args)
    return out


@_mixup_kernel.register_fake
def _(x, shift, a, c):
    return torch.empty_like(x)


def _mixup_backward(ctx, grad):
    # d/dx of a*x[b] + c*x[b-shift]: a*g[b] + c*g[b+shift]
    return _mixup_kernel(C.resolve(grad).contiguous(), -ctx.shift, ctx.a, ctx.c), None, None, None


def _mixup_setup(ctx, inputs, output):
    _, ctx.shift, ctx.a, ctx.c = inputs


_mixup_kernel.register_autograd(_mixup_backward, setup_context=_mixup_setup)


def _check_x(x, op, name="x"):
    """Checks x; returns it resolved (C.resolve: negative/conjugate bits materialised)."""
    x = C.check_tensor(x, name, op, dtypes=C.FLOAT_DTYPES)
    if x.dim() < 1 or x.shape[0] < 1:
        raise ValueError(f"{op}: `{name}` must have a batch dimension of size >= 1, got shape {tuple(x.shape)}")
    return x


def _check_shift(shift, op, batch: int) -> int:
    """An int shift, reduced modulo the batch size (the same roll; keeps it in int64 range)."""
    if not isinstance(shift, int) or isinstance(shift, bool):
        raise TypeError(f"{op}: `shift` must be an int, got {type(shift).__name__}")
    return shift % batch


def _check_weight(weight) -> float:
    """The convex-mix weight as a float in [0, 1]. A one-element tensor is read as a number,
    but not one that requires grad: the op is not differentiable w.r.t. `weight`, and float()
    would drop that gradient silently."""
    if isinstance(weight, torch.Tensor) and weight.requires_grad:
        raise TypeError(f"{_OP}: `weight` must be a float (the op is not differentiable w.r.t. it), "
                        f"got a tensor that requires grad")
    try:
        if isinstance(weight, (bool, str, bytes)):
            raise TypeError
        weight = float(weight)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"{_OP}: `weight` must be a float or None, got {type(weight).__name__}") from None
    if not 0.0 <= weight <= 1.0:  # NaN fails too
        raise ValueError(f"{_OP}: `weight` must be in [0, 1] (a convex mix), got {weight}")
    return weight


def segment_mixup(
    x: torch.Tensor, shift: int = 1, weight: Optional[float] = None, *, backend: Optional[str] = None
) -> torch.Tensor:
    """Mixes each video with the one ``shift`` places before it in the batch.

    Args:
        x: [B, ...] float32/float64, any strides (a non-contiguous x is copied).
        shift: roll offset along the batch dimension (1 in the reference).
        weight: None for the reference sum ``x + roll(x, shift, 0)``; a float w in [0, 1] for
            the convex mix ``w * x + (1 - w) * roll(x, shift, 0)`` (not differentiated).
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        Tensor shaped like x. Differentiable w.r.t. x.
    """
    x = _check_x(x, _OP)
    shift = _check_shift(shift, _OP, x.shape[0])
    if weight is None:
        a, c = 1.0, 1.0
    else:
        weight = _check_weight(weight)
        a, c = weight, 1.0 - weight
    if not C.use_kernel(_OP, "segment_mixup", C.kernel_device(x.device), backend):
        return mixup_reference(x, shift, weight)
    return _mixup_kernel(x, shift, a, c)


def mixup_reference(x: torch.Tensor, shift: int = 1, weight: Optional[float] = None) -> torch.Tensor:
    """Pure-torch segment_mixup (the fallback and the test oracle)."""
    rolled = torch.roll(x, shift, 0)
    if weight is None:
        return x + rolled
    return weight * x + (1.0 - weight) * rolled


def mix_targets(
    g: torch.Tensor, m: torch.Tensor, shift: int = 1, *, backend: Optional[str] = None
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Targets for the mixed actionness: ``(1[g + roll(g) >= 1], (m + roll(m)) / 2)``.

    Args:
        g: [B, ...] pseudo labels in {0, 1} (float32/float64).
        m: mask shaped like g, same dtype.
    Returns:
        (g_aug, m_aug) shaped like g. No gradient flows (the reference detaches both).
    """
    op = "mix_targets"
    g = _check_x(g, op, "g")
    shift = _check_shift(shift, op, g.shape[0])
    m = C.check_tensor(m, "m", op, dtypes=C.FLOAT_DTYPES, device=g.device)
    C.check_same_dtype(op, g=g, m=m)
    if m.shape != g.shape:
        raise ValueError(f"{op}: `m` must have the shape of `g` {tuple(g.shape)}, got {tuple(m.shape)}")
    g, m = g.detach(), m.detach()
    dev = C.kernel_device(g.device)
    if not C.use_kernel(op, "mix_targets", dev, backend):
        return mix_targets_reference(g, m, shift)
    g_out, m_out = torch.empty_like(g), torch.empty_like(m)
    B = g.shape[0]
    args = (C.ptr(g), C.ptr(m), C.ptr(g_out), C.ptr(m_out), B, g.numel() // B, shift, C.dtype_code(g))
    if dev != "cpu":
        args += (C.device_index(g), C.stream_of(g))
    C.call("mix_targets", dev, *args)
    return g_out, m_out


def mix_targets_reference(g: torch.Tensor, m: torch.Tensor, shift: int = 1):
    """Pure-torch mix_targets (the fallback and the test oracle)."""
    g_aug = ((g + torch.roll(g, shift, 0)) >= 1).to(g.dtype)
    m_aug = (m + torch.roll(m, shift, 0)) / 2
    return g_aug, m_aug
