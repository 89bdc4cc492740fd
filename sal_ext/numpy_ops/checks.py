"""Input checks shared by the numpy fronts and the torch fronts (``sal_ext.ops._common``).

Shapes are tuples and dtypes names ("float32", "int64"), so the same function checks a numpy
array or a torch tensor and says the same thing about both. Value checks run on numpy arrays
(the torch fronts hand them their CPU tensors' numpy views). Bad input raises ValueError /
TypeError with a one-line message that names the op and the argument.
"""
from __future__ import annotations

import sys
from typing import Optional, Sequence, Tuple

import numpy as np

FLOAT_DTYPES = ("float32", "float64")


def dtype_name(dtype) -> str:
    """"float32" for np.float32, np.dtype("float32") or torch.float32."""
    return str(np.dtype(dtype)) if not str(dtype).startswith("torch.") else str(dtype)[len("torch."):]


def host_array(x) -> np.ndarray:
    """x as a numpy array (no copy where none is needed). A torch tensor (recognised without
    importing torch: if torch is not loaded, x is not a tensor) is detached and brought to
    the CPU with its negative/conjugate bits and zero-tensor form materialised."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.numpy(force=True)
    return np.asarray(x)


def check_ndim(shape: Tuple[int, ...], name: str, op: str, ndim) -> None:
    allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if len(shape) not in allowed:
        want = " or ".join(str(n) for n in allowed)
        raise ValueError(f"{op}: `{name}` must have {want} dimensions, got shape {tuple(shape)}")


def check_dtype(dtype, name: str, op: str, allowed: Sequence) -> None:
    """TypeError naming `name` unless dtype is one of `allowed` (dtypes or their names)."""
    allowed = [dtype_name(d) for d in allowed]
    got = dtype_name(dtype)
    if got not in allowed:
        raise TypeError(f"{op}: `{name}` must have dtype {', '.join(allowed)}, got {got}")


def check_array(a, name: str, op: str, *, ndim, dtypes: Sequence) -> np.ndarray:
    """A numpy-front argument: a numpy array with that many dimensions and one of `dtypes`."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{op}: `{name}` must be a numpy.ndarray, got {type(a).__name__}")
    check_ndim(a.shape, name, op, ndim)
    check_dtype(a.dtype, name, op, dtypes)
    return a


def check_length(shape: Tuple[int, ...], name: str, op: str, n: Optional[int]) -> int:
    """shape[0]; ValueError unless it is n (when given)."""
    if n is not None and shape[0] != n:
        raise ValueError(f"{op}: `{name}` must have length {n}, got {shape[0]}")
    return shape[0]


def check_segment_shape(shape: Tuple[int, ...], name: str, op: str, n: Optional[int] = None,
                        like: Optional[str] = None) -> None:
    """[n, 2] (start, end) rows; n rows like the argument `like` when given."""
    if shape[1] != 2:
        raise ValueError(f"{op}: `{name}` must have shape [n, 2] (start, end), got {tuple(shape)}")
    if n is not None and shape[0] != n:
        raise ValueError(f"{op}: `{name}` must have {n} rows like `{like}`, got {shape[0]}")


def check_num_classes(num_classes, op: str) -> int:
    if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"{op}: `num_classes` must be an int >= 1, got {num_classes!r}")
    return int(num_classes)


def check_labels(labels: np.ndarray, name: str, op: str, num_classes: int) -> None:
    """Every label in [0, num_classes)."""
    if labels.size:
        lo, hi = int(labels.min()), int(labels.max())
        if lo < 0 or hi >= num_classes:
            raise ValueError(f"{op}: `{name}` must be in [0, {num_classes}), got {lo if lo < 0 else hi}")


def check_no_nan(a: np.ndarray, name: str, op: str) -> None:
    if np.isnan(a).any():
        raise ValueError(f"{op}: `{name}` contains NaN")


def coordinate_limit(dtype) -> float:
    """Largest |coordinate| of a segment: finfo(dtype).max / 4, so that no length (e - s),
    intersection or sum of two lengths (the IoU's union) can overflow to inf."""
    return float(np.finfo(np.dtype(dtype_name(dtype))).max) / 4


def check_segment_values(a: np.ndarray, name: str, op: str, compute_dtype=None) -> None:
    """Checks [n, 2] (start, end) segments: finite, within +-coordinate_limit(compute_dtype)
    (default: a's dtype; the dtype the IoU is computed in), end >= start. ValueError naming `name`.

    One min/max pass in the common case: NaN propagates through both, so only out-of-range
    input pays for the exact tests that choose the message.
    """
    cdtype = dtype_name(a.dtype if compute_dtype is None else compute_dtype)
    limit = coordinate_limit(cdtype)
    if a.size and not (-limit <= float(a.min()) and float(a.max()) <= limit):
        if not np.isfinite(a).all():
            raise ValueError(f"{op}: `{name}` contains NaN or Inf")
        raise coordinate_error(name, op, float(np.abs(a).max()), limit, cdtype)
    bad = np.flatnonzero(a[:, 1] < a[:, 0])
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{op}: `{name}` row {i} has end < start ({a[i, 0]}, {a[i, 1]})")


def coordinate_error(name, op, value, limit, dtype) -> ValueError:
    return ValueError(f"{op}: `{name}` has a coordinate of magnitude {value:.4g}, beyond {limit:.4g} "
                      f"({dtype}'s max / 4, the IoU's dtype): segment lengths would overflow")
