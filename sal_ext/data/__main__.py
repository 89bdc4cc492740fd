"""Command line: ``python -m sal_ext.data check ...`` and ``python -m sal_ext.data synth ...``."""
from __future__ import annotations

import argparse
import os
import sys

from . import layouts
from .datasets import scan_dataset
from .synthetic import write_synthetic_thumos


def _fmt(stats, unit=""):
    if stats is None:
        return "-"
    return f"min {stats['min']:.4g}{unit}, mean {stats['mean']:.4g}{unit}, max {stats['max']:.4g}{unit}"


def _describe(exc) -> str:
    """One line for an error; 'PATH: No such file or directory' for an OSError on a file."""
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split())


def _read_class_file(path):
    with open(path, "r", encoding="utf-8") as f:
        return [ln.strip() for ln in f if ln.strip()]


def cmd_check(args) -> int:
    if not os.path.isdir(args.data_root):   # one line, not every file of the layout "missing"
        what = "is not a folder" if os.path.exists(args.data_root) else "no such folder"
        print(f"error: --data-root {args.data_root}: {what}", file=sys.stderr)
        return 2
    kw = {"name": args.name} if args.name else {}
    try:
        class_names = _read_class_file(args.class_names) if args.class_names else None
        problems, summary = scan_dataset(
            args.dataset, args.data_root, splits=args.splits, class_names=class_names,
            tolerance=args.tolerance, feature_dim=args.feature_dim,
            progress=False if args.no_progress else None, **kw,
        )
    except (TypeError, ValueError, OSError) as exc:
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 2
    if problems:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s) found in {summary['dataset']} data at {summary['root']}", file=sys.stderr)
        return 1
    print(f"{summary['dataset']} data at {summary['root']}: OK")
    print(f"  classes: {summary.get('num_classes')}, feature dim: {summary.get('feature_dim')}")
    for split, s in summary["splits"].items():
        print(f"  {split}: {s['videos']} videos (ground-truth subset {s['gt_subset']!r}), {s['instances']} instances "
              f"of {s['classes_present']} classes")
        print(f"    rows per video (T): {_fmt(s['t_orig'])}")
        print(f"    duration: {_fmt(s['duration_s'], ' s')}")
        print(f"    instance length: {_fmt(s['instance_length_s'], ' s')}")
    return 0


def cmd_synth(args) -> int:
    try:
        root = write_synthetic_thumos(
            args.out, seed=args.seed, num_train=args.num_train, num_test=args.num_test,
            num_classes=args.num_classes, feature_dim=args.feature_dim, min_len=args.min_len, max_len=args.max_len,
        )
    except (TypeError, ValueError, OSError) as exc:
        print(f"error: {_describe(exc)}", file=sys.stderr)
        return 2
    print(f"wrote a synthetic THUMOS14-like set to {root}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sal_ext.data", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="list every problem in a data folder (exit 1 if any), else summarise it")
    p.add_argument("--dataset", required=True, choices=list(layouts.DATASETS))
    p.add_argument("--data-root", required=True, help="the data folder")
    p.add_argument("--splits", nargs="+", default=None, help="splits to check (default: train test)")
    p.add_argument("--class-names", default=None, help="file with one class name a line (default: the data set's)")
    p.add_argument("--tolerance", type=float, default=layouts.DEFAULT_TOLERANCE,
                   help="seconds a segment may end past the video's duration (default %(default)s)")
    p.add_argument("--feature-dim", type=int, default=None, help="expected feature width (default 2048)")
    p.add_argument("--name", default=None, help="W-TALC: the <name> of <name>-I3D-JOINTFeatures.npy")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("synth", help="write a synthetic THUMOS14-like set")
    p.add_argument("--out", required=True, help="new (or empty) folder to write")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-train", type=int, default=100)
    p.add_argument("--num-test", type=int, default=60)
    p.add_argument("--num-classes", type=int, default=20)
    p.add_argument("--feature-dim", type=int, default=2048)
    p.add_argument("--min-len", type=int, default=80)
    p.add_argument("--max-len", type=int, default=400)
    p.set_defaults(func=cmd_synth)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
