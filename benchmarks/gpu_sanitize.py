"""Runs every op's kernel path once on small, awkward inputs (for compute-sanitizer).

    compute-sanitizer --tool memcheck python benchmarks/gpu_sanitize.py      # on a GPU machine
    python benchmarks/gpu_sanitize.py --device cpu                           # smoke test here

Every call uses backend="kernel" (CUDA kernels on --device cuda; detection_ap and
oic_proposals run their CPU kernels on copies of the device inputs). Sizes are not multiples
of the tiles (64, 32, 256), include T=1 / D=1 / N=0 / empty groups, per-video lengths and k,
the topk global-memory workspace path and the hard-NMS path without a bitmask. Each result is
compared with the op's torch fallback (loose tolerances: this is a memory/race check; the
tests check accuracy). Exits non-zero on the first mismatch.
"""
import argparse
import sys

import torch

import sal_ext
from sal_ext import ops
from sal_ext.ops import nms as nms_mod
from sal_ext.ops import topk as topk_mod
from sal_ext.ops.proposals import oic_proposals_batched


def close(name, got, want, tol):
    got, want = torch.as_tensor(got).double().cpu(), torch.as_tensor(want).double().cpu()
    if got.shape != want.shape or not torch.allclose(got, want, rtol=tol, atol=tol, equal_nan=True):
        sys.exit(f"MISMATCH in {name}: shapes {tuple(got.shape)} vs {tuple(want.shape)}, "
                 f"max diff {(got - want).abs().max().item() if got.shape == want.shape else 'n/a'}")


def grads(fn, x, backend):
    x = x.detach().clone().requires_grad_(True)
    y = fn(x, backend)
    g = torch.linspace(-1, 1, y.numel(), device=y.device, dtype=y.dtype).reshape(y.shape)
    (dx,) = torch.autograd.grad(y, x, g)
    return y.detach(), dx


def second_order_pool(dev):
    cases = [((1, 1, 1), None, "sal", False, True), ((2, 17, 33), [33, 5], "mean", True, True),
             ((3, 65, 130), [1, 64, 130], "sal", True, False), ((1, 70, 17), None, "mean", False, True)]
    for dtype in (torch.float32, torch.float64):
        for shape, lens, scale, center, normalize in cases:
            x = torch.rand(shape, device=dev, dtype=dtype) - 0.3
            L = None if lens is None else torch.tensor(lens, device=dev)
            fn = lambda x, b: ops.second_order_pool(x, L, scale=scale, center=center,  # noqa: E731
                                                    normalize=normalize, backend=b)
            (y, dx), (yr, dxr) = grads(fn, x, "kernel"), grads(fn, x, "torch")
            tol = 1e-3 if dtype == torch.float32 else 1e-8
            close(f"second_order_pool {shape} {dtype}", y, yr, tol)
            close(f"second_order_pool grad {shape} {dtype}", dx, dxr, 50 * tol)


def segment_mixup(dev):
    for dtype in (torch.float32, torch.float64):
        for shape in [(1, 1), (3, 5, 7), (4, 8, 2), (5, 1, 33)]:
            x = torch.randn(shape, device=dev, dtype=dtype)
            for shift, weight in [(1, None), (-3, 0.3)]:
                fn = lambda x, b: ops.segment_mixup(x, shift, weight, backend=b)  # noqa: E731
                (y, dx), (yr, dxr) = grads(fn, x, "kernel"), grads(fn, x, "torch")
                close(f"segment_mixup {shape}", y, yr, 1e-6)
                close(f"segment_mixup grad {shape}", dx, dxr, 1e-6)
            g = (torch.rand(shape, device=dev) > 0.5).to(dtype)
            m = torch.rand(shape, device=dev, dtype=dtype)
            for got, want in zip(ops.mix_targets(g, m, 2, backend="kernel"),
                                 ops.mix_targets(g, m, 2, backend="torch")):
                close(f"mix_targets {shape}", got, want, 1e-6)


def topk(dev):
    cases = [(1, 1, 1, 1, None), (2, 93, 3, 11, [93, 40]), (3, 300, 5, None, [300, 1, 77]),
             (2, 1500, 20, 187, None), (1, 12000, 2, 1500, None)]  # the last: workspace path
    for dtype in (torch.float32, torch.float64):
        for B, T, Cn, k, lens in cases:
            s = torch.rand(B, T, Cn, device=dev, dtype=dtype)
            s[:, ::7] = 0.5  # ties
            L = None if lens is None else torch.tensor(lens, device=dev)
            kk = k if lens is None or k is None else min(k, min(lens))
            fn = lambda v, b: ops.topk_mil(s, v, k=kk, lengths=L, backend=b)[0]  # noqa: E731
            v = torch.randn(B, T, Cn, device=dev, dtype=dtype)
            (p, dv), (pr, dvr) = grads(fn, v, "kernel"), grads(fn, v, "torch")
            close(f"topk_mil {B, T, Cn}", p, pr, 1e-5)
            close(f"topk_mil grad {B, T, Cn}", dv, dvr, 1e-6)
            close(f"topk_mil idx {B, T, Cn}", ops.topk_mil(s, k=kk, lengths=L, backend="kernel")[1],
                  ops.topk_mil(s, k=kk, lengths=L, backend="torch")[1], 0)
            close(f"topk_mask {B, T, Cn}", ops.topk_mask(s, kk, L, backend="kernel"),
                  ops.topk_mask(s, kk, L, backend="torch"), 0)
    topk_mod._FORCE_CUDA_WORKSPACE = True  # the global-memory path on a small input
    try:
        s = torch.rand(2, 70, 3, device=dev)
        close("topk_mil workspace", ops.topk_mil(s, k=9, backend="kernel")[1],
              ops.topk_mil(s, k=9, backend="torch")[1], 0)
    finally:
        topk_mod._FORCE_CUDA_WORKSPACE = False
    s = torch.rand(0, 5, 3, device=dev)
    ops.topk_mil(s, k=1, backend="kernel")
    ops.topk_mask(torch.rand(2, 5, 0, device=dev), 1, backend="kernel")


def nms(dev):
    gen = torch.Generator().manual_seed(1)
    for N, n_lab in [(0, 1), (1, 1), (2, 1), (100, 3), (700, 2), (3000, 40)]:
        st = torch.rand(N, generator=gen, dtype=torch.float64) * 100
        seg = torch.stack([st, st + torch.rand(N, generator=gen, dtype=torch.float64) * 10], 1)
        sc = torch.rand(N, generator=gen, dtype=torch.float64)
        lab = torch.randint(0, n_lab, (N,), generator=gen)
        for dtype in (torch.float32, torch.float64):
            args = (seg.to(dev, dtype), sc.to(dev, dtype))
            for method in ("hard", "linear", "gaussian", "sal"):
                for labels, kw in [(lab.to(dev), {}), (None, dict(min_score=0.3, max_keep=17)),
                                   (lab.to(dev), dict(plus_one=True, max_keep=0))]:
                    kw = dict(iou_threshold=0.4, method=method, sigma=0.3, **kw)
                    got = nms_mod.nms_1d(*args, labels, backend="kernel", **kw)
                    if N <= 700:  # the readable torch reference is slow
                        want = nms_mod.nms_1d_reference(*args, labels, **kw)
                        close(f"nms_1d {method} N={N} idx", got[0], want[0], 0)
                        close(f"nms_1d {method} N={N} scores", got[1], want[1], 1e-5)
    # hard NMS without the IoU bitmask (the path of huge groups), on a small input
    old = nms_mod._MASK_MAX_BLOCKS
    nms_mod._MASK_MAX_BLOCKS = 0
    try:
        st = torch.rand(300, generator=gen) * 50
        seg = torch.stack([st, st + 5], 1).to(dev)
        sc = torch.rand(300, generator=gen).to(dev)
        got = nms_mod.nms_1d(seg, sc, iou_threshold=0.3, min_score=0.1, backend="kernel")
        want = nms_mod.nms_1d_reference(seg, sc, iou_threshold=0.3, min_score=0.1)
        close("nms_1d hard (no mask) idx", got[0], want[0], 0)
    finally:
        nms_mod._MASK_MAX_BLOCKS = old


def detection(dev):
    for N, M in [(0, 3), (3, 0), (1, 1), (100, 37), (257, 300)]:
        a = torch.rand(N, 1, device=dev) * 50
        b = torch.rand(M, 1, device=dev) * 50
        a = torch.cat([a, a + torch.rand(N, 1, device=dev) * 10], 1)
        b = torch.cat([b, b + torch.rand(M, 1, device=dev) * 10], 1)
        a[::5, 1] = a[::5, 0]  # zero-length segments
        close(f"segment_iou {N}x{M}", ops.segment_iou(a, b, backend="kernel"),
              ops.segment_iou(a, b, backend="torch"), 1e-6)
    P, G, n_cls = 500, 60, 5
    pv, pl = torch.randint(0, 10, (P,), device=dev), torch.randint(0, n_cls, (P,), device=dev)
    ps = torch.rand(P, device=dev)
    st = torch.rand(P, 1, device=dev) * 100
    pseg = torch.cat([st, st + 5], 1)
    gv, gl = torch.randint(0, 10, (G,), device=dev), torch.randint(0, n_cls - 1, (G,), device=dev)
    gst = torch.rand(G, 1, device=dev) * 100
    gseg = torch.cat([gst, gst + 6], 1)
    thr = [0.1, 0.5, 0.7]
    ap = ops.detection_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, n_cls, backend="kernel")
    assert ap.device == torch.device(dev) or ap.device.type == torch.device(dev).type
    close("detection_ap", ap, ops.detection_ap(pv, pl, ps, pseg, gv, gl, gseg, thr, n_cls,
                                               backend="torch"), 1e-9)


def proposals(dev):
    thr = [0.1, 0.3, 0.5, 0.7, 0.9]
    for N, T, Cn in [(1, 1, 1), (3, 37, 4), (2, 200, 20)]:
        vals = torch.rand(N, T, Cn, device=dev)
        vs = torch.rand(N, Cn, device=dev)
        cols = torch.rand(N, Cn, device=dev) > 0.4
        got = oic_proposals_batched(vals, thr, vs, cols, upsample=4, backend="kernel")
        want = oic_proposals_batched(vals, thr, vs, cols, upsample=4, backend="torch")
        for name, g, w in zip(got._fields, got, want):
            assert g.device.type == torch.device(dev).type, (name, g.device)
            close(f"oic_proposals_batched {N, T, Cn} {name}", g, w, 1e-9)
    cas = torch.rand(50, 3, device=dev, dtype=torch.float64)
    vs = torch.rand(3, device=dev, dtype=torch.float64)
    close("oic_proposals", ops.oic_proposals(cas, thr, vs, backend="kernel"),
          ops.oic_proposals(cas, thr, vs, backend="torch"), 1e-9)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    dev = p.parse_args().device
    b = ops.backends()
    if dev == "cuda" and not (b["cuda"] and b["cuda_device"]):
        sys.exit(f"gpu_sanitize: no CUDA kernels or no GPU: {b}")
    if dev == "cpu" and not b["cpu"]:
        sys.exit(f"gpu_sanitize: no C++ kernels: {b}")
    print("sal_ext", sal_ext.__file__, "device", dev, flush=True)
    torch.manual_seed(0)
    for step in (second_order_pool, segment_mixup, topk, nms, detection, proposals):
        step(dev)
        print(f"  {step.__name__}: ok", flush=True)
    if dev == "cuda":
        torch.cuda.synchronize()
    print("sanitize script done")


if __name__ == "__main__":
    main()
