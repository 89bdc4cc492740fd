"""Loads the compiled extension ``sal_ext._C`` (if it was built) and checks it matches."""
from __future__ import annotations

ABI_VERSION = 1  # must equal kAbiVersion in csrc/bindings.cpp

try:
    from . import _C  # type: ignore[attr-defined]
except ImportError as exc:  # pragma: no cover - depends on the build
    _C = None
    _IMPORT_ERROR: Exception | None = exc
else:
    _IMPORT_ERROR = None
    if _C.abi_version() != ABI_VERSION:
        raise ImportError(
            f"sal_ext._C at {_C.__file__} was built from other sources (ABI {_C.abi_version()}, "
            f"expected {ABI_VERSION}): rebuild it with `pip install .`"
        )


def available() -> bool:
    """True when the C++ kernels were built and imported."""
    return _C is not None


def cuda_available() -> bool:
    """True when the CUDA kernels were built (a GPU is still needed to run them)."""
    return _C is not None and bool(_C.with_cuda())


def cuda_emulated() -> bool:
    """True when the CUDA kernels were built for the CPU emulator (tools/emu_build.sh)."""
    return _C is not None and bool(getattr(_C, "with_cuda_emu", lambda: False)())


def kernel(name: str, device_type: str):
    """The compiled function ``<name>_<device_type>``, or None when it was not built.

    device_type "cuda_emu": the CUDA kernel run by the CPU emulator (host memory); in an
    emulated build "cuda" finds nothing (those entry points must never see device pointers).
    """
    if _C is None:
        return None
    if device_type == "cuda_emu":
        return getattr(_C, f"{name}_cuda", None) if cuda_emulated() else None
    if device_type == "cuda" and cuda_emulated():
        return None
    return getattr(_C, f"{name}_{device_type}", None)


def import_error() -> Exception | None:
    return _IMPORT_ERROR
