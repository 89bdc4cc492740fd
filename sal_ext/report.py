"""Curves and tables of training runs and seed sweeps.

    python -m sal_ext.report RUN_OR_SWEEP [RUN_OR_SWEEP ...] --out report.png [--out report.md]

A RUN is a folder of ``python -m sal_ext.train`` (config.json, train_log.jsonl,
eval_log.jsonl); a SWEEP is a folder of ``--seeds`` (sweep_plan.json, seed<k>/ runs).

``.png`` (or .pdf / .svg): one panel per loss term (moving average over the steps, so the
trend is visible through the per-batch noise) and one panel of the mAP of each evaluation,
against the optimizer step; one line per run, several runs or sweeps overlaid with a legend.
A sweep is drawn as the mean over its seeds with a ±1 sd band, and its three checkpoint
selections (reference, validation, last step; sal_ext.run_results) are marked on the mAP
panel at their mean step and mean test mAP, with ±1 sd error bars. The figure needs
matplotlib (``pip install 'sal_ext[plot]'``).

``.md``: per source, the test mAP (%) of each selection: a run's values, a sweep's
mean ± sd and min–max over the seeds, and the sweep's per-seed numbers.
"""
from __future__ import annotations

import argparse
import glob
import os
import re
import sys
from typing import Any, Dict, List, Sequence

import numpy as np

from . import run_results, sweep_stats
from .run_results import RunError

PROG = "python -m sal_ext.report"
LOSS_TERMS = ("total", "mil", "bg", "act", "mix", "mc", "se")
LOSS_TITLES = {"total": "total loss", "mil": "MIL (video classification)", "bg": "background",
               "act": "actionness", "mix": "segment mix-up", "mc": "multilevel semantic (mc)",
               "se": "semantic (se)"}
INSTALL_HINT = "pip install 'sal_ext[plot]'"
FIGURE_TYPES = (".png", ".pdf", ".svg")


class ReportError(ValueError):
    """Bad input to the report; the message is one line."""


# ---- sources -------------------------------------------------------------------------------------
def _run(path: str) -> Dict[str, Any]:
    """A run folder's config, per-step losses and evaluations (unfinished runs too)."""
    cfg = run_results.read_config(path)
    tpath = os.path.join(path, "train_log.jsonl")
    train = run_results.read_jsonl(tpath) if os.path.isfile(tpath) else []
    epath = os.path.join(path, "eval_log.jsonl")
    evals = run_results.read_jsonl(epath) if os.path.isfile(epath) else []
    sel = run_results.selections(path) if run_results.is_finished(path) else None
    return {"path": path, "config": cfg, "train": train,
            "evals": [e for e in evals if not e.get("final")], "selections": sel}


def _seed_key(path: str) -> int:
    m = re.search(r"seed(\d+)$", path.rstrip(os.sep))
    return int(m.group(1)) if m else 0


def load_source(path: str) -> Dict[str, Any]:
    """{"kind": "run" | "sweep", "label", "runs": [...], ...} of a run or sweep folder."""
    if not os.path.isdir(path):
        raise ReportError(f"{path}: no such folder (give a run folder of python -m sal_ext.train "
                          f"or a sweep folder of its --seeds)")
    label = os.path.basename(os.path.normpath(path))
    try:
        if os.path.isfile(os.path.join(path, "sweep_plan.json")):
            seeds = sorted(glob.glob(os.path.join(path, "seed*")), key=_seed_key)
            runs = [_run(s) for s in seeds if os.path.isfile(os.path.join(s, "config.json"))]
            if not runs:
                raise ReportError(f"{path}: the sweep has no run yet (no seed<k>/config.json)")
            return {"kind": "sweep", "label": label, "path": path, "runs": runs,
                    "seeds": [_seed_key(r["path"]) for r in runs], "config": runs[0]["config"]}
        run = _run(path)
    except RunError as exc:
        raise ReportError(str(exc)) from None
    return {"kind": "run", "label": label, "path": path, "runs": [run], "config": run["config"]}


def _select_column(cfg: Dict[str, Any], evals: Sequence[Dict[str, Any]]) -> str:
    """The averages key the figure plots: the selection metric's range when it is one."""
    key = cfg["eval"].get("select_metric")
    have = list((evals[0].get("averages") or {}).keys()) if evals else []
    if isinstance(key, str) and key in have:
        return key
    return have[-1] if have else "average"


def _eval_series(run: Dict[str, Any], column: str):
    """(steps, mAP %, split) of a run's evaluations: the test ones if any, else validation."""
    tests = [e for e in run["evals"] if e.get("split") == "test"]
    evals, split = (tests, "test") if tests else (run["evals"], "val")
    steps = np.array([int(e["step"]) for e in evals])
    vals = np.array([100 * float((e.get("averages") or {}).get(column, e.get("average", np.nan)))
                     for e in evals])
    return steps, vals, split


def _smooth(x: np.ndarray, w: int) -> np.ndarray:
    """Trailing moving average of window w (shorter at the start)."""
    if w <= 1 or len(x) == 0:
        return x
    c = np.cumsum(np.insert(x, 0, 0.0))
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - w)
    return (c[idx] - c[lo]) / (idx - lo)


def _loss_series(run: Dict[str, Any], term: str, w: int):
    steps = np.array([int(r["step"]) for r in run["train"]])
    vals = np.array([float(r.get(term, np.nan)) for r in run["train"]])
    return steps, _smooth(vals, w)


def smoothing_window(sources: Sequence[Dict[str, Any]]) -> int:
    n = max((len(r["train"]) for s in sources for r in s["runs"]), default=0)
    return max(1, n // 100)


# ---- the figure ----------------------------------------------------------------------------------
def require_matplotlib():
    try:
        import matplotlib
    except ImportError:
        raise ReportError(f"{PROG}: a figure needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _mean_band(series):
    """Mean and sd over seeds of (steps, values) series, on the steps every seed has."""
    common = None
    for st, _ in series:
        common = set(st.tolist()) if common is None else common & set(st.tolist())
    steps = np.array(sorted(common or []))
    if not len(steps):
        return steps, np.array([]), np.array([])
    rows = []
    for st, v in series:
        pos = {s: i for i, s in enumerate(st.tolist())}
        rows.append([v[pos[s]] for s in steps])
    x = np.array(rows, dtype=np.float64)
    sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(x.shape[1])
    return steps, x.mean(axis=0), sd


def describe(sources: Sequence[Dict[str, Any]]) -> str:
    """'preset P, data D' (each distinct one named once)."""
    presets = sorted({s["config"]["name"] for s in sources})
    roots = sorted({str(s["config"].get("data_root")) for s in sources})
    roots = [r.replace(os.path.expanduser("~"), "~") for r in roots]
    return f"preset {', '.join(presets)}; data {', '.join(roots)}"


def make_figure(sources: Sequence[Dict[str, Any]]):
    """The matplotlib figure: 7 loss panels and the mAP panel (axes[-1]); every source is one
    labelled line per panel (a sweep: its mean, with a ±1 sd band)."""
    plt = require_matplotlib()
    from matplotlib.ticker import MaxNLocator
    w = smoothing_window(sources)
    fig, axes = plt.subplots(2, 4, figsize=(20, 9), sharex=True)
    axes = axes.ravel()
    colors = plt.get_cmap("tab10")
    column = _select_column(sources[0]["config"], sources[0]["runs"][0]["evals"])
    splits = set()
    for i, src in enumerate(sources):
        color = colors(i % 10)
        n = len(src["runs"])
        label = src["label"] + (f" (mean of {n} seeds ± sd)" if src["kind"] == "sweep" else "")
        for ax, term in zip(axes, LOSS_TERMS):
            series = [_loss_series(r, term, w) for r in src["runs"]]
            if src["kind"] == "run":
                ax.plot(*series[0], color=color, lw=1.2, label=label)
            else:
                st, m, sd = _mean_band(series)
                ax.plot(st, m, color=color, lw=1.2, label=label)
                ax.fill_between(st, m - sd, m + sd, color=color, alpha=0.2, lw=0)
        ax = axes[-1]
        ev = [_eval_series(r, column) for r in src["runs"]]
        splits.update(e[2] for e in ev)
        if src["kind"] == "run":
            ax.plot(ev[0][0], ev[0][1], color=color, lw=1.5, marker="o", ms=3, label=label)
            sel = src["runs"][0]["selections"]
            ent = sel and (sel["validation"] or sel["reference"])
            if ent:
                v = ent["averages"].get(column)
                if v is not None:
                    ax.plot([ent["step"]], [100 * v], marker="*", ms=14, color=color, ls="none",
                            markeredgecolor="black")
        else:
            st, m, sd = _mean_band([(e[0], e[1]) for e in ev])
            ax.plot(st, m, color=color, lw=1.5, marker="o", ms=3, label=label)
            ax.fill_between(st, m - sd, m + sd, color=color, alpha=0.2, lw=0)
            _mark_selections(ax, src, column, color)
    for ax, term in zip(axes, LOSS_TERMS):
        ax.set_title(LOSS_TITLES[term])
        ax.set_ylabel("loss" + (f" (moving average, {w} steps)" if w > 1 else ""))
        ax.grid(alpha=0.3)
    which = "test" if splits == {"test"} else ("validation" if splits == {"val"} else "test / validation")
    axes[-1].set_title(f"{which} mAP avg {column} at each evaluation")
    axes[-1].set_ylabel(f"mAP avg {column} (%)")
    axes[-1].grid(alpha=0.3)
    for ax in axes[4:]:
        ax.set_xlabel("optimizer step")
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True))   # steps are whole (x is shared)
    handles, labels = axes[-1].get_legend_handles_labels()
    axes[-1].legend(handles, labels, fontsize=8, loc="best")     # where it hides the fewest points
    axes[0].legend(fontsize=8, loc="best")
    names = ", ".join(s["label"] for s in sources)
    fig.suptitle(f"SAL training curves: {names}\n{describe(sources)}", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return fig


_MARKERS = {"reference": ("*", "reference selection (best test eval.)"),
            "validation": ("D", "validation selection"), "last": ("s", "last step")}


def _mark_selections(ax, src: Dict[str, Any], column: str, color) -> None:
    """A sweep's selections at (mean step, mean test mAP) with ±1 sd error bars."""
    per = [r["selections"] for r in src["runs"] if r["selections"]]
    for sel, (marker, name) in _MARKERS.items():
        pts = [(e[sel]["step"], 100 * e[sel]["averages"][column]) for e in per
               if e.get(sel) and column in e[sel]["averages"]]
        if not pts:
            continue
        x = np.array(pts, dtype=np.float64)
        sd = x.std(axis=0, ddof=1) if len(x) > 1 else np.zeros(2)
        ax.errorbar([x[:, 0].mean()], [x[:, 1].mean()], xerr=[sd[0]], yerr=[sd[1]], marker=marker,
                    ms=10, color=color, markeredgecolor="black", ls="none", capsize=3,
                    label=f"{src['label']}: {name}, {x[:, 1].mean():.2f} ± {sd[1]:.2f}")


# ---- markdown ------------------------------------------------------------------------------------
def _run_markdown(src: Dict[str, Any]) -> List[str]:
    run = src["runs"][0]
    sel = run["selections"]
    if sel is None:
        return [f"({src['path']}: the run has not finished; no test table)"]
    have = [s for s in run_results.SELECTIONS if sel.get(s)]
    cols = run_results.columns(sel[have[0]])
    lines = ["| selection | step | " + " | ".join(cols) + " |", "|---|---:|" + "---:|" * len(cols)]
    for s in have:
        lines.append(f"| {s} | {sel[s]['step']} | "
                     + " | ".join("%.2f" % (100 * v) for v in run_results.values(sel[s])) + " |")
    return lines


def _sweep_markdown(src: Dict[str, Any]) -> List[str]:
    per = {seed: r["selections"] for seed, r in zip(src["seeds"], src["runs"]) if r["selections"]}
    if not per:
        return [f"({src['path']}: no seed has finished; no test table)"]
    summary = sweep_stats.summarize(per)
    lines = [sweep_stats.format_markdown(summary), ""]
    unfinished = [s for s, r in zip(src["seeds"], src["runs"]) if not r["selections"]]
    if unfinished:
        lines += [f"(seeds {', '.join(map(str, unfinished))} have not finished and are not counted)", ""]
    first = next(iter(per.values()))
    ent = first["validation"] or first["reference"] or first["last"]
    col = run_results.columns(ent)[-1]
    have = [s for s in run_results.SELECTIONS if s in summary]
    lines.append("| seed | " + " | ".join(f"{s}: step, {col}" for s in have) + " |")
    lines.append("|---:|" + "---|" * len(have))
    for seed, e in per.items():
        cells = []
        for s in have:
            rows = sweep_stats.per_seed_rows({seed: e}, s, col)
            cells.append(f"{rows[0][1]}, {rows[0][2]:.2f}" if rows else "-")
        lines.append(f"| {seed} | " + " | ".join(cells) + " |")
    return lines


def make_markdown(sources: Sequence[Dict[str, Any]]) -> str:
    out = ["# SAL results", "", f"Test mAP (%); {describe(sources)}. Selections: "
           + "; ".join(f"**{k}**: {v}" for k, v in run_results.SELECTION_TITLES.items())
           + ". Standard deviations are sample ones (ddof=1).", ""]
    for src in sources:
        kind = f"sweep of {len(src['runs'])} seeds" if src["kind"] == "sweep" else "run"
        out += [f"## {src['label']} ({kind}, preset {src['config']['name']})", "", f"`{src['path']}`", ""]
        out += (_sweep_markdown(src) if src["kind"] == "sweep" else _run_markdown(src)) + [""]
    return "\n".join(out)


# ---- command line --------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sources", nargs="+", metavar="RUN_OR_SWEEP", help="run or sweep folders")
    p.add_argument("--out", action="append", required=True,
                   help="report.png (.pdf, .svg: the figure) or report.md (the tables); may be repeated")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        for out in args.out:
            ext = os.path.splitext(out)[1].lower()
            if ext not in FIGURE_TYPES + (".md",):
                raise ReportError(f"--out {out}: the file name must end in .md or one of {', '.join(FIGURE_TYPES)}")
            folder = os.path.dirname(os.path.abspath(out))
            if not os.path.isdir(folder):
                raise ReportError(f"--out {out}: no such folder {folder}")
        if any(os.path.splitext(o)[1].lower() in FIGURE_TYPES for o in args.out):
            require_matplotlib()
        sources = [load_source(p) for p in args.sources]
        for out in args.out:
            if out.lower().endswith(".md"):
                with open(out, "w") as f:
                    f.write(make_markdown(sources) + "\n")
            else:
                fig = make_figure(sources)
                fig.savefig(out, dpi=110)
                import matplotlib.pyplot as plt
                plt.close(fig)
            print(f"wrote {out}")
    except ReportError as exc:
        msg = str(exc)
        raise SystemExit(msg if msg.startswith(PROG) else f"{PROG}: error: {msg}") from None
    except OSError as exc:
        raise SystemExit(f"{PROG}: error: {exc.filename or ''}: {exc.strerror or exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
