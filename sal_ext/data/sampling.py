"""Temporal sampling of a video's feature rows to a fixed number of segments.

Both functions reproduce the index math of the SAL reference (``random_perturb`` and
``uniform_sampling`` in dataset/thumos_features.py), which every data set here uses:

* ``uniform_indices``: ``floor(i * T / n)`` for ``i = 0..n-1`` (``arange(n)`` when ``T == n``).
  Computed in integers; for the sizes that occur it equals the reference's float version.
* ``random_perturb_indices``: with ``lo_i = floor(i * T / n)``, segment ``i < n-1`` takes a
  uniformly random row in ``[lo_i, lo_{i+1}]`` (both ends included) when ``lo_i != lo_{i+1}``,
  else ``lo_i``; the last segment takes a random row in ``[lo_{n-1}, T-1]`` when
  ``lo_{n-1} < T-1``, else ``lo_{n-1}``. ``T == n`` gives ``arange(n)``. Videos shorter than
  ``n`` therefore repeat rows. The random draws come from the given numpy Generator (the
  reference used the global numpy state), drawn in one vectorised call.
"""
from __future__ import annotations

import numbers

import numpy as np

__all__ = ["uniform_indices", "random_perturb_indices"]


def _check_sizes(T_orig, num_segments):
    for name, value in (("T_orig", T_orig), ("num_segments", num_segments)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    return int(T_orig), int(num_segments)


def _bin_starts(T_orig: int, num_segments: int) -> np.ndarray:
    return (np.arange(num_segments, dtype=np.int64) * T_orig) // num_segments


def uniform_indices(T_orig: int, num_segments: int) -> np.ndarray:
    """Row indices (int64, length ``num_segments``) of uniform sampling: ``floor(i*T/n)``."""
    T_orig, num_segments = _check_sizes(T_orig, num_segments)
    if T_orig == num_segments:
        return np.arange(num_segments, dtype=np.int64)
    return _bin_starts(T_orig, num_segments)


def random_perturb_indices(T_orig: int, num_segments: int, rng: np.random.Generator) -> np.ndarray:
    """Row indices (int64, length ``num_segments``) of the reference's random perturbation.

    ``rng`` is a ``numpy.random.Generator``; the result depends only on its state.
    """
    T_orig, num_segments = _check_sizes(T_orig, num_segments)
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if T_orig == num_segments:
        return np.arange(num_segments, dtype=np.int64)
    lo = _bin_starts(T_orig, num_segments)
    hi = np.empty_like(lo)
    hi[:-1] = lo[1:]
    hi[-1] = T_orig - 1
    # hi >= lo everywhere; where hi == lo the draw below returns lo (the reference's else-branch).
    return rng.integers(lo, hi + 1, dtype=np.int64)
