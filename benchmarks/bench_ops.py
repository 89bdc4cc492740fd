"""Kernel vs fallback (and vs plain numpy/Python WTAL code) for every op, in one process.

    python benchmarks/bench_ops.py [--device cpu|cuda] [--quick] [--only NAME] [--json out.json]

Each module benchmarks/ops/bench_<op>.py contributes cases (see benchmarks/harness.py).
Default sizes are THUMOS14-shaped: B=16, D=512, T=750, C=20; ~200k proposals per test split.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ops as bench_ops  # noqa: E402

import sal_ext  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke run)")
    p.add_argument("--only", default=None, help="run only modules whose name contains this")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--json", default=None, help="write the rows and the machine here")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not (torch.cuda.is_available() and sal_ext.ops.backends()["cuda"]):
        sys.exit("bench_ops: --device cuda needs a GPU and the CUDA kernels")
    repeats = args.repeats or (3 if args.quick else 10)
    print(f"# {harness.machine()}  backends={sal_ext.ops.backends()}")
    rows = []
    for mod in sorted(m.name for m in pkgutil.iter_modules(bench_ops.__path__)):
        if not mod.startswith("bench_") or (args.only and args.only not in mod):
            continue
        module = importlib.import_module(f"ops.{mod}")
        rows += harness.run_cases(module.cases(device, args.quick), device, repeats)
    print()
    print(harness.markdown_table(rows))
    if args.json:
        harness.save(rows, args.json)


if __name__ == "__main__":
    main()
