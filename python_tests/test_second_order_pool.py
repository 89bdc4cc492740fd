import importlib
import itertools

import pytest
import torch

from sal_ext.ops import second_order_pool
from sal_ext.ops.second_order_pool import second_order_pool_reference

OPTIONS = [dict(scale=s, center=c, normalize=n)
           for s, c, n in itertools.product(["sal", "mean"], [False, True], [True, False])]
DS = [1, 3, 17, 64, 65, 130]
TS = [1, 2, 7, 100]
# under the CUDA emulator (conftest) these sizes are deselected: D = 130 and D = 64 / 65 with
# T >= 7 take minutes there; the kept ones cover the same paths (several tiles, mirrored tiles,
# partial tiles: D = 65, 130 with T = 2; long reductions: D = 17, T = 100)
_EMU_KEEP = {(64, 1), (64, 2), (65, 1), (65, 2), (130, 2)}


def _dt_params():
    heavy = pytest.mark.emu_heavy
    return [pytest.param(D, T, marks=heavy) if D >= 64 and (D, T) not in _EMU_KEEP else (D, T)
            for D, T in itertools.product(DS, TS)]


def _lengths_variants(B, T, device):
    """None, random lengths with the extremes (== T and == 1) included."""
    lens = torch.randint(1, T + 1, (B,), device=device)
    lens[0] = T
    if B > 1:
        lens[-1] = 1
    return [None, lens]


def _pool_and_grad(fn, x, lengths, dy, **kw):
    xr = x.detach().clone().requires_grad_(True)
    y = fn(xr, lengths, **kw)
    (gx,) = torch.autograd.grad(y, xr, dy)
    return y.detach(), gx


def _kernel_pool(*args, **kw):
    return second_order_pool(*args, backend="kernel", **kw)


def _kernel_and_reference(x, lengths, dy, **opt):
    """(y, gx) of the kernel, then (y, gx) of the torch reference, on the same inputs."""
    return (*_pool_and_grad(_kernel_pool, x, lengths, dy, **opt),
            *_pool_and_grad(second_order_pool_reference, x, lengths, dy, **opt))


def _assert_close_float64(y, gx, y_ref, gx_ref):
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gx, gx_ref, rtol=1e-8, atol=1e-10 * gx_ref.abs().max().item())


@pytest.mark.parametrize("D,T", _dt_params())
def test_matches_reference_float64(device, D, T):
    B = 1 + (D + T) % 3  # B in 1..3 across the grid
    x = torch.randn(B, D, T, dtype=torch.float64, device=device)
    dy = torch.randn(B, D * D, dtype=torch.float64, device=device)
    for lengths in _lengths_variants(B, T, device):
        for opt in OPTIONS:
            y, gx, y_ref, gx_ref = _kernel_and_reference(x, lengths, dy, **opt)
            msg = f"B={B} D={D} T={T} lengths={lengths} {opt}"
            torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12, msg=msg)
            torch.testing.assert_close(gx, gx_ref, rtol=1e-8, atol=1e-10 * gx_ref.abs().max().item() + 1e-14,
                                       msg=msg)
            if lengths is not None:  # steps past the length get exactly zero gradient
                t = torch.arange(T, device=device)
                assert bool((gx[(t[None, :] >= lengths[:, None])[:, None, :].expand_as(gx)] == 0).all())


@pytest.mark.emu_heavy
@pytest.mark.parametrize("center", [False, True])
def test_large_blocked_float64(device, center):
    # D and T above the kernels' reduction blocks (256) and several 96/64 tiles, multi-threaded
    B, D, T = 2, 300, 530
    x = torch.randn(B, D, T, dtype=torch.float64, device=device)
    dy = torch.randn(B, D * D, dtype=torch.float64, device=device)
    for lengths in (None, torch.tensor([257, 530], device=device)):
        opt = dict(scale="sal", center=center, normalize=True)
        y, gx, y_ref, gx_ref = _kernel_and_reference(x, lengths, dy, **opt)
        _assert_close_float64(y, gx, y_ref, gx_ref)


@pytest.mark.emu_heavy
def test_many_videos_float64(device):
    # enough videos that the CPU kernel hands out whole videos to its workers
    B, D, T = 9, 200, 100
    x = torch.randn(B, D, T, dtype=torch.float64, device=device)
    dy = torch.randn(B, D * D, dtype=torch.float64, device=device)
    lengths = torch.randint(1, T + 1, (B,), device=device)
    for lens in (None, lengths):
        for center in (False, True):
            opt = dict(scale="mean", center=center, normalize=True)
            y, gx, y_ref, gx_ref = _kernel_and_reference(x, lens, dy, **opt)
            _assert_close_float64(y, gx, y_ref, gx_ref)


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_float32_vs_float64_oracle(device, opt):
    B, D, T = 3, 70, 150
    x64 = torch.relu(torch.randn(B, D, T, dtype=torch.float64, device=device))
    lengths = torch.tensor([T, 40, 1], device=device)
    dy64 = torch.randn(B, D * D, dtype=torch.float64, device=device)
    for lens in (None, lengths):
        y, gx = _pool_and_grad(_kernel_pool, x64.float(), lens, dy64.float(), **opt)
        y_ref, gx_ref = _pool_and_grad(second_order_pool_reference, x64, lens, dy64, **opt)
        assert y.dtype == torch.float32 and gx.dtype == torch.float32
        torch.testing.assert_close(y.double(), y_ref, rtol=2e-4, atol=2e-6 * y_ref.abs().max().item())
        torch.testing.assert_close(gx.double(), gx_ref, rtol=2e-3, atol=2e-4 * gx_ref.abs().max().item())


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("with_lengths", [False, True])
def test_gradcheck(device, opt, with_lengths):
    x = torch.randn(2, 3, 5, dtype=torch.float64, device=device, requires_grad=True)
    lengths = torch.tensor([5, 2], device=device) if with_lengths else None
    assert torch.autograd.gradcheck(
        lambda t: second_order_pool(t, lengths, backend="kernel", **opt), (x,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_zero_channel(device, opt):
    # an all-zero channel (as after a ReLU) makes g exactly 0 on its row and column: the signed
    # sqrt is 0 there and its gradient is 0 (sign' = 0, sign(0) = 0), as autograd of the reference
    B, D, T = 2, 9, 13
    x = torch.relu(torch.randn(B, D, T, dtype=torch.float64, device=device))
    x[:, 2] = 0
    x[1, 5] = 0
    dy = torch.randn(B, D * D, dtype=torch.float64, device=device)
    for lengths in (None, torch.tensor([13, 4], device=device)):
        y, gx, y_ref, gx_ref = _kernel_and_reference(x, lengths, dy, **opt)
        assert bool((y.view(B, D, D)[:, 2, :] == 0).all()) and bool((y.view(B, D, D)[:, :, 2] == 0).all())
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-8, atol=1e-12)
        assert torch.isfinite(gx).all()
    # the whole video zero: output 0 and gradient 0 (the norm is clamped)
    z = torch.zeros(1, 4, 6, dtype=torch.float64, device=device)
    y, gx = _pool_and_grad(_kernel_pool, z, None, torch.randn(1, 16, dtype=torch.float64, device=device),
                           **opt)
    assert bool((y == 0).all()) and bool((gx == 0).all())


@pytest.mark.parametrize("scale_x,eps", [(1e-15, 0.0), (1.0, 0.0), (1e-3, 1e-5)])
def test_eps_and_clamped_norm(device, scale_x, eps):
    # eps = 0, and a norm below F.normalize's 1e-12 clamp (its gradient is then dy / 1e-12)
    x = torch.randn(2, 5, 7, dtype=torch.float64, device=device) * scale_x
    dy = torch.randn(2, 25, dtype=torch.float64, device=device)
    for center in (False, True):
        y, gx = _pool_and_grad(_kernel_pool, x, None, dy, eps=eps, center=center)
        y_ref, gx_ref = _pool_and_grad(second_order_pool_reference, x, None, dy, eps=eps, center=center)
        torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-15)
        torch.testing.assert_close(gx, gx_ref, rtol=1e-8, atol=1e-10 * gx_ref.abs().max().item())


@pytest.mark.parametrize("normalize", [True, False])
def test_kernel_propagates_nan(device, normalize):
    """A NaN in x gives NaN where the torch formula gives NaN, on CPU and CUDA alike (the CUDA
    kernel's signed sqrt and norm clamp used to turn it into 0 / a finite row). Calls the kernel
    call directly: what the public front does with non-finite input is its own policy (it
    refuses it: test_non_finite_x_raises)."""
    from sal_ext.ops.second_order_pool import _kernel_forward
    x = torch.randn(3, 6, 9, dtype=torch.float64, device=device)
    x[1, 2, 4] = float("nan")
    for center in (False, True):
        y, _ = _kernel_forward(x, None, 0, center, 1e-5, normalize)
        want = second_order_pool_reference(x, center=center, normalize=normalize)
        assert bool(torch.isnan(y[1]).any()) and torch.equal(torch.isnan(y), torch.isnan(want))
        torch.testing.assert_close(y, want, rtol=1e-10, atol=1e-12, equal_nan=True)


def test_reference_formula_literal():
    # the reference BilinearPooling: X X^T / T^2, signed sqrt (eps 1e-5), L2 normalise
    x = torch.rand(2, 6, 11, dtype=torch.float64)
    g = torch.bmm(x, x.transpose(1, 2)).reshape(2, -1) / 11**2
    g = torch.sign(g) * torch.sqrt(g.abs() + 1e-5)
    want = g / g.norm(dim=1, keepdim=True)
    torch.testing.assert_close(second_order_pool(x, backend="kernel"), want)
    torch.testing.assert_close(second_order_pool(x, backend="torch"), want)


def test_backends_agree_float32(device):
    x = torch.randn(4, 64, 75, device=device)
    lengths = torch.tensor([75, 10, 33, 1], device=device)
    for lens in (None, lengths):
        a = second_order_pool(x, lens, backend="kernel")
        b = second_order_pool(x, lens, backend="torch")
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_symmetric_output(device):
    x = torch.randn(2, 130, 37, device=device)
    y = second_order_pool(x, backend="kernel", normalize=False).view(2, 130, 130)
    assert torch.equal(y, y.transpose(1, 2))


def test_opcheck():
    from sal_ext.ops.second_order_pool import _sop_backward, _sop_forward
    x = torch.randn(2, 5, 7, dtype=torch.float64, requires_grad=True)
    lens = torch.tensor([7, 3])
    for lengths in (None, lens):
        torch.library.opcheck(_sop_forward, (x, lengths, 0, True, 1e-5, True))
        torch.library.opcheck(_sop_forward, (x, lengths, 1, False, 1e-5, False))
    y, norm = _sop_forward(x.detach(), lens, 0, False, 1e-5, True)
    torch.library.opcheck(_sop_backward, (torch.randn_like(y), x.detach(), lens, y, norm, 0, False, True))


def test_torch_compile():
    x = torch.randn(2, 8, 10, dtype=torch.float64, requires_grad=True)
    fn = torch.compile(lambda t: second_order_pool(t, backend="kernel").sum(), backend="eager",
                       fullgraph=True)
    loss = fn(x)
    loss.backward()
    x2 = x.detach().clone().requires_grad_(True)
    second_order_pool_reference(x2).sum().backward()
    torch.testing.assert_close(loss, second_order_pool_reference(x.detach()).sum())
    torch.testing.assert_close(x.grad, x2.grad)


def test_bad_inputs():
    x = torch.randn(2, 3, 4)
    with pytest.raises(ValueError, match="`x`"):
        second_order_pool(torch.randn(3, 4))
    with pytest.raises(TypeError, match="`x`"):
        second_order_pool(torch.zeros(2, 3, 4, dtype=torch.int64))
    with pytest.raises(TypeError, match="`x`"):
        second_order_pool(x.half())
    with pytest.raises(ValueError, match="`x`"):
        second_order_pool(torch.zeros(2, 3, 0))
    with pytest.raises(TypeError, match="`x`"):
        second_order_pool([[1.0]])
    with pytest.raises(ValueError, match="`lengths`"):
        second_order_pool(x, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="`lengths`"):
        second_order_pool(x, torch.tensor([4, 5]))
    with pytest.raises(ValueError, match="`lengths`"):
        second_order_pool(x, torch.tensor([4, 4, 4]))
    with pytest.raises(ValueError, match="`lengths`"):
        second_order_pool(x, torch.tensor([[4, 4]]))
    with pytest.raises(TypeError, match="`lengths`"):
        second_order_pool(x, torch.tensor([4.0, 4.0]))
    with pytest.raises(ValueError, match="`scale`"):
        second_order_pool(x, scale="sum")
    with pytest.raises(ValueError, match="`eps`"):
        second_order_pool(x, eps=-1.0)
    with pytest.raises(TypeError, match="`center`"):
        second_order_pool(x, center="yes")
    with pytest.raises(TypeError, match="`normalize`"):
        second_order_pool(x, normalize=None)
    with pytest.raises(ValueError, match="`backend`"):
        second_order_pool(x, backend="gpu")


def test_lengths_not_convertible():
    # a non-numeric `lengths` used to surface torch's raw "Could not infer dtype" error
    x = torch.rand(2, 3, 8, dtype=torch.float64)
    for bad in ("ab", [None, 1], object()):
        with pytest.raises(TypeError, match="`lengths`"):
            second_order_pool(x, bad, backend="kernel")
    torch.testing.assert_close(second_order_pool(x, [8, 3], backend="kernel"),
                               second_order_pool(x, torch.tensor([8, 3]), backend="kernel"))


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_non_finite_x_raises(device, backend, bad, dtype):
    # one rule on every backend (the README: bad input raises): NaN/Inf anywhere in x, also
    # in the padding past `lengths` that the result does not use
    lengths = torch.tensor([9, 4], device=device)
    for b, d, t, lens in ((0, 1, 3, None), (1, 2, 8, lengths), (1, 0, 4, lengths)):
        x = torch.randn(2, 3, 9, dtype=dtype, device=device)
        x[b, d, t] = bad
        for normalize in (True, False):
            with pytest.raises(ValueError, match=r"second_order_pool: `x` contains NaN or Inf"):
                second_order_pool(x, lens, backend=backend, normalize=normalize)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("dtype,big", [(torch.float32, 1e25), (torch.float64, 1e160)])
def test_overflowing_x_raises(device, backend, dtype, big):
    # finite x whose Gram matrix overflows: the kernel returned NaN and the torch path zeros
    x = torch.randn(2, 4, 8, dtype=dtype, device=device)
    x[1] *= big
    for normalize in (True, False):
        with pytest.raises(ValueError, match=r"`x` is too large for .*video 1 overflows"):
            second_order_pool(x, backend=backend, normalize=normalize)
    # and the same x scaled into range works on both, equal
    ok = x / big
    torch.testing.assert_close(second_order_pool(ok, backend=backend),
                               second_order_pool(ok, backend="torch"), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("center", [False, True])
def test_non_finite_from_a_kernel_reads_as_a_kernel_bug(monkeypatch, center):
    # a kernel that computes a NaN (e.g. a deleted barrier reading poisoned shared memory) from
    # an x whose Gram matrix cannot overflow is the backend's fault, not "x is too large"
    sop = importlib.import_module("sal_ext.ops.second_order_pool")
    real = sop._kernel_forward

    def broken(*args):
        y, norm = real(*args)
        norm[1] = float("nan")
        return y, norm

    monkeypatch.setattr(sop, "_kernel_forward", broken)
    x = torch.randn(2, 4, 8, dtype=torch.float64) * 1e100  # large, but its Gram fits float64
    with pytest.raises(RuntimeError, match=r"^second_order_pool: the cpu backend produced a non-finite "
                                           r"value \(the row norm of video 1\) .*: a kernel bug"):
        second_order_pool(x, torch.tensor([8, 5]), center=center, backend="kernel")
    x[1] *= 1e60  # now it can overflow: the user's input is blamed, as before
    with pytest.raises(ValueError, match=r"`x` is too large for float64: .* video 1 overflows"):
        second_order_pool(x, center=center, backend="kernel")


@pytest.mark.parametrize("opt", OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_eps0_gradient_at_zero(device, opt):
    # with eps=0 the signed sqrt's derivative 1/(2 sqrt|g|) is infinite at g == 0: the gradient
    # is defined as 0 there on both paths (autograd of the plain formula gives NaN)
    B, D, T = 2, 6, 11
    x = torch.randn(B, D, T, dtype=torch.float64, device=device)
    x[:, 1] = 0
    x[0, 4] = 0
    dy = torch.randn(B, D * D, dtype=torch.float64, device=device)
    for lengths in (None, torch.tensor([11, 5], device=device)):
        y, gx = _pool_and_grad(_kernel_pool, x, lengths, dy, eps=0.0, **opt)
        y_t, gx_t = _pool_and_grad(lambda *a, **k: second_order_pool(*a, backend="torch", **k), x,
                                   lengths, dy, eps=0.0, **opt)
        assert torch.isfinite(gx).all() and torch.isfinite(gx_t).all()
        torch.testing.assert_close(y, y_t, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(gx, gx_t, rtol=1e-8, atol=1e-10 * gx_t.abs().max().item())
    # the plain formula's autograd is NaN there: the case is real
    g = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    (torch.sign(g) * torch.sqrt(g.abs())).sum().backward()
    assert torch.isnan(g.grad).all()


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("center", [False, True])
def test_eps0_gradcheck(device, backend, center):
    # away from g == 0 both paths give the exact derivative with eps=0
    x = torch.randn(2, 3, 5, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda t: second_order_pool(t, backend=backend, eps=0.0, center=center), (x,), eps=1e-6, atol=1e-6)
