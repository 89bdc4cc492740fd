"""One training run of ``python -m sal_ext.train``: the flags checked, the config built (or a
checkpoint's, for --resume), the run folder claimed, the trainer built, trained, and the final
table printed. Seed sweeps (sal_ext.sweep) run this once per seed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Callable, Dict, Tuple

import torch

from . import distributed, preflight, run_folder
from .interrupt import Interrupted
from .splits import ensure_synthetic_data, format_table
from .train_args import PROG, _user_error, build_config, parse_args, resume_mismatch
from .trainer import NonFiniteLoss, Trainer


def load_resume_checkpoint(resume: str) -> Tuple[Dict[str, Any], str]:
    """(checkpoint, its path) for --resume (a last.pt file or a run folder)."""
    path = os.path.join(resume, "last.pt") if os.path.isdir(resume) else resume
    if not os.path.isfile(path):
        raise _user_error(f"--resume {resume}: no checkpoint {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises many kinds (unpickling, zip, EOF, ...)
        raise _user_error(f"--resume: cannot read {path}: {exc}") from None
    if not isinstance(ckpt, dict) or "config" not in ckpt:
        raise _user_error(f"--resume: {path} is not a last.pt of sal_ext.train (no config in it)")
    opt = ckpt.get("optimizer")
    if not (isinstance(opt, dict) and "state" in opt and "param_groups" in opt):
        raise _user_error(f"--resume: {path} holds no optimizer state (best.pt and reference state dicts "
                          "have none): resume from the run's last.pt")
    missing = [k for k in ("model", "loss", "rng", "step", "epoch", "pos", "best") if k not in ckpt]
    if missing:
        raise _user_error(f"--resume: {path} lacks {', '.join(missing)}: not a last.pt of sal_ext.train")
    return ckpt, path


def check_backend_env() -> None:
    """SAL_EXT_BACKEND, checked once at startup (a bad value: a one-line error, not a traceback
    from the first op call)."""
    from .ops._common import default_backend
    try:
        default_backend()
    except ValueError as exc:
        raise _user_error(exc) from None


def _is_builtin_synthetic(cfg: Dict[str, Any]) -> bool:
    """True when cfg's data is the built-in synthetic set written into the cache (which a
    resume on another machine writes again, the same), not a folder the user gave."""
    from .data.synthetic import synthetic_dirname
    return bool(cfg.get("synthetic")) and os.path.basename(cfg.get("data_root") or "") == \
        synthetic_dirname(**cfg["synthetic"])


def resume_command(out: str) -> str:
    """The command that continues the run in `out` (torchrun with the same processes)."""
    ctx = distributed.current()
    if ctx.world == 1:
        return f"python -m sal_ext.train --resume {out}"
    local = int(os.environ.get("LOCAL_WORLD_SIZE") or ctx.world)
    nodes = f"--nnodes {ctx.world // local} " if ctx.world > local else ""
    return f"torchrun {nodes}--nproc_per_node {local} -m sal_ext.train --resume {out}"


def guarded(body: Callable[[], int]) -> int:
    """Runs a command body as one process of a torchrun job (sal_ext.distributed).
    Exit status: 0, 1 (an error, one line), 130 / 143 (stopped by SIGINT / SIGTERM)."""
    try:
        with distributed.job(PROG):
            return body()
    except KeyboardInterrupt:    # outside the training loop, or a second Ctrl-C
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    """One training run from its command-line flags (a seed sweep runs one per seed)."""
    return guarded(lambda: run(parse_args(argv)))


def run(args: argparse.Namespace) -> int:
    """One training run: checks, config, run folder, data, trainer, training, the final table."""
    check_backend_env()
    if not 0.0 <= args.val_fraction < 1.0:
        raise _user_error(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise _user_error("--device cuda: no CUDA device is available to torch")
    if args.data_root and not os.path.isdir(args.data_root):
        raise _user_error(f"--data-root {args.data_root}: no such folder")
    ckpt, resume_folder = None, None
    try:
        if args.resume:
            ckpt, path = load_resume_checkpoint(args.resume)
            cfg = build_config(args, ckpt["config"])
            resume_folder = os.path.dirname(os.path.abspath(path))
            out = args.out or resume_folder
            diff = resume_mismatch(ckpt["config"], cfg)
            if diff:
                raise _user_error(diff)
            root = cfg.get("data_root")
            if root and not os.path.isdir(root) and _is_builtin_synthetic(cfg) and not args.data_root:
                cfg["data_root"] = None         # the synthetic set is written again, the same
            elif root and not os.path.isdir(root):
                raise _user_error(f"--resume: the run's data folder {root} (data_root in its config) does "
                                  "not exist here; pass --data-root DIR")
        else:
            cfg = build_config(args)
            out = args.out or run_folder.default_out(cfg["name"])
        run_folder.check_out_folder(out, resume_folder)   # never write into another run
    except (ValueError, KeyError, TypeError) as exc:  # --set overrides, config validation
        raise _user_error(exc) from None
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    try:
        preflight.check_memory(cfg, device)   # before anything is allocated
    except ValueError as exc:
        raise _user_error(exc) from None
    try:
        device = distributed.init(device).device   # torchrun: join the job (else unchanged)
    except ValueError as exc:
        raise _user_error(exc) from None
    out = distributed.broadcast_object(out)        # torchrun: rank 0's run folder
    main_rank = distributed.current().is_main
    val_fraction = args.val_fraction if ckpt is None else ckpt["config"].get("val_fraction", 0.0)
    cfg["val_fraction"] = val_fraction
    cfg["monitor_test"] = bool(args.monitor_test if ckpt is None else ckpt["config"].get("monitor_test"))

    say = print if main_rank else (lambda *a, **k: None)   # rank 0 alone talks
    try:
        if cfg["dataset"] == "thumos14" and cfg.get("synthetic") and not cfg.get("data_root"):
            cfg["data_root"] = ensure_synthetic_data(cfg)
            say(f"data: {cfg['data_root']} (the built-in synthetic set, written once; "
                "SAL_EXT_CACHE sets the cache folder)", flush=True)
        elif cfg.get("data_root"):
            say(f"data: {cfg['data_root']}", flush=True)
        else:
            raise ValueError(f"preset {cfg['name']!r} needs --data-root")
        trainer = Trainer(cfg, out, device, backend=args.backend, num_workers=args.num_workers,
                          progress=not args.no_progress, val_fraction=val_fraction,
                          resume_folder=resume_folder)
        say(f"run folder: {out}", flush=True)   # once it exists: the data and settings passed their checks
    except (ValueError, OSError) as exc:  # data problems, invalid settings
        raise _user_error(exc) from None
    if ckpt is not None:
        try:
            trainer.load(ckpt)
        except (RuntimeError, KeyError, ValueError) as exc:  # a state that does not fit
            raise _user_error(f"--resume: the checkpoint does not fit this run: {exc}") from None
        if main_rank:
            print(f"resumed from step {trainer.step} (epoch {trainer.epoch})", file=sys.stderr)
    if main_rank:
        try:
            with open(os.path.join(out, "config.json"), "w") as f:
                json.dump(cfg, f, indent=1)
        except OSError as exc:
            raise _user_error(f"--out {out}: cannot write config.json: {exc.strerror or exc}") from None
    t0 = time.perf_counter()
    try:
        trainer.train()
    except NonFiniteLoss as exc:
        raise _user_error(exc) from None
    except Interrupted as exc:
        if main_rank:
            print(f"python -m sal_ext.train: {exc}; continue with: {resume_command(out)}",
                  file=sys.stderr, flush=True)
        return exc.exit_status
    except KeyboardInterrupt:   # a second signal: no save
        if main_rank:
            at = (f"last.pt holds step {trainer.saved_step}; continue with: {resume_command(out)}"
                  if trainer.saved_step else "nothing was saved")
            print(f"python -m sal_ext.train: interrupted at step {trainer.step}; {at}", file=sys.stderr)
        return 130
    rec = trainer.final_report()
    if not main_rank:
        return 0
    how = ("selected on held-out training videos" if trainer.val_set is not None
           else "best test evaluation, as the reference selects it")
    print(format_table(rec, f"test mAP (%) of the checkpoint from step {trainer.best.get('step')} ({how}); "
                            f"classification accuracy {100 * rec['classification_accuracy']:.1f}%"))
    if rec.get("protocols"):  # eval.protocols: the same detections under each protocol
        from .evaluation.table import format_protocol_table
        print(format_protocol_table(rec["protocols"]))
    print(f"training + evaluation: {time.perf_counter() - t0:.0f} s; outputs in {out}")
    return 0

