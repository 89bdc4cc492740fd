"""sal_ext.numpy_ops: numpy fronts of the CPU kernels the evaluator needs; never imports torch.

The kernels of ``sal_ext._C`` take raw pointers and sizes, so contiguous numpy arrays of the
right dtype feed them as well as torch tensors: ``python -m sal_ext.evaluate`` runs on numpy
and ``_C`` alone and starts without torch's import time. The input checks here are the rules
of the torch fronts in ``sal_ext.ops``, which call this code for their value checks and their
CPU work (one set of rules, one place). ``backend=`` and SAL_EXT_BACKEND as in ``sal_ext.ops``:
"torch" selects the fallback, here numpy; "auto" also falls back when ``_C`` was not built.
"""
from .detection import check_thresholds, detection_ap

__all__ = ["detection_ap", "check_thresholds"]
