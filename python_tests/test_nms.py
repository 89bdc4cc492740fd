import math

import numpy as np
import pytest
import torch

from sal_ext.ops import nms_1d
from sal_ext.ops import nms as nms_mod
from sal_ext.ops.nms import nms_1d_reference

import sal_reference_np as R

METHODS = ["hard", "linear", "gaussian", "sal"]
# Soft-NMS selects one proposal per block-wide argmax round: hundreds of rounds of 256 OS
# threads under the CUDA emulator. Its emu_heavy cases are deselected there (conftest); the small
# ones below, test_cuda_awkward_sizes.py and the hand-checked cases cover the soft kernels.
_SOFT = ("linear", "gaussian")
HEAVY = pytest.mark.emu_heavy
METHODS_SOFT_HEAVY = [pytest.param(m, marks=HEAVY) if m in _SOFT else m for m in METHODS]


def _random_case(n, dtype=torch.float64, device="cpu", labels=False, num_labels=4, quantize=False,
                 gen=None):
    gen = gen or torch.Generator().manual_seed(n)
    start = torch.rand(n, generator=gen, dtype=torch.float64) * 20
    length = torch.rand(n, generator=gen, dtype=torch.float64) * 4
    if quantize:  # many identical / touching segments and equal scores
        start, length = start.round(), length.round()
    seg = torch.stack([start, start + length], 1)
    sc = torch.rand(n, generator=gen, dtype=torch.float64)
    if quantize:
        sc = (sc * 4).round() / 4
    lab = torch.randint(0, num_labels, (n,), generator=gen) * 7 - 5 if labels else None
    seg, sc = seg.to(dtype).to(device), sc.to(dtype).to(device)
    return seg, sc, (lab.to(device) if lab is not None else None)


def _assert_same(got, want, dtype):
    """The same outputs in the same order, where the order is defined: exp differs by an ulp
    between libraries (glibc's in the kernels; numpy's and torch's SIMD exp, which on AVX-512
    CPUs give other last bits), so two decayed scores that are equal in exact arithmetic may
    come out in either order. Inside a run of scores equal to `tol`, any order is accepted."""
    assert got[0].dtype == torch.int64 and got[1].dtype == dtype
    tol = 1e-12 if dtype == torch.float64 else 1e-6
    gi, wi = got[0].cpu(), want[0].cpu()
    assert gi.shape == wi.shape, (got, want)
    torch.testing.assert_close(got[1].cpu(), want[1].cpu(), rtol=tol, atol=tol)
    if torch.equal(gi, wi):
        return
    ws = want[1].cpu().double().tolist()
    i = 0
    while i < len(ws):
        j = i + 1
        while j < len(ws) and abs(ws[j] - ws[i]) <= tol * max(1.0, abs(ws[i])):
            j += 1
        assert sorted(gi[i:j].tolist()) == sorted(wi[i:j].tolist()), (i, got, want)
        i = j


@pytest.mark.parametrize("labels", [False, True])
@pytest.mark.parametrize("method,n", [pytest.param(m, n, marks=HEAVY) if m in _SOFT and n == 500 else (m, n)
                                      for m in METHODS for n in (0, 1, 2, 50, 500)])
def test_matches_reference(device, n, labels, method):
    seg, sc, lab = _random_case(n, device=device, labels=labels)
    for thr, plus_one in [(0.3, False), (0.7, True), (0.5, False)] if n <= 50 else [(0.4, True), (0.6, False)]:
        kw = dict(iou_threshold=thr, method=method, sigma=0.3 if method == "sal" else 0.5, plus_one=plus_one)
        got = nms_1d(seg, sc, lab, backend="kernel", **kw)
        want = nms_1d_reference(seg, sc, lab, **kw)
        assert got[0].device == seg.device
        _assert_same(got, want, torch.float64)


@pytest.mark.parametrize("method", METHODS_SOFT_HEAVY)
@pytest.mark.parametrize("quantize", [False, True])
def test_min_score_max_keep(device, method, quantize):
    seg, sc, lab = _random_case(120, device=device, labels=True, quantize=quantize)
    for min_score, max_keep in [(0.3, None), (None, 3), (0.5, 2), (None, 0), (2.0, None)]:
        kw = dict(iou_threshold=0.3, method=method, min_score=min_score, max_keep=max_keep)
        got = nms_1d(seg, sc, lab, backend="kernel", **kw)
        want = nms_1d_reference(seg, sc, lab, **kw)
        _assert_same(got, want, torch.float64)
        if min_score is not None:
            assert bool((got[1] >= min_score).all())
        if max_keep is not None:
            counts = torch.bincount(lab.cpu()[got[0].cpu()] + 5)
            assert counts.numel() == 0 or int(counts.max()) <= max_keep


@pytest.mark.parametrize("method", METHODS_SOFT_HEAVY)
def test_heavy_ties_deterministic(device, method):
    # quantized starts/lengths and scores: identical segments, equal scores everywhere
    seg, sc, lab = _random_case(300, device=device, labels=True, quantize=True, num_labels=2)
    for plus_one in (False, True):
        kw = dict(iou_threshold=0.5, method=method, plus_one=plus_one)
        got = nms_1d(seg, sc, lab, backend="kernel", **kw)
        again = nms_1d(seg, sc, lab, backend="kernel", **kw)
        assert torch.equal(got[0], again[0]) and torch.equal(got[1], again[1])
        _assert_same(got, nms_1d_reference(seg, sc, lab, **kw), torch.float64)


def test_tie_rules_hand_checked(device):
    # three identical segments with equal scores, a fourth far away
    seg = torch.tensor([[0.0, 1.0], [0.0, 1.0], [5.0, 6.0], [0.0, 1.0]], device=device)
    sc = torch.tensor([0.5, 0.5, 0.2, 0.5], device=device)
    keep, s = nms_1d(seg, sc, iou_threshold=0.5, method="hard")
    assert keep.tolist() == [0, 2]  # ties: lower index first
    assert s.tolist() == pytest.approx([0.5, 0.2])
    keep, s = nms_1d(seg, sc, iou_threshold=0.5, method="sal", sigma=0.3)
    # ties: higher index first (reference argsort()[::-1]); kept 3, 2; decayed 1, 0 by exp(-1/0.3)
    assert keep.tolist() == [3, 2, 1, 0]
    d = 0.5 * math.exp(-1 / 0.3)
    assert s.tolist() == pytest.approx([0.5, 0.2, d, d])
    keep, s = nms_1d(seg, sc, iou_threshold=0.5, method="linear")
    # 0 picked; 1 and 3 decay to 0 (1 - iou); 2 next, then 1, 3 (tie at 0: lower index)
    assert keep.tolist() == [0, 2, 1, 3]
    assert s.tolist() == pytest.approx([0.5, 0.2, 0.0, 0.0])


def test_hand_checked_methods(device):
    dt = torch.float64
    seg = torch.tensor([[0.0, 10.0], [1.0, 11.0], [0.0, 5.0], [20.0, 30.0]], dtype=dt, device=device)
    sc = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=dt, device=device)
    iou01, iou02, iou12 = 9 / 11, 5 / 10, 4 / 11
    # hard, threshold 0.5: 0 keeps, 1 (0.82 > 0.5) gone, 2 (0.5, not > 0.5) stays, 3 stays
    keep, s = nms_1d(seg, sc, iou_threshold=0.5, method="hard")
    assert keep.tolist() == [0, 2, 3] and s.tolist() == pytest.approx([0.9, 0.7, 0.6])
    # sal, threshold 0.5: IoU >= 0.5 suppresses 1 and 2 (decayed once, in queue order)
    keep, s = nms_1d(seg, sc, iou_threshold=0.5, method="sal", sigma=0.3)
    assert keep.tolist() == [0, 3, 1, 2]
    assert s.tolist() == pytest.approx([0.9, 0.6, 0.8 * math.exp(-iou01**2 / 0.3), 0.7 * math.exp(-iou02**2 / 0.3)])
    # gaussian: 0 first; then 1 -> 0.8 e^{-iou01^2/s}, 2 -> 0.7 e^{-iou02^2/s}, 3 unchanged
    sg = 0.5
    s1 = 0.8 * math.exp(-iou01**2 / sg)
    s2 = 0.7 * math.exp(-iou02**2 / sg)
    # 3 (0.6) beats both; then 2 (0.388) vs 1 (0.212): 2, then 1 decays again by iou12
    keep, s = nms_1d(seg, sc, iou_threshold=0.0, method="gaussian", sigma=sg)
    assert keep.tolist() == [0, 3, 2, 1]
    assert s.tolist() == pytest.approx([0.9, 0.6, s2, s1 * math.exp(-iou12**2 / sg)])
    # linear, threshold 0.45: 1 -> 0.8 (1 - iou01), 2 -> 0.7 * 0.5
    keep, s = nms_1d(seg, sc, iou_threshold=0.45, method="linear")
    assert keep.tolist() == [0, 3, 2, 1]
    assert s.tolist() == pytest.approx([0.9, 0.6, 0.35, 0.8 * (1 - iou01)])  # iou12 < 0.45


def test_zero_length_and_identical(device):
    seg = torch.tensor([[2.0, 2.0], [2.0, 2.0], [2.0, 3.0]], device=device)
    sc = torch.tensor([0.9, 0.8, 0.7], device=device)
    # without plus_one the IoU of zero-length segments is 0 (never NaN): nothing suppressed
    for method in METHODS:
        keep, s = nms_1d(seg, sc, iou_threshold=0.0 if method != "sal" else 0.01, method=method)
        assert sorted(keep.tolist()) == [0, 1, 2] and bool(torch.isfinite(s).all())
        assert s.tolist() == pytest.approx([0.9, 0.8, 0.7])
    # with plus_one: identical zero-length segments have IoU 1; [2,2] vs [2,3]: 1 / (1 + 2 - 1)
    keep, s = nms_1d(seg, sc, iou_threshold=0.6, method="hard", plus_one=True)
    assert keep.tolist() == [0, 2]
    keep, s = nms_1d(seg, sc, iou_threshold=0.4, method="sal", sigma=0.3, plus_one=True)
    assert keep.tolist() == [0, 1, 2]
    assert s.tolist() == pytest.approx([0.9, 0.8 * math.exp(-1 / 0.3), 0.7 * math.exp(-0.25 / 0.3)])
    # many identical segments: hard keeps exactly one
    seg = torch.tensor([[1.0, 4.0]] * 200, device=device)
    sc = torch.rand(200, device=device)
    keep, _ = nms_1d(seg, sc, iou_threshold=0.99, method="hard")
    assert keep.tolist() == [int(torch.argmax(sc))]


@pytest.mark.parametrize("method", METHODS_SOFT_HEAVY)
def test_float32_is_float64_arithmetic(device, method):
    seg, sc, lab = _random_case(200, dtype=torch.float32, device=device, labels=True)
    kw = dict(iou_threshold=0.4, method=method, sigma=0.3)
    got = nms_1d(seg, sc, lab, **kw)
    want = nms_1d(seg.double(), sc.double(), lab, **kw)
    assert got[1].dtype == torch.float32
    assert torch.equal(got[0], want[0])
    assert torch.equal(got[1], want[1].float())
    _assert_same(got, nms_1d_reference(seg, sc, lab, **kw), torch.float32)


@pytest.mark.emu_heavy
def test_large_groups_and_whole_split(device):
    # one big group (crosses many 64-wide tiles) and many small groups in one call
    seg, sc, _ = _random_case(3000, device=device)
    seg = seg * 10
    for method in ("hard", "sal"):
        kw = dict(iou_threshold=0.3, method=method, sigma=0.3, plus_one=method == "sal")
        _assert_same(nms_1d(seg, sc, backend="kernel", **kw), nms_1d_reference(seg, sc, **kw), torch.float64)
    seg, sc, lab = _random_case(3000, device=device, labels=True, num_labels=60)
    for method in METHODS:
        kw = dict(iou_threshold=0.4, method=method)
        _assert_same(nms_1d(seg, sc, lab, backend="kernel", **kw), nms_1d_reference(seg, sc, lab, **kw),
                     torch.float64)


def test_hard_without_bitmask(device, monkeypatch):
    # the CUDA front switches to the block-per-group kernel for groups too big for the mask
    monkeypatch.setattr(nms_mod, "_MASK_MAX_WORDS", 0)
    seg, sc, lab = _random_case(400, device=device, labels=True)
    for mk, ms in [(None, None), (5, 0.2)]:
        kw = dict(iou_threshold=0.3, method="hard", max_keep=mk, min_score=ms)
        _assert_same(nms_1d(seg, sc, lab, backend="kernel", **kw), nms_1d_reference(seg, sc, lab, **kw),
                     torch.float64)


def test_labels_any_order_and_int32(device):
    seg, sc, lab = _random_case(100, device=device, labels=True)
    kw = dict(iou_threshold=0.4, method="sal", sigma=0.3)
    a = nms_1d(seg, sc, lab, **kw)
    b = nms_1d(seg, sc, lab.to(torch.int32), **kw)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    # output groups in ascending label order
    out_lab = lab[a[0]]
    assert bool((out_lab[1:] >= out_lab[:-1]).all())
    # each group equals a call on that group alone
    for v in torch.unique(lab).tolist():
        sel = torch.nonzero(lab == v).flatten()
        k, s = nms_1d(seg[sel], sc[sel], **kw)
        mine = out_lab == v
        assert torch.equal(sel[k], a[0][mine]) and torch.equal(s, a[1][mine])


def test_empty_and_backends(device):
    e = torch.zeros(0, 2, device=device)
    for backend in ("kernel", "torch"):
        keep, s = nms_1d(e, torch.zeros(0, device=device), torch.zeros(0, dtype=torch.int64, device=device),
                         iou_threshold=0.5, backend=backend)
        assert keep.shape == (0,) and keep.dtype == torch.int64 and s.dtype == torch.float32
    seg, sc, lab = _random_case(40, device=device, labels=True)
    a = nms_1d(seg, sc, lab, iou_threshold=0.5, method="gaussian", backend="torch")
    _assert_same(a, nms_1d(seg, sc, lab, iou_threshold=0.5, method="gaussian", backend="kernel"), torch.float64)


def test_bad_inputs():
    seg = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
    sc = torch.tensor([0.5, 0.4])
    with pytest.raises(ValueError, match="`segments`.*end < start"):
        nms_1d(torch.tensor([[0.0, 1.0], [3.0, 2.0]]), sc, iou_threshold=0.5)
    with pytest.raises(ValueError, match="`scores`.*NaN"):
        nms_1d(seg, torch.tensor([0.5, float("nan")]), iou_threshold=0.5)
    with pytest.raises(ValueError, match="`segments`.*NaN"):
        nms_1d(torch.tensor([[0.0, float("nan")], [2.0, 3.0]]), sc, iou_threshold=0.5)
    with pytest.raises(ValueError, match="`segments`"):
        nms_1d(torch.zeros(2, 3), sc, iou_threshold=0.5)
    with pytest.raises(ValueError, match="`scores`"):
        nms_1d(seg, torch.zeros(3), iou_threshold=0.5)
    with pytest.raises(TypeError, match="`scores`"):
        nms_1d(seg, sc.double(), iou_threshold=0.5)
    with pytest.raises(TypeError, match="`segments`"):
        nms_1d(seg.long(), sc, iou_threshold=0.5)
    with pytest.raises(TypeError, match="`labels`"):
        nms_1d(seg, sc, torch.zeros(2), iou_threshold=0.5)
    with pytest.raises(ValueError, match="`labels`"):
        nms_1d(seg, sc, torch.zeros(3, dtype=torch.int64), iou_threshold=0.5)
    with pytest.raises(ValueError, match="`method`"):
        nms_1d(seg, sc, iou_threshold=0.5, method="soft")
    with pytest.raises(ValueError, match="`sigma`"):
        nms_1d(seg, sc, iou_threshold=0.5, method="gaussian", sigma=0.0)
    with pytest.raises(ValueError, match="`iou_threshold`"):
        nms_1d(seg, sc, iou_threshold=float("nan"))
    with pytest.raises(TypeError, match="`iou_threshold`"):
        nms_1d(seg, sc, iou_threshold=None)
    with pytest.raises(ValueError, match="`max_keep`"):
        nms_1d(seg, sc, iou_threshold=0.5, max_keep=-1)
    with pytest.raises(TypeError, match="`max_keep`"):
        nms_1d(seg, sc, iou_threshold=0.5, max_keep=2.5)
    with pytest.raises(TypeError, match="`segments`"):
        nms_1d([[0.0, 1.0]], sc, iou_threshold=0.5)
    with pytest.raises(ValueError, match="`backend`"):
        nms_1d(seg, sc, iou_threshold=0.5, backend="fast")


@pytest.mark.parametrize("method", ["hard", "linear", "gaussian", "sal"])
def test_huge_max_keep_means_all(method):
    # max_keep beyond int64 used to reach the binding and fail there with a raw TypeError
    seg = torch.sort(torch.rand(20, 2, dtype=torch.float64), 1).values
    sc = torch.rand(20, dtype=torch.float64)
    lab = torch.randint(0, 3, (20,))
    for labels in (None, lab):
        want = nms_1d(seg, sc, labels, iou_threshold=0.3, method=method, backend="kernel")
        for max_keep in (20, 2**40, 2**70):
            for backend in ("kernel", "torch"):
                got = nms_1d(seg, sc, labels, iou_threshold=0.3, method=method, max_keep=max_keep,
                             backend=backend)
                tol = 0 if backend == "kernel" else 1e-12  # libm vs torch exp: one ulp
                torch.testing.assert_close(got, want, rtol=tol, atol=tol)


# ---- the SAL reference, re-derived in numpy from SAL_SPEC.md "Inference" ----------------------
# Per class: sort by score (argsort()[::-1]); take the best; every proposal left in the queue
# whose IoU (+1 lengths) with it is >= thresh leaves the queue, its score multiplied once by
# exp(-iou^2 / alpha) (one scalar at a time), appended after all kept ones: soft_nms of
# sal_reference_np.py (the test oracle shared with test_inference.py), run per label here.

def numpy_sal_per_class(seg, sc, lab, thresh, alpha):
    seg, sc = seg.cpu().double().numpy(), sc.cpu().double().numpy()
    lab = np.zeros(len(sc), dtype=np.int64) if lab is None else lab.cpu().numpy()
    idx, out = [], []
    for c in np.unique(lab):
        rows = [[i, sc[i], seg[i, 0], seg[i, 1]] for i in np.nonzero(lab == c)[0]]
        for r in R.soft_nms(rows, thresh, True, alpha):  # rows (index, score, start, end)
            idx.append(int(r[0]))
            out.append(r[1])
    return np.array(idx, dtype=np.int64), np.array(out, dtype=np.float64)


def _check_vs_numpy(seg, sc, lab, thresh=0.4, alpha=0.3):
    keep, s = nms_1d(seg, sc, lab, iou_threshold=thresh, method="sal", sigma=alpha, plus_one=True)
    want_i, want_s = numpy_sal_per_class(seg, sc, lab, thresh, alpha)
    np.testing.assert_array_equal(keep.cpu().numpy(), want_i)
    # kept scores are exact; decayed ones may differ in the last bit (numpy's exp vs libm's)
    np.testing.assert_array_max_ulp(s.cpu().double().numpy(), want_s, maxulp=2)
    return keep, s, want_s


def test_sal_matches_numpy_reference_hand_checked(device):
    # seconds-valued proposals, +1 lengths: [0, 0.64] vs [0.64, 1.28]: inter 1, lens 1.64, 1.64
    seg = torch.tensor([[0.0, 0.64], [0.64, 1.28], [3.0, 3.32], [10.0, 12.0], [10.5, 12.5]],
                       dtype=torch.float64, device=device)
    sc = torch.tensor([0.9, 0.5, 0.3, 0.8, 0.7], dtype=torch.float64, device=device)
    keep, s, _ = _check_vs_numpy(seg, sc, None)
    iou_a = 1 / (1.64 + 1.64 - 1)      # 0.4386 >= 0.4: 1 suppressed by 0
    iou_b = 2.5 / (3 + 3 - 2.5)        # 0.714: 4 suppressed by 3
    # kept 0, 3, 2, then the decayed in suppression order: 1 (by 0), then 4 (by 3)
    assert keep.tolist() == [0, 3, 2, 1, 4]
    assert s.tolist() == pytest.approx([0.9, 0.8, 0.3, 0.5 * math.exp(-iou_a**2 / 0.3),
                                        0.7 * math.exp(-iou_b**2 / 0.3)])
    # without plus_one, [0,0.64] and [0.64,1.28] only touch: nothing suppressed there
    keep, _ = nms_1d(seg, sc, iou_threshold=0.4, method="sal", sigma=0.3)
    assert keep.tolist() == [0, 3, 1, 2, 4]


def test_sal_matches_numpy_reference_random(device):
    gen = torch.Generator().manual_seed(1)
    for trial in range(30):
        n = int(torch.randint(1, 400, (), generator=gen))
        f = 16 * 1500 / (24 * 750 * 25)  # a THUMOS-like second factor
        a = torch.randint(0, 18000, (n,), generator=gen)
        b = a + torch.randint(0, 300, (n,), generator=gen)
        seg = (torch.stack([a, b + 1], 1).double() * f).to(device)
        sc = (torch.randn(n, generator=gen, dtype=torch.float64) * 0.3 + 0.2).to(device)  # negatives too
        lab = torch.randint(0, 3, (n,), generator=gen).to(device) if trial % 2 else None
        _check_vs_numpy(seg, sc, lab, thresh=[0.4, 0.7, 0.1][trial % 3], alpha=[0.3, 0.35][trial % 2])


def test_sal_numpy_reference_duplicates(device):
    # identical proposals at several thresholds (same run, same score), as OIC produces them
    seg = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [1.5, 2.5], [7.0, 9.0], [7.0, 9.0]],
                       dtype=torch.float64, device=device)
    sc = torch.tensor([0.6, 0.6, 0.6, 0.4, 0.6, 0.6], dtype=torch.float64, device=device)
    keep, s, _ = _check_vs_numpy(seg, sc, None)
    assert keep.tolist()[:2] == [5, 2]  # ties: higher index first, as argsort()[::-1]


# ---- the CUDA front's Python logic (device sort, offsets, compaction), emulated on CPU ---------

def _emulated_cuda_kernel(seg_s, sc_s, perm, offsets, G, n, max_group, method, thr, sigma, min_score,
                          max_keep, plus_one, out_idx, out_sc, counts, ws_pos, ws_score, ws_state,
                          mask, mask_off, tile_off, total_tiles, dtype, device, stream):
    """The CUDA kernel's contract in torch (C.ptr is patched to pass tensors through)."""
    sizes = offsets[1:] - offsets[:-1]
    assert offsets[0] == 0 and offsets[-1] == n and int(sizes.max()) == max_group and G == sizes.numel()
    if method == nms_mod.METHODS["hard"] and not isinstance(mask, int):
        nb = (sizes + 63) // 64
        assert mask.numel() == int((sizes * nb).sum()) and total_tiles == int((nb * nb).sum())
        assert torch.equal(mask_off[1:] - mask_off[:-1], sizes * nb) and torch.equal(tile_off[1:] - tile_off[:-1], nb * nb)
    name = {v: k for k, v in nms_mod.METHODS.items()}[method]
    for g in range(G):
        o, m = int(offsets[g]), int(sizes[g])
        # hard / linear / gaussian apply min_score (in float64) and max_keep in the kernel; sal
        # filters nothing and writes its float64 scores to ws_score[n:] (the front filters them)
        sal = name == "sal"
        k, s = nms_1d_reference(seg_s[o:o + m], sc_s[o:o + m], iou_threshold=thr, method=name,
                                sigma=sigma, plus_one=plus_one,
                                min_score=None if sal or min_score == -math.inf else min_score,
                                max_keep=None if sal or max_keep < 0 else max_keep)
        out_idx[o:o + len(k)] = perm[o:o + m][k]
        out_sc[o:o + len(k)] = s
        if sal:
            assert ws_score.numel() == 2 * n
            ws_score[n + o:n + o + len(k)] = s.double()
        counts[g] = len(k)


@pytest.mark.parametrize("method", METHODS)
def test_cuda_front_logic_emulated(monkeypatch, method):
    monkeypatch.setattr(nms_mod.C, "ptr", lambda t: t)
    monkeypatch.setattr(nms_mod.C, "call", lambda name, dev, *args: _emulated_cuda_kernel(*args))
    seg, sc, lab = _random_case(300, labels=True, num_labels=9)  # continuous scores: no ties
    for labels in (lab, None):
        for min_score, max_keep in [(None, None), (0.3, None), (None, 4), (0.2, 3), (None, 0)]:
            p = dict(iou_threshold=0.4, method=method, sigma=0.3, min_score=min_score, max_keep=max_keep,
                     plus_one=False)
            want = nms_1d_reference(seg, sc, labels, **p)
            p["min_score"] = -math.inf if min_score is None else min_score
            p["max_keep"] = -1 if max_keep is None else max_keep
            got = nms_mod._nms_cuda(seg, sc, labels, **p)
            _assert_same(got, want, torch.float64)


@pytest.mark.parametrize("sal_ties", [False, True])
def test_device_sort_order(sal_ties):
    seg, sc, lab = _random_case(500, labels=True, quantize=True, num_labels=5)
    sc[::7] = -0.0
    sc[1::7] = 0.0
    perm, sizes = nms_mod._sort_groups(sc, lab, sal_ties)
    key = sorted(range(500), key=lambda i: (int(lab[i]), -float(sc[i]), -i if sal_ties else i))
    assert perm.tolist() == key
    assert sizes.tolist() == torch.unique(lab, return_counts=True)[1].tolist()


@pytest.mark.parametrize("method", METHODS)
def test_cpu_windowed_equals_plain_scans(monkeypatch, method):
    # the CPU kernel's start-index pruning (and lazy heap for soft) must not change anything
    gen = torch.Generator().manual_seed(5)
    for trial in range(12):
        n = int(torch.randint(1, 300, (), generator=gen))
        scale = [1.0, 1e3, 1e5][trial % 3]
        seg, sc, lab = _random_case(n, labels=trial % 2 == 1, quantize=trial % 4 == 0, gen=gen)
        seg = seg * scale
        kw = dict(iou_threshold=[0.05, 0.0, 0.4, 1.0][trial % 4], method=method, sigma=0.3,
                  plus_one=trial % 3 == 1, min_score=[None, 0.3][trial % 2], max_keep=[None, 7][trial % 5 == 0])
        monkeypatch.setattr(nms_mod, "_CPU_WINDOWED", 2)
        a = nms_1d(seg, sc, lab, backend="kernel", **kw)
        monkeypatch.setattr(nms_mod, "_CPU_WINDOWED", 0)
        b = nms_1d(seg, sc, lab, backend="kernel", **kw)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("method", METHODS_SOFT_HEAVY)
def test_signed_zero_scores_and_label_runs(device, method):
    # -0.0 and 0.0 are equal scores (ties by index); labels in contiguous runs, not sorted
    gen = torch.Generator().manual_seed(3)
    seg, sc, _ = _random_case(400, device=device, quantize=True, gen=gen)
    sc = sc.clone()
    sc[::3] = -0.0
    sc[1::3] = 0.0
    lab = torch.repeat_interleave(torch.tensor([5, 2, 9, 0, 7]), torch.tensor([100, 70, 130, 60, 40])).to(device)
    for labels in (lab, lab.flip(0), None):
        kw = dict(iou_threshold=0.5, method=method, sigma=0.3)
        _assert_same(nms_1d(seg, sc, labels, backend="kernel", **kw), nms_1d_reference(seg, sc, labels, **kw),
                     torch.float64)


def test_sal_min_score_on_float64_scores(device):
    # min_score applies to the float64 decayed score, not to its float32 rounding: a decayed
    # score d with float32(d) < d and min_score = d is kept (the CUDA front once compared the
    # rounded outputs and dropped it)
    seg, sc, _ = _random_case(300, dtype=torch.float32, device=device)
    kw = dict(iou_threshold=0.2, method="sal", sigma=0.3)
    idx64, sc64 = nms_1d_reference(seg.double(), sc.double(), **kw)
    rounded_down = (sc64.float().double() < sc64).nonzero().flatten()
    assert rounded_down.numel() > 0
    j = int(rounded_down[rounded_down.numel() // 2])
    ms = float(sc64[j])
    got = nms_1d(seg, sc, backend="kernel", min_score=ms, **kw)
    want = nms_1d_reference(seg, sc, min_score=ms, **kw)
    assert int(idx64[j]) in got[0].tolist() and int(idx64[j]) in want[0].tolist()
    _assert_same(got, want, torch.float32)


@pytest.mark.parametrize("method", ["hard", "linear", "gaussian", "sal"])
@pytest.mark.parametrize("plus_one", [False, True])
def test_huge_coordinates(device, method, plus_one):
    # the IoU is computed in float64: coordinates up to float64's max / 4 keep lengths and
    # unions finite (both backends agree); float32 input can never overflow; beyond: ValueError
    lim = torch.finfo(torch.float64).max / 4
    seg = torch.tensor([[-lim, lim], [0.0, lim], [-lim, 0.0], [lim / 2, lim]], dtype=torch.float64,
                       device=device)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64, device=device)
    kw = dict(iou_threshold=0.4, method=method, sigma=0.5, plus_one=plus_one)
    k_idx, k_sc = nms_1d(seg, scores, backend="kernel", **kw)
    t_idx, t_sc = nms_1d(seg, scores, backend="torch", **kw)
    assert torch.equal(k_idx, t_idx)
    torch.testing.assert_close(k_sc, t_sc, rtol=1e-12, atol=0)
    assert torch.isfinite(k_sc).all()
    if method == "hard":  # IoU(0, 1) = IoU(0, 2) = 0.5 > 0.4: suppressed; IoU(0, 3) = 0.25: kept
        assert k_idx.tolist() == [0, 3]
    f32 = torch.tensor([[-3e38, 3e38], [0.0, 3e38]], dtype=torch.float32, device=device)
    s32 = torch.tensor([0.9, 0.8], dtype=torch.float32, device=device)
    for backend in ("kernel", "torch"):
        assert nms_1d(f32, s32, backend=backend, **kw)[0].tolist() == ([0] if method == "hard" else [0, 1])
        with pytest.raises(ValueError, match=r"nms_1d: `segments` has a coordinate of magnitude 1\.798e\+308, beyond 4\.494e\+307 \(float64"):
            nms_1d(seg * 4, scores, backend=backend, **kw)
