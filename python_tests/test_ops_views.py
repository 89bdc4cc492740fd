"""Tensors whose memory does not hold their values, on every op and backend.

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
