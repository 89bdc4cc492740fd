"""benchmarks/gpu_sanitize.py's awkward inputs as tests, on every device (the "cuda" variant runs
on a GPU or under the CUDA emulator): sizes that are not multiples of the tiles (64, 32, 256),
T = 1 / D = 1 / N = 0, empty outputs per group, per-video lengths and k, the top-k workspace
(long column) path, the hard-NMS path without a bitmask and every NMS method; forward and
backward, each compared with the op's torch fallback in float64 (sizes trimmed from the
script's so the emulator runs them in seconds)."""
import pytest
import torch

from sal_ext import ops
from sal_ext.ops import nms as nms_mod
from sal_ext.ops import topk as topk_mod


def _grads(fn, x, backend):
    x = x.detach().clone().requires_grad_(True)
    y = fn(x, backend)
    g = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape).to(y.device)
    (dx,) = torch.autograd.grad(y, x, g)
    return y.detach(), dx


def _close(got, want, tol):
    torch.testing.assert_close(got.double().cpu(), want.double().cpu(), rtol=tol, atol=tol, equal_nan=True)


@pytest.mark.parametrize("shape,lens,scale,center,normalize", [
    ((1, 1, 1), None, "sal", False, True), ((2, 17, 33), [33, 5], "mean", True, True),
    ((3, 65, 130), [1, 64, 130], "sal", True, False), ((1, 70, 17), None, "mean", False, True)])
def test_second_order_pool(device, shape, lens, scale, center, normalize):
    x = torch.rand(shape, dtype=torch.float64) - 0.3
    x = x.to(device)
    L = None if lens is None else torch.tensor(lens, device=device)

    def fn(t, b):
        return ops.second_order_pool(t, L, scale=scale, center=center, normalize=normalize, backend=b)
    (y, dx), (yr, dxr) = _grads(fn, x, "kernel"), _grads(fn, x, "torch")
    _close(y, yr, 1e-10)
    _close(dx, dxr, 1e-8 * max(1.0, float(dxr.abs().max())))
    (y32, dx32) = _grads(fn, x.float(), "kernel")
    _close(y32, yr, 1e-4)
    _close(dx32, dxr, 2e-3 * max(1.0, float(dxr.abs().max())))


@pytest.mark.parametrize("shape", [(1, 1), (3, 5, 7), (4, 8, 2), (5, 1, 33)])
def test_segment_mixup(device, shape):
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(shape, dtype=dtype, device=device)
        for shift, weight in [(1, None), (-3, 0.3)]:
            def fn(t, b):
                return ops.segment_mixup(t, shift, weight, backend=b)
            (y, dx), (yr, dxr) = _grads(fn, x, "kernel"), _grads(fn, x, "torch")
            _close(y, yr, 1e-6)
            _close(dx, dxr, 1e-6)
        g = (torch.rand(shape, device=device) > 0.5).to(dtype)
        m = torch.rand(shape, device=device, dtype=dtype)
        for got, want in zip(ops.mix_targets(g, m, 2, backend="kernel"), ops.mix_targets(g, m, 2, backend="torch")):
            assert torch.equal(got, want)


@pytest.mark.parametrize("B,T,Cn,k,lens", [
    (1, 1, 1, 1, None), (2, 93, 3, 11, [93, 40]), (3, 300, 2, None, [300, 1, 77]),
    (2, 1500, 3, 187, None),
    (1, 12000, 1, 1500, None)])  # 12000 float32 keys: past the shared-memory budget, the workspace path
def test_topk(device, B, T, Cn, k, lens):
    for dtype in (torch.float32, torch.float64):
        s = torch.rand(B, T, Cn, dtype=dtype, device=device)
        s[:, ::7] = 0.5  # ties
        L = None if lens is None else torch.tensor(lens, device=device)
        kk = k if lens is None or k is None else min(k, min(lens))
        v = torch.randn(B, T, Cn, dtype=dtype, device=device)

        def fn(t, b):
            return ops.topk_mil(s, t, k=kk, lengths=L, backend=b)[0]
        (p, dv), (pr, dvr) = _grads(fn, v, "kernel"), _grads(fn, v, "torch")
        _close(p, pr, 1e-5 if dtype == torch.float32 else 1e-12)
        _close(dv, dvr, 0)
        assert torch.equal(ops.topk_mil(s, k=kk, lengths=L, backend="kernel")[1],
                           ops.topk_mil(s, k=kk, lengths=L, backend="torch")[1])
        assert torch.equal(ops.topk_mask(s, kk, L, backend="kernel"), ops.topk_mask(s, kk, L, backend="torch"))


def test_topk_forced_workspace_and_empty(device, monkeypatch):
    monkeypatch.setattr(topk_mod, "_FORCE_CUDA_WORKSPACE", True)  # the global-memory path, small input
    s = torch.rand(2, 70, 3, device=device)
    assert torch.equal(ops.topk_mil(s, k=9, backend="kernel")[1], ops.topk_mil(s, k=9, backend="torch")[1])
    monkeypatch.setattr(topk_mod, "_FORCE_CUDA_WORKSPACE", False)
    p, i = ops.topk_mil(torch.rand(0, 5, 3, device=device), k=1, backend="kernel")
    assert p.shape == (0, 3) and i.shape == (0, 1, 3)
    assert ops.topk_mask(torch.rand(2, 5, 0, device=device), 1, backend="kernel").shape == (2, 5, 0)


def _nms_case(N, n_lab, gen):
    st = torch.rand(N, generator=gen, dtype=torch.float64) * 100
    seg = torch.stack([st, st + torch.rand(N, generator=gen, dtype=torch.float64) * 10], 1)
    return seg, torch.rand(N, generator=gen, dtype=torch.float64), torch.randint(0, n_lab, (N,), generator=gen)


@pytest.mark.parametrize("method", ["hard", "linear", "gaussian", "sal"])
@pytest.mark.parametrize("N,n_lab", [(0, 1), (1, 1), (2, 1), (100, 3), (300, 7)])
def test_nms(device, method, N, n_lab):
    seg, sc, lab = _nms_case(N, n_lab, torch.Generator().manual_seed(N))
    for dtype in (torch.float32, torch.float64):
        args = (seg.to(device, dtype), sc.to(device, dtype))
        # all groups, one group with min_score / max_keep, empty outputs per group (max_keep 0)
        for labels, kw in [(lab.to(device), {}), (None, dict(min_score=0.3, max_keep=17)),
                           (lab.to(device), dict(plus_one=True, max_keep=0))]:
            kw = dict(iou_threshold=0.4, method=method, sigma=0.3, **kw)
            got = nms_mod.nms_1d(*args, labels, backend="kernel", **kw)
            want = nms_mod.nms_1d_reference(*args, labels, **kw)
            assert torch.equal(got[0].cpu(), want[0].cpu())
            _close(got[1], want[1], 1e-6 if dtype == torch.float32 else 1e-12)


def test_nms_hard_without_bitmask(device, monkeypatch):
    monkeypatch.setattr(nms_mod, "_MASK_MAX_BLOCKS", 0)  # the path of huge groups, on 300 proposals
    gen = torch.Generator().manual_seed(1)
    st = torch.rand(300, generator=gen, dtype=torch.float64) * 50
    seg = torch.stack([st, st + 5], 1).to(device)
    sc = torch.rand(300, generator=gen, dtype=torch.float64).to(device)
    got = nms_mod.nms_1d(seg, sc, iou_threshold=0.3, min_score=0.1, backend="kernel")
    want = nms_mod.nms_1d_reference(seg, sc, iou_threshold=0.3, min_score=0.1)
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


@pytest.mark.parametrize("N,M", [(0, 3), (3, 0), (1, 1), (100, 37), (257, 300)])
def test_segment_iou(device, N, M):
    a = torch.rand(N, 1, dtype=torch.float64) * 50
    b = torch.rand(M, 1, dtype=torch.float64) * 50
    a = torch.cat([a, a + torch.rand(N, 1, dtype=torch.float64) * 10], 1).to(device)
    b = torch.cat([b, b + torch.rand(M, 1, dtype=torch.float64) * 10], 1).to(device)
    a[::5, 1] = a[::5, 0]  # zero-length segments
    assert torch.equal(ops.segment_iou(a, b, backend="kernel"), ops.segment_iou(a, b, backend="torch"))
