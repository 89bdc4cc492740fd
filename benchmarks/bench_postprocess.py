"""Times sal_ext.inference.postprocess on a THUMOS14-sized test split (everything after the
network forward), with its proposals / NMS / JSON split, against the reference's per-video
numpy/python loop (python_tests/sal_reference_np.py), in one process on the same inputs.

    PYTHONPATH=. python benchmarks/bench_postprocess.py [--videos 212] [--repeats 5] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python_tests"))


def synthetic_split(N=212, T=750, C=20, seed=0, instances=14):
    """Network outputs shaped like a THUMOS14 test split: 1-3 classes per video, ~`instances`
    action instances per video (smooth bumps in cas / actionness), noise elsewhere."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(T, dtype=torch.float32)
    cas = torch.randn(N, T, C, generator=g) * 0.3 - 1.0
    act = torch.zeros(N, T)
    sc = torch.randn(N, C, generator=g) * 0.5 - 1.0
    labels = torch.zeros(N, C)
    for n in range(N):
        k = int(torch.randint(1, 4, (1,), generator=g))
        classes = torch.randperm(C, generator=g)[:k]
        labels[n, classes] = 1
        sc[n, classes] += 4.0
        for _ in range(instances):
            c = int(classes[int(torch.randint(0, k, (1,), generator=g))])
            mid = float(torch.rand(1, generator=g)) * T
            width = 3 + float(torch.rand(1, generator=g)) * 25
            bump = torch.exp(-0.5 * ((t - mid) / width) ** 2)
            cas[n, :, c] += 5.0 * bump
            act[n] = torch.maximum(act[n], bump)
    a_rgb = (act * 0.8 + 0.1 * torch.rand(N, T, generator=g)).clamp(0, 1)
    a_flow = (act * 0.9 + 0.1 * torch.rand(N, T, generator=g)).clamp(0, 1)
    t_orig = torch.randint(100, 3000, (N,), generator=g)
    vids = [f"video_test_{n:07d}" for n in range(N)]
    names = [f"class_{c}" for c in range(C)]
    return cas, a_rgb, a_flow, sc, t_orig, vids, names, labels


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", type=int, default=212)
    p.add_argument("--segments", type=int, default=750)
    p.add_argument("--classes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--no-reference", action="store_true", help="skip the per-video python loop")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from sal_ext.inference import InferenceConfig, postprocess
    import sal_reference_np as R
    from harness import machine

    inputs = synthetic_split(args.videos, args.segments, args.classes)
    cfg = InferenceConfig()
    postprocess(*inputs[:7], cfg, labels=inputs[7])  # warm-up
    runs, cpu = [], []
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = postprocess(*inputs[:7], cfg, labels=inputs[7])
        runs.append((time.perf_counter() - t0, out["timings"]))
        cpu.append(time.process_time() - c0)
    total = statistics.median(r[0] for r in runs)
    total_cpu = statistics.median(cpu)
    split = {k: statistics.median(r[1][k] for r in runs) for k in runs[0][1]}
    n_det = sum(len(v) for v in out["results"]["results"].values())
    n_cls = float(out["pred_multi_hot"].sum(1).mean())
    row = {"videos": args.videos, "T": args.segments, "C": args.classes, "detections": n_det,
           "classes_per_video": n_cls, "accuracy": out["classification_accuracy"],
           "postprocess_s": total, "postprocess_cpu_s": total_cpu, "split_s": split, "threads": torch.get_num_threads()}
    print(f"# {machine()}")
    print(f"postprocess: {total * 1e3:.1f} ms wall ({total_cpu * 1e3:.1f} ms CPU, all threads) for {args.videos} videos, {n_det} detections "
          f"({n_cls:.2f} classes/video): " + ", ".join(f"{k} {v * 1e3:.1f} ms" for k, v in split.items()))
    if not args.no_reference:
        t0, c0 = time.perf_counter(), time.process_time()
        R.postprocess_reference(*inputs[:7], labels=inputs[7])
        ref, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
        row["reference_loop_s"], row["reference_loop_cpu_s"] = ref, ref_cpu
        print(f"reference per-video numpy loop: {ref * 1e3:.1f} ms wall ({ref_cpu * 1e3:.1f} ms CPU)"
              f"  -> x{ref / total:.1f} wall, x{ref_cpu / total_cpu:.1f} CPU")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "row": row}, f, indent=1)


if __name__ == "__main__":
    main()
