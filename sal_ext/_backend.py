"""Kernel or fallback, and the kernels' thread count: the choices every front makes, torch-free.

Shared by the torch fronts (``sal_ext.ops``) and the numpy fronts (``sal_ext.numpy_ops``, the
evaluator's), so ``backend=`` and SAL_EXT_BACKEND mean the same in both: "auto" (the kernel
when one was built for the device, else the fallback), "kernel" (RuntimeError when none was
built), "torch" (the fallback: pure torch in ``sal_ext.ops``, numpy in ``sal_ext.numpy_ops``).
"""
from __future__ import annotations

import os
import sys
from typing import Optional

from . import _ext

BACKENDS = ("auto", "kernel", "torch")


def default_backend() -> str:
    """The backend named by the environment variable SAL_EXT_BACKEND (unset or empty: "auto").

    Read at every op call that is not given `backend`, so an unknown value raises there (a
    one-line ValueError naming the variable and the allowed values); a command line can call
    this first to fail before doing any work."""
    raw = os.environ.get("SAL_EXT_BACKEND", "")
    b = raw.strip().lower() or "auto"
    if b not in BACKENDS:
        allowed = ", ".join(repr(x) for x in BACKENDS)
        raise ValueError(f"environment variable SAL_EXT_BACKEND must be one of {allowed} (or unset), got {raw!r}")
    return b


def use_kernel(op: str, kernel_name: str, kind: str, backend: Optional[str]) -> bool:
    """Decides kernel vs fallback. backend: "auto" | "kernel" | "torch" | None (env default).

    kind: the kernels' device ("cpu", "cuda", or "cuda_emu" for the emulated CUDA kernels).
    "kernel" raises RuntimeError when no kernel was built for it; "auto" falls back.
    """
    backend = default_backend() if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"{op}: `backend` must be one of {BACKENDS}, got {backend!r}")
    if backend == "torch":
        return False
    has = _ext.kernel(kernel_name, kind) is not None
    if backend == "kernel" and not has:
        why = f" ({_ext.import_error()})" if _ext.import_error() else ""
        raise RuntimeError(f"{op}: no {kind} kernel was built{why}; use backend='torch'")
    return has


# ---- the C++ kernels' thread count --------------------------------------------------------------
_kernel_threads = 0  # the thread count last handed to the C++ kernels


def set_kernel_threads(n: int) -> int:
    """Makes the C++ kernels use n threads (n <= 0: the machine's cores); returns n. Cheap:
    one call into the extension only when the count changed."""
    global _kernel_threads
    if n != _kernel_threads and _ext._C is not None:
        _ext._C.set_num_threads(n)
        _kernel_threads = n
    return n


def wanted_threads() -> int:
    """The thread count of a kernel call from a numpy front: torch.get_num_threads() when torch
    is already loaded (the torch fronts' count, so a trainer's torch.set_num_threads holds for
    its evaluations too), else OMP_NUM_THREADS (at most the machine's cores), else 0 (the
    machine's cores). Never imports torch."""
    torch = sys.modules.get("torch")
    get = getattr(torch, "get_num_threads", None)
    if get is not None:
        return get()
    try:
        n = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return 0
    return max(0, min(n, os.cpu_count() or 1))


def call_cpu(kernel_name: str, *args):
    """Runs the CPU kernel ``<kernel_name>_cpu`` on raw pointers (numpy fronts)."""
    set_kernel_threads(wanted_threads())
    return _ext.kernel(kernel_name, "cpu")(*args)
