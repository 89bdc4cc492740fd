"""Second-order (bilinear / covariance) pooling, the MSL branch of SAL.

P(X) for X [B, D, T]: G = X X^T * s, signed square root sign(g) * sqrt(|g| + eps),
then L2 normalisation of each flattened row, as the reference ``BilinearPooling``.

Kernel path: the custom op ``sal_ext::second_order_pool_fwd`` computes the Gram matrix on its
upper-triangular tiles only (mirrored), fuses the signed square root and the row norm, and also
returns the row norms; its backward ``sal_ext::second_order_pool_bwd`` rebuilds dL/dg from the
saved output and norms (0 where g == 0, as autograd of the reference formula) and computes
dX = s * (G + G^T) X with one GEMM (masked for ``lengths``, through the mean for ``center``).

Non-finite values, one rule on every backend (the kernels' own NaN/Inf behaviour never
reaches the user): NaN or Inf anywhere in ``x`` (padding past ``lengths`` included) raises
ValueError naming ``x`` before any work (one sum over x, about 1% of the op); a finite ``x``
so large that the result overflows (a row norm of the signed-sqrt Gram matrix is not finite)
raises ValueError too; a non-finite row norm from an x too small to overflow is a backend's
fault and raises RuntimeError naming the backend (a kernel bug, not the user's input). Under torch.compile the kernel path checks at run time inside the custom
op; the torch path's checks are skipped while tracing (they need the values).

Gradient at g == 0: defined as 0 on every backend, also with ``eps=0`` (where the formula's
derivative 1 / (2 sqrt|g|) is infinite and autograd of sign(g) * sqrt(|g|) gives NaN): the
kernel zeroes it where the output is 0, the torch path evaluates the square root at a safe
argument there. Elsewhere both are the exact derivative.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch

from . import _common as C

_OP = "second_order_pool"
SCALES = ("sal", "mean")


# ---- kernel path: custom ops (forward saves y and the row norms for the backward) ----------

def _lengths_ptr(lengths: Optional[torch.Tensor]) -> int:
    return C.ptr(lengths) if lengths is not None else 0


def _kernel_forward(
    x: torch.Tensor, lengths: Optional[torch.Tensor], scale_mode: int, center: bool, eps: float,
    normalize: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """The kernel call alone (no input or output policy): (y, row norms)."""
    B, D, T = x.shape
    y = x.new_empty(B, D * D)
    norm = x.new_empty(B)
    dev = C.kernel_device(x.device)
    if dev != "cpu":
        mean = x.new_empty(B * D if center else 1)
        acc = torch.empty(B, dtype=torch.float64, device=x.device)
        C.call("second_order_pool_forward", dev, C.ptr(x), _lengths_ptr(lengths), C.ptr(y),
               C.ptr(norm), C.ptr(mean), C.ptr(acc), B, D, T, scale_mode, center, eps, normalize,
               C.dtype_code(x), C.device_index(x), C.stream_of(x))
    else:
        C.call("second_order_pool_forward", "cpu", C.ptr(x), _lengths_ptr(lengths), C.ptr(y),
               C.ptr(norm), B, D, T, scale_mode, center, eps, normalize, C.dtype_code(x))
    return y, norm


@torch.library.custom_op("sal_ext::second_order_pool_fwd", mutates_args=())
def _sop_forward(
    x: torch.Tensor, lengths: Optional[torch.Tensor], scale_mode: int, center: bool, eps: float,
    normalize: bool,
) -> Tuple[torch.Tensor, torch.Tensor]:
    C.check_finite(x, "x", _OP)  # here, not in the front: runs at run time under torch.compile
    y, norm = _kernel_forward(x, lengths, scale_mode, center, eps, normalize)
    _check_norm(norm, x, lengths, center, eps, C.kernel_device(x.device))
    return y, norm


@_sop_forward.register_fake
def _(x, lengths, scale_mode, center, eps, normalize):
    B, D, _ = x.shape
    return x.new_empty(B, D * D), x.new_empty(B)


@torch.library.custom_op("sal_ext::second_order_pool_bwd", mutates_args=())
def _sop_backward(
    grad: torch.Tensor, x: torch.Tensor, lengths: Optional[torch.Tensor], y: torch.Tensor,
    norm: torch.Tensor, scale_mode: int, center: bool, normalize: bool,
) -> torch.Tensor:
    B, D, T = x.shape
    grad = C.resolve(grad).contiguous()
    dx = torch.empty_like(x)
    dev = C.kernel_device(x.device)
    if dev != "cpu":
        mean = x.new_empty(B * D if center else 1)
        acc = torch.empty(B, dtype=torch.float64, device=x.device)
        sym = x.new_empty(B, D, D)
        C.call("second_order_pool_backward", dev, C.ptr(x), _lengths_ptr(lengths), C.ptr(y),
               C.ptr(norm), C.ptr(grad), C.ptr(dx), C.ptr(mean), C.ptr(acc), C.ptr(sym), B, D, T,
               scale_mode, center, normalize, C.dtype_code(x), C.device_index(x), C.stream_of(x))
    else:
        C.call("second_order_pool_backward", "cpu", C.ptr(x), _lengths_ptr(lengths), C.ptr(y),
               C.ptr(norm), C.ptr(grad), C.ptr(dx), B, D, T, scale_mode, center, normalize,
               C.dtype_code(x))
    return dx


@_sop_backward.register_fake
def _(grad, x, lengths, y, norm, scale_mode, center, normalize):
    return torch.empty_like(x)


def _sop_setup(ctx, inputs, output):
    x, lengths, scale_mode, center, eps, normalize = inputs
    y, norm = output
    ctx.save_for_backward(x, lengths, y, norm)
    ctx.opts = (scale_mode, center, normalize)
    ctx.mark_non_differentiable(norm)


def _sop_grad(ctx, grad_y, grad_norm):
    # grad_norm is ignored: `norm` is an auxiliary output the public function never returns.
    x, lengths, y, norm = ctx.saved_tensors
    dx = None
    if ctx.needs_input_grad[0]:
        if grad_y is None:
            grad_y = torch.zeros_like(y)
        dx = _sop_backward(grad_y, x, lengths, y, norm, *ctx.opts)
    return dx, None, None, None, None, None


_sop_forward.register_autograd(_sop_grad, setup_context=_sop_setup)


def _check_norm(norm: torch.Tensor, x: torch.Tensor, lengths: Optional[torch.Tensor], center: bool,
                eps: float, backend: str) -> None:
    """x was finite: a non-finite row norm means the Gram matrix (or its norm) overflowed, or,
    where it cannot have (_gram_cannot_overflow), that the backend computed it wrongly."""
    if bool(torch.isfinite(norm).all()):
        return
    b = int(torch.nonzero(~torch.isfinite(norm))[0, 0])
    dtype = str(x.dtype).replace("torch.", "")
    if _gram_cannot_overflow(x[b], None if lengths is None else int(lengths[b]), center, eps):
        raise RuntimeError(f"{_OP}: the {backend} backend produced a non-finite value (the row norm of "
                           f"video {b}) from a finite `x` whose pooled Gram matrix cannot overflow "
                           f"{dtype}: a kernel bug, not an input problem")
    raise ValueError(f"{_OP}: `x` is too large for {dtype}: the pooled Gram matrix of video {b} "
                     f"overflows (scale x down)")


def _gram_cannot_overflow(xb: torch.Tensor, length: Optional[int], center: bool, eps: float) -> bool:
    """A bound on every intermediate of video xb [D, T]: with m = max|x| (2 max|x| centred),
    a Gram sum is at most T m^2 before its scale 1/T or 1/T^2, and a squared row norm of the
    signed square roots at most D (m^2 + eps); both far below the dtype's largest value."""
    D, T = xb.shape
    if length is not None:
        xb, T = xb[:, :length], length
    m = float(xb.abs().max()) * (2.0 if center else 1.0)
    bound = m * m * max(T, D) + D * eps  # float64 here: inf if m^2 overflows
    return math.isfinite(bound) and bound < torch.finfo(xb.dtype).max / 16


# ---- public front ----------------------------------------------------------------------


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
        x: [B, D, T] float32/float64 (any strides), finite: NaN/Inf anywhere raises ValueError
            naming `x` on every backend, and so does a finite x whose Gram matrix overflows.
        lengths: optional [B] ints in 1..T; video b uses only its first lengths[b] steps
            (and T in the scale becomes lengths[b]).
        scale: "sal" (G / T^2, the reference) or "mean" (G / T).
        center: subtract each channel's temporal mean first (covariance pooling).
        eps: inside the signed square root, sign(g) * sqrt(|g| + eps). The gradient where
            g == 0 is 0 on every backend, also with eps=0.
        normalize: L2-normalise each row of the result (F.normalize, eps 1e-12).
        backend: "auto" (default, or SAL_EXT_BACKEND), "kernel" or "torch".

    Returns:
        [B, D*D] tensor of x's dtype. Differentiable w.r.t. x.
    """
    x = C.check_tensor(x, "x", _OP, ndim=3, dtypes=C.FLOAT_DTYPES)
    B, D, T = x.shape
    if B == 0 or D == 0 or T == 0:
        raise ValueError(f"{_OP}: `x` must have non-zero sizes, got shape {tuple(x.shape)}")
    if scale not in SCALES:
        raise ValueError(f"{_OP}: `scale` must be one of {SCALES}, got {scale!r}")
    lengths = C.check_lengths(lengths, "lengths", _OP, B, T, x.device)
    if not isinstance(center, bool):
        raise TypeError(f"{_OP}: `center` must be a bool, got {type(center).__name__}")
    if not isinstance(normalize, bool):
        raise TypeError(f"{_OP}: `normalize` must be a bool, got {type(normalize).__name__}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)):
        raise TypeError(f"{_OP}: `eps` must be a float, got {type(eps).__name__}")
    eps = float(eps)
    if not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{_OP}: `eps` must be finite and >= 0, got {eps}")
    if not C.use_kernel(_OP, "second_order_pool_forward", C.kernel_device(x.device), backend):
        checked = not torch.compiler.is_compiling()
        if checked:
            C.check_finite(x, "x", _OP)
        y, norm = _reference(x, lengths, scale, center, eps, normalize)
        if checked:
            _check_norm(norm.detach(), x, lengths, center, eps, "torch")
        return y
    y, _ = _sop_forward(x, lengths, SCALES.index(scale), center, eps, normalize)
    return y


def second_order_pool_reference(
    x: torch.Tensor,
    lengths: Optional[torch.Tensor] = None,
    *,
    scale: str = "sal",
    center: bool = False,
    eps: float = 1e-5,
    normalize: bool = True,
) -> torch.Tensor:
    """Pure-torch second_order_pool (the fallback and the test oracle); no value checks."""
    return _reference(x, lengths, scale, center, eps, normalize)[0]


def _reference(x, lengths, scale, center, eps, normalize):
    """(y, row norms before normalisation), as the kernel's custom op returns them."""
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
    # sign(g) * sqrt(|g| + eps), with the square root taken at 1 where g == 0 (the product is
    # 0 there anyway): its gradient is then 0 there, not 0 * inf = NaN when eps == 0
    zero = g == 0
    g = torch.sign(g) * torch.sqrt(torch.where(zero, torch.ones_like(g), torch.abs(g)) + eps)
    norm = torch.linalg.vector_norm(g, dim=1)
    if normalize:  # F.normalize(g, dim=1) with the norm computed once
        g = g / norm.clamp_min(1e-12)[:, None]
    return g, norm
