"""Seed sweeps: ``python -m sal_ext.train ... --seeds 0,1,2,3,4 [--jobs N]``.

One run of ``python -m sal_ext.train`` per seed, each in ``SWEEP/seed<k>/`` (SWEEP: --out, else
``runs/<preset>-sweep-<time>``), then the table of sweep_stats: per checkpoint selection
(reference, validation, last step; sal_ext.run_results) and per tIoU / average, mean ± sd,
min and max over the seeds. It is printed and written to ``SWEEP/sweep.json``.

``--seeds 5`` means seeds 0..4; ``--seeds 0,3,7`` those seeds. With --val-fraction the runs
also evaluate the test split at every evaluation (--monitor-test, never used for selection),
so the reference selection stands beside the validation one.

Resume. ``SWEEP/sweep_plan.json`` (written first) holds the training arguments, the seeds and
the threads each run uses. ``python -m sal_ext.train --resume SWEEP [--seeds ...] [--jobs N]``
continues a killed sweep: finished seeds (a final test evaluation in their eval_log.jsonl) are
not rerun, an unfinished one resumes from its own ``seed<k>/last.pt`` (``--resume``, exact on
CPU), a seed killed before its first checkpoint starts again in a fresh folder. The plan's
arguments are used; a different --preset or --data-root is refused in one line.

Processes. Each seed's run is a child process (``python -m sal_ext.train``); its output goes to
``SWEEP/logs/seed<k>.log``. ``--jobs N`` runs N at a time, each with T // N torch threads (T:
this process's torch.get_num_threads(), e.g. OMP_NUM_THREADS), fixed in the plan: the numbers
equal a sequential sweep's at that thread count. Under torchrun the seeds run one after
another in the torchrun processes themselves, each run data-parallel (--jobs must be 1, --out
is required so every rank names the same folder, and every rank must see that folder: one
machine or a shared file system).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

from . import run_results, sweep_stats
from .run_folder import SWEEP_PLAN, check_out_folder, default_out

PLAN = SWEEP_PLAN
RESULT = "sweep.json"
PROG = "python -m sal_ext.train"


class SweepError(ValueError):
    """A sweep that cannot run as asked; the message is one line."""


# ---- arguments -----------------------------------------------------------------------------------
def parse_seeds(text: str) -> List[int]:
    """"5" -> [0, 1, 2, 3, 4]; "0,3,7" -> [0, 3, 7]. SweepError for an empty, negative,
    repeated or non-integer seed."""
    text = (text or "").strip()
    if not text:
        raise SweepError("--seeds: empty; give a count (--seeds 5 for seeds 0..4) or a list (--seeds 0,1,2)")
    parts = [p.strip() for p in text.split(",")]
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise SweepError(f"--seeds {text}: expected a count or a comma-separated list of integers") from None
    if len(parts) == 1 and "," not in text:
        if nums[0] < 1:
            raise SweepError(f"--seeds {text}: a count of seeds must be >= 1")
        return list(range(nums[0]))
    if any(n < 0 for n in nums):
        raise SweepError(f"--seeds {text}: seeds must be >= 0")
    dup = sorted({n for n in nums if nums.count(n) > 1})
    if dup:
        raise SweepError(f"--seeds {text}: seed {dup[0]} is repeated")
    return nums


def parse_jobs(text: Optional[str]) -> int:
    """--jobs: processes running seeds at once (default 1); SweepError unless an integer >= 1."""
    if text is None:
        return 1
    try:
        jobs = int(text)
    except ValueError:
        raise SweepError(f"--jobs {text}: expected an integer >= 1") from None
    if jobs < 1:
        raise SweepError(f"--jobs {text}: must be >= 1")
    return jobs


def _strip(argv: Sequence[str], flags_with_value: Sequence[str], flags: Sequence[str] = ()) -> List[str]:
    """argv without the named options (``--x v`` and ``--x=v`` forms)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in flags_with_value:
            skip = "=" not in a
            continue
        if name in flags:
            continue
        out.append(a)
    return out


def _given(argv: Sequence[str], flag: str) -> bool:
    return any(a == flag or a.startswith(flag + "=") for a in argv)


def threads_per_run(total: int, jobs: int) -> int:
    return max(1, int(total) // int(jobs))


def torchrun() -> bool:
    from .distributed import launched
    return launched()


# ---- the plan ------------------------------------------------------------------------------------
def _write_json(path: str, obj: Any) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


def read_plan(folder: str) -> Dict[str, Any]:
    path = os.path.join(folder, PLAN)
    try:
        with open(path) as f:
            plan = json.load(f)
    except OSError as exc:
        raise SweepError(f"{folder}: not a sweep folder ({PLAN}: {exc.strerror or exc})") from None
    except json.JSONDecodeError as exc:
        raise SweepError(f"{path}: not JSON ({exc.msg})") from None
    if not isinstance(plan, dict) or not {"preset", "seeds", "train_args", "threads"} <= set(plan):
        raise SweepError(f"{path}: not a sweep plan of {PROG} --seeds")
    return plan


def is_sweep(folder: Optional[str]) -> bool:
    return bool(folder) and os.path.isfile(os.path.join(folder, PLAN))


def new_plan(args, argv: Sequence[str], seeds: List[int], threads: int) -> Dict[str, Any]:
    """The plan of a new sweep: the training arguments each seed's run gets (argv less the
    sweep's own options and --out/--seed/--resume), with --data-root made absolute."""
    train_args = _strip(argv, ["--seeds", "--jobs", "--out", "--seed", "--resume", "--data-root"],
                        ["--monitor-test"])
    if args.data_root:
        train_args += ["--data-root", os.path.abspath(args.data_root)]
    if args.val_fraction > 0:
        train_args.append("--monitor-test")
    return {"preset": args.preset, "data_root": os.path.abspath(args.data_root) if args.data_root else None,
            "seeds": list(seeds), "train_args": train_args, "threads": int(threads),
            "val_fraction": float(args.val_fraction), "created": time.strftime("%Y-%m-%d %H:%M:%S")}


def resumed_plan(args, argv: Sequence[str], folder: str, seeds: Optional[List[int]]) -> Dict[str, Any]:
    """The plan of `folder`, checked against this command line; --seeds may add seeds."""
    plan = read_plan(folder)
    if _given(argv, "--preset") and args.preset != plan["preset"]:
        raise SweepError(f"--resume {folder}: the sweep was made with --preset {plan['preset']}, "
                         f"not {args.preset}")
    if args.data_root and os.path.abspath(args.data_root) != plan.get("data_root"):
        raise SweepError(f"--resume {folder}: the sweep's data root is {plan.get('data_root')}, "
                         f"not {os.path.abspath(args.data_root)}")
    extra = _strip(argv, ["--seeds", "--jobs", "--resume", "--preset", "--data-root"], ["--no-progress"])
    if extra:
        raise SweepError(f"--resume {folder}: a sweep resumes with its own training arguments "
                         f"({' '.join(plan['train_args']) or 'none'}); only --seeds and --jobs may be "
                         f"given, got {' '.join(extra)}")
    if seeds is not None:
        plan["seeds"] = list(plan["seeds"]) + [s for s in seeds if s not in plan["seeds"]]
    return plan


# ---- one seed ------------------------------------------------------------------------------------
def seed_dir(folder: str, seed: int) -> str:
    return os.path.join(folder, f"seed{seed}")


def seed_argv(plan: Dict[str, Any], folder: str, seed: int) -> Optional[List[str]]:
    """sal_ext.train's arguments for `seed`: None when it has finished, --resume of its
    last.pt when it was interrupted, else a fresh run (a folder left without last.pt by a
    run killed before its first checkpoint is removed first)."""
    run = seed_dir(folder, seed)
    if run_results.is_finished(run):
        return None
    if os.path.isfile(os.path.join(run, "last.pt")):
        return ["--resume", run, "--no-progress"]
    if os.path.isdir(run) and int(os.environ.get("RANK", "0")) == 0:   # torchrun: rank 0 writes
        shutil.rmtree(run)
    return _strip(plan["train_args"], [], ["--no-progress"]) + ["--seed", str(seed), "--out", run,
                                                                "--no-progress"]


def _child_env(threads: int) -> Dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = str(threads)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _last_line(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _describe(folder: str, seed: int) -> str:
    try:
        sel = run_results.selections(seed_dir(folder, seed))
    except run_results.RunError:
        return ""
    ent = sel["validation"] or sel["reference"]
    if ent is None:
        return ""
    cols, vals = run_results.columns(ent), run_results.values(ent)
    key = cols[-1]   # the widest average (THUMOS: avg 0.1:0.7)
    return f" (checkpoint of step {ent['step']}, {key} {100 * vals[cols.index(key)]:.2f})"


def run_children(plan: Dict[str, Any], folder: str, jobs: int, out=sys.stdout) -> None:
    """Runs every unfinished seed as a child process, `jobs` at a time."""
    todo = [(s, a) for s in plan["seeds"] for a in [seed_argv(plan, folder, s)] if a is not None]
    done = len(plan["seeds"]) - len(todo)
    if done:
        print(f"sweep: {done} of {len(plan['seeds'])} seeds already finished", file=out, flush=True)
    os.makedirs(os.path.join(folder, "logs"), exist_ok=True)
    env = _child_env(plan["threads"])
    running: Dict[int, Any] = {}
    failed = None
    queue = list(todo)
    while queue or running:
        while queue and len(running) < jobs and failed is None:
            seed, argv = queue.pop(0)
            log = open(os.path.join(folder, "logs", f"seed{seed}.log"), "a")
            how = "resumed from its last.pt" if argv[0] == "--resume" else "started"
            print(f"sweep: seed {seed} {how} (torch threads: {plan['threads']}; log "
                  f"{os.path.join(folder, 'logs', f'seed{seed}.log')})", file=out, flush=True)
            proc = subprocess.Popen([sys.executable, "-m", "sal_ext.train"] + argv, stdout=log,
                                    stderr=subprocess.STDOUT, env=env, stdin=subprocess.DEVNULL)
            running[seed] = (proc, log)
        if failed is not None and not running:
            break
        if not running:
            break
        time.sleep(0.2)
        for seed in list(running):
            proc, log = running[seed]
            code = proc.poll()
            if code is None:
                continue
            log.close()
            del running[seed]
            done += 1
            if code != 0:
                why = _last_line(os.path.join(folder, "logs", f"seed{seed}.log"))
                failed = failed or f"seed {seed} failed (exit {code}): {why}"
                continue
            print(f"sweep: seed {seed} finished{_describe(folder, seed)} [{done}/{len(plan['seeds'])}]",
                  file=out, flush=True)
        if failed is not None:
            queue.clear()
    if failed is not None:
        raise SweepError(f"{failed}; finished seeds are kept: rerun with --resume {folder}")


def run_in_process(plan: Dict[str, Any], folder: str) -> None:
    """Under torchrun: the seeds one after another, each a data-parallel run of this job, in
    the process group the first one joins (left once, by the job around the sweep: leaving and
    joining again between seeds can read the previous group's addresses from the store)."""
    from . import single_run
    from .train_args import parse_args
    for seed in plan["seeds"]:
        argv = seed_argv(plan, folder, seed)
        if argv is None:
            continue
        code = single_run.run(parse_args(argv))   # inside the sweep's job: no second one
        if code:
            raise SweepError(f"seed {seed} failed (exit {code})")


# ---- the table -----------------------------------------------------------------------------------
def collect(plan: Dict[str, Any], folder: str) -> Dict[str, Any]:
    """sweep.json's content: the plan, each seed's selections and the summary."""
    per_seed = {s: run_results.selections(seed_dir(folder, s)) for s in plan["seeds"]}
    cfg = run_results.read_config(seed_dir(folder, plan["seeds"][0]))
    summary = sweep_stats.summarize(per_seed)
    return {"preset": plan["preset"], "name": cfg["name"], "dataset": cfg["dataset"],
            "data_root": cfg.get("data_root"), "seeds": plan["seeds"], "threads": plan["threads"],
            "val_fraction": plan["val_fraction"], "train_args": plan["train_args"],
            "select_metric": cfg["eval"].get("select_metric"),
            "per_seed": {str(s): v for s, v in per_seed.items()}, "summary": summary}


def title(result: Dict[str, Any]) -> str:
    return (f"test mAP (%) over {len(result['seeds'])} seeds ({', '.join(map(str, result['seeds']))}) of "
            f"preset {result['preset']}, data {result['data_root']}; mean ± sample sd, min–max")


def check_settings(args) -> None:
    """The runs' settings, checked once before the sweep folder is made (as each run would)."""
    from .train_args import _message, build_config   # the trainer's own validation
    if not 0.0 <= args.val_fraction < 1.0:
        raise SweepError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    if args.data_root and not os.path.isdir(args.data_root):
        raise SweepError(f"--data-root {args.data_root}: no such folder")
    try:
        build_config(args)
    except (ValueError, KeyError, TypeError) as exc:
        raise SweepError(_message(exc)) from None


def main(args, argv: Sequence[str]) -> int:
    """The sweep behind ``--seeds`` / ``--resume SWEEP`` (args: train.parse_args(argv))."""
    seeds = parse_seeds(args.seeds) if args.seeds is not None else None
    jobs = parse_jobs(args.jobs)
    if args.seed is not None:
        raise SweepError("--seed with a sweep: --seeds gives every run its seed")
    if torchrun() and jobs != 1:
        raise SweepError("--jobs: under torchrun a sweep runs its seeds one after another (--jobs 1)")
    if args.resume:
        folder = args.resume
        plan = resumed_plan(args, argv, folder, seeds)
    else:
        if torchrun() and not args.out:
            raise SweepError("--seeds under torchrun needs --out (every rank must name the same folder)")
        check_settings(args)
        import torch
        plan = new_plan(args, argv, seeds, threads_per_run(torch.get_num_threads(), jobs))
        folder = args.out or default_out(f"{args.preset}-sweep")
    main_rank = int(os.environ.get("RANK", "0")) == 0   # torchrun: rank 0 checks and writes
    if main_rank and not args.resume:
        try:
            check_out_folder(folder)       # the rule of single runs: never into a run, a sweep, or others' files
        except ValueError as exc:
            raise SweepError(str(exc)) from None
    if main_rank:
        os.makedirs(folder, exist_ok=True)
        _write_json(os.path.join(folder, PLAN), plan)
        print(f"sweep folder: {folder} (seeds {', '.join(map(str, plan['seeds']))}; "
              f"torch threads per run: {plan['threads']}; runs at a time: {jobs})", flush=True)
    t0 = time.perf_counter()
    if torchrun():
        run_in_process(plan, folder)
    else:
        run_children(plan, folder, jobs)
    if not main_rank:
        return 0
    try:
        result = collect(plan, folder)
    except (run_results.RunError, ValueError) as exc:
        raise SweepError(str(exc)) from None
    result["wall_s"] = time.perf_counter() - t0
    _write_json(os.path.join(folder, RESULT), result)
    print(sweep_stats.format_text(result["summary"], title(result)))
    print(f"sweep: {time.perf_counter() - t0:.0f} s; table in {os.path.join(folder, RESULT)}")
    return 0
