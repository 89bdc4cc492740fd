"""Views, on every op and backend: tensors whose memory does not hold their values, and
non-contiguous tensors.

Non-contiguous input (a slice with a step, a transpose) is accepted by every op and copied
(one rule, sal_ext.ops._common.check_tensor); the result equals the contiguous input's, the
kernel equals the fallback on it, and gradients reach the non-contiguous view exactly.


torch._neg_view(t) and the imaginary part of a conjugated complex tensor set the negative bit
and keep the un-negated memory; efficient zero tensors have no memory at all. A kernel that
reads data_ptr() (or a front that calls .numpy()) must see the values, not the memory: the
shared checks resolve them (sal_ext.ops._common.resolve). Each case here gives the op the same
values once as a plain tensor and once as such a view, and wants identical results.
"""
import pytest
import torch

from sal_ext import ops

BACKENDS = ["kernel", "torch"]


def _segments(n, device, lo=0.0):
    s = lo + torch.rand(n, dtype=torch.float64, device=device) * 10
    return torch.stack([s, s + torch.rand(n, dtype=torch.float64, device=device) * 5], 1)


def _case(op, device):
    """(function, tensor arguments, other keyword arguments) of one op on small inputs."""
    torch.manual_seed(3)
    f64 = dict(dtype=torch.float64, device=device)
    lengths = torch.tensor([20, 9, 16], device=device)
    if op == "topk_mil":
        return ops.topk_mil, dict(score=torch.randn(3, 20, 4, **f64), value=torch.randn(3, 20, 4, **f64),
                                  lengths=lengths), dict(k=3)
    if op == "topk_mask":
        return ops.topk_mask, dict(score=torch.randn(3, 20, 4, **f64), lengths=lengths), dict(k=3)
    if op == "second_order_pool":
        return ops.second_order_pool, dict(x=torch.randn(3, 5, 20, **f64), lengths=lengths), {}
    if op == "segment_mixup":
        return ops.segment_mixup, dict(x=torch.randn(3, 4, 5, **f64)), {}
    if op == "mix_targets":
        return ops.mix_targets, dict(g=(torch.rand(3, 6, **f64) > 0.5).double(),
                                     m=torch.rand(3, 6, **f64)), {}
    if op == "nms_1d":
        return ops.nms_1d, dict(segments=_segments(40, device, lo=-6.0), scores=torch.rand(40, **f64),
                                labels=torch.randint(0, 3, (40,), device=device)), \
            dict(iou_threshold=0.3, method="sal", sigma=0.3)
    if op == "segment_iou":
        return ops.segment_iou, dict(a=_segments(7, device, lo=-3.0), b=_segments(5, device)), {}
    if op == "detection_ap":
        P, G = 30, 8
        return ops.detection_ap, dict(
            pred_video=torch.randint(0, 3, (P,), device=device),
            pred_label=torch.randint(0, 2, (P,), device=device),
            pred_score=torch.rand(P, **f64), pred_segments=_segments(P, device),
            gt_video=torch.randint(0, 3, (G,), device=device),
            gt_label=torch.randint(0, 2, (G,), device=device), gt_segments=_segments(G, device),
            tiou_thresholds=torch.tensor([0.1, 0.3, 0.5], dtype=torch.float64)), dict(num_classes=3)
    if op == "oic_proposals":
        return ops.oic_proposals, dict(cas=torch.rand(30, 3, **f64),
                                       thresholds=torch.tensor([0.2, 0.5], dtype=torch.float64),
                                       video_scores=torch.rand(3, **f64)), dict(upsample=4)
    if op == "oic_proposals_batched":
        return ops.oic_proposals_batched, dict(values=torch.rand(2, 30, 3, **f64),
                                               thresholds=torch.tensor([0.2, 0.5], dtype=torch.float64),
                                               video_scores=torch.rand(2, 3, **f64)), dict(upsample=4)
    raise AssertionError(op)


OPS = ["topk_mil", "topk_mask", "second_order_pool", "segment_mixup", "mix_targets", "nms_1d",
       "segment_iou", "detection_ap", "oic_proposals", "oic_proposals_batched"]
ARGS = [(op, name) for op in OPS for name in _case(op, "cpu")[1]]


def _neg_view(t):
    """t's values in a tensor with the negative bit set (memory holds -t)."""
    v = torch._neg_view(-t)
    assert v.is_neg() and torch.equal(v, t)
    return v


def _conj_imag(t):
    """t's values as the imaginary part of a conjugated complex tensor (negative bit set)."""
    c = torch.complex(torch.zeros_like(t), -t).conj()
    v = c.imag
    assert v.is_neg() and torch.equal(v, t)
    return v


def _assert_same(a, b):
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    else:
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,name", ARGS, ids=[f"{o}-{n}" for o, n in ARGS])
def test_negative_bit(device, op, name, backend):
    fn, args, kw = _case(op, device)
    want = fn(**args, **kw, backend=backend)
    got = fn(**{**args, name: _neg_view(args[name])}, **kw, backend=backend)
    _assert_same(got, want)
    if args[name].is_floating_point():
        got = fn(**{**args, name: _conj_imag(args[name])}, **kw, backend=backend)
        _assert_same(got, want)


ZERO_OK = [(op, name) for op, name in ARGS
           if _case(op, "cpu")[1][name].is_floating_point() and name != "tiou_thresholds"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,name", ZERO_OK, ids=[f"{o}-{n}" for o, n in ZERO_OK])
def test_efficient_zero_tensor(device, op, name, backend):
    # no memory at all (data_ptr() is 0): the kernels used to read address 0
    fn, args, kw = _case(op, device)
    t = args[name]
    z = torch._efficientzerotensor(t.shape, dtype=t.dtype, device=t.device)
    assert z._is_zerotensor()
    want = fn(**{**args, name: torch.zeros_like(t)}, **kw, backend=backend)
    _assert_same(fn(**{**args, name: z}, **kw, backend=backend), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_negative_bit_gradients(device, backend):
    # resolving keeps the autograd graph: the gradient reaches the tensor behind the view
    x = torch.randn(2, 4, 9, dtype=torch.float64, device=device, requires_grad=True)
    for fn in (lambda t: ops.second_order_pool(t, backend=backend),
               lambda t: ops.segment_mixup(t, backend=backend),
               lambda t: ops.topk_mil(t.detach(), t, k=2, backend=backend)[0]):
        dy = None
        grads = []
        for view in (lambda t: torch._neg_view(t), lambda t: -t):
            out = fn(view(x))
            dy = torch.randn_like(out) if dy is None else dy
            (g,) = torch.autograd.grad(out, x, dy)
            grads.append(g)
        torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_sparse_refused():
    s = torch.randn(2, 8, 3)
    with pytest.raises(ValueError, match="`score`.*dense"):
        ops.topk_mil(s.to_sparse())
    with pytest.raises(ValueError, match="`lengths`.*dense"):
        ops.topk_mil(s, k=1, lengths=torch.tensor([8, 4]).to_sparse())
    nested = torch.nested.nested_tensor([torch.randn(8, 3), torch.randn(8, 3)])
    with pytest.raises(ValueError, match="`score` must be a dense .*got a nested tensor"):
        ops.topk_mil(nested, k=2)
    with pytest.raises(ValueError, match="`x`.*dense"):
        ops.second_order_pool(torch.nested.nested_tensor([torch.randn(4, 5)] * 2, layout=torch.jagged))
    with pytest.raises(ValueError, match="`segments`.*dense"):
        ops.nms_1d(torch.tensor([[0.0, 1.0]]).to_sparse(), torch.ones(1), iou_threshold=0.5)


# ---- non-contiguous input: accepted and copied, on every op and backend ----------------------

def _strided(t):
    """t's values in a view with stride 2 along the last dimension; the gaps hold NaN (floats)
    or -7 (integers), so a kernel reading the memory as if contiguous sees garbage."""
    buf = torch.full((*t.shape[:-1], 2 * t.shape[-1]), float("nan") if t.is_floating_point() else -7,
                     dtype=t.dtype, device=t.device)
    buf[..., ::2] = t
    v = buf[..., ::2]
    assert not v.is_contiguous() and torch.equal(v, t)
    return v


def _transposed(t):
    """t's values in a view with its last two dimensions' strides swapped (a .mT of a copy)."""
    v = t.mT.contiguous().mT
    assert not v.is_contiguous() and torch.equal(v, t)
    return v


LAYOUTS = {"strided": _strided, "transposed": _transposed}
LAYOUT_ARGS = [(op, name, lay) for op, name in ARGS for lay in LAYOUTS
               if lay == "strided" or _case(op, "cpu")[1][name].dim() >= 2]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,name,layout", LAYOUT_ARGS, ids=[f"{o}-{n}-{l}" for o, n, l in LAYOUT_ARGS])
def test_non_contiguous_input(device, op, name, layout, backend):
    fn, args, kw = _case(op, device)
    want = fn(**args, **kw, backend=backend)
    got = fn(**{**args, name: LAYOUTS[layout](args[name])}, **kw, backend=backend)
    _assert_same(got, want)


def _assert_close(a, b):
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, equal_nan=True)
    else:
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_close(x, y)


@pytest.mark.parametrize("op", OPS)
def test_non_contiguous_kernel_equals_fallback(device, op):
    # every tensor argument non-contiguous at once
    fn, args, kw = _case(op, device)
    views = {k: _strided(v) for k, v in args.items()}
    _assert_close(fn(**views, **kw, backend="kernel"), fn(**views, **kw, backend="torch"))


def _gradcheck_cases(device, backend):
    """(name, function of one differentiable input, that input as a non-contiguous leaf)."""
    f64 = dict(dtype=torch.float64, device=device)
    torch.manual_seed(5)
    score = _transposed(torch.randn(2, 7, 3, **f64))  # distinct values: a stable selection
    lengths = torch.tensor([7, 5], device=device)
    return [
        ("second_order_pool", lambda x: ops.second_order_pool(x, lengths - 1, backend=backend),
         _transposed(torch.randn(2, 3, 6, **f64))),
        ("second_order_pool-center", lambda x: ops.second_order_pool(x, center=True, scale="mean",
                                                                     backend=backend),
         _strided(torch.randn(2, 3, 5, **f64))),
        ("segment_mixup", lambda x: ops.segment_mixup(x, 1, backend=backend),
         _transposed(torch.randn(3, 4, 5, **f64))),
        ("segment_mixup-weight", lambda x: ops.segment_mixup(x, 2, 0.3, backend=backend),
         _strided(torch.randn(3, 4, **f64))),
        ("topk_mil", lambda v: ops.topk_mil(score, v, k=2, lengths=lengths, backend=backend)[0],
         _transposed(torch.randn(2, 7, 3, **f64))),
    ]


@pytest.mark.parametrize("backend", BACKENDS)
def test_non_contiguous_gradcheck(device, backend):
    # the copy is part of the graph: gradients w.r.t. the non-contiguous leaf are exact
    for name, fn, x in _gradcheck_cases(device, backend):
        x.requires_grad_(True)
        assert x.is_leaf and not x.is_contiguous()
        assert torch.autograd.gradcheck(fn, (x,)), name
        # and they equal the gradients w.r.t. the same values held contiguously
        xc = x.detach().contiguous().requires_grad_(True)
        dy = torch.randn_like(fn(xc))
        (g,) = torch.autograd.grad(fn(x), x, dy)
        (gc,) = torch.autograd.grad(fn(xc), xc, dy)
        torch.testing.assert_close(g, gc, rtol=0, atol=0, msg=name)
