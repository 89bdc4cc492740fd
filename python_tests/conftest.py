"""Shared test fixtures: devices to run kernels on, and the tiny synthetic set of tiny_run.py.

The "cuda" variant of a kernel test runs
  * on the GPU when there is one and the CUDA kernels were built;
  * else, when sal_ext._C is the CUDA emulator's build (tools/emu_build.sh), on CPU tensors
    routed through the ops' CUDA branches into the CUDA kernels run by the CPU emulator
    (sal_ext.ops.emulate_cuda): the same test bodies, the same assertions. Parametrizations
    marked ``emu_heavy`` (sizes the emulator would take minutes over, whose code paths smaller
    sizes cover) are deselected there, and counted as deselected in pytest's summary;
  * else it skips.
"""
import pytest
import torch

from sal_ext import _ext, ops
from tiny_run import write_tiny_set


def _cuda_mode():
    if torch.cuda.is_available() and _ext.cuda_available():
        return "gpu"
    if _ext.cuda_emulated():
        return "emulated"
    return None


CUDA_MODE = _cuda_mode()

DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(CUDA_MODE is None, reason="needs a GPU and the CUDA kernels, or the emulated build"),
    ),
]


def pytest_configure(config):
    config.addinivalue_line("markers", "emu_heavy: too large for the CUDA emulator (its cuda variant is "
                                       "deselected under emulation; smaller parametrizations cover its paths)")


def pytest_report_header(config):
    return f"sal_ext CUDA tests: {CUDA_MODE or 'skipped (no GPU, no emulated build)'}"


def pytest_collection_modifyitems(config, items):
    if CUDA_MODE != "emulated":
        return
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        heavy = item.get_closest_marker("emu_heavy") is not None
        if heavy and callspec is not None and callspec.params.get("device") == "cuda":
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(params=DEVICES)
def device(request):
    """Each kernel test runs on CPU always and on CUDA (a GPU, or the emulator) when built."""
    if request.param == "cuda" and CUDA_MODE == "emulated":
        with ops.emulate_cuda():
            yield torch.device("cpu")
        return
    yield torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory):
    """Data root of tiny_run's synthetic set, written once a session (the tests only read it)."""
    return write_tiny_set(tmp_path_factory.mktemp("synth"))
