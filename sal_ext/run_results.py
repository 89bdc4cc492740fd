"""What a finished run folder of ``python -m sal_ext.train`` says: its config, its logs and the
test mAP of each checkpoint selection (no torch needed: JSON files only).

The three selections of a run (each a test evaluation: tIoU thresholds, mAP per threshold,
the named averages, the step of the checkpoint):

- ``reference``: the best *test* evaluation over the schedule, what the SAL reference and its
  paper report (selected on the data it reports). Without --val-fraction it is the run's final
  line; with --val-fraction it needs the test evaluations that --monitor-test logs.
- ``validation``: with --val-fraction, the checkpoint chosen on the held-out training videos,
  its test split evaluated once (the run's final line).
- ``last``: the test evaluation of the last step's weights.

A selection a run cannot give (no --val-fraction: no ``validation``) is None.
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from .config_schema import parse_range

SELECTIONS = ("reference", "validation", "last")
SELECTION_TITLES = {
    "reference": "reference selection (best test evaluation, as the paper reports)",
    "validation": "validation selection (held-out training videos; test evaluated once)",
    "last": "last step",
}


class RunError(ValueError):
    """A folder that is not a (finished) run of sal_ext.train; the message is one line."""


def read_jsonl(path: str) -> List[Dict[str, Any]]:
    """The records of a JSON-lines file (RunError naming the file and line if one is broken)."""
    out = []
    try:
        with open(path) as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise RunError(f"{path}: line {i} is not JSON ({exc.msg})") from None
    except OSError as exc:
        raise RunError(f"{path}: {exc.strerror or exc}") from None
    return out


def read_config(run: str) -> Dict[str, Any]:
    path = os.path.join(run, "config.json")
    if not os.path.isfile(path):
        raise RunError(f"{run}: not a run folder of python -m sal_ext.train (no config.json)")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"{path}: cannot read it ({exc})") from None
    if not isinstance(cfg, dict) or "name" not in cfg or "eval" not in cfg:
        raise RunError(f"{path}: not the config.json of a sal_ext.train run")
    return cfg


def is_finished(run: str) -> bool:
    """True when the run wrote its final test evaluation (the last line of a completed run)."""
    path = os.path.join(run, "eval_log.jsonl")
    if not os.path.isfile(path):
        return False
    try:
        recs = read_jsonl(path)
    except RunError:
        return False
    return bool(recs) and bool(recs[-1].get("final"))


def select_value(rec: Dict[str, Any], cfg: Dict[str, Any]) -> float:
    """The number checkpoint selection maximises: eval.select_metric "lo:hi" is the mean mAP
    over the thresholds in [lo, hi]; "average" or null the mean over all (as the trainer)."""
    key = cfg["eval"].get("select_metric")
    rng = parse_range(key) if isinstance(key, str) else None
    if rng is None:
        return float(rec["average"])
    lo, hi = rng
    vals = [m for t, m in zip(rec["tiou"], rec["mAP"]) if lo - 1e-9 <= t <= hi + 1e-9]
    return sum(vals) / len(vals)


def _entry(rec: Dict[str, Any], step: Optional[int] = None) -> Dict[str, Any]:
    return {"step": int(rec["step"] if step is None else step), "tiou": [float(t) for t in rec["tiou"]],
            "mAP": [float(v) for v in rec["mAP"]],
            "averages": {k: float(v) for k, v in (rec.get("averages") or {}).items()}}


def selections(run: str) -> Dict[str, Optional[Dict[str, Any]]]:
    """{selection: {"step", "tiou", "mAP", "averages"} or None} of a finished run folder."""
    cfg = read_config(run)
    path = os.path.join(run, "eval_log.jsonl")
    if not os.path.isfile(path):
        raise RunError(f"{run}: no eval_log.jsonl (the run has not evaluated yet)")
    recs = read_jsonl(path)
    if not recs or not recs[-1].get("final"):
        raise RunError(f"{run}: the run has not finished (no final test evaluation in eval_log.jsonl)")
    final, evals = recs[-1], [r for r in recs[:-1] if not r.get("final")]
    tests = [r for r in evals if r.get("split") == "test"]
    val = float(cfg.get("val_fraction") or 0.0) > 0
    out: Dict[str, Optional[Dict[str, Any]]] = dict.fromkeys(SELECTIONS)
    if val:
        out["validation"] = _entry(final)
        if tests:   # --monitor-test: the test split at every evaluation
            best = None
            for r in tests:   # the first of equal values, as the trainer's strict ">"
                if best is None or select_value(r, cfg) > select_value(best, cfg):
                    best = r
            out["reference"] = _entry(best)
    else:
        out["reference"] = _entry(final)
    last_step = max((int(r["step"]) for r in evals), default=None)
    at_last = [r for r in tests if int(r["step"]) == last_step]
    if at_last:
        out["last"] = _entry(at_last[-1])
    return out


def columns(entry: Dict[str, Any]) -> List[str]:
    """Column names of an entry's values: mAP@t for each threshold, then 'avg lo:hi'."""
    return ["mAP@%.2f" % t for t in entry["tiou"]] + ["avg " + k for k in entry["averages"]]


def values(entry: Dict[str, Any]) -> List[float]:
    """An entry's values in the order of columns(): the mAPs, then the averages (fractions)."""
    return list(entry["mAP"]) + list(entry["averages"].values())
