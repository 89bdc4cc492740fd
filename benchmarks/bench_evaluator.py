"""sal_ext.evaluate.detection_map vs a pandas port of the official ActivityNet evaluator,
side by side in one process, on a THUMOS14-sized synthetic case (212 test videos, ~3000
ground truths, 20 classes, ~200k predictions), both starting from the loaded JSON dicts.
The two must give the same numbers (asserted, 1e-9). Also: the wtalc and thumos14 protocols
in process (100 ambiguous segments), and the command line end to end on the same case
written as JSON files (`python -m sal_ext.evaluate`, wall and CPU time of the subprocess,
default protocol and `--protocol all`), and its start-up (`python -m sal_ext.evaluate --help`,
the whole process; the import part measured by `python -X importtime`, which must show no
torch and no training-stack module). Targets (issue 17): start-up < 0.3 s, the command end
to end < 1.5 s. Wall times depend on what else runs: the 1-minute load average is recorded
before and after.

    PYTHONPATH=. python benchmarks/bench_evaluator.py [--quick] [--predictions N] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import torch  # the benchmark's own harness times on a torch device; the command it runs imports none

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import anet_pandas  # noqa: E402
import harness  # noqa: E402

from sal_ext import evaluate  # noqa: E402
from sal_ext.numpy_ops import detection_ap  # noqa: E402


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


def ambiguous_segments(gt, n=100, seed=1):
    rng = np.random.default_rng(seed)
    vids = list(gt["database"])
    out = []
    for _ in range(n):
        v = vids[rng.integers(len(vids))]
        s = float(rng.uniform(0, gt["database"][v]["duration"] - 3))
        out.append((v, round(s, 1), round(s + float(rng.uniform(0.5, 3)), 1)))
    return out


def _children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _cli(args, repeats, command=("-m", "sal_ext.evaluate"), env=None):
    """(median wall s, median CPU s (user + system), stdout) of `python COMMAND ARGS`
    (a subprocess, start to exit)."""
    walls, cpus = [], []
    for _ in range(repeats):
        c0, t0 = _children_cpu(), time.perf_counter()
        r = subprocess.run([sys.executable, *command, *args], capture_output=True, text=True, env=env)
        walls.append(time.perf_counter() - t0)
        cpus.append(_children_cpu() - c0)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
    return float(np.median(walls)), float(np.median(cpus)), r.stdout


def _import_time():
    """(cumulative import time of sal_ext.evaluate in s, torch modules imported, training-stack
    modules imported) from `python -X importtime -c 'import sal_ext.evaluate'`."""
    code = ("import sys, sal_ext.evaluate; print([m for m in sys.modules if m.startswith('sal_ext.') and "
            "m.split('.')[1] in ('model', 'losses', 'data', 'train', 'inference', 'infer', 'config')])")
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code], capture_output=True, text=True)
    cum = {}
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:"):].split("|")]
            if parts[1].isdigit():
                cum[parts[2]] = int(parts[1]) / 1e6
    torch_mods = [m for m in cum if m.split(".")[0] == "torch"]
    return cum.get("sal_ext.evaluate"), torch_mods, json.loads(r.stdout.strip().replace("'", '"'))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="20k predictions (smoke run)")
    p.add_argument("--predictions", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cli-repeats", type=int, default=5)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    n_pred = args.predictions or (20_000 if args.quick else 200_000)
    print(f"# {harness.machine()}")
    load_before = os.getloadavg()[0]
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
    # the kernel alone (arrays already parsed, its numpy front): what the trainer's in-loop evaluation pays
    _, videos, classes, gv, gl, gs = evaluate.load_ground_truth(gt, "test")
    pv, pl, ps, pseg = evaluate.load_predictions(pred, videos, classes)
    t_kernel = harness.time_call(lambda: detection_ap(pv, pl, ps, pseg, gv, gl, gs, thr, len(classes)),
                                 torch.device("cpu"), 10)

    t0 = time.perf_counter()
    ap, m_ap, avg = anet_pandas.anet_detection(gt, pred, thr, subset="test")
    t_pandas = time.perf_counter() - t0

    np.testing.assert_allclose(ours["mAP"], m_ap, rtol=0, atol=1e-9)
    np.testing.assert_allclose(ours["ap"], ap, rtol=0, atol=1e-9)
    assert abs(ours["average"] - avg) < 1e-9
    t_med = float(np.median(t_ours))

    amb = ambiguous_segments(gt)
    t_proto, proto_map = {}, {}
    for name in ("wtalc", "thumos14"):
        t0 = time.perf_counter()
        proto_map[name] = evaluate.detection_map(gt, pred, protocol=name, ambiguous=amb)["mAP"]
        t_proto[name] = time.perf_counter() - t0

    with tempfile.TemporaryDirectory() as tmp:
        paths = {k: os.path.join(tmp, f"{k}.json") for k in ("gt", "pred")}
        for k, obj in (("gt", gt), ("pred", pred)):
            with open(paths[k], "w") as f:
                json.dump(obj, f)
        amb_path = os.path.join(tmp, "Ambiguous_test.txt")
        with open(amb_path, "w") as f:
            f.writelines(f"{v} {s} {e}\n" for v, s, e in amb)
        base = ["--gt", paths["gt"], "--pred", paths["pred"], "--json"]
        startup_s, startup_cpu_s, _ = _cli(["--help"], args.cli_repeats)
        cli_s, cli_cpu_s, out = _cli(base, args.cli_repeats)
        assert json.loads(out.strip().splitlines()[-1])["mAP"] == ours["mAP"]
        cli_all_s, cli_all_cpu_s, _ = _cli(base + ["--protocol", "all", "--ambiguous", amb_path], args.cli_repeats)
        # the official evaluator's start-up floor: python + numpy + pandas (the port's imports)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [HERE, os.environ.get("PYTHONPATH")])))
        official_startup_s, _, _ = _cli([], args.cli_repeats, ("-c", "import anet_pandas"), env)
    import_s, torch_mods, stack = _import_time()
    assert stack == [], stack  # the evaluator must not pay for the training stack
    assert torch_mods == [], torch_mods  # nor for torch
    rows = {"case": shape, "detection_map_s": t_med, "detection_ap_kernel_s": t_kernel,
            "pandas_official_s": t_pandas, "speedup_detection_map": t_pandas / t_med,
            "speedup_kernel": t_pandas / t_kernel,
            "mAP": ours["mAP"], "average": ours["average"],
            "wtalc_s": t_proto["wtalc"], "thumos14_s": t_proto["thumos14"],
            "mAP_wtalc": proto_map["wtalc"], "mAP_thumos14": proto_map["thumos14"],
            "startup_s": startup_s, "startup_cpu_s": startup_cpu_s,
            "official_port_startup_s": official_startup_s,
            "cli_s": cli_s, "cli_cpu_s": cli_cpu_s, "cli_all_protocols_s": cli_all_s,
            "cli_all_protocols_cpu_s": cli_all_cpu_s,
            "import_sal_ext_evaluate_s": import_s, "torch_imported": bool(torch_mods),
            # other jobs on the machine slow all rows (wall times); CPU times say what the work costs
            "load_average_1min_at_start": load_before, "load_average_1min_at_end": os.getloadavg()[0]}
    print(f"case: {shape}")
    print(f"mAP (%) per tIoU: {' '.join(f'{100 * m:.2f}' for m in ours['mAP'])}  avg {100 * ours['average']:.2f}"
          "  (identical to the pandas port, 1e-9)")
    print(f"sal_ext.evaluate.detection_map (dicts -> mAP): {1e3 * t_med:9.1f} ms")
    print(f"  of which detection_ap kernel (arrays):       {1e3 * t_kernel:9.1f} ms")
    print(f"pandas port of the official evaluator:         {1e3 * t_pandas:9.1f} ms")
    print(f"speed-up: x{t_pandas / t_med:.0f} (detection_map), x{t_pandas / t_kernel:.0f} (kernel alone)")
    print(f"protocol wtalc: {1e3 * t_proto['wtalc']:.1f} ms, thumos14: {1e3 * t_proto['thumos14']:.1f} ms "
          f"({len(amb)} ambiguous segments)")
    print(f"python -m sal_ext.evaluate --help (start-up, subprocess): {startup_s:.3f} s wall, "
          f"{startup_cpu_s:.3f} s CPU; import sal_ext.evaluate {import_s:.3f} s (no torch, no training-stack "
          f"module); python -c 'import anet_pandas' (the official port's start-up): {official_startup_s:.3f} s")
    print(f"python -m sal_ext.evaluate (subprocess, JSON files -> table): {cli_s:.2f} s wall, {cli_cpu_s:.2f} s CPU; "
          f"--protocol all: {cli_all_s:.2f} s wall, {cli_all_cpu_s:.2f} s CPU")
    print(f"load average (1 min): {load_before:.1f} at start, {rows['load_average_1min_at_end']:.1f} at end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": harness.machine(), "rows": [rows]}, f, indent=1)


if __name__ == "__main__":
    main()
