"""Shared test fixtures: devices to run kernels on (CUDA skips cleanly without a GPU)."""
import pytest
import torch

from sal_ext import _ext


def _cuda_ready():
    return torch.cuda.is_available() and _ext.cuda_available()


DEVICES = [
    pytest.param("cpu", id="cpu"),
    pytest.param(
        "cuda",
        id="cuda",
        marks=pytest.mark.skipif(not _cuda_ready(), reason="needs a GPU and the CUDA kernels"),
    ),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """Each kernel test runs on CPU always and on CUDA when a GPU and the CUDA build exist."""
    return torch.device(request.param)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)

