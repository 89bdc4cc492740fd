"""sal_ext: SAL for weakly supervised temporal action localization, with C++/CUDA kernels.

Layers (data flows down): command lines (``sal_ext.train``, ``sal_ext.infer``,
``sal_ext.evaluate``) -> SAL model, losses, inference -> data loaders -> ``sal_ext.ops``
(one Python front per kernel) -> ``sal_ext._C`` (C++ and CUDA kernels). The evaluator
(``sal_ext.evaluate``, ``sal_ext.evaluation``) runs on ``sal_ext.numpy_ops`` (numpy fronts of
the kernels it needs) and never imports torch.

``import sal_ext`` imports nothing else: the submodules load on first use, as attributes
(``sal_ext.ops.nms_1d``) or imports (``from sal_ext import ops``), so a command that needs
only the evaluator does not pay for torch.
"""
import importlib as _importlib
import os as _os

# Running from a source checkout (e.g. `python -m sal_ext.train` in the repository root after
# `pip install .`) imports these sources, which have no compiled _C next to them: let the
# package also look in the installed copy, so `sal_ext._C` resolves to the built extension.
if not any(name.startswith("_C.") for name in _os.listdir(_os.path.dirname(__file__))):
    import pkgutil as _pkgutil  # (here only: it costs a start-up 15 ms)

    __path__ = _pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"

# the public submodules, loaded on first attribute access (PEP 562)
_SUBMODULES = ("ops", "numpy_ops", "evaluate", "evaluation", "model", "losses", "inference", "infer", "data",
               "train", "config", "distributed", "plot")

__all__ = ["ops", "__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)  # also sets the attribute
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_SUBMODULES))
