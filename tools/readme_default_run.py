#!/usr/bin/env python
"""Re-measure the default run and rewrite the README's block about it.

    python tools/readme_default_run.py            # ~2-3 min on 2 idle cores; rewrites README.md
    python tools/readme_default_run.py --dry-run  # print the new block, leave README.md alone
    python tools/readme_default_run.py --dry-run -- --max-steps 20   # a quick check of the tool:
                                                  # arguments after -- go to sal_ext.train

Runs `python -m sal_ext.train` (no arguments, exactly as the README's quick start) in a
subprocess, in a temporary working folder (so its runs/ folder lands there; --workdir keeps
it), with this environment (OMP_NUM_THREADS included), and times it. It then replaces the text
between ``<!-- default-run:begin -->`` and ``<!-- default-run:end -->`` in README.md with: the
machine (lscpu's model name, CPU count), Python, torch and the thread count torch uses, the
wall time, the run's steps and evaluations (read from the run folder), and everything the run
printed on stdout (the home folder shown as ~). The package must be importable (pip install .,
or tools/dev_build.sh in a checkout, run from the checkout's root).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

BEGIN, END = "<!-- default-run:begin -->", "<!-- default-run:end -->"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_model() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict:
    import torch
    return {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "omp": os.environ.get("OMP_NUM_THREADS")}


def run_default(workdir: str, train_args: list) -> tuple[str, float, int]:
    """(stdout, wall seconds, exit status) of `python -m sal_ext.train` run in `workdir`;
    stdout is echoed as it comes, stderr (the progress bar) goes to the terminal."""
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "sal_ext.train"] + train_args, cwd=workdir, env=env,
                            stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line)
    status = proc.wait()
    return "".join(lines), time.perf_counter() - t0, status


def run_facts(stdout: str, workdir: str) -> dict:
    """Steps, batch size, evaluations and where the data came from, from the run folder."""
    m = re.search(r"^run folder: (.+)$", stdout, re.M)
    if not m:
        raise SystemExit("readme_default_run: the run printed no 'run folder:' line")
    run = os.path.join(workdir, m.group(1).strip())
    with open(os.path.join(run, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(run, "train_log.jsonl")) as f:
        steps = [json.loads(x)["step"] for x in f if x.strip()]
    with open(os.path.join(run, "eval_log.jsonl")) as f:
        evals = [json.loads(x) for x in f if x.strip()]
    return {"steps": steps[-1] if steps else 0, "batch": cfg["train"]["batch_size"],
            "eval_every": cfg["train"]["eval_every"], "evals": sum(1 for e in evals if not e.get("final")),
            "hidden": cfg["model"]["hidden"], "segments": cfg["num_segments"]}


def minutes(sec: float) -> str:
    m, s = divmod(int(round(sec)), 60)
    return f"{m} min {s} s" if m else f"{s} s"


def block(stdout: str, wall: float, mach: dict, facts: dict, data_was_cached: bool, train_args: list) -> str:
    home = os.path.expanduser("~")
    shown = stdout.replace(home + os.sep, "~" + os.sep).rstrip("\n")
    n = mach["threads"]
    threads = f"{n} torch thread{'s' if n != 1 else ''} " + (
        f"(OMP_NUM_THREADS={mach['omp']})" if mach["omp"] else "(OMP_NUM_THREADS not set)")
    data = {True: "the synthetic set was already cached", False: "the synthetic set written first",
            None: "with these arguments"}[data_was_cached]
    return (
        f"{BEGIN}\n"
        f"Measured with `python tools/readme_default_run.py` on {time.strftime('%Y-%m-%d')}: "
        f"{mach['cpu']} ({mach['cpus']} CPUs), Python {mach['python']}, torch {mach['torch']}, "
        f"{threads}. `{' '.join(['python -m sal_ext.train'] + train_args)}` took {minutes(wall)} in all ({data}; "
        f"{facts['steps']} steps of batch {facts['batch']}, an evaluation every {facts['eval_every']} "
        f"steps, {facts['evals']} in all, then the selected checkpoint once more) and printed:\n"
        f"\n```\n{shown}\n```\n"
        f"{END}"
    )


def replace_block(readme: str, new: str) -> str:
    i, j = readme.find(BEGIN), readme.find(END)
    if i < 0 or j < i:
        raise SystemExit(f"readme_default_run: README.md has no {BEGIN} ... {END} block")
    return readme[:i] + new + readme[j + len(END):]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default=os.path.join(ROOT, "README.md"))
    p.add_argument("--workdir", help="run here and keep the run folder (default: a temporary folder, removed)")
    p.add_argument("--dry-run", action="store_true", help="print the block, do not write README.md")
    argv = sys.argv[1:] if argv is None else list(argv)
    train_args = argv[argv.index("--") + 1:] if "--" in argv else []
    args = p.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    with open(args.readme, encoding="utf-8") as f:
        readme = f.read()
    replace_block(readme, "")                      # fail now, not after the run, without markers

    sys.path.insert(0, ROOT)
    from sal_ext.config import get_preset
    from sal_ext.data.synthetic import default_cache_root, synthetic_dirname
    cached = os.path.isdir(os.path.join(default_cache_root(), synthetic_dirname(**get_preset("synthetic")["synthetic"])))
    if train_args:                                 # the cache check is for the default set only
        cached = None

    workdir = args.workdir or tempfile.mkdtemp(prefix="sal_ext-default-run-")
    os.makedirs(workdir, exist_ok=True)
    try:
        stdout, wall, status = run_default(workdir, train_args)
        if status != 0:
            raise SystemExit(f"readme_default_run: python -m sal_ext.train exited with status {status}")
        new = block(stdout, wall, machine(), run_facts(stdout, workdir), cached, train_args)
    finally:
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.dry_run:
        print(new)
        return 0
    with open(args.readme, "w", encoding="utf-8") as f:
        f.write(replace_block(readme, new))
    print(f"README.md: default-run block rewritten ({minutes(wall)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
