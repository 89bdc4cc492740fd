"""sal_ext: SAL for weakly supervised temporal action localization, with C++/CUDA kernels.

Layers (data flows down): command lines (``sal_ext.train``, ``sal_ext.infer``,
``sal_ext.evaluate``) -> SAL model, losses, inference -> data loaders -> ``sal_ext.ops``
(one Python front per kernel) -> ``sal_ext._C`` (C++ and CUDA kernels).
"""
import os as _os
import pkgutil as _pkgutil

# Running from a source checkout (e.g. `python -m sal_ext.train` in the repository root after
# `pip install .`) imports these sources, which have no compiled _C next to them: let the
# package also look in the installed copy, so `sal_ext._C` resolves to the built extension.
if not any(name.startswith("_C.") for name in _os.listdir(_os.path.dirname(__file__))):
    __path__ = _pkgutil.extend_path(__path__, __name__)

__version__ = "0.1.0"

from . import ops  # noqa: E402

__all__ = ["ops", "__version__"]
