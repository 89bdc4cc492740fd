import pytest
import torch

from sal_ext.ops import mix_targets, segment_mixup
from sal_ext.ops.segment_mixup import mix_targets_reference, mixup_reference

SHAPES = [(1, 1), (1, 5), (2, 3, 7), (3, 1024, 11), (5, 2, 3, 4)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("shift", [1, -1, 2, 7])
@pytest.mark.parametrize("weight", [None, 0.3])
def test_mixup_matches_reference(device, shape, shift, weight):
    x = torch.randn(shape, dtype=torch.float64, device=device)
    out = segment_mixup(x, shift, weight, backend="kernel")
    # exact for the sum; the weighted mix may differ by one rounding (FMA contraction)
    tol = 0 if weight is None else 1e-14
    torch.testing.assert_close(out, mixup_reference(x, shift, weight), rtol=tol, atol=tol)


def test_mixup_float32(device):
    x = torch.randn(4, 512, 750, device=device)
    torch.testing.assert_close(segment_mixup(x, backend="kernel"), x + torch.roll(x, 1, 0))


def test_mixup_is_the_reference_concat(device):
    # the reference writes torch.cat((x[-1:], x[:-1])), which is roll by +1
    x = torch.randn(3, 4, 5, device=device)
    torch.testing.assert_close(segment_mixup(x), x + torch.cat((x[-1:], x[:-1]), 0))


@pytest.mark.parametrize("weight", [None, 0.25])
def test_mixup_gradcheck(device, weight):
    x = torch.randn(3, 2, 4, dtype=torch.float64, device=device, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: segment_mixup(t, 1, weight, backend="kernel"), (x,))
    assert torch.autograd.gradgradcheck(lambda t: segment_mixup(t, 2, weight, backend="kernel"), (x,))


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 1, 750), (4, 3, 9)])
def test_mix_targets_matches_reference(device, shape):
    g = (torch.rand(shape, device=device) > 0.5).double()
    m = torch.rand(shape, dtype=torch.float64, device=device)
    got = mix_targets(g, m, backend="kernel")
    want = mix_targets_reference(g, m)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_inputs():
    with pytest.raises(TypeError, match="`x`"):
        segment_mixup(torch.zeros(2, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="`x`"):
        segment_mixup([1.0, 2.0])
    with pytest.raises(ValueError, match="`x`"):
        segment_mixup(torch.zeros(0, 3))
    with pytest.raises(ValueError, match="`m`"):
        mix_targets(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(TypeError, match="`m`"):
        mix_targets(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.float64))


def test_bad_shift_and_weight():
    x = torch.rand(3, 4, dtype=torch.float64)
    for bad in (1.0, True, "1", None):
        with pytest.raises(TypeError, match="`shift`"):
            segment_mixup(x, bad, backend="kernel")
        with pytest.raises(TypeError, match="`shift`"):
            mix_targets(x, x, bad, backend="kernel")
    for bad in ("a", [0.5], True):
        with pytest.raises(TypeError, match="`weight`"):
            segment_mixup(x, 1, bad, backend="kernel")
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="`weight`"):
            segment_mixup(x, 1, bad, backend="kernel")


@pytest.mark.parametrize("shift", [2**40 + 1, 2**63 - 1, -2**63, 2**70, -(2**70) - 1])
def test_huge_shift_is_the_same_roll(shift):
    # any int shift is the roll by shift mod B (it used to overflow int64 in the binding)
    x = torch.rand(3, 4, dtype=torch.float64)
    g = (torch.rand(3, 4, dtype=torch.float64) > 0.5).double()
    for backend in ("kernel", "torch"):
        torch.testing.assert_close(segment_mixup(x, shift, backend=backend),
                                   mixup_reference(x, shift % 3), rtol=0, atol=0)
        for a, b in zip(mix_targets(g, x, shift, backend=backend), mix_targets_reference(g, x, shift % 3)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
