"""Frames/s of the feature extraction (sal_ext.features) and where the time goes.

    python benchmarks/bench_features.py [--seconds 4] [--size 320x240] [--device cpu|cuda] [--out F.json]

On one synthetic clip (a textured square moving over a textured background, H.264, 25 fps;
THUMOS14's 320x240 by default), in this one process:

  decode     PyAV decoding + 25 fps resampling + resize to a shorter side of 256
  tvl1       OpenCV TV-L1 on the resized grayscale frames (one flow field per frame)
  i3d        the RGB and flow I3D networks on 16 x 224 x 224 chunks, batched (--batch-size)
  pipeline   the whole command's path (sal_ext.features.extract.extract_to_folder): a worker
             process decodes and computes flow while this process runs the networks
  plain loop what common extraction scripts do: decode every frame first, then one chunk at a
             time: its 16 flow fields, the RGB network, the flow network

The performance target is pipeline frames/s >= slowest stage's frames/s / 1.5 (the pipeline keeps
the slowest stage busy). The I3D weights are random (the speed does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python_tests"))

from sal_ext.features import chunks, flow as flowmod  # noqa: E402
from sal_ext.features.decode import decode_frames  # noqa: E402
from sal_ext.features.extract import build_networks, extract_to_folder  # noqa: E402
from sal_ext.features.i3d import I3D  # noqa: E402
from sal_ext.features.pipeline import default_workers  # noqa: E402
from sal_ext.features.settings import Settings  # noqa: E402
from video_clips import write_clip  # noqa: E402


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--size", default="320x240")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/features_<device>.json)")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.split("x"))
    dev = torch.device(args.device)
    tmp = tempfile.mkdtemp(prefix="bench_features_")
    video = os.path.join(tmp, "clip.mp4")
    write_clip(video, args.seconds, 25, w=w, h=h)
    wdir = os.path.join(tmp, "w")
    os.makedirs(wdir)
    weights = {}
    for m in ("rgb", "flow"):
        torch.manual_seed(0)
        weights[m] = os.path.join(wdir, f"{m}.pt")
        torch.save(I3D(m).state_dict(), weights[m])
    s = Settings(dtype=args.dtype)
    nets, s = build_networks(s, weights["rgb"], weights["flow"], dev)
    rows = {}

    frames, t = timed(lambda: list(decode_frames(video, s.fps, s.resize)))
    n = len(frames)
    T = chunks.num_chunks(n)
    rows["decode"] = {"frames": n, "seconds": t}
    print(f"clip: {args.seconds:g} s {w}x{h}, {n} frames at 25 fps, {T} chunks; torch threads "
          f"{torch.get_num_threads()}, cv2 threads {__import__('cv2').getNumThreads()}", flush=True)

    tv = flowmod.TVL1()
    grays = [flowmod.gray(f) for f in frames[:T * 16 + 1]]
    k = min(len(grays) - 1, 32)                 # TV-L1 is slow on CPU: time 32 fields
    _, t = timed(lambda: [tv(grays[i], grays[i + 1]) for i in range(k)])
    rows["tvl1"] = {"frames": k, "seconds": t}

    rgb = np.stack([chunks.center_crop(np.stack(frames[c * 16:(c + 1) * 16]), s.crop) for c in range(T)])
    fl = np.zeros((T, 16, s.crop, s.crop, 2), np.float32)
    piece = {"rgb": rgb, "flow": fl}

    def i3d():
        for a in range(0, T, args.batch_size):
            nets.features({"rgb": piece["rgb"][a:a + args.batch_size], "flow": piece["flow"][a:a + args.batch_size]})
        if dev.type == "cuda":
            torch.cuda.synchronize()
    i3d() if dev.type == "cuda" else None        # warm-up (cuDNN) on GPU
    _, t = timed(i3d)
    rows["i3d"] = {"frames": T * 16, "seconds": t}

    workers = default_workers(1, dev) if args.workers is None else args.workers
    out = os.path.join(tmp, "out")
    res, t = timed(lambda: extract_to_folder(out, "test", [("clip", video)], nets, s, workers=workers,
                                             batch_size=args.batch_size, progress=False))
    assert res["done"] == ["clip"], res
    rows["pipeline"] = {"frames": T * 16, "seconds": t, "workers": workers}

    def plain():
        fr = list(decode_frames(video, s.fps, s.resize))
        g = [flowmod.gray(f) for f in fr]
        out_r, out_f = [], []
        for c in range(chunks.num_chunks(len(fr))):
            fc = np.stack([chunks.center_crop(flowmod.flow_to_input(tv(g[i], g[i + 1])), s.crop)
                           for i in range(c * 16, c * 16 + 16)])
            r, f = nets.features({"rgb": chunks.center_crop(np.stack(fr[c * 16:c * 16 + 16]), s.crop)[None],
                                  "flow": fc[None]})
            out_r.append(r)
            out_f.append(f)
        return out_r
    _, t = timed(plain)
    rows["plain loop"] = {"frames": T * 16, "seconds": t}

    for r in rows.values():
        r["frames_per_s"] = r["frames"] / r["seconds"]
    slowest = min(("decode", "tvl1", "i3d"), key=lambda k_: rows[k_]["frames_per_s"])
    ratio = rows[slowest]["frames_per_s"] / rows["pipeline"]["frames_per_s"]
    print(f"{'stage':<12}{'frames':>8}{'seconds':>10}{'frames/s':>10}")
    for name, r in rows.items():
        print(f"{name:<12}{r['frames']:>8}{r['seconds']:>10.2f}{r['frames_per_s']:>10.2f}")
    print(f"slowest stage: {slowest}; pipeline is {ratio:.2f}x slower than it (target <= 1.5); "
          f"pipeline vs plain loop: x{rows['plain loop']['seconds'] / rows['pipeline']['seconds']:.2f}")
    result = {"device": dev.type, "torch": torch.__version__, "cpu_count": os.cpu_count(),
              "load_average": os.getloadavg(), "platform": platform.platform(), "clip": {
                  "seconds": args.seconds, "size": [w, h], "frames": n, "chunks": T},
              "settings": {k_: v for k_, v in s.to_json().items() if "weights" not in k_},
              "batch_size": args.batch_size, "stages": rows, "slowest_stage": slowest,
              "pipeline_vs_slowest": ratio}
    path = args.out or os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                                    f"features_{dev.type}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
