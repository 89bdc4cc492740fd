"""What every op front shares: input checks, backend choice, pointers, streams and threads.

Every kernel call goes through these checks first: the C++ side never sees an unchecked
pointer. Bad input raises ValueError/TypeError with a message that names the argument.
Layout, one rule for every op: any strides are accepted; a non-contiguous tensor (a transpose,
a slice, an expand) is copied to a contiguous one by :func:`check_tensor`, differentiably, so
gradients reach the caller's view as for any torch op.
Tensors whose memory does not hold their values (negative or conjugate bit, efficient zero
tensors) are materialised by :func:`resolve` in the checks, so every backend reads the values.
The C++ kernels run on torch.get_num_threads() threads (see :func:`call`).
What does not need torch is shared with the evaluator's numpy fronts (``sal_ext.numpy_ops``):
the backend choice and thread count (``sal_ext._backend``), the shape and value rules and
their messages (``sal_ext.numpy_ops.checks``).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import os
from typing import Iterable, Optional, Sequence, Union

import torch

from .. import _backend, _ext
from .._backend import BACKENDS, default_backend  # noqa: F401 (the torch-free choices, shared)
from ..numpy_ops import checks as _checks
from ..numpy_ops.checks import (check_length, check_segment_shape,  # noqa: F401 (shared rules)
                                coordinate_limit)

FLOAT_DTYPES = (torch.float32, torch.float64)
DTYPE_CODES = {torch.float32: 0, torch.float64: 1, torch.int64: 2, torch.int32: 3, torch.uint8: 4}


def dtype_code(t: torch.Tensor) -> int:
    return DTYPE_CODES[t.dtype]


def ptr(t: torch.Tensor) -> int:
    return t.data_ptr()


def stream_of(t: torch.Tensor) -> int:
    """Integer handle of torch's current CUDA stream on t's device (0 on CPU: the emulator's)."""
    if t.device.type != "cuda":
        return 0
    return torch.cuda.current_stream(t.device).cuda_stream


def device_index(t: torch.Tensor) -> int:
    """CUDA device index of t (0 for a CPU tensor: the emulator has device 0 only)."""
    if t.device.type != "cuda":
        return 0
    return t.device.index if t.device.index is not None else torch.cuda.current_device()


def resolve(t: torch.Tensor) -> torch.Tensor:
    """t itself when its memory holds its values; otherwise a materialised copy.

    torch._neg_view / .conj() views (e.g. ``c.conj().imag`` of a complex c) only set a bit and
    keep the original memory, and efficient zero tensors have none: a kernel reading
    data_ptr() (or .numpy()) would see the wrong values. resolve_conj/resolve_neg materialise
    (differentiably) and return t itself when no bit is set: about a microsecond a tensor.
    """
    if torch.compiler.is_compiling():  # traced: the bit queries cannot be, these ops can
        return t.resolve_conj().resolve_neg()
    if t.is_neg() or t.is_conj():
        t = t.resolve_conj().resolve_neg()
    if t._is_zerotensor():
        t = torch.zeros(t.shape, dtype=t.dtype, device=t.device)
    return t


# ---- CUDA emulation: CPU tensors through the ops' CUDA branches ----------------------------------
# None: SAL_EXT_EMULATE_CUDA decides; True / False: set by emulate_cuda() for this context.
_EMULATE: contextvars.ContextVar[Optional[bool]] = contextvars.ContextVar("sal_ext_emulate_cuda", default=None)
_EMU_BUILD_HINT = "build sal_ext._C with tools/emu_build.sh (CMake option SAL_EXT_CUDA_EMU=ON)"


def emulating() -> bool:
    """True while CPU tensors take the CUDA branches (emulate_cuda() or SAL_EXT_EMULATE_CUDA=1).

    Always False while torch.compile traces (it cannot trace a ContextVar): a traced front
    calls the ops' custom ops, whose bodies run eagerly and decide then."""
    if torch.compiler.is_compiling():
        return False
    on = _EMULATE.get()
    if on is None:
        on = os.environ.get("SAL_EXT_EMULATE_CUDA", "").strip() not in ("", "0")
    return on


@contextlib.contextmanager
def emulate_cuda(enabled: bool = True):
    """Within this block, ops given CPU tensors run their CUDA branch (workspace sizing, NaN
    flags, post-kernel steps) with the CUDA kernels executed by the CPU emulator of csrc/emu/.

    Needs a build made with tools/emu_build.sh (RuntimeError otherwise). The environment
    variable SAL_EXT_EMULATE_CUDA=1 does the same for a whole process; ``emulate_cuda(False)``
    turns it off for a block. A development and test tool: the emulator is slow.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"emulate_cuda: `enabled` must be a bool, got {type(enabled).__name__}")
    if enabled and not _ext.cuda_emulated():
        raise RuntimeError(f"emulate_cuda: this build has no emulated CUDA kernels; {_EMU_BUILD_HINT}")
    token = _EMULATE.set(enabled)
    try:
        yield
    finally:
        _EMULATE.reset(token)


def kernel_device(device: torch.device) -> str:
    """Which kernels serve tensors on `device`: "cuda", "cpu", or "cuda_emu" (CPU tensors while
    emulating: the CUDA branch of the front, the emulated CUDA kernels)."""
    if device.type == "cpu" and emulating():
        if not _ext.cuda_emulated():
            raise RuntimeError(f"SAL_EXT_EMULATE_CUDA is set but this build has no emulated CUDA kernels; "
                               f"{_EMU_BUILD_HINT}")
        return "cuda_emu"
    return device.type


def check_tensor(
    t,
    name: str,
    op: str,
    *,
    ndim: Optional[int | Sequence[int]] = None,
    dtypes: Optional[Iterable[torch.dtype]] = None,
    device: Optional[torch.device] = None,
    contiguous: bool = True,
) -> torch.Tensor:
    """Checks one tensor argument; returns it resolved (see :func:`resolve`) and, with
    `contiguous` (the default), contiguous: a non-contiguous t is copied (``t.contiguous()``,
    differentiable). Callers must use the returned tensor; contiguous=False leaves the layout
    to the caller (who copies or reads it through numpy). Raises TypeError/ValueError naming
    `name`."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{op}: `{name}` must be a torch.Tensor, got {type(t).__name__}")
    if t.layout != torch.strided or t.is_nested:
        got = "a nested tensor" if t.is_nested else f"layout {t.layout}"
        raise ValueError(f"{op}: `{name}` must be a dense (strided) tensor, got {got}")
    t = resolve(t)
    if ndim is not None:
        _checks.check_ndim(tuple(t.shape), name, op, ndim)
    if dtypes is not None:
        _checks.check_dtype(t.dtype, name, op, tuple(dtypes))
    if device is not None and t.device != device:
        raise ValueError(f"{op}: `{name}` is on {t.device}, expected {device} (all inputs on one device)")
    if contiguous:
        t = t.contiguous()  # t itself when already contiguous
    return t


def check_same_dtype(op: str, **tensors: torch.Tensor) -> None:
    items = [(k, v) for k, v in tensors.items() if v is not None]
    if not items:
        return
    d0 = items[0][1].dtype
    for k, v in items[1:]:
        if v.dtype != d0:
            raise TypeError(f"{op}: `{k}` has dtype {v.dtype}, expected {d0} like `{items[0][0]}`")


def check_finite(t: torch.Tensor, name: str, op: str) -> None:
    """ValueError naming `name` if t holds NaN or Inf.

    One-pass fast path: a finite sum proves every element finite (NaN or Inf make the sum
    non-finite); only otherwise (NaN/Inf, or a finite overflow) the exact test runs."""
    t = t.detach()
    if t.numel() and not math.isfinite(float(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{op}: `{name}` contains NaN or Inf")


def check_segment_values(t, name: str, op: str, compute_dtype=None) -> None:
    """Checks [n, 2] (start, end) segments: finite, within +-coordinate_limit(compute_dtype)
    (default: t's dtype; the dtype the IoU is computed in), end >= start. ValueError naming `name`.

    t: a tensor (on CPU the test runs in numpy: torch's parallel reductions would wake its
    intra-op thread pool, which costs more than the check on a busy machine) or a numpy array.
    One min/max pass in the common case: NaN propagates through both, so only out-of-range
    input pays for the exact tests that choose the message.
    """
    cdtype = _checks.dtype_name(t.dtype if compute_dtype is None else compute_dtype)
    if not isinstance(t, torch.Tensor):
        return _checks.check_segment_values(t, name, op, cdtype)
    if t.device.type == "cpu":
        return _checks.check_segment_values(resolve(t).detach().numpy(), name, op, cdtype)
    check_segment_values_torch(t, name, op, cdtype)


def check_segment_values_torch(t: torch.Tensor, name: str, op: str, cdtype: str) -> None:
    """check_segment_values on the tensor's device (used for CUDA tensors; tested on CPU ones)."""
    limit = coordinate_limit(cdtype)
    if t.numel():
        lo, hi = torch.stack(torch.aminmax(t)).tolist()  # one device sync
        if not (-limit <= lo and hi <= limit):
            check_finite(t, name, op)
            raise _checks.coordinate_error(name, op, float(t.abs().max()), limit, cdtype)
    bad_rows = t[:, 1] < t[:, 0]
    if t.shape[0] and bool(bad_rows.any()):
        i = int(torch.nonzero(bad_rows)[0, 0])
        raise ValueError(f"{op}: `{name}` row {i} has end < start ({t[i, 0].item()}, {t[i, 1].item()})")


def check_lengths(lengths, name: str, op: str, batch: int, max_len: int, device) -> Optional[torch.Tensor]:
    """Checks per-video lengths [B] (ints in 1..max_len); returns them as int64 contiguous."""
    if lengths is None:
        return None
    if not isinstance(lengths, torch.Tensor):
        try:
            lengths = torch.as_tensor(lengths)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{op}: `{name}` must be an integer tensor or a sequence of ints, "
                            f"got {type(lengths).__name__}") from None
    if lengths.dtype.is_floating_point or lengths.dtype == torch.bool or lengths.is_complex():
        raise TypeError(f"{op}: `{name}` must be an integer tensor, got {lengths.dtype}")
    if lengths.layout != torch.strided:
        raise ValueError(f"{op}: `{name}` must be a dense (strided) tensor, got layout {lengths.layout}")
    lengths = resolve(lengths)
    if lengths.dim() != 1 or lengths.shape[0] != batch:
        raise ValueError(f"{op}: `{name}` must have shape [{batch}], got {tuple(lengths.shape)}")
    if lengths.device != device:
        lengths = lengths.to(device)
    if lengths.numel():
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < 1:
            raise ValueError(f"{op}: `{name}` must be >= 1, got {lo}")
        if hi > max_len:
            raise ValueError(f"{op}: `{name}` must be <= {max_len} (the time dimension), got {hi}")
    return lengths.to(torch.int64).contiguous()


def use_kernel(op: str, kernel_name: str, device: Union[torch.device, str], backend: Optional[str]) -> bool:
    """Decides kernel vs torch fallback. backend: "auto" | "kernel" | "torch" | None (env default).

    device: a torch.device or a kernel_device() string ("cuda_emu" for the emulated kernels).
    "kernel" raises RuntimeError when no kernel was built for the device; "auto" falls back.
    """
    return _backend.use_kernel(op, kernel_name, device if isinstance(device, str) else device.type, backend)


def sync_threads() -> int:
    """Makes the C++ kernels use torch.get_num_threads() threads (which follows OMP_NUM_THREADS
    and torch.set_num_threads); returns that count. Cheap: one call into the extension only
    when the count changed."""
    return _backend.set_kernel_threads(torch.get_num_threads())


def call(kernel_name: str, device_type: str, *args):
    if device_type == "cpu":
        sync_threads()
    return _ext.kernel(kernel_name, device_type)(*args)


def backends() -> dict:
    """What was built: {"cpu": bool, "cuda": bool, "cuda_emulated": bool, "cuda_device": bool,
    "ops": [...], ...}; "threads": the C++ kernels' thread count (torch.get_num_threads())."""
    C = _ext._C
    if C is not None:
        sync_threads()
    return {
        "cpu": _ext.available(),
        "cuda": _ext.cuda_available(),
        "cuda_emulated": _ext.cuda_emulated(),
        "cuda_device": torch.cuda.is_available(),
        "ops": list(C.ops) if C is not None else [],
        "threads": C.get_num_threads() if C is not None else 0,
        "import_error": str(_ext.import_error()) if _ext.import_error() else None,
    }
