"""Top-k MIL selection: the mean of the k best time steps per (video, class).

``topk_mil`` pools ``value`` at the k time steps of highest ``score`` in every (video, class)
column of a [B, T, C] tensor (SAL's MIL and background heads); ``topk_mask`` marks the same
steps with ones (SAL's pseudo labels and confidence mask).

Selection order, identical on every backend: higher score first, ties by the lower time index
(-0.0 equals +0.0; -inf is a valid, lowest score). NaN anywhere in ``score`` raises ValueError
naming it, on every backend: the torch path checks here in the front before computing (one
reduction); the C++ and CUDA kernels detect NaN scores in their gather pass (free) and the front
raises on their flag, discarding the outputs (on CUDA reading the flag synchronises with the
device, after the kernel, so no GPU time is lost to the check).
The kernels: C++ (nth_element per column on packed (score, index) keys) and CUDA (one block
per column: radix select on the order-preserving float bits, ordered tie pass, rank sort of
the k selected). The backward of ``topk_mil`` (w.r.t. ``value`` only) writes upstream / k_b at the saved
indices and zeros elsewhere in one kernel pass (C++; CUDA: memset + scatter kernel), itself a
custom op whose adjoint (a gather, in torch) makes double backward work.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from . import _common as C

_OP = "topk_mil"

# Tests set this to run the CUDA kernel's global-memory (long column) path on small inputs.
_FORCE_CUDA_WORKSPACE = False


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
    limit = T if lengths is None or lengths.numel() == 0 else int(lengths.min())
    if k > limit:
        raise ValueError(f"{op}: `k`={k} exceeds the number of time steps ({limit})")
    return k


def _check_score(score, op):
    """Checks `score`; returns it resolved (C.resolve: negative/conjugate bits materialised)."""
    score = C.check_tensor(score, "score", op, ndim=3, dtypes=C.FLOAT_DTYPES)
    B, T, Cn = score.shape
    if T == 0:
        raise ValueError(f"{op}: `score` has no time steps")
    return score


def _nan_error(op):
    return ValueError(f"{op}: `score` contains NaN")


def _check_no_nan(score, op):
    # one fast reduction first: the sum is NaN whenever an element is (or on inf + -inf)
    if score.numel() and bool(torch.isnan(score.sum())) and bool(torch.isnan(score).any()):
        raise _nan_error(op)


def _order(score: torch.Tensor) -> torch.Tensor:
    """Time indices [B, T, C] sorted by descending score, ties by ascending index."""
    # stable sort of -score keeps equal scores in ascending time order
    return torch.sort(-score, dim=1, stable=True).indices


def _split_k(kk):
    """(kmax, kvec or None) from an int k or a per-video [B] tensor."""
    if isinstance(kk, int):
        return kk, None
    return int(kk.max()), kk.to(torch.int64).contiguous()


def _direct_ok():
    """Eager calls that need no autograd skip the dispatcher (~7 us a call); traced ones
    (torch.compile / export) always go through the custom ops."""
    return not torch.compiler.is_compiling()


def _opt_ptr(t):
    return 0 if t is None else C.ptr(t)


def _cuda_args(score, kmax, dev):
    """(ws_keys, ws_sel, nan_flag, device, stream) arguments, the NaN flag and the workspaces."""
    B, T, Cn = score.shape
    keep = ()
    ws = (0, 0)
    nan_flag = torch.empty(1, dtype=torch.int32, device=score.device)
    if _FORCE_CUDA_WORKSPACE or C.call("topk_needs_workspace", dev, T, kmax, C.dtype_code(score)):
        key_dtype = torch.int32 if score.dtype == torch.float32 else torch.int64
        ws_keys = torch.empty((B * Cn, T), dtype=key_dtype, device=score.device)
        ws_sel = torch.empty((B * Cn, kmax), dtype=torch.int32, device=score.device)
        keep = (ws_keys, ws_sel)
        ws = (C.ptr(ws_keys), C.ptr(ws_sel))
    return ws + (C.ptr(nan_flag), C.device_index(score), C.stream_of(score)), nan_flag, keep


# ---- topk_mil custom op -------------------------------------------------------------------

def _topk_mil_impl(score, value, kmax, kvec, lengths):
    B, T, Cn = score.shape
    pooled = torch.empty((B, Cn), dtype=score.dtype, device=score.device)
    indices = torch.empty((B, kmax, Cn), dtype=torch.int64, device=score.device)
    args = (C.ptr(score), C.ptr(value), _opt_ptr(kvec), _opt_ptr(lengths), C.ptr(pooled),
            C.ptr(indices), B, T, Cn, kmax, C.dtype_code(score))
    dev = C.kernel_device(score.device)
    if dev != "cpu":
        extra, nan_flag, keep = _cuda_args(score, kmax, dev)
        C.call("topk_mil", dev, *(args + extra))
        nans = nan_flag.item()  # synchronises: after the kernel, so the GPU never idles for it
        del keep  # the workspaces lived until the kernel finished
    else:
        nans = C.call("topk_mil", "cpu", *args)
    if nans:  # the kernels flag NaN scores while gathering; outputs are discarded
        raise _nan_error(_OP)
    return pooled, indices


@torch.library.custom_op("sal_ext::topk_mil", mutates_args=())
def _topk_mil_kernel(
    score: torch.Tensor, value: torch.Tensor, kmax: int, kvec: Optional[torch.Tensor],
    lengths: Optional[torch.Tensor]
) -> Tuple[torch.Tensor, torch.Tensor]:
    return _topk_mil_impl(score, value, kmax, kvec, lengths)


@_topk_mil_kernel.register_fake
def _(score, value, kmax, kvec, lengths):
    B, T, Cn = score.shape
    return score.new_empty((B, Cn)), score.new_empty((B, kmax, Cn), dtype=torch.int64)


def _topk_mil_setup(ctx, inputs, output):
    _, value, kmax, kvec, _ = inputs
    ctx.save_for_backward(output[1], kvec)
    ctx.value_shape = value.shape


def _topk_mil_backward(ctx, grad_pooled, grad_indices):
    # d pooled[b, c] / d value[b, t, c] = 1/k_b at the selected t: a scatter of B*k*C values.
    if grad_pooled is None:
        return None, None, None, None, None
    indices, kvec = ctx.saved_tensors
    grad_value = _topk_mil_backward_kernel(C.resolve(grad_pooled).contiguous(), indices, kvec,
                                           ctx.value_shape[1])
    return None, grad_value, None, None, None


def _topk_mil_backward_impl(grad_pooled, indices, kvec, T):
    """One kernel pass writes the whole gradient: grad/k_b at the indices, zeros elsewhere."""
    B, kmax, Cn = indices.shape
    grad_value = grad_pooled.new_empty((B, T, Cn))
    args = (C.ptr(grad_pooled), C.ptr(indices), _opt_ptr(kvec), C.ptr(grad_value), B, T, Cn, kmax,
            C.dtype_code(grad_pooled))
    dev = C.kernel_device(grad_pooled.device)
    if dev != "cpu":
        args += (C.device_index(grad_pooled), C.stream_of(grad_pooled))
    C.call("topk_mil_backward", dev, *args)
    return grad_value


@torch.library.custom_op("sal_ext::topk_mil_backward", mutates_args=())
def _topk_mil_backward_kernel(
    grad_pooled: torch.Tensor, indices: torch.Tensor, kvec: Optional[torch.Tensor], T: int
) -> torch.Tensor:
    return _topk_mil_backward_impl(grad_pooled, indices, kvec, T)


@_topk_mil_backward_kernel.register_fake
def _(grad_pooled, indices, kvec, T):
    B, kmax, Cn = indices.shape
    return grad_pooled.new_empty((B, T, Cn))


def _backward_setup(ctx, inputs, output):
    _, indices, kvec, _ = inputs
    ctx.save_for_backward(indices, kvec)


def _backward_backward(ctx, gg):
    # the backward is linear in grad_pooled: its adjoint gathers gg at the indices, / k_b
    indices, kvec = ctx.saved_tensors
    valid = (indices >= 0).to(gg.dtype)
    picked = torch.gather(gg, 1, indices.clamp(min=0)) * valid
    k = indices.shape[1] if kvec is None else kvec[:, None].to(gg.dtype)
    return picked.sum(1) / k, None, None, None


_topk_mil_backward_kernel.register_autograd(_backward_backward, setup_context=_backward_setup)


class _TopkMilFunction(torch.autograd.Function):
    """Eager autograd for topk_mil: the custom op's formulas with less dispatch overhead
    (about half of the custom op's fixed cost per call)."""

    @staticmethod
    def forward(ctx, score, value, kmax, kvec, lengths):
        pooled, indices = _topk_mil_impl(score, value, kmax, kvec, lengths)
        ctx.mark_non_differentiable(indices)
        ctx.save_for_backward(indices, kvec)
        ctx.T = value.shape[1]
        return pooled, indices

    @staticmethod
    def backward(ctx, grad_pooled, grad_indices):
        if grad_pooled is None:
            return None, None, None, None, None
        indices, kvec = ctx.saved_tensors
        grad_pooled = C.resolve(grad_pooled).contiguous()
        if grad_pooled.requires_grad:  # double backward: the op with a registered adjoint
            grad_value = _topk_mil_backward_kernel(grad_pooled, indices, kvec, ctx.T)
        else:
            grad_value = _topk_mil_backward_impl(grad_pooled, indices, kvec, ctx.T)
        return None, grad_value, None, None, None


def _scatter_grad(grad_pooled, indices, kvec, value_shape):
    B, kmax, Cn = indices.shape
    if kvec is None:
        src = (grad_pooled / kmax)[:, None, :].expand(B, kmax, Cn)
        idx = indices
    else:
        valid = indices >= 0
        src = (grad_pooled / kvec[:, None].to(grad_pooled.dtype))[:, None, :] * valid.to(grad_pooled.dtype)
        idx = indices.clamp(min=0)
    return grad_pooled.new_zeros(value_shape).scatter_add(1, idx, src)


_topk_mil_kernel.register_autograd(_topk_mil_backward, setup_context=_topk_mil_setup)


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

    For each (b, c): the mean of ``value[b, :, c]`` at the k time steps with the highest
    ``score[b, :, c]`` (ties: the lower time index wins, on every backend).

    Args:
        score: [B, T, C] float32/float64, any strides: selects the time steps. No NaN
            (ValueError, checked before the kernel). Not differentiated through.
        value: [B, T, C] (default: score), same dtype/device: averaged at the selected steps.
            Differentiable (grad = upstream / k_b scattered to the selected steps).
        k: number of steps (int, 1 <= k <= T, and <= min(lengths)); None means
            max(1, T // r), per video max(1, lengths[b] // r) with `lengths`.
        r: divisor used when k is None (8 in the reference).
        lengths: optional [B] ints in 1..T; only the first lengths[b] steps are candidates.
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        (pooled [B, C], indices [B, k_max, C] int64): the selected steps in descending score
        order (ties ascending index). With per-video k, index rows past k_b are -1.
    """
    score = C.check_tensor(score, "score", _OP, ndim=3, dtypes=C.FLOAT_DTYPES)
    if value is None:
        value = score
    value = C.check_tensor(value, "value", _OP, ndim=3, dtypes=C.FLOAT_DTYPES, device=score.device)
    C.check_same_dtype(_OP, score=score, value=value)
    if value.shape != score.shape:
        raise ValueError(f"{_OP}: `value` must have the shape of `score` {tuple(score.shape)}, got {tuple(value.shape)}")
    score = _check_score(score, _OP)
    B, T, Cn = score.shape
    lengths = C.check_lengths(lengths, "lengths", _OP, B, T, score.device)
    kk = _resolve_k(_OP, T, k, r, lengths, score.device)
    if B == 0:
        kmax = kk if isinstance(kk, int) else max(1, T // r)
        return value.new_zeros((0, Cn)), torch.zeros((0, kmax, Cn), dtype=torch.int64, device=score.device)
    if not C.use_kernel(_OP, "topk_mil", C.kernel_device(score.device), backend):
        _check_no_nan(score, _OP)
        return topk_mil_reference(score.detach(), value, kk, lengths)
    kmax, kvec = _split_k(kk)
    if not _direct_ok():  # traced: the custom op (registered fake and autograd)
        return _topk_mil_kernel(score.detach(), value, kmax, kvec, lengths)
    if value.requires_grad and torch.is_grad_enabled():  # eager autograd, same formulas
        return _TopkMilFunction.apply(score.detach(), value, kmax, kvec, lengths)
    return _topk_mil_impl(score.detach(), value, kmax, kvec, lengths)


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


# ---- topk_mask ----------------------------------------------------------------------------

def _topk_mask_impl(score, kmax, kvec, lengths):
    B, T, Cn = score.shape
    mask = torch.empty_like(score)
    args = (C.ptr(score), _opt_ptr(kvec), _opt_ptr(lengths), C.ptr(mask), B, T, Cn, kmax,
            C.dtype_code(score))
    dev = C.kernel_device(score.device)
    if dev != "cpu":
        extra, nan_flag, keep = _cuda_args(score, kmax, dev)
        C.call("topk_mask", dev, *(args + extra))
        nans = nan_flag.item()
        del keep
    else:
        nans = C.call("topk_mask", "cpu", *args)
    if nans:
        raise _nan_error("topk_mask")
    return mask


@torch.library.custom_op("sal_ext::topk_mask", mutates_args=())
def _topk_mask_kernel(
    score: torch.Tensor, kmax: int, kvec: Optional[torch.Tensor], lengths: Optional[torch.Tensor]
) -> torch.Tensor:
    return _topk_mask_impl(score, kmax, kvec, lengths)


@_topk_mask_kernel.register_fake
def _(score, kmax, kvec, lengths):
    return torch.empty_like(score)


def topk_mask(
    score: torch.Tensor,
    k: Union[int, None] = None,
    lengths: Optional[torch.Tensor] = None,
    *,
    r: int = 8,
    backend: Optional[str] = None,
) -> torch.Tensor:
    """{0, 1} mask [B, T, C] (score's dtype) of the time steps topk_mil would select.

    Same arguments, checks and tie rule as :func:`topk_mil`; steps at or past lengths[b] are
    0. No gradient (score is detached).
    """
    op = "topk_mask"
    score = _check_score(score, op)
    B, T, Cn = score.shape
    lengths = C.check_lengths(lengths, "lengths", op, B, T, score.device)
    kk = _resolve_k(op, T, k, r, lengths, score.device)
    if B == 0:
        return torch.zeros_like(score)
    if not C.use_kernel(op, "topk_mask", C.kernel_device(score.device), backend):
        _check_no_nan(score, op)
        return topk_mask_reference(score.detach(), kk, lengths)
    kmax, kvec = _split_k(kk)
    if _direct_ok():
        return _topk_mask_impl(score.detach(), kmax, kvec, lengths)
    return _topk_mask_kernel(score.detach(), kmax, kvec, lengths)


def topk_mask_reference(score, k, lengths=None):
    """Pure-torch topk_mask (the fallback and the test oracle)."""
    _, idx = topk_mil_reference(score, score, k, lengths)
    mask = torch.zeros_like(score)
    valid = idx >= 0
    mask.scatter_add_(1, idx.clamp(min=0), valid.to(score.dtype))
    return mask
