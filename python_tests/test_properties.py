"""Property tests (hypothesis): kernels equal their torch fallbacks on generated inputs,
including the awkward ones random sampling rarely hits (ties, tiny sizes, touching segments)."""
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sal_ext import ops
from sal_ext.ops.nms import nms_1d_reference
from sal_ext.ops.topk import topk_mil_reference

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def score_cubes(draw):
    B, T, C = draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, 4))
    # a few distinct levels make ties common
    levels = draw(st.lists(st.floats(-2, 2, allow_nan=False, width=32), min_size=1, max_size=4))
    idx = draw(st.lists(st.integers(0, len(levels) - 1), min_size=B * T * C, max_size=B * T * C))
    score = torch.tensor([levels[i] for i in idx], dtype=torch.float64).reshape(B, T, C)
    k = draw(st.integers(1, T))
    return score, k


@SETTINGS
@given(score_cubes())
def test_topk_mil_kernel_equals_reference(case):
    score, k = case
    value = torch.arange(score.numel(), dtype=torch.float64).reshape(score.shape)
    pooled, idx = ops.topk_mil(score, value, k=k, backend="kernel")
    ref_pooled, ref_idx = topk_mil_reference(score, value, k)
    assert torch.equal(idx, ref_idx)
    torch.testing.assert_close(pooled, ref_pooled, rtol=1e-12, atol=1e-12)


@st.composite
def proposal_sets(draw):
    n = draw(st.integers(0, 30))
    grid = st.integers(0, 12).map(lambda v: v / 2)  # half-second grid: touching, identical segments
    starts = draw(st.lists(grid, min_size=n, max_size=n))
    lengths = draw(st.lists(grid, min_size=n, max_size=n))
    scores = draw(st.lists(st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0]), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    seg = torch.tensor([[s, s + l] for s, l in zip(starts, lengths)], dtype=torch.float64).reshape(n, 2)
    return seg, torch.tensor(scores, dtype=torch.float64), torch.tensor(labels, dtype=torch.int64)


@SETTINGS
@given(proposal_sets(), st.sampled_from(["hard", "linear", "gaussian", "sal"]), st.booleans(),
       st.sampled_from([0.3, 0.5, 0.7]))
def test_nms_kernel_equals_reference(case, method, plus_one, thr):
    seg, sc, lab = case
    kw = dict(iou_threshold=thr, method=method, sigma=0.3, plus_one=plus_one)
    keep, new = ops.nms_1d(seg, sc, lab, backend="kernel", **kw)
    ref_keep, ref_new = nms_1d_reference(seg, sc, lab, **kw)
    assert keep.tolist() == ref_keep.tolist()
    torch.testing.assert_close(new, ref_new, rtol=1e-12, atol=1e-12)


@SETTINGS
@given(proposal_sets())
def test_segment_iou_symmetric_bounded(case):
    seg, _, _ = case
    iou = ops.segment_iou(seg, seg, backend="kernel")
    assert torch.equal(iou, iou.T)
    assert bool(((iou >= 0) & (iou <= 1)).all())
    torch.testing.assert_close(iou, ops.segment_iou(seg, seg, backend="torch"), rtol=0, atol=1e-15)
