import numpy as np
import pytest
import torch

import official_anet as official
from sal_ext.ops import detection_ap, segment_iou
from sal_ext.ops.detection import detection_ap_reference, segment_iou_reference

SIZES = [(0, 3), (3, 0), (1, 1), (5, 7), (33, 65), (300, 200)]


def _segs(n, dtype=torch.float64, device="cpu", zero_frac=0.0, grid=None):
    s = torch.rand(n, dtype=torch.float64) * 50
    ln = torch.rand(n, dtype=torch.float64) * 10
    if grid is not None:
        s, ln = (s / grid).floor() * grid, (ln / grid).floor() * grid
    if zero_frac:
        ln[torch.rand(n) < zero_frac] = 0
    return torch.stack([s, s + ln], 1).to(device=device, dtype=dtype).contiguous()


# --------------------------------------------------------------------------- segment_iou
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_segment_iou_matches_reference(device, size, dtype):
    a = _segs(size[0], dtype, device, zero_frac=0.1)
    b = _segs(size[1], dtype, device, zero_frac=0.1)
    got = segment_iou(a, b, backend="kernel")
    want = segment_iou_reference(a, b)
    assert got.shape == (size[0], size[1]) and got.dtype == dtype and got.device == a.device
    tol = 0 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)
    assert not torch.isnan(got).any()


def test_segment_iou_matches_official_float64(device):
    a, b = _segs(40, device=device), _segs(30, device=device, grid=0.5)
    got = segment_iou(a, b, backend="kernel").cpu().numpy()
    A, B = a.cpu().numpy(), b.cpu().numpy()
    want = np.stack([official.segment_iou(A[i], B) for i in range(len(A))])
    assert np.array_equal(got, want)  # same arithmetic, bit for bit


def test_segment_iou_hand_cases(device):
    a = torch.tensor([[0.0, 10.0], [2.0, 2.0], [5.0, 5.0]], device=device)
    b = torch.tensor([[0.0, 10.0], [5.0, 15.0], [2.0, 2.0], [20.0, 30.0]], device=device)
    want = torch.tensor([[1.0, 5 / 15, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    for backend in ("kernel", "torch"):
        torch.testing.assert_close(segment_iou(a, b, backend=backend).cpu(), want)


def test_segment_iou_bad_inputs():
    ok = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="`a`"):
        segment_iou(torch.zeros(2, 3), ok)
    with pytest.raises(ValueError, match="`b`.*end < start"):
        segment_iou(ok, torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="`a`.*NaN"):
        segment_iou(torch.tensor([[0.0, float("nan")]]), ok)
    with pytest.raises(TypeError, match="`b`"):
        segment_iou(ok, torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(TypeError, match="`a`"):
        segment_iou(torch.zeros(2, 2, dtype=torch.int64), ok)
    with pytest.raises(TypeError, match="`a`"):
        segment_iou([[0.0, 1.0]], ok)


# --------------------------------------------------------------------------- detection_ap
def _random_case(rng, P, G, V, Cn, mode):
    gv = rng.integers(0, V, G)
    gl = rng.integers(0, Cn, G)
    pv = rng.integers(0, V + 2, P)  # some predictions on videos without any ground truth
    pl = rng.integers(0, Cn, P)
    ps = rng.permutation(P).astype(np.float64) / P  # distinct scores
    if mode == "int":  # integer endpoints: tIoU hits 0.5, 0.25, 1.0 exactly
        def seg(n):
            s = rng.integers(0, 12, n)
            return np.stack([s, s + rng.integers(1, 6, n)], 1).astype(np.float64)
    elif mode == "grid":  # a 0.1 grid: floats like 0.30000000000000004
        def seg(n):
            s = rng.integers(0, 30, n)
            return np.stack([s * 0.1, (s + rng.integers(1, 10, n)) * 0.1], 1)
    else:
        def seg(n):
            s = rng.random(n) * 20
            return np.stack([s, s + 0.1 + rng.random(n) * 5], 1)
    # predictions near ground truth so that many match
    gseg = seg(G)
    pseg = seg(P)
    near = rng.random(P) < 0.5
    src = rng.integers(0, G, P)
    pv[near], pl[near] = gv[src[near]], gl[src[near]]
    if mode == "float":
        pseg[near] = gseg[src[near]] + rng.normal(0, 0.5, (near.sum(), 1))
        pseg[near] = np.sort(pseg[near], axis=1)
    return pv, pl, ps, pseg, gv, gl, gseg


THRESHOLDS = np.concatenate([np.linspace(0.1, 0.9, 9), [0.25, 0.5, 1.0, 1 / 3, 0.3]])


@pytest.mark.parametrize("mode", ["int", "grid", "float"])
@pytest.mark.parametrize("seed", [0, 1])
def test_detection_ap_matches_official(device, mode, seed):
    rng = np.random.default_rng(seed)
    P, G, V, Cn = 400, 60, 6, 5
    arrs = _random_case(rng, P, G, V, Cn, mode)
    pv, pl, ps, pseg, gv, gl, gseg = arrs
    Ctot = Cn + 1  # one class without any ground truth
    want = official.official_ap(pv, pl, ps, pseg, gv, gl, gseg, THRESHOLDS, Ctot)
    t = [torch.as_tensor(x, device=device) for x in arrs]
    for backend in ("kernel", "torch"):
        got = detection_ap(*t, THRESHOLDS, Ctot, backend=backend)
        assert got.device == t[0].device and got.dtype == torch.float64 and got.shape == (len(THRESHOLDS), Ctot)
        got = got.cpu().numpy()
        assert np.isnan(got[:, Cn]).all()
        np.testing.assert_allclose(got[:, :Cn], want[:, :Cn], rtol=0, atol=1e-9)
    assert (want[:, :Cn] > 0).any()  # the case is not trivial


def test_detection_ap_float32_inputs_same_as_float64():
    rng = np.random.default_rng(3)
    pv, pl, ps, pseg, gv, gl, gseg = (torch.as_tensor(x) for x in _random_case(rng, 300, 40, 4, 3, "grid"))
    a = detection_ap(pv, pl, ps.float(), pseg.float(), gv, gl, gseg.float(), [0.5], 3)
    b = detection_ap(pv, pl, ps.float().double(), pseg.float().double(), gv, gl, gseg.float().double(), [0.5], 3)
    assert torch.equal(a, b)


def _ap(pred, gt, thr=(0.5,), C=1, backend="kernel"):
    """pred: [(video, label, score, s, e)], gt: [(video, label, s, e)] -> numpy [n_tiou, C]."""
    pv = torch.tensor([p[0] for p in pred], dtype=torch.int64)
    pl = torch.tensor([p[1] for p in pred], dtype=torch.int64)
    ps = torch.tensor([p[2] for p in pred], dtype=torch.float64)
    pseg = torch.tensor([p[3:5] for p in pred], dtype=torch.float64).reshape(-1, 2)
    gv = torch.tensor([g[0] for g in gt], dtype=torch.int64)
    gl = torch.tensor([g[1] for g in gt], dtype=torch.int64)
    gseg = torch.tensor([g[2:4] for g in gt], dtype=torch.float64).reshape(-1, 2)
    return detection_ap(pv, pl, ps, pseg, gv, gl, gseg, list(thr), C, backend=backend).numpy()


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_hand_cases(backend):
    gt = [(0, 0, 0.0, 10.0), (0, 0, 20.0, 30.0), (1, 0, 5.0, 6.0)]
    perfect = [(0, 0, 0.9, 0.0, 10.0), (0, 0, 0.8, 20.0, 30.0), (1, 0, 0.7, 5.0, 6.0)]
    assert _ap(perfect, gt, backend=backend)[0, 0] == 1.0
    one = [(0, 0, 1.0, 0.0, 10.0)]
    # one FP before one TP: precision 1/2 at recall 1
    assert _ap([(0, 0, 0.9, 40.0, 50.0), (0, 0, 0.5, 0.0, 10.0)], [gt[0]], backend=backend)[0, 0] == 0.5
    # TP then FP: AP 1 (interpolation from the right)
    assert _ap([(0, 0, 0.9, 0.0, 10.0), (0, 0, 0.5, 40.0, 50.0)], [gt[0]], backend=backend)[0, 0] == 1.0
    # one of two ground truths found
    assert _ap(one, gt[:2], backend=backend)[0, 0] == 0.5
    # a duplicate detection is a false positive: TP, FP, TP -> (1/2)*1 + (1/2)*(2/3)
    dup = [(0, 0, 0.9, 0.0, 10.0), (0, 0, 0.8, 0.0, 10.0), (0, 0, 0.7, 20.0, 30.0)]
    np.testing.assert_allclose(_ap(dup, gt[:2], backend=backend)[0, 0], 0.5 + 0.5 * 2 / 3, rtol=0, atol=1e-15)
    # a prediction in another video or of another class does not match
    assert _ap([(1, 0, 0.9, 0.0, 10.0)], [gt[0]], backend=backend)[0, 0] == 0.0
    res = _ap([(0, 1, 0.9, 0.0, 10.0)], [gt[0]], C=2, backend=backend)
    assert res[0, 0] == 0.0 and np.isnan(res[0, 1])  # class 1: no ground truth -> NaN
    # tIoU exactly equal to the threshold matches; just below does not
    assert _ap([(0, 0, 0.9, 0.0, 5.0)], [gt[0]], thr=(0.5, 0.5000001), backend=backend)[:, 0].tolist() == [1.0, 0.0]
    # several thresholds at once, exactly as given
    np.testing.assert_array_equal(_ap([(0, 0, 0.9, 0.0, 7.0)], [gt[0]], thr=(0.1, 0.7, 0.70001, 1.0),
                                      backend=backend)[:, 0], [1, 1, 0, 0])


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_no_predictions_and_empty(backend):
    gt = [(0, 0, 0.0, 10.0), (0, 2, 0.0, 10.0)]
    res = _ap([(0, 0, 0.9, 0.0, 10.0)], gt, thr=(0.5, 0.7), C=3, backend=backend)
    assert res[:, 0].tolist() == [1.0, 1.0] and np.isnan(res[:, 1]).all() and res[:, 2].tolist() == [0.0, 0.0]
    res = _ap([], gt, C=3, backend=backend)
    assert res[0, 0] == 0.0 and np.isnan(res[0, 1]) and res[0, 2] == 0.0
    res = _ap([(0, 0, 0.9, 0.0, 10.0)], [], C=1, backend=backend)
    assert np.isnan(res).all()


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_score_ties_later_input_first(backend):
    gt = [(0, 0, 0.0, 10.0)]
    a = (0, 0, 0.5, 0.0, 10.0)  # tIoU 1
    b = (0, 0, 0.5, 0.0, 6.0)  # tIoU 0.6
    # at 0.7: b (later) goes first and misses, then a matches: FP, TP -> 0.5
    assert _ap([a, b], gt, thr=(0.7,), backend=backend)[0, 0] == 0.5
    assert _ap([b, a], gt, thr=(0.7,), backend=backend)[0, 0] == 1.0
    # the official port (stable argsort reversed) agrees
    for order in ([a, b], [b, a]):
        arr = np.array([p[2] for p in order]), np.array([p[3:5] for p in order])
        want = official.compute_average_precision_detection(np.array([0]), np.array([[0.0, 10.0]]), np.array([0, 0]),
                                                           arr[1], arr[0], [0.7])
        assert _ap(order, gt, thr=(0.7,), backend=backend)[0, 0] == want[0]


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_gt_tiou_ties_later_ground_truth_first(backend):
    gt = [(0, 0, 0.0, 10.0), (0, 0, 5.0, 15.0)]
    # p0 [5,10] has tIoU 0.5 with both: takes the later one (g1); p1 [0,10] then gets g0
    pred = [(0, 0, 0.9, 5.0, 10.0), (0, 0, 0.8, 0.0, 10.0)]
    assert _ap(pred, gt, backend=backend)[0, 0] == 1.0
    want = official.official_ap(np.array([0, 0]), np.array([0, 0]), np.array([0.9, 0.8]),
                                np.array([[5.0, 10.0], [0.0, 10.0]]), np.array([0, 0]), np.array([0, 0]),
                                np.array([[0.0, 10.0], [5.0, 15.0]]), [0.5], 1)
    assert want[0, 0] == 1.0


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_zero_length_never_matches(backend):
    gt = [(0, 0, 3.0, 3.0), (0, 0, 0.0, 10.0)]
    pred = [(0, 0, 0.9, 3.0, 3.0), (0, 0, 0.8, 5.0, 5.0)]
    assert _ap(pred, gt, thr=(0.1, 0.5), backend=backend)[:, 0].tolist() == [0.0, 0.0]
    # the official code counts 0/0 = NaN tIoU as a match (the bug not copied)
    off = official.compute_average_precision_detection(np.array([0]), np.array([[3.0, 3.0]]), np.array([0]),
                                                      np.array([[3.0, 3.0]]), np.array([0.9]), [0.5])
    assert off[0] == 1.0 and _ap(pred[:1], gt[:1], backend=backend)[0, 0] == 0.0


def test_large_input_is_fast():
    import time
    rng = np.random.default_rng(0)
    arrs = [torch.as_tensor(x) for x in _random_case(rng, 200_000, 3000, 212, 20, "float")]
    detection_ap(*arrs, np.linspace(0.1, 0.7, 7), 20)
    t = time.perf_counter()
    detection_ap(*arrs, np.linspace(0.1, 0.7, 7), 20)
    assert time.perf_counter() - t < 2.0  # tens of milliseconds in practice; generous for a busy machine


def test_detection_ap_bad_inputs():
    v = torch.zeros(2, dtype=torch.int64)
    s = torch.tensor([0.5, 0.4])
    seg = torch.tensor([[0.0, 1.0], [1.0, 2.0]])
    ok = dict(pred_video=v, pred_label=v, pred_score=s, pred_segments=seg, gt_video=v, gt_label=v,
              gt_segments=seg, tiou_thresholds=[0.5], num_classes=2)
    detection_ap(**ok)

    def bad(exc, match, **kw):
        with pytest.raises(exc, match=match):
            detection_ap(**{**ok, **kw})

    bad(TypeError, "`pred_video`", pred_video=v.int())
    bad(ValueError, "`pred_label`", pred_label=torch.zeros(3, dtype=torch.int64))
    bad(ValueError, "`gt_label`.*got 2", gt_label=torch.tensor([0, 2]))
    bad(ValueError, "`pred_label`.*got -1", pred_label=torch.tensor([0, -1]))
    bad(ValueError, "`pred_score`.*NaN", pred_score=torch.tensor([0.5, float("nan")]))
    bad(TypeError, "`pred_score`", pred_score=torch.tensor([1, 2]))
    bad(ValueError, "`gt_segments`.*end < start", gt_segments=torch.tensor([[0.0, 1.0], [2.0, 1.0]]))
    bad(ValueError, "`pred_segments`", pred_segments=torch.zeros(3, 2))
    bad(ValueError, "`pred_segments`.*NaN", pred_segments=torch.tensor([[0.0, 1.0], [float("inf"), 2.0]]))
    bad(ValueError, "`gt_segments`", gt_segments=torch.zeros(2, 3))
    bad(ValueError, "`num_classes`", num_classes=0)
    bad(ValueError, "`tiou_thresholds`", tiou_thresholds=[0.0, 0.5])
    bad(ValueError, "`tiou_thresholds`", tiou_thresholds=[1.5])
    bad(ValueError, "`tiou_thresholds`", tiou_thresholds=[])
    bad(ValueError, "`backend`", backend="gpu")


def test_numpy_front_same_numbers_and_rules():
    # sal_ext.numpy_ops.detection_ap (the evaluator's, torch-free) and the torch front: the
    # same AP, and for each bad input the same exception with the same message
    from sal_ext import numpy_ops
    rng = np.random.default_rng(11)
    arrs = _random_case(rng, 300, 40, 4, 3, "grid")
    for backend in ("kernel", "torch"):
        got = numpy_ops.detection_ap(*arrs, THRESHOLDS, 4, backend=backend)
        assert isinstance(got, np.ndarray) and got.dtype == np.float64
        want = detection_ap(*(torch.as_tensor(x) for x in arrs), THRESHOLDS, 4, backend=backend).numpy()
        assert np.array_equal(got, want, equal_nan=True)
    v = torch.zeros(2, dtype=torch.int64)
    s, seg = torch.tensor([0.5, 0.4]), torch.tensor([[0.0, 1.0], [1.0, 2.0]])
    ok = dict(pred_video=v, pred_label=v, pred_score=s, pred_segments=seg, gt_video=v, gt_label=v,
              gt_segments=seg, tiou_thresholds=[0.5], num_classes=2)
    bad = [dict(pred_video=v.int()), dict(pred_label=torch.zeros(3, dtype=torch.int64)),
           dict(gt_label=torch.tensor([0, 2])), dict(pred_label=torch.tensor([0, -1])),
           dict(pred_score=torch.tensor([0.5, float("nan")])), dict(pred_score=torch.tensor([1, 2])),
           dict(gt_segments=torch.tensor([[0.0, 1.0], [2.0, 1.0]])), dict(pred_segments=torch.zeros(3, 2)),
           dict(pred_segments=torch.tensor([[0.0, 1.0], [float("inf"), 2.0]])), dict(gt_segments=torch.zeros(2, 3)),
           dict(gt_video=torch.zeros(2, 1, dtype=torch.int64)), dict(num_classes=0), dict(num_classes=True),
           dict(tiou_thresholds=[0.0, 0.5]), dict(tiou_thresholds=[]), dict(tiou_thresholds=["x"]),
           dict(gt_segments=torch.tensor([[0.0, 1e308], [0.0, 1.0]], dtype=torch.float64)), dict(backend="gpu")]
    for kw in bad:
        args = {**ok, **kw}
        errors = []
        for front, conv in ((detection_ap, lambda x: x), (numpy_ops.detection_ap,
                                                         lambda x: x.numpy() if isinstance(x, torch.Tensor) else x)):
            with pytest.raises((TypeError, ValueError)) as err:
                front(**{k: conv(x) for k, x in args.items()})
            errors.append((type(err.value), str(err.value)))
        assert errors[0] == errors[1], kw
    with pytest.raises(TypeError, match="detection_ap: `gt_video` must be a numpy.ndarray, got list"):
        numpy_ops.detection_ap(*(x.numpy() for x in (v, v, s, seg)), [0, 0], v.numpy(), seg.numpy(), [0.5], 2)


def test_reference_is_independent_of_kernel():
    # the numpy fallback on its own (no torch tensors) agrees with the official port
    rng = np.random.default_rng(7)
    arrs = _random_case(rng, 200, 30, 3, 2, "int")
    got = detection_ap_reference(*arrs, THRESHOLDS, 2)
    want = official.official_ap(*arrs, THRESHOLDS, 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_segment_iou_huge_coordinates(device, backend, dtype):
    # coordinates up to finfo.max / 4 keep every length and union finite: exact IoU on both
    # paths; beyond it, lengths could overflow (IoU 0 or NaN): a one-line ValueError
    lim = torch.finfo(dtype).max / 4
    a = torch.tensor([[-lim, lim], [0.0, lim], [-lim, -lim / 2]], dtype=dtype, device=device)
    b = torch.tensor([[-lim, 0.0], [0.0, lim], [-lim, lim]], dtype=dtype, device=device)
    got = segment_iou(a, b, backend=backend)
    want = torch.tensor([[0.5, 0.5, 1.0], [0.0, 1.0, 0.5], [0.5, 0.0, 0.25]], dtype=dtype, device=device)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=0)
    assert torch.equal(got, segment_iou(a, b, backend="torch" if backend == "kernel" else "kernel"))
    big = torch.finfo(dtype).max / 2
    for name, args in (("a", (a * 2, b)), ("b", (a, torch.tensor([[0.0, big]], dtype=dtype, device=device)))):
        with pytest.raises(ValueError, match=fr"segment_iou: `{name}` has a coordinate of magnitude .* beyond "
                                             r".*segment lengths would overflow"):
            segment_iou(*args, backend=backend)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_detection_ap_huge_coordinates(backend):
    lim = torch.finfo(torch.float64).max / 4
    one = torch.zeros(1, dtype=torch.int64)
    seg = torch.tensor([[-lim, lim]], dtype=torch.float64)
    ap = detection_ap(one, one, torch.ones(1, dtype=torch.float64), seg, one, one, seg * 0.5, [0.5],
                      1, backend=backend)
    assert ap.item() == 1.0  # tIoU 0.5 >= 0.5 (it was NaN -> no match when the length overflowed)
    for name, p, g in (("pred_segments", seg * 4, seg), ("gt_segments", seg, seg * 4)):
        with pytest.raises(ValueError, match=fr"detection_ap: `{name}` has a coordinate"):
            detection_ap(one, one, torch.ones(1, dtype=torch.float64), p, one, one, g, [0.5], 1,
                         backend=backend)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_segment_check_device_branch(dtype):
    # the check CUDA tensors go through (torch reductions, not numpy), run here on CPU tensors:
    # the same verdicts and messages as the numpy branch
    from sal_ext.ops import _common as C
    name = str(dtype).replace("torch.", "")
    lim = torch.finfo(dtype).max / 4
    cases = [(torch.tensor([[0.0, 1.0], [-lim, lim]], dtype=dtype), None),
             (torch.empty(0, 2, dtype=dtype), None),
             (torch.tensor([[0.0, float("nan")]], dtype=dtype), "`s` contains NaN or Inf"),
             (torch.tensor([[float("-inf"), 0.0]], dtype=dtype), "`s` contains NaN or Inf"),
             (torch.tensor([[0.0, lim * 2]], dtype=dtype), "`s` has a coordinate of magnitude"),
             (torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=dtype), r"`s` row 1 has end < start")]
    for t, msg in cases:
        for check in (lambda: C.check_segment_values_torch(t, "s", "op", name),
                      lambda: C.check_segment_values(t, "s", "op")):
            if msg is None:
                check()
            else:
                with pytest.raises(ValueError, match=msg):
                    check()
