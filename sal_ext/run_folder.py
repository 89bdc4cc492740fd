"""Run folders: what a run writes where, and the rule that no run is ever overwritten.

A run folder holds ``config.json``, ``train_log.jsonl``, ``eval_log.jsonl``, ``last.pt``,
``best.pt`` and ``results.json`` (sal_ext.train). The rule:

- a new run writes into a folder that does not exist yet, or an empty one;
- a folder that holds a run (or a seed sweep) is written only by ``--resume`` of it;
- a non-empty folder that holds no run is not written into either (it is somebody's files).

Every refusal is a ``ValueError`` whose message names ``--out`` and says what to do instead.
"""
from __future__ import annotations

import json
import os
import time
from typing import Any, Dict, Optional

RUN_FILES = ("config.json", "train_log.jsonl", "eval_log.jsonl", "last.pt", "best.pt", "results.json")
SWEEP_PLAN = "sweep_plan.json"   # a seed sweep's folder (sal_ext.sweep) is written first with it


def holds_run(folder: str) -> bool:
    """True when `folder` has any file a sal_ext.train run writes."""
    return os.path.isdir(folder) and any(os.path.exists(os.path.join(folder, f)) for f in RUN_FILES)


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def check_out_folder(out: str, resume_folder: Optional[str] = None) -> None:
    """Refuses (ValueError) an --out that would overwrite or mix with other files.

    `resume_folder`: the folder of the checkpoint being resumed; writing into it is allowed.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out}: is a file, not a folder; choose a new folder")
    if not os.path.isdir(out):
        parent = os.path.dirname(os.path.abspath(out))
        while not os.path.isdir(parent):          # the first existing ancestor must be writable
            up = os.path.dirname(parent)
            if up == parent:
                break
            parent = up
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ValueError(f"--out {out}: cannot create the folder ({parent} is not writable)")
        return
    if resume_folder is not None and _same(out, resume_folder):
        return
    for what, found in (("a seed sweep", os.path.isfile(os.path.join(out, SWEEP_PLAN))), ("a run", holds_run(out))):
        if found:
            raise ValueError(
                f"--out {out} already holds {what}: continue it with `python -m sal_ext.train --resume {out}`, "
                f"or choose another --out (such a folder is written only by --resume)")
    entries = sorted(os.listdir(out))
    if entries:
        raise ValueError(f"--out {out} is not empty ({len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, e.g. {entries[0]!r}) and holds "
                         "no run: choose a new or empty folder")
    if not os.access(out, os.W_OK | os.X_OK):
        raise ValueError(f"--out {out}: the folder is not writable")


def default_out(name: str, root: str = "runs") -> str:
    """``runs/<name>-<time>``, with ``-2``, ``-3``, ... when that folder exists already
    (two runs started in the same second)."""
    base = os.path.join(root, f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    out, n = base, 1
    while os.path.exists(out):
        n += 1
        out = f"{base}-{n}"
    return out


def create_out_folder(out: str, resume_folder: Optional[str] = None) -> None:
    """Checks again (another process may have written there since) and creates `out`."""
    check_out_folder(out, resume_folder)
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"--out {out}: cannot create the folder: {exc.strerror or exc}") from None


# -- the run's logs (one JSON object a line) ---------------------------------------------------
def append_jsonl(path: str, record: Dict[str, Any]) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_jsonl(path: str, max_step: int) -> None:
    """Drops lines logged after the checkpoint we resume from (they will be redone), and the
    final report's line (a resumed run writes its own)."""
    if not os.path.exists(path):
        return
    with open(path) as f:
        rows = [(ln, json.loads(ln)) for ln in f if ln.strip()]
    keep = [ln for ln, r in rows if r.get("step", 0) <= max_step and not r.get("final")]
    with open(path, "w") as f:
        f.writelines(keep)
