"""Timing harness shared by the benchmarks: median of repeats, CUDA events on GPU.

A benchmark module in benchmarks/ops/ defines ``cases(device, quick) -> list[Case]``; every
variant of a case runs in this one process on the same inputs, so ratios are comparable.
"""
from __future__ import annotations

import json
import platform
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import torch


@dataclass
class Case:
    op: str                     # e.g. "second_order_pool fwd+bwd"
    shape: str                  # human-readable sizes
    variants: Dict[str, Callable[[], object]]  # name -> zero-arg callable; "kernel" is the subject
    baseline: str = "torch"     # ratios are baseline_time / kernel_time (> 1: kernel faster)
    extra: Dict[str, float] = field(default_factory=dict)  # e.g. bytes/flops moved per call
    repeats: Optional[int] = None


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int, warmup: int = 2,
              budget_s: float = 20.0) -> float:
    """Median seconds of fn() over `repeats` runs (fewer if they would exceed budget_s)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times: List[float] = []
    t_start = time.perf_counter()
    for _ in range(repeats):
        if device.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b) / 1e3)
        else:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        if time.perf_counter() - t_start > budget_s and len(times) >= 3:
            break
    return statistics.median(times)


def run_cases(cases: List[Case], device: torch.device, repeats: int) -> List[dict]:
    rows = []
    for case in cases:
        times = {name: time_call(fn, device, case.repeats or repeats) for name, fn in case.variants.items()}
        k = times.get("kernel")
        row = {"op": case.op, "shape": case.shape, "device": device.type,
               "times_ms": {n: t * 1e3 for n, t in times.items()}}
        if k:
            row["speedup"] = {n: t / k for n, t in times.items() if n != "kernel"}
            for name, amount in case.extra.items():  # e.g. "GB/s": bytes per call
                row[name] = amount / k / 1e9
        rows.append(row)
        print(format_row(row), flush=True)
    return rows


def format_row(row: dict) -> str:
    times = "  ".join(f"{n}={t:9.3f}ms" for n, t in row["times_ms"].items())
    ups = "  ".join(f"x{v:7.1f} vs {n}" for n, v in row.get("speedup", {}).items())
    extra = "  ".join(f"{k}={v:.1f}" for k, v in row.items() if k in ("GB/s", "GFLOP/s", "TFLOP/s"))
    return f"{row['device']:4s} {row['op']:34s} {row['shape']:34s} {times}  {ups}  {extra}"


def machine() -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def markdown_table(rows: List[dict]) -> str:
    lines = ["| device | op | shape | kernel ms | baseline ms | speed-up |", "|---|---|---|---|---|---|"]
    for r in rows:
        k = r["times_ms"].get("kernel")
        for name, up in r.get("speedup", {}).items():
            lines.append(f"| {r['device']} | {r['op']} | {r['shape']} | {k:.3f} | {name}: {r['times_ms'][name]:.3f} | {up:.1f}x |")
    return "\n".join(lines)


def save(rows: List[dict], path: str) -> None:
    with open(path, "w") as f:
        json.dump({"machine": machine(), "rows": rows}, f, indent=1)
