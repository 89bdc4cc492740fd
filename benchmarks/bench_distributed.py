"""Scaling of torchrun data parallelism: a training step and an evaluation pass with 1, 2, ...
processes (gloo on CPU, NCCL on GPUs), on the synthetic preset (sal_ext.train's default run).

    PYTHONPATH=. python benchmarks/bench_distributed.py                 # CPU: 1 and 2 processes
    PYTHONPATH=. python benchmarks/bench_distributed.py --json benchmarks/results/distributed_cpu.json
    # a GPU node (one process per GPU, NCCL), THUMOS shapes:
    PYTHONPATH=. python benchmarks/bench_distributed.py --device cuda --procs 1 2 4 8 \\
        --set feature_dim=2048 --set model.hidden=512 --set num_segments=750 --batch 2

Every configuration is one `python -m torch.distributed.run --nproc_per_node N` job running
this file with --worker: it builds sal_ext.train.Trainer as `torchrun -m sal_ext.train` does,
then times, on rank 0, `--steps` training steps (each between two barriers; DDP averages the
gradients inside the backward) and `--evals` evaluation passes over the test split
(Trainer.evaluate: sharded forward + postprocess, detections gathered, mAP on rank 0).
Rows: processes, threads per process (CPU: the cores divided among the processes, unless
--threads), per-process and global batch, median step time, videos per second, median
evaluation pass time and its phases, and the CPU seconds rank 0's process spent in a step and
in a pass (time.process_time: what the wall times come to on cores nothing else uses).
A 1-process row with the largest global batch is added for comparison.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- worker (one process of a torchrun job) ---------------------------------------------------
def worker(args) -> None:
    import torch
    from sal_ext import distributed
    from sal_ext.config import apply_overrides, get_preset
    from sal_ext.train import Trainer, collate

    device = torch.device(args.device)
    ctx = distributed.init(device)
    cfg = get_preset("synthetic")
    cfg["train"]["batch_size"] = args.batch
    apply_overrides(cfg, args.set)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(cfg, out, ctx.device, progress=False)
        ds = trainer.train_set
        batches = trainer.epoch_batches(0)
        data = [collate([ds[i] for i in b]) for b in batches]
        times, cpu = [], []
        for i in range(args.steps + 2):                  # 2 warm-up steps
            distributed.barrier()
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            t0, c0 = time.perf_counter(), time.process_time()
            trainer.train_step(data[i % len(data)])
            if ctx.device.type == "cuda":
                torch.cuda.synchronize()
            c1 = time.process_time()
            distributed.barrier()
            if i >= 2:
                times.append(time.perf_counter() - t0)
                cpu.append(c1 - c0)
        evals, eval_cpu = [], []
        for _ in range(args.evals + 1):                  # 1 warm-up pass
            distributed.barrier()
            t0, c0 = time.perf_counter(), time.process_time()
            rec = trainer.evaluate("test")
            evals.append((time.perf_counter() - t0, rec["times"]))
            eval_cpu.append(time.process_time() - c0)
        evals, eval_cpu = evals[1:], eval_cpu[1:]
    if ctx.is_main:
        step = statistics.median(times)
        row = {"procs": ctx.world, "backend": ctx.backend, "device": ctx.device.type,
               "threads_per_proc": torch.get_num_threads(), "batch_per_proc": args.batch,
               "global_batch": args.batch * ctx.world, "step_s": step,
               "step_cpu_s_rank0": statistics.median(cpu),
               "eval_cpu_s_rank0": statistics.median(eval_cpu),
               "videos_per_s": args.batch * ctx.world / step,
               "eval_pass_s": statistics.median(t for t, _ in evals),
               "eval_forward_s": statistics.median(r["forward"] for _, r in evals),
               "eval_postprocess_s": statistics.median(r["postprocess"] for _, r in evals),
               "eval_map_s": statistics.median(r["map"] for _, r in evals),
               "test_videos": len(trainer.test_set), "steps_timed": len(times), "evals_timed": len(evals)}
        with open(args.worker_json, "w") as f:
            json.dump(row, f)
    distributed.shutdown()


# -- driver -------------------------------------------------------------------------------------
def run_config(procs: int, batch: int, args) -> dict:
    threads = args.threads or max(1, (os.cpu_count() or 1) // procs)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "row.json")
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs),
               "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), os.path.abspath(__file__),
               "--worker", "--worker-json", out, "--device", args.device, "--batch", str(batch),
               "--steps", str(args.steps), "--evals", str(args.evals)]
        for item in args.set:
            cmd += ["--set", item]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        with open(out) as f:
            return json.load(f)


def fmt(row: dict) -> str:
    return (f"| {row['procs']} | {row['threads_per_proc']} | {row['batch_per_proc']} | {row['global_batch']} "
            f"| {1e3 * row['step_s']:.1f} | {row['videos_per_s']:.0f} | {row['eval_pass_s']:.2f} "
            f"| {row['eval_forward_s']:.2f} | {row['eval_postprocess_s']:.2f} | {row['eval_map_s']:.2f} "
            f"| {1e3 * row['step_cpu_s_rank0']:.1f} | {row['eval_cpu_s_rank0']:.2f} |")


HEADER = ("| processes | threads each | batch / process | global batch | step (ms) | videos/s "
          "| eval pass (s) | forward | postprocess | mAP | step CPU ms (rank 0) | eval CPU s (rank 0) |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, default=4, help="videos per process and step (default 4, the preset's)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--evals", type=int, default=3)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, help="threads per process (CPU; default cores / processes)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="preset overrides")
    p.add_argument("--json", help="write the rows here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--worker-json", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    configs = [(n, args.batch) for n in args.procs]
    if 1 in args.procs and max(args.procs) > 1:
        configs.insert(1, (1, args.batch * max(args.procs)))   # one process, the largest global batch
    print(HEADER)
    rows = []
    for n, b in configs:
        rows.append(run_config(n, b, args))
        print(fmt(rows[-1]), flush=True)
    if args.json:
        import torch
        meta = {"device": args.device, "node": platform.node(), "cpu_count": os.cpu_count(),
                "torch": torch.__version__, "load_avg_1min_at_end": os.getloadavg()[0],
                "preset": "synthetic", "overrides": args.set, "rows": rows}
        with open(args.json, "w") as f:
            json.dump(meta, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
