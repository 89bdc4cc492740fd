"""What the environment sets for every op: SAL_EXT_BACKEND and the kernels' thread count."""
import os
import subprocess
import sys

import pytest
import torch

from sal_ext import _ext, ops
from test_ops_views import OPS, _case

needs_kernels = pytest.mark.skipif(not _ext.available(), reason="needs the C++ kernels")


@pytest.mark.parametrize("value", ["gpu", "cuda", "Kernels", "1"])
@pytest.mark.parametrize("op", OPS)
def test_unknown_backend_variable(monkeypatch, op, value):
    fn, args, kw = _case(op, "cpu")
    monkeypatch.setenv("SAL_EXT_BACKEND", value)
    with pytest.raises(ValueError) as err:
        fn(**args, **kw)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg == (f"environment variable SAL_EXT_BACKEND must be one of 'auto', 'kernel', 'torch' "
                   f"(or unset), got {value!r}")
    fn(**args, **kw, backend="torch")  # an explicit backend does not read the variable


@pytest.mark.parametrize("value", ["", " Torch ", "KERNEL", "auto"])
def test_backend_variable_accepted(monkeypatch, value):
    fn, args, kw = _case("topk_mil", "cpu")
    want = fn(**args, **kw, backend="torch")
    monkeypatch.setenv("SAL_EXT_BACKEND", value)
    got = fn(**args, **kw)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@needs_kernels
def test_kernel_threads_follow_torch():
    # the kernels used their own count (the machine's cores), whatever OMP_NUM_THREADS said
    before = torch.get_num_threads()
    torch.manual_seed(0)
    x = torch.randn(4, 64, 2000, dtype=torch.float64)  # above the kernel's one-thread size
    seg = torch.rand(6000, 1, dtype=torch.float64) * 100
    seg = torch.cat([seg, seg + torch.rand(6000, 1, dtype=torch.float64) * 10], 1)
    sc = torch.rand(6000, dtype=torch.float64)
    labels = torch.randint(0, 8, (6000,))
    try:
        out = {}
        for n in (1, 3):
            torch.set_num_threads(n)
            y = ops.second_order_pool(x, backend="kernel")
            keep = ops.nms_1d(seg, sc, labels, iou_threshold=0.5, method="sal", sigma=0.3, backend="kernel")
            assert _ext._C.get_num_threads() == n
            assert ops.backends()["threads"] == n
            out[n] = (y, keep)
        torch.testing.assert_close(out[1][0], out[3][0], rtol=1e-12, atol=1e-15)
        assert torch.equal(out[1][1][0], out[3][1][0]) and torch.equal(out[1][1][1], out[3][1][1])
    finally:
        torch.set_num_threads(before)


@needs_kernels
@pytest.mark.parametrize("omp", ["1", "2"])
def test_omp_num_threads_governs_kernels(omp):
    # (torch caps OMP_NUM_THREADS at the machine's cores: compare with what torch uses)
    env = {**os.environ, "OMP_NUM_THREADS": omp}
    code = ("import torch; from sal_ext import ops; "
            "ops.topk_mil(torch.randn(2, 16, 3), k=2, backend='kernel'); "
            "from sal_ext import _ext; "
            "print(torch.get_num_threads(), ops.backends()['threads'], _ext._C.get_num_threads())")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == [out[0]] * 3
    if omp == "1":
        assert out == ["1"] * 3
