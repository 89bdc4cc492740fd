"""SAL training-step and evaluation-pass timings, THUMOS14 shapes, in one process.

    PYTHONPATH=. python benchmarks/bench_train.py                  # batch 2 and 16, CPU
    PYTHONPATH=. python benchmarks/bench_train.py --batch 2 --repeats 5 --eval-videos 50
    PYTHONPATH=. python benchmarks/bench_train.py --device cuda --json out.json

Training step = forward + SAL loss + backward + Adam step (T=750, D=2048, hidden 512, C=20),
split into its phases, for:
  kernel        sal_ext.ops with backend="kernel" (C++/CUDA), fused Adam (the trainer's setup)
  torch         the same with backend="torch" (pure-torch op fallbacks)
  torch+refopt  backend="torch", foreach Adam: the reference's optimizer
  torch+keep    backend="torch", fused Adam, zero_grad(set_to_none=False) (gradients kept)
Ratios are torch / kernel and torch+refopt / kernel (> 1: faster than that variant).
The evaluation pass (--eval-videos N > 0) times predict over N synthetic test videos
(uniform sampling, 750 segments), postprocess and detection mAP, as sal_ext.train does.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import torch

from sal_ext.config import get_preset
from sal_ext.losses import SALLoss
from sal_ext.model import SAL


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step_times(backend, batch, device, repeats, adam="fused", set_to_none=True, T=750, seed=0):
    """Median seconds of each phase of a training step (after one warm-up step)."""
    cfg = get_preset("thumos14")
    torch.manual_seed(seed)
    model = SAL(backend=backend).to(device).train()
    crit = SALLoss(cfg, backend=backend).to(device)
    kw = {"fused": {"fused": True}, "foreach": {"foreach": True}}[adam]
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=5e-4, **kw)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, T, 2048, generator=gen).abs().to(device)
    y = torch.zeros(batch, 20)
    y[torch.arange(batch), torch.randint(0, 20, (batch,), generator=gen)] = 1
    y = y.to(device)
    phases = {"forward": [], "loss": [], "backward": [], "adam": [], "step": []}
    losses = []
    for i in range(repeats + 1):
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=set_to_none)
        out = model(x)
        _sync(device)
        t1 = time.perf_counter()
        total, _ = crit(out, y)
        _sync(device)
        t2 = time.perf_counter()
        total.backward()
        _sync(device)
        t3 = time.perf_counter()
        opt.step()
        _sync(device)
        t4 = time.perf_counter()
        losses.append(total.item())
        if i == 0:
            continue  # warm-up (allocations, Adam state)
        for k, dt in zip(list(phases), (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            phases[k].append(dt)
    del model, opt, crit, out, total
    return {k: statistics.median(v) for k, v in phases.items()}, losses


def eval_times(n_videos, device, backend, batch_size=16):
    """Split of one evaluation pass over n synthetic THUMOS-like test videos."""
    from sal_ext.data.synthetic import ensure_synthetic
    from sal_ext import train as tr
    cfg = get_preset("thumos14")
    root = ensure_synthetic(cache_dir=os.path.join(tempfile.gettempdir(), f"sal_bench_synth_{n_videos}"),
                            seed=0, num_train=2, num_test=n_videos, min_len=200, max_len=600)
    cfg["data_root"] = root
    t0 = time.perf_counter()
    ds = tr.build_split(cfg, "test", "uniform")
    t_load = time.perf_counter() - t0
    torch.manual_seed(0)
    model = SAL(backend=backend).to(device).eval()
    rec = tr.evaluate_split(model, ds, cfg, device, batch_size=batch_size)
    times = dict(rec["times"], load=t_load)
    times["forward_per_video_ms"] = 1e3 * times["forward"] / len(ds)
    return times, rec["num_detections"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, nargs="+", default=[2, 16])
    p.add_argument("--repeats", type=int, default=3, help="timed steps per variant (batch 16: 1 + 1 warm-up)")
    p.add_argument("--variants", nargs="+", default=["kernel", "torch", "torch+refopt", "torch+keep"])
    p.add_argument("--eval-videos", type=int, default=0, help="also time an evaluation pass over N videos")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    print(f"# {platform.node()} {platform.processor() or platform.machine()} torch {torch.__version__} "
          f"threads {torch.get_num_threads()} device {device}")
    for B in args.batch:
        reps = args.repeats if B <= 4 or device.type == "cuda" else 1
        res = {}
        for var in args.variants:
            backend = "torch" if var.startswith("torch") else "kernel"
            refopt = var.endswith("+refopt")
            try:
                ph, losses = step_times(backend, B, device, reps, adam="foreach" if refopt else "fused",
                                        set_to_none=not var.endswith("+keep"))
            except RuntimeError as exc:  # e.g. no kernel built for this device
                print(f"B={B} {var}: skipped ({exc})")
                continue
            res[var] = ph
            print(f"B={B:3d} {var:13s} step {ph['step']:.3f}s  forward {ph['forward']:.3f}  loss {ph['loss']:.3f}  "
                  f"backward {ph['backward']:.3f}  adam {ph['adam']:.3f}  (first losses {losses[0]:.4f})", flush=True)
            rows.append({"batch": B, "variant": var, **ph, "loss0": losses[0]})
        if "kernel" in res:
            for var in res:
                if var != "kernel":
                    print(f"B={B:3d} ratio {var}/kernel: step {res[var]['step'] / res['kernel']['step']:.2f}x  "
                          f"forward {res[var]['forward'] / res['kernel']['forward']:.2f}x  "
                          f"backward {res[var]['backward'] / res['kernel']['backward']:.2f}x  "
                          f"adam {res[var]['adam'] / res['kernel']['adam']:.2f}x")
    out = {"device": str(device), "node": platform.node(), "torch": torch.__version__, "steps": rows}
    if args.eval_videos:
        for backend in ("kernel", "torch"):
            try:
                times, ndet = eval_times(args.eval_videos, device, backend)
            except (ImportError, RuntimeError) as exc:
                print(f"eval pass ({backend}): skipped ({exc})")
                continue
            print(f"eval pass {backend:6s} {args.eval_videos} videos: load {times['load']:.1f}s forward {times['forward']:.2f}s "
                  f"({times['forward_per_video_ms']:.0f} ms/video) postprocess {times['postprocess']:.2f}s "
                  f"mAP {times['map']:.2f}s ({ndet} detections)", flush=True)
            out.setdefault("eval", {})[backend] = times
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
