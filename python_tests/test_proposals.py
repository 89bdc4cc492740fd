import math

import numpy as np
import pytest
import torch

import sal_reference_np as R
from sal_ext.ops import oic_proposals
from sal_ext.ops.proposals import oic_proposals_batched, upsample_reference, upsampled_length

THR = R.THUMOS_THRESHOLDS


def _assert_same(a, b, score_tol=1e-9):
    for name in ("video", "label", "threshold", "start", "end"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    torch.testing.assert_close(a.score, b.score, rtol=0, atol=score_tol)


@pytest.mark.parametrize("N,T,C", [(1, 1, 1), (1, 2, 1), (3, 7, 2), (4, 40, 5), (2, 750, 3), (5, 13, 20)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_fallback(N, T, C, dtype):
    values = torch.rand(N, T, C, dtype=dtype)
    vs = torch.rand(N, C, dtype=dtype)
    columns = torch.rand(N, C) > 0.4
    thr = [0.5, 0.1, 0.3, 0.9, 0.3, 0.05]  # unsorted, with a duplicate
    for ratio in (0.0, 0.2, 0.25, 3.0):
        args = (values, thr, vs, columns)
        kw = dict(upsample=24, outer_ratio=ratio, gamma=0.2)
        _assert_same(oic_proposals_batched(*args, **kw, backend="kernel"),
                     oic_proposals_batched(*args, **kw, backend="torch"))


@pytest.mark.parametrize("upsample", [1, 3, 24])
@pytest.mark.parametrize("skip", [True, False])
def test_kernel_matches_fallback_options(upsample, skip):
    # step-like columns make long runs, exact ties between thresholds and runs at both ends
    values = (torch.rand(6, 30, 4) > 0.5).double() * torch.rand(6, 1, 4) + 0.01 * torch.rand(6, 30, 4)
    vs = torch.randn(6, 4)
    kw = dict(upsample=upsample, outer_ratio=0.25, gamma=-0.7, skip_first_only=skip)
    _assert_same(oic_proposals_batched(values, THR, vs, **kw, backend="kernel"),
                 oic_proposals_batched(values, THR, vs, **kw, backend="torch"))


@pytest.mark.parametrize("upsample", [1, 2, 5, 7, 25])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_kernel_matches_fallback_wide_values(upsample, dtype):
    # values below 0 and above 1 (extrapolation), thresholds <= 0 (the v > 0 rule), many levels
    g = torch.Generator().manual_seed(upsample)
    values = (torch.rand(5, 33, 6, generator=g, dtype=dtype) * 2 - 0.5).contiguous()
    values[:, ::7] = 0.0  # exact zeros
    thr = torch.linspace(-0.2, 1.2, 40).tolist() + [0.0]
    vs = torch.rand(5, 6, generator=g)
    for ratio in (0.0, 0.2, 1.7):
        kw = dict(upsample=upsample, outer_ratio=ratio, gamma=0.3)
        _assert_same(oic_proposals_batched(values, thr, vs, **kw, backend="kernel"),
                     oic_proposals_batched(values, thr, vs, **kw, backend="torch"))


def test_matches_numpy_reference():
    rng = np.random.default_rng(1)
    for _ in range(60):
        T, K = int(rng.integers(1, 80)), int(rng.integers(1, 4))
        cols = rng.random((T, K)).astype(np.float32)
        cols[rng.random((T, K)) < 0.3] = 0.0  # below every threshold
        vs = rng.random(K)
        want = R.proposals_one_video(cols, THR, vs, None, 24, 0.2, 0.2)
        for backend in ("kernel", "torch"):
            got = oic_proposals(torch.from_numpy(cols), THR, torch.from_numpy(vs), outer_ratio=0.2,
                                backend=backend).numpy()
            assert got.shape == want.shape
            np.testing.assert_array_equal(got[:, [0, 2, 3]], want[:, [0, 2, 3]])
            np.testing.assert_allclose(got[:, 1], want[:, 1], rtol=0, atol=1e-10)


def test_upsampling_is_interp1d_extrapolate():
    y = torch.tensor([[0.0, 1.0, 0.5]])
    v = upsample_reference(y, 4)
    want = torch.tensor([0, .25, .5, .75, 1, .875, .75, .625, .5, .375, .25, .125], dtype=torch.float64)
    torch.testing.assert_close(v[0], want, rtol=0, atol=1e-15)
    assert upsampled_length(750, 24) == 18000 == len(np.arange(0, 750, 1 / 24))
    for T in (1, 2, 333, 751):
        x = np.random.rand(T, 2).astype(np.float32)
        np.testing.assert_array_equal(upsample_reference(torch.from_numpy(x.T.copy()), 24).numpy().T,
                                      R.upsample(x, 24))


def test_batched_equals_per_video_calls():
    values, vs = torch.rand(4, 25, 3), torch.rand(4, 3)
    columns = torch.tensor([[1, 0, 1], [0, 0, 0], [0, 1, 0], [1, 1, 1]], dtype=torch.bool)
    got = oic_proposals_batched(values, THR, vs, columns, outer_ratio=0.2)
    rows = []
    for n in range(4):
        cls = columns[n].nonzero().flatten()
        if cls.numel() == 0:
            continue
        one = oic_proposals(values[n][:, cls], THR, vs[n, cls], outer_ratio=0.2)
        one[:, 0] = cls.double()[one[:, 0].long()]
        rows.append(torch.cat([torch.full((len(one), 1), float(n), dtype=torch.float64), one], 1))
    want = torch.cat(rows)
    assert torch.equal(got.video.double(), want[:, 0]) and torch.equal(got.label.double(), want[:, 1])
    assert torch.equal(got.start.double(), want[:, 3]) and torch.equal(got.end.double(), want[:, 4])
    torch.testing.assert_close(got.score, want[:, 2], rtol=0, atol=0)


def test_order_threshold_outer_class_inner():
    values = torch.zeros(1, 10, 2)
    values[0, 2:4, 0] = 1.0
    values[0, 6:8, 1] = 1.0
    p = oic_proposals(values[0], [0.3, 0.6], torch.zeros(2))
    assert p[:, 0].tolist() == [0, 1, 0, 1]
    r = oic_proposals_batched(values, [0.3, 0.6], torch.zeros(1, 2))
    assert r.threshold.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_edge_cases(backend):
    kw = dict(upsample=24, outer_ratio=0.25, gamma=0.0, backend=backend)
    # T = 1, K = 1: a constant column, one run over everything, no flank
    p = oic_proposals(torch.tensor([[0.55]], dtype=torch.float64), THR, torch.tensor([0.0]), **kw)
    assert p.shape == (5, 4)
    torch.testing.assert_close(p[:, 1], torch.full((5,), 0.55, dtype=torch.float64), rtol=0, atol=1e-15)
    assert p[:, 2].tolist() == [0] * 5 and p[:, 3].tolist() == [24] * 5
    # nothing above any threshold -> empty
    p = oic_proposals(torch.full((9, 3), 0.05), THR, torch.ones(3), **kw)
    assert p.shape == (0, 4) and p.dtype == torch.float64
    # all above every threshold -> one run [0, L) per threshold, flanks clipped to nothing
    p = oic_proposals(torch.full((9, 1), 0.95, dtype=torch.float64), THR, torch.ones(1), **{**kw, "gamma": 0.5})
    assert p.shape == (9, 4) and p[:, 2].eq(0).all() and p[:, 3].eq(9 * 24).all()
    torch.testing.assert_close(p[:, 1], torch.full((9,), 0.95 + 0.5, dtype=torch.float64), rtol=0, atol=1e-12)
    # no columns selected -> empty
    r = oic_proposals_batched(torch.rand(2, 5, 3), THR, torch.rand(2, 3), torch.zeros(2, 3, dtype=torch.bool),
                              backend=backend)
    assert all(t.numel() == 0 for t in r)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_flanks_clipped_at_both_ends(backend):
    # upsample 1 keeps positions = rows; runs touch both ends of the sequence
    y = torch.tensor([[0.9, 0.8, 0.0, 0.2, 0.0, 0.4, 0.7, 0.6]]).T
    p = oic_proposals(y, [0.5], torch.zeros(1), upsample=1, outer_ratio=1.0, gamma=0.0, backend=backend)
    assert p[:, 2:].tolist() == [[0, 2], [6, 8]]
    # run [0,1]: left flank from max(0, int(0 - 2)) = 0 -> empty; right (1, min(7, 3)] = {2, 3}
    first = (0.9 + 0.8) / 2 - (0.0 + 0.2) / 2
    # run [6,7]: left [int(6 - 2), 6) = {4, 5}; right (7, min(7, 9)] -> empty
    last = (0.7 + 0.6) / 2 - (0.0 + 0.4) / 2
    torch.testing.assert_close(p[:, 1], torch.tensor([first, last], dtype=torch.float64), rtol=0, atol=1e-7)
    # int() truncation: ratio 0.3, len 2 -> reach 0.6: left flank from int(6 - 0.6) = 5 -> {5}
    p = oic_proposals(y, [0.5], torch.zeros(1), upsample=1, outer_ratio=0.3, gamma=0.0, backend=backend)
    torch.testing.assert_close(p[1, 1], torch.tensor((0.7 + 0.6) / 2 - 0.4, dtype=torch.float64), rtol=0,
                               atol=1e-7)
    # right flank of run [0,1]: int(1 + 0.6) = 1 -> empty; left empty -> outer 0
    torch.testing.assert_close(p[0, 1], torch.tensor((0.9 + 0.8) / 2, dtype=torch.float64), rtol=0, atol=1e-7)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_only_position_zero_quirk(backend):
    # v = 1 - i/24 (extrapolated): only position 0 reaches 0.99
    y = torch.tensor([[1.0], [0.0]])
    kw = dict(upsample=24, backend=backend)
    assert oic_proposals(y, [0.99], torch.zeros(1), **kw).shape == (0, 4)
    p = oic_proposals(y, [0.99], torch.zeros(1), skip_first_only=False, **kw)
    assert p[:, 2:].tolist() == [[0, 1]]
    # a second run keeps the [0, 0] run (the last one extrapolates upward to the end)
    y = torch.tensor([[1.0], [0.0], [1.0]])
    p = oic_proposals(y, [0.99], torch.zeros(1), **kw)
    assert p[:, 2:].tolist() == [[0, 1], [48, 72]]


def test_device(device):
    values, vs = torch.rand(3, 20, 4, device=device), torch.rand(3, 4, device=device)
    r = oic_proposals_batched(values, THR, vs, values[:, 0] > 0.3)
    assert all(t.device.type == device.type for t in r)
    want = oic_proposals_batched(values.cpu(), THR, vs.cpu(), values[:, 0].cpu() > 0.3, backend="torch")
    _assert_same(OIC_cpu(r), want)


def OIC_cpu(r):
    return type(r)(*(t.cpu() for t in r))


def test_bad_inputs():
    v, vs = torch.rand(2, 5, 3), torch.rand(2, 3)
    with pytest.raises(TypeError, match="`values`"):
        oic_proposals_batched(v.long(), THR, vs)
    with pytest.raises(ValueError, match="`values`"):
        oic_proposals_batched(v[0], THR, vs)
    bad = v.clone()
    bad[0, 0, 0] = math.nan
    with pytest.raises(ValueError, match="`values`.*NaN"):
        oic_proposals_batched(bad, THR, vs)
    with pytest.raises(ValueError, match="`video_scores`"):
        oic_proposals_batched(v, THR, vs[:, :2])
    with pytest.raises(ValueError, match="`columns`"):
        oic_proposals_batched(v, THR, vs, torch.ones(2, 2, dtype=torch.bool))
    with pytest.raises(TypeError, match="`columns`"):
        oic_proposals_batched(v, THR, vs, torch.ones(2, 3))
    with pytest.raises(ValueError, match="`thresholds`"):
        oic_proposals_batched(v, [], vs)
    with pytest.raises(ValueError, match="`thresholds`"):
        oic_proposals_batched(v, [0.1, math.nan], vs)
    with pytest.raises(TypeError, match="`thresholds`"):
        oic_proposals_batched(v, ["a"], vs)
    with pytest.raises(ValueError, match="`upsample`"):
        oic_proposals_batched(v, THR, vs, upsample=0)
    with pytest.raises(TypeError, match="`upsample`"):
        oic_proposals_batched(v, THR, vs, upsample=2.5)
    with pytest.raises(ValueError, match="`outer_ratio`"):
        oic_proposals_batched(v, THR, vs, outer_ratio=-0.1)
    with pytest.raises(ValueError, match="`gamma`"):
        oic_proposals_batched(v, THR, vs, gamma=math.inf)
    with pytest.raises(ValueError, match="`backend`"):
        oic_proposals_batched(v, THR, vs, backend="gpu")
    with pytest.raises(ValueError, match="`cas`"):
        oic_proposals(v, THR, vs)
    with pytest.raises(ValueError, match="`video_scores`"):
        oic_proposals(v[0], THR, vs[0, :2])
    with pytest.raises(TypeError, match="`cas`"):
        oic_proposals([[0.5]], THR, vs[0])



def test_bad_scalars_and_cas_named():
    # these used to raise Python's bare float() errors, pass a truthy string as a bool, or
    # name `values` for a `cas` argument
    v, vs = torch.rand(2, 5, 3), torch.rand(2, 3)
    for name in ("outer_ratio", "gamma"):
        for bad in ("a", None, torch.rand(2), True):
            with pytest.raises(TypeError, match=f"`{name}`"):
                oic_proposals_batched(v, THR, vs, **{name: bad})
    for bad in ("no", None, 1):
        with pytest.raises(TypeError, match="`skip_first_only`"):
            oic_proposals_batched(v, THR, vs, skip_first_only=bad)
    with pytest.raises(ValueError, match="`upsample`"):
        oic_proposals_batched(v, THR, vs, upsample=2**40)
    with pytest.raises(ValueError, match="`cas`"):
        oic_proposals(torch.rand(0, 3), THR, vs[0])
    bad = v[0].clone()
    bad[1, 1] = math.inf
    with pytest.raises(ValueError, match="`cas`.*NaN or Inf"):
        oic_proposals(bad, THR, vs[0])
    # numbers that float() accepts still work
    a = oic_proposals_batched(v, THR, vs, outer_ratio=torch.tensor(0.25), gamma=np.float64(0.2))
    b = oic_proposals_batched(v, THR, vs)
    for x, y in zip(a, b):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


@pytest.mark.parametrize("backend", ["kernel", "torch"])
def test_upsample_limit_before_allocating(backend, monkeypatch):
    # upsample=10_000_000 used to allocate gigabytes (the kernel's position table, the
    # fallback's [columns, L] arrays) before failing or finishing; now the size is refused first
    import resource

    from sal_ext.ops import proposals
    v, vs = torch.rand(1, 100, 2), torch.rand(1, 2)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for fn, args in ((oic_proposals_batched, (v, THR, vs)), (oic_proposals, (v[0], THR, vs[0]))):
        with pytest.raises(ValueError, match=r"`upsample` \* T must be <= 16777216 .*got 1000000000 "
                                             r"\(upsample=10000000, T=100\)"):
            fn(*args, upsample=10_000_000, backend=backend)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss < 200_000  # KiB: nothing big
    # the limit is inclusive: L == limit works, L == limit + 1 is refused (on both backends)
    monkeypatch.setattr(proposals, "MAX_UPSAMPLED_LENGTH", 1000)
    a = oic_proposals_batched(v, THR, vs, upsample=10, backend=backend)
    assert a.score.numel() > 0
    with pytest.raises(ValueError, match="`upsample`"):
        oic_proposals_batched(torch.rand(1, 1001, 2), THR, vs, upsample=1, backend=backend)


def test_fallback_chunks_columns(monkeypatch):
    # the torch fallback processes the columns in chunks of ~_FALLBACK_BLOCK values: same result
    from sal_ext.ops import proposals
    v, vs = torch.rand(3, 40, 5, dtype=torch.float64), torch.rand(3, 5, dtype=torch.float64)
    whole = oic_proposals_batched(v, THR, vs, upsample=6, backend="torch")
    monkeypatch.setattr(proposals, "_FALLBACK_BLOCK", 2 * 240 + 1)  # two columns per chunk
    chunked = oic_proposals_batched(v, THR, vs, upsample=6, backend="torch")
    for x, y in zip(whole, chunked):
        torch.testing.assert_close(x, y, rtol=0, atol=0)
    kernel = oic_proposals_batched(v, THR, vs, upsample=6, backend="kernel")
    for x, y in zip(kernel[:3] + kernel[4:], chunked[:3] + chunked[4:]):
        assert torch.equal(x, y)
    torch.testing.assert_close(kernel.score, chunked.score, rtol=1e-9, atol=1e-12)
