"""sal_ext.evaluate.detection_map vs a pandas port of the official ActivityNet evaluator,
side by side in one process, on a THUMOS14-sized synthetic case (212 test videos, ~3000
ground truths, 20 classes, ~200k predictions), both starting from the loaded JSON dicts.
The two must give the same numbers (asserted, 1e-9).

    PYTHONPATH=. python benchmarks/bench_evaluator.py [--quick] [--predictions N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import anet_pandas  # noqa: E402
import harness  # noqa: E402

from sal_ext import evaluate  # noqa: E402
from sal_ext.ops import detection_ap  # noqa: E402


def synthetic_thumos(n_videos=212, n_gt=3000, n_classes=20, n_pred=200_000, seed=0):
    """GT: ~n_gt instances over n_videos (1-2 classes per video); predictions: the SAL kind
    (many per video, most overlapping some instance, distinct random scores)."""
    rng = np.random.default_rng(seed)
    classes = [f"Action{c:02d}" for c in range(n_classes)]
    db, results = {}, {}
    per_video = rng.multinomial(n_gt - n_videos, np.ones(n_videos) / n_videos) + 1
    for i in range(n_videos):
        vid = f"video_test_{i:07d}"
        length = float(rng.uniform(60, 600))
        vclasses = rng.choice(n_classes, size=rng.integers(1, 3), replace=False)
        anns = []
        for _ in range(per_video[i]):
            s = float(rng.uniform(0, length - 5))
            anns.append({"label": classes[int(rng.choice(vclasses))],
                         "segment": [round(s, 2), round(s + float(rng.uniform(1, 15)), 2)]})
        db[vid] = {"subset": "test", "annotations": anns, "duration": length}
        results[vid] = []
    vids = list(db)
    scores = rng.permutation(n_pred).astype(np.float64) / n_pred + 1e-7  # distinct
    pv = rng.integers(0, n_videos, n_pred)
    for k in range(n_pred):
        v = vids[pv[k]]
        anns = db[v]["annotations"]
        if rng.random() < 0.7:
            a = anns[rng.integers(len(anns))]
            s0, e0 = a["segment"]
            d = (e0 - s0) * rng.normal(0, 0.3, 2)
            s, e = sorted((s0 + d[0], e0 + d[1]))
            lab = a["label"] if rng.random() < 0.8 else classes[rng.integers(n_classes)]
        else:
            s = float(rng.uniform(0, db[v]["duration"]))
            e = s + float(rng.uniform(0.5, 20))
            lab = classes[rng.integers(n_classes)]
        results[v].append({"label": lab, "score": float(scores[k]), "segment": [float(s), float(e)]})
    return {"database": db}, {"results": results}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20k predictions (smoke run)")
    p.add_argument("--predictions", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    n_pred = args.predictions or (20_000 if args.quick else 200_000)
    print(f"# {harness.machine()}")
    gt, pred = synthetic_thumos(n_pred=n_pred)
    n_gt = sum(len(v["annotations"]) for v in gt["database"].values())
    thr = np.linspace(0.1, 0.7, 7)
    shape = f"212 videos, {n_gt} GT, 20 classes, {n_pred} predictions, 7 tIoU"

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a well-formed case: no warning expected
        ours = evaluate.detection_map(gt, pred, thr, subset="test")
    t_ours = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        evaluate.detection_map(gt, pred, thr, subset="test")
        t_ours.append(time.perf_counter() - t0)
    # the kernel alone (arrays already parsed): what the trainer's in-loop evaluation pays
    _, videos, classes, gv, gl, gs = evaluate.load_ground_truth(gt, "test")
    pv, pl, ps, pseg = evaluate.load_predictions(pred, videos, classes)
    import torch
    T = [torch.as_tensor(x) for x in (pv, pl, ps, pseg, gv, gl, gs)]
    t_kernel = harness.time_call(lambda: detection_ap(*T, thr, len(classes)), torch.device("cpu"), 10)

    t0 = time.perf_counter()
    ap, m_ap, avg = anet_pandas.anet_detection(gt, pred, thr, subset="test")
    t_pandas = time.perf_counter() - t0

    np.testing.assert_allclose(ours["mAP"], m_ap, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["ap"], ap, rtol=0, atol=1e-9)
    assert abs(ours["average"] - avg) < 1e-9
    t_med = float(np.median(t_ours))
    rows = {"case": shape, "detection_map_s": t_med, "detection_ap_kernel_s": t_kernel,
            "pandas_official_s": t_pandas, "speedup_detection_map": t_pandas / t_med,
            "speedup_kernel": t_pandas / t_kernel,
            "mAP": ours["mAP"], "average": ours["average"]}
    print(f"case: {shape}")
    print(f"mAP (%) per tIoU: {' '.join(f'{100 * m:.2f}' for m in ours['mAP'])}  avg {100 * ours['average']:.2f}"
          "  (identical to the pandas port, 1e-9)")
    print(f"sal_ext.evaluate.detection_map (dicts -> mAP): {1e3 * t_med:9.1f} ms")
    print(f"  of which detection_ap kernel (arrays):       {1e3 * t_kernel:9.1f} ms")
    print(f"pandas port of the official evaluator:         {1e3 * t_pandas:9.1f} ms")
    print(f"speed-up: x{t_pandas / t_med:.0f} (detection_map), x{t_pandas / t_kernel:.0f} (kernel alone)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine(), "rows": [rows]}, f, indent=1)


if __name__ == "__main__":
    main()
