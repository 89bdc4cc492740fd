"""The flags of ``python -m sal_ext.train`` and the run config they build (a preset, the
flags, ``--set`` overrides; validated before any data is read), and the one-line user errors
the command prints."""
from __future__ import annotations

import argparse
import copy
import os
from typing import Any, Dict, Optional

from .config import PRESETS, apply_overrides, get_preset, set_value
from .config.schema import validate_config

PROG = "python -m sal_ext.train"

DESCRIPTION = """Train SAL and report temporal action localization mAP.

    python -m sal_ext.train                       # built-in synthetic set, a few minutes on CPU
    python -m sal_ext.train --preset thumos14 --data-root DIR [--val-fraction 0.2]
    python -m sal_ext.train --resume runs/thumos14-.../last.pt   # last.pt: best.pt has no optimizer

With no arguments the synthetic set is generated (sal_ext.data.synthetic, cached), SAL is
trained with the THUMOS method on a small network, evaluated every `eval_every` steps, and
the final mAP table (tIoU 0.1..0.7 and averages) is printed.

Checkpoint selection. The reference (and the paper's 50.6% THUMOS14 mAP) evaluates on the
*test* split every 10 steps and keeps the best of ~1000 evaluations: the reported number is
selected on the data it reports, an optimistic estimate. `--preset thumos14` reproduces
that schedule faithfully. `--val-fraction F` is the honest alternative: a fraction F of
the *training* videos is held out (never trained on), evaluations and checkpoint selection
use only them, and the test split is evaluated once, at the end, with the selected
checkpoint.

Outputs under --out (default runs/<preset>-<time>): eval_log.jsonl (one line per
evaluation), train_log.jsonl (one line per step), config.json, and two checkpoints (written
atomically: temp file + os.replace): last.pt, every `save_every` steps and at the end, holds
the model, optimizer, loss state (adaptive-mask EMA), RNG states (torch, numpy, python),
step/epoch/position and the config; best.pt, at every improvement, holds the model, loss
state and config (no optimizer or RNG state: for sal_ext.infer, not for --resume).
`--resume` continues a killed run exactly where its last.pt stopped (on CPU the losses
afterwards equal an uninterrupted run's). Every preset value can be changed with --set key=value.

More than one process: `torchrun --nproc_per_node N -m sal_ext.train ...` trains with
DistributedDataParallel (NCCL on GPUs, gloo on CPU; sal_ext.distributed): --batch-size is
per process, each rank takes its share of every epoch's seeded permutation, evaluation is
sharded over the ranks and rank 0 alone writes the logs, checkpoints and the table.
--resume needs the same number of processes.
"""


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {v}")
    return v


def _positive_int(text: str) -> int:
    return _int_at_least(text, 1)


def _nonnegative_int(text: str) -> int:
    return _int_at_least(text, 0)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sal_ext.train", description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="synthetic", choices=sorted(PRESETS))
    p.add_argument("--data-root", help="dataset folder (not needed for the synthetic preset)")
    p.add_argument("--out", help="output folder (default runs/<preset>-<time>)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=_positive_int,
                   help="videos per step in each process: under torchrun N processes take N x this "
                        "per optimizer step (the global batch), and SAL's mix-up pairs videos "
                        "inside each process's batch; --max-steps and --eval-every count global steps")
    p.add_argument("--num-workers", type=_nonnegative_int, default=0,
                   help="DataLoader workers (default 0: the features are cached in memory)")
    p.add_argument("--backend", choices=["auto", "kernel", "torch"],
                   help="sal_ext.ops backend (default: SAL_EXT_BACKEND, else auto)")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--max-steps", type=_positive_int, help="stop after this many optimizer steps")
    p.add_argument("--eval-every", type=_positive_int, help="steps between evaluations")
    p.add_argument("--val-fraction", type=float, default=0.0,
                   help="hold out this fraction of the training videos, select the checkpoint on "
                        "them and evaluate the test split once at the end (honest model selection; "
                        "without it, as the reference, the best *test* evaluation is kept; "
                        "with --resume, the resumed run's value)")
    p.add_argument("--resume", help="checkpoint (last.pt) or run folder to continue; the run's own "
                                    "config is used (--preset is ignored, other options apply)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any preset value, e.g. --set model.hidden=128 --set lr=3e-4")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    p.add_argument("--monitor-test", action="store_true",
                   help="with --val-fraction: also evaluate the test split at every evaluation (logged "
                        "in eval_log.jsonl, never used for selection; seed sweeps set it)")
    p.add_argument("--seeds", help="seed sweep (sal_ext.sweep): one run per seed in OUT/seed<k>/, then "
                                   "mean ± sd over the seeds; 5 = seeds 0..4, or a list 0,3,7. "
                                   "--resume SWEEP_FOLDER continues a killed sweep")
    p.add_argument("--jobs", help="seed sweep: runs at a time (default 1), torch threads divided among them")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace, base: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    cfg = copy.deepcopy(base) if base is not None else get_preset(args.preset)
    if args.data_root:
        cfg["data_root"] = os.path.abspath(args.data_root)   # a resume from elsewhere finds it
    named = {"train.seed": args.seed, "train.batch_size": args.batch_size, "train.epochs": args.epochs,
             "train.max_steps": args.max_steps, "train.eval_every": args.eval_every}
    for key, val in named.items():
        if val is not None:
            set_value(cfg, key, val)
    if args.epochs is not None and args.max_steps is None:
        cfg["train"]["max_steps"] = None
    apply_overrides(cfg, args.set)
    validate_config(cfg)   # every key, before any data is read or any model is built
    return cfg


# what a resumed run cannot change: the shapes of the checkpoint's tensors
RESUME_FIXED = ("feature_dim", "num_classes", "model.hidden", "model.encoder_kernel")


def resume_mismatch(old: Dict[str, Any], new: Dict[str, Any]) -> Optional[str]:
    """A one-line description of the first network setting `new` changes from the checkpoint's."""
    def get(cfg, key):
        node = cfg
        for p in key.split("."):
            node = node.get(p) if isinstance(node, dict) else None
        return node
    for key in RESUME_FIXED:
        if get(old, key) != get(new, key):
            return (f"--resume: {key}={get(new, key)!r} differs from the checkpoint's {get(old, key)!r} "
                    "(a resumed run keeps its network; start a new run to change it)")
    return None


def _message(exc) -> str:
    """str(exc) without the quotes str() puts around a KeyError's message."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def _user_error(exc) -> SystemExit:
    """A one-line message on stderr and exit status 1 for a mistake in the arguments or data."""
    return SystemExit(f"python -m sal_ext.train: error: {' '.join(_message(exc).split())}")
