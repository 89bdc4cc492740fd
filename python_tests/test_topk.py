import itertools

import pytest
import torch

from sal_ext.ops import topk_mask, topk_mil
from sal_ext.ops import topk as topk_mod
from sal_ext.ops.topk import topk_mask_reference, topk_mil_reference

# emu_heavy: deselected for the CUDA emulator (conftest), where every column is a block of 256
# OS threads; the kept sizes cover the same kernel paths (several 256-step chunks, ties, k = T)
HEAVY = pytest.mark.emu_heavy


def _heavy_if(cond, *values):
    return pytest.param(*values, marks=HEAVY) if cond else (values[0] if len(values) == 1 else values)


SHAPES = [_heavy_if(B * C > 3 or (T == 3000 and B * C > 1), (B, T, C))
          for T in (1, 2, 7, 93, 750, 3000) for C in (1, 3, 20) for B in (1, 2, 5)]


def _ks(T):
    return sorted({1, max(1, T // 8), T})


def _scores(shape, kind, dtype, device):
    if kind == "ties":  # heavy ties: values from {0, 0.5, 1}
        return (torch.randint(0, 3, shape, device=device) / 2).to(dtype)
    return torch.randn(shape, dtype=dtype, device=device)


def _brute_force(score, value, k):
    """Plain-Python oracle for the tie rule: sort (score desc, index asc) per column."""
    B, T, Cn = score.shape
    idx = torch.empty((B, k, Cn), dtype=torch.int64)
    pooled = torch.empty((B, Cn), dtype=torch.float64)
    s, v = score.cpu().tolist(), value.cpu().tolist()
    for b, c in itertools.product(range(B), range(Cn)):
        order = sorted(range(T), key=lambda t: (-s[b][t][c], t))[:k]
        idx[b, :, c] = torch.tensor(order)
        pooled[b, c] = sum(v[b][t][c] for t in order) / k
    return pooled, idx


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_topk_mil_matches_reference(device, shape):
    for kind in ("randn", "ties"):
        score = _scores(shape, kind, torch.float64, device)
        value = torch.randn(shape, dtype=torch.float64, device=device)
        for k in _ks(shape[1]):
            pooled, idx = topk_mil(score, value, k=k, backend="kernel")
            want_p, want_i = topk_mil_reference(score, value, k)
            assert idx.dtype == torch.int64 and idx.shape == (shape[0], k, shape[2])
            assert torch.equal(idx, want_i), (kind, k)
            torch.testing.assert_close(pooled, want_p, rtol=0, atol=1e-12)


@pytest.mark.parametrize("shape", [(2, 7, 3), (3, 40, 2), (1, 93, 5)])
def test_tie_rule_brute_force(device, shape):
    score = _scores(shape, "ties", torch.float64, device)
    score[0, :3, 0] = -0.0  # -0.0 equals +0.0: ties by index
    score[0, 3, 0] = float("-inf")
    value = torch.randn(shape, dtype=torch.float64, device=device)
    for k in _ks(shape[1]):
        pooled, idx = topk_mil(score, value, k=k, backend="kernel")
        want_p, want_i = _brute_force(score, value, k)
        assert torch.equal(idx.cpu(), want_i)
        torch.testing.assert_close(pooled.cpu(), want_p, rtol=0, atol=1e-12)
        assert torch.equal(topk_mil_reference(score, value, k)[1].cpu(), want_i)


@pytest.mark.parametrize("shape", [_heavy_if(True, (16, 750, 20)), (3, 93, 1), _heavy_if(True, (4, 3000, 3)),
                                   (2, 600, 2)])
def test_topk_mil_float32(device, shape):
    for kind in ("randn", "ties"):
        score = _scores(shape, kind, torch.float32, device)
        value = torch.randn(shape, device=device)
        k = max(1, shape[1] // 8)
        pooled, idx = topk_mil(score, value, k=k, backend="kernel")
        want_p, want_i = topk_mil_reference(score, value, k)
        assert torch.equal(idx, want_i)
        torch.testing.assert_close(pooled, want_p)
        # value defaults to score
        p2, i2 = topk_mil(score, k=k, backend="kernel")
        assert torch.equal(i2, want_i)
        torch.testing.assert_close(p2, topk_mil_reference(score, score, k)[0])


@pytest.mark.parametrize("B,T,C", [(1, 1, 1), (3, 7, 2), (5, 93, 3), _heavy_if(True, 4, 750, 20), (2, 3000, 1)])
@pytest.mark.parametrize("kind", ["randn", "ties"])
def test_topk_mil_lengths(device, B, T, C, kind):
    score = _scores((B, T, C), kind, torch.float64, device)
    value = torch.randn((B, T, C), dtype=torch.float64, device=device)
    lengths = torch.randint(1, T + 1, (B,), device=device)
    lengths[0] = T
    # per-video k = max(1, lengths // r)
    for r in (1, 4, 8):
        pooled, idx = topk_mil(score, value, r=r, lengths=lengths, backend="kernel")
        kv = torch.clamp(lengths // r, min=1)
        want_p, want_i = topk_mil_reference(score, value, kv, lengths)
        assert torch.equal(idx, want_i)
        assert int((idx >= 0).sum()) == int(kv.sum()) * C
        assert bool((idx < lengths[:, None, None]).all())
        torch.testing.assert_close(pooled, want_p, rtol=0, atol=1e-12)
    # a uniform k with lengths
    k = int(lengths.min())
    pooled, idx = topk_mil(score, value, k=k, lengths=lengths, backend="kernel")
    want_p, want_i = topk_mil_reference(score, value, k, lengths)
    assert torch.equal(idx, want_i)
    torch.testing.assert_close(pooled, want_p, rtol=0, atol=1e-12)
    # without lengths, k=None is T // r
    pooled, idx = topk_mil(score, value, backend="kernel")
    assert idx.shape[1] == max(1, T // 8)
    assert torch.equal(idx, topk_mil_reference(score, value, max(1, T // 8))[1])


def test_cuda_workspace_path(device, monkeypatch):
    """Long columns (and, forced, short ones) take the CUDA kernel's global-memory path."""
    monkeypatch.setattr(topk_mod, "_FORCE_CUDA_WORKSPACE", True)
    for shape, kind in [((2, 93, 3), "ties"), ((3, 750, 2), "randn")]:
        score = _scores(shape, kind, torch.float64, device)
        value = torch.randn(shape, dtype=torch.float64, device=device)
        lengths = torch.tensor([shape[1]] + [shape[1] // 2] * (shape[0] - 1), device=device)
        for k, ln in [(7, None), (None, lengths), (shape[1], None)]:
            kk = k if k is not None else torch.clamp(lengths // 8, min=1)
            pooled, idx = topk_mil(score, value, k=k, lengths=ln, backend="kernel")
            want_p, want_i = topk_mil_reference(score, value, kk, ln)
            assert torch.equal(idx, want_i)
            torch.testing.assert_close(pooled, want_p, rtol=0, atol=1e-12)
            assert torch.equal(topk_mask(score, k, ln, backend="kernel"), topk_mask_reference(score, kk, ln))
    monkeypatch.setattr(topk_mod, "_FORCE_CUDA_WORKSPACE", False)
    # T = 5000 in float64: k = 1 still fits shared memory, k = 625 and 5000 take the workspace
    score = _scores((2, 5000, 2), "ties", torch.float64, device)
    for k in (1, 625, 5000):
        pooled, idx = topk_mil(score, k=k, backend="kernel")
        want_p, want_i = topk_mil_reference(score, score, k)
        assert torch.equal(idx, want_i)
        torch.testing.assert_close(pooled, want_p, rtol=0, atol=1e-12)


def test_pooled_sums_in_float64(device):
    """float32 values are summed in float64 by every kernel (CPU and CUDA), then rounded once:
    cancellation that a float32 sum gets wrong (1e8 + 1 == 1e8) leaves the mean exact."""
    T = 40
    score = torch.arange(T, 0, -1, dtype=torch.float32)[None, :, None].expand(2, T, 3).contiguous().to(device)
    value = torch.ones(2, T, 3, device=device)
    value[:, 0] = 1e8
    value[:, 1] = -1e8
    for k in (T, 7, 2):
        pooled, idx = topk_mil(score, value, k=k, backend="kernel")
        want = (torch.gather(value.double(), 1, idx).sum(1) / k).float()
        assert torch.equal(pooled, want), (k, pooled, want)
    assert float(topk_mil(score, value, k=T, backend="kernel")[0][0, 0]) == pytest.approx((T - 2) / T)


def test_deterministic(device):
    score = _scores((4, 750, 20), "ties", torch.float32, device)
    value = torch.randn(4, 750, 20, device=device)
    a = topk_mil(score, value, k=93, backend="kernel")
    b = topk_mil(score, value, k=93, backend="kernel")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.emu_heavy  # ~1000 launches per case; the backward kernel is checked below and in test_cuda_awkward_sizes
@pytest.mark.parametrize("per_video", [False, True])
def test_topk_mil_gradcheck(device, per_video):
    score = _scores((3, 11, 2), "ties", torch.float64, device)
    value = torch.randn(3, 11, 2, dtype=torch.float64, device=device, requires_grad=True)
    kw = dict(lengths=torch.tensor([11, 5, 8], device=device), r=3) if per_video else dict(k=4)
    fn = lambda v: topk_mil(score, v, backend="kernel", **kw)[0]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (value,))
    assert torch.autograd.gradgradcheck(fn, (value,))
    # the same gradient as the reference's autograd
    g = torch.randn(3, 2, dtype=torch.float64, device=device)
    (got,) = torch.autograd.grad(fn(value), value, g)
    kk = torch.clamp(kw["lengths"] // 3, min=1) if per_video else 4
    (want,) = torch.autograd.grad(topk_mil_reference(score, value, kk, kw.get("lengths"))[0], value, g)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-15)


@pytest.mark.parametrize("B,T,C", [(1, 1, 1), (4, 93, 3), _heavy_if(True, 16, 750, 20), (3, 3000, 2)])
def test_topk_mil_backward_kernel(device, B, T, C):
    score = _scores((B, T, C), "ties", torch.float64, device)
    value = torch.randn(B, T, C, dtype=torch.float64, device=device, requires_grad=True)
    g = torch.randn(B, C, dtype=torch.float64, device=device)
    lengths = torch.randint(1, T + 1, (B,), device=device)
    for kw in (dict(k=max(1, T // 8)), dict(k=T), dict(lengths=lengths), dict(lengths=lengths, r=1)):
        pooled, idx = topk_mil(score, value, backend="kernel", **kw)
        (got,) = torch.autograd.grad(pooled, value, g)
        kk = kw.get("k") or torch.clamp(lengths // kw.get("r", 8), min=1)
        want = topk_mod._scatter_grad(g, idx, None if isinstance(kk, int) else kk, value.shape)
        assert torch.equal(got, want)
        (ref,) = torch.autograd.grad(topk_mil_reference(score, value, kk, kw.get("lengths"))[0], value, g)
        torch.testing.assert_close(got, ref, rtol=0, atol=1e-15)


def test_no_gradient_through_score_selection(device):
    score = torch.randn(2, 20, 3, dtype=torch.float64, device=device, requires_grad=True)
    value = torch.randn(2, 20, 3, dtype=torch.float64, device=device, requires_grad=True)
    pooled, _ = topk_mil(score, value, k=5, backend="kernel")
    pooled.sum().backward()
    assert score.grad is None
    assert torch.allclose(value.grad.sum(1), torch.ones(2, 3, dtype=torch.float64, device=device))
    # value defaults to score: the gradient reaches score through the pooled values only
    s2 = score.detach().clone().requires_grad_()
    pooled, idx = topk_mil(s2, k=5, backend="kernel")
    pooled.sum().backward()
    want = torch.zeros_like(s2).scatter_(1, idx, 0.2)
    torch.testing.assert_close(s2.grad, want)


@pytest.mark.parametrize("shape", [_heavy_if(True, (16, 750, 1)), (2, 1, 1), _heavy_if(True, (3, 93, 20)),
                                   _heavy_if(True, (5, 3000, 3)), (2, 7, 1), (2, 300, 2)])
@pytest.mark.parametrize("kind", ["randn", "ties"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_topk_mask_matches_reference(device, shape, kind, dtype):
    score = _scores(shape, kind, dtype, device)
    T = shape[1]
    for k in sorted({1, max(1, T // 8), min(T, T // 8 + 17), max(1, T // 2), T}):
        mask = topk_mask(score, k, backend="kernel")
        assert mask.dtype == dtype and mask.shape == shape
        assert torch.equal(mask, topk_mask_reference(score, k))
        assert torch.equal(mask.sum(1), torch.full((shape[0], shape[2]), float(k), dtype=dtype, device=device))
    lengths = torch.randint(1, T + 1, (shape[0],), device=device)
    mask = topk_mask(score, lengths=lengths, backend="kernel")
    assert torch.equal(mask, topk_mask_reference(score, torch.clamp(lengths // 8, min=1), lengths))
    t = torch.arange(T, device=device)[None, :, None]
    assert not bool(mask.masked_select(t >= lengths[:, None, None]).any())


def test_backends_agree(device):
    score = torch.randn(2, 30, 4, device=device)
    for backend in ("torch", "kernel", "auto"):
        p, i = topk_mil(score, k=5, backend=backend)
        assert torch.equal(i, topk_mil_reference(score, score, 5)[1])
        assert torch.equal(topk_mask(score, 5, backend=backend), topk_mask_reference(score, 5))


def test_opcheck():
    score = torch.randn(2, 9, 3, dtype=torch.float64)
    value = torch.randn(2, 9, 3, dtype=torch.float64, requires_grad=True)
    torch.library.opcheck(topk_mod._topk_mil_kernel, (score, value, 3, None, None))
    torch.library.opcheck(topk_mod._topk_mil_kernel, (score, value, 4, torch.tensor([4, 2]), torch.tensor([9, 5])))
    torch.library.opcheck(topk_mod._topk_mask_kernel, (score, 3, None, None))
    g = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    idx = topk_mil_reference(score, score, torch.tensor([4, 2]), torch.tensor([9, 5]))[1]
    torch.library.opcheck(topk_mod._topk_mil_backward_kernel, (g, idx, torch.tensor([4, 2]), 9))


@pytest.mark.parametrize("fn", ["mil", "mask"])
def test_bad_inputs(fn):
    op = (lambda s, **kw: topk_mil(s, **kw)) if fn == "mil" else (lambda s, **kw: topk_mask(s, **kw))
    s = torch.randn(2, 10, 3)
    with pytest.raises(ValueError, match="`k`"):
        op(s, k=11)
    with pytest.raises(ValueError, match="`k`"):
        op(s, k=0)
    with pytest.raises(ValueError, match="`k`"):
        op(s, k=-2)
    with pytest.raises(TypeError, match="`k`"):
        op(s, k=2.0)
    with pytest.raises(TypeError, match="`k`"):
        op(s, k=torch.tensor(2))
    with pytest.raises(TypeError, match="`k`"):
        op(s, k=True)
    with pytest.raises(ValueError, match="`r`"):
        op(s, r=0)
    bad = s.clone()
    bad[1, 4, 2] = float("nan")
    with pytest.raises(ValueError, match="`score`.*NaN"):
        op(bad, k=2)
    with pytest.raises(ValueError, match="`score`.*NaN"):
        op(bad, k=2, backend="torch")
    with pytest.raises(TypeError, match="`score`"):
        op(s.to(torch.int64), k=2)
    with pytest.raises(TypeError, match="`score`"):
        op(s.half(), k=2)
    with pytest.raises(TypeError, match="`score`"):
        op(s.numpy(), k=2)
    with pytest.raises(ValueError, match="`score`"):
        op(s[0], k=2)
    with pytest.raises(ValueError, match="`score`"):
        op(torch.zeros(2, 0, 3), k=1)
    with pytest.raises(ValueError, match="`lengths`"):
        op(s, k=2, lengths=torch.tensor([10, 0]))
    with pytest.raises(ValueError, match="`lengths`"):
        op(s, k=2, lengths=torch.tensor([10, 11]))
    with pytest.raises(ValueError, match="`lengths`"):
        op(s, k=2, lengths=torch.tensor([10, 5, 3]))
    with pytest.raises(TypeError, match="`lengths`"):
        op(s, k=2, lengths=torch.tensor([10.0, 5.0]))
    with pytest.raises(ValueError, match="`k`"):
        op(s, k=6, lengths=torch.tensor([10, 5]))
    with pytest.raises(ValueError, match="`backend`"):
        op(s, k=2, backend="gpu")
    if fn == "mil":
        with pytest.raises(TypeError, match="`value`"):
            topk_mil(s, s.double(), k=2)
        with pytest.raises(TypeError, match="`value`"):
            topk_mil(s, s.to(torch.int32), k=2)
        with pytest.raises(ValueError, match="`value`"):
            topk_mil(s, torch.randn(2, 10, 4), k=2)
        with pytest.raises(ValueError, match="`value`"):
            topk_mil(s, torch.randn(2, 10, 3, dtype=torch.float64).to("meta").float(), k=2)
        with pytest.raises(TypeError):
            topk_mil(s, s, 2)  # k is keyword-only


def test_infinities_and_empty_batch(device):
    score = torch.randn(2, 12, 3, dtype=torch.float64, device=device)
    score[0, ::2, 0] = float("-inf")
    score[1, 5, 1] = float("inf")
    value = torch.randn(2, 12, 3, dtype=torch.float64, device=device)
    for k in (1, 6, 7, 12):
        p, i = topk_mil(score, value, k=k, backend="kernel")
        wp, wi = topk_mil_reference(score, value, k)
        assert torch.equal(i, wi)
        torch.testing.assert_close(p, wp, rtol=0, atol=1e-12)
    p, i = topk_mil(torch.zeros(0, 5, 3, device=device), k=2, backend="kernel")
    assert p.shape == (0, 3) and i.shape == (0, 2, 3)
    assert topk_mask(torch.zeros(0, 5, 3, device=device), 2, backend="kernel").shape == (0, 5, 3)
    p, i = topk_mil(torch.zeros(2, 5, 0, device=device), k=2, backend="kernel")
    assert p.shape == (2, 0) and i.shape == (2, 2, 0)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_nan_score_raises(device, backend):
    s = torch.randn(3, 20, 4, dtype=torch.float64, device=device)
    s[2, 17, 3] = float("nan")  # past lengths[2]: still an error
    lengths = torch.tensor([20, 20, 10], device=device)
    v = torch.randn_like(s)
    for kw in (dict(k=3), dict(lengths=lengths)):
        with pytest.raises(ValueError, match="`score`.*NaN"):
            topk_mil(s, v, backend=backend, **kw)
        with pytest.raises(ValueError, match="`score`.*NaN"):
            topk_mask(s, backend=backend, **kw)
    # NaN in value is not an error: it propagates to the columns that select it
    s[2, 17, 3] = 0.0
    v[0, :, 0] = float("nan")
    p, _ = topk_mil(s, v, k=3, backend=backend)
    assert bool(p[0, 0].isnan()) and not bool(p[1:].isnan().any())


def test_torch_compile_uses_custom_ops():
    score = torch.randn(2, 30, 3, dtype=torch.float64)
    value = torch.randn(2, 30, 3, dtype=torch.float64, requires_grad=True)

    def fn(s, v):
        pooled, idx = topk_mil(s, v, k=4, backend="kernel")
        return pooled.sum() + topk_mask(s, 5, backend="kernel").sum(), idx

    out, idx = torch.compile(fn, backend="aot_eager", fullgraph=True)(score, value)
    (g,) = torch.autograd.grad(out, value)
    want_out, want_idx = fn(score, value)
    (want_g,) = torch.autograd.grad(want_out, value)
    assert torch.equal(idx, want_idx)
    torch.testing.assert_close(out, want_out)
    torch.testing.assert_close(g, want_g)
