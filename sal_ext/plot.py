"""The figure of one video (``python -m sal_ext.infer --plot out.png [--gt gt.json]``).

Three panels over time (seconds): the class activation (softmax over classes) of the
predicted classes, the RGB / flow / fused actionness, and one row per class with its
detections (opacity: score) and, when a ground truth is given, its ground-truth segments.
Each class has one colour throughout and its name appears once, on its row. matplotlib is an
optional dependency: ``pip install 'sal_ext[plot]'``.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

INSTALL_HINT = "pip install 'sal_ext[plot]'"


class PlotError(ValueError):
    """--plot cannot work (matplotlib missing, unknown file type); one line."""


def require_matplotlib():
    """matplotlib.pyplot on the Agg backend, or PlotError naming the [plot] extra."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError(f"--plot needs matplotlib, which is not installed: {INSTALL_HINT}") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def check_plot_file(path: str) -> None:
    """matplotlib is there and can write `path`'s file type (by its extension)."""
    require_matplotlib()
    from matplotlib.backend_bases import FigureCanvasBase
    types = FigureCanvasBase.get_supported_filetypes()
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in types:
        raise PlotError(f"--plot {path}: the file name must end in one of "
                        f"{', '.join('.' + t for t in sorted(types))}")


def _class_colors(classes: Sequence[str], plt) -> Dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    return {c: cmap(i % cmap.N) for i, c in enumerate(classes)}


def _lanes(dets: List[Dict[str, Any]]) -> List[List[Dict[str, Any]]]:
    """Detections of one class packed into lanes of non-overlapping segments, best first."""
    lanes: List[List[Dict[str, Any]]] = []
    for d in sorted(dets, key=lambda d: -d["score"]):
        s, e = d["segment"]
        for lane in lanes:
            if all(e <= o["segment"][0] or s >= o["segment"][1] for o in lane):
                lane.append(d)
                break
        else:
            lanes.append([d])
    return lanes


def plot_video(path: str, out: Dict[str, torch.Tensor], post, dets: List[Dict[str, Any]], cfg: Dict[str, Any],
               t_orig: int, *, top: int = 20, video_id: str = "video",
               gt: Optional[List[Dict[str, Any]]] = None, class_names: Sequence[str] = ()) -> None:
    """Writes the figure of one video to `path` (see the module doc).

    out: model.predict outputs of the video (batch of 1); post: its postprocess() result;
    dets: its detections, best first; t_orig: its feature rows; gt: its annotations
    [{"label", "segment": [s, e]}] or None."""
    plt = require_matplotlib()

    inf = cfg["inference"]
    T = out["cas"].shape[1]
    sec_per_row = inf["frames_per_snippet"] / inf["fps"]
    duration = t_orig * sec_per_row
    secs = (np.arange(T) + 0.5) * t_orig / T * sec_per_row          # centre of each sampled row
    names = list(class_names)
    pred = [int(c) for c in np.nonzero(np.asarray(post["pred_multi_hot"])[0])[0]]
    scores = np.asarray(post["video_scores"])[0]
    pred.sort(key=lambda c: -scores[c])
    shown = dets[:top]
    gt = list(gt or [])
    # rows: predicted classes (best video score first), then other detected or annotated classes
    rows: List[str] = [names[c] for c in pred]
    for lab in [d["label"] for d in shown] + [a["label"] for a in gt]:
        if lab not in rows:
            rows.append(lab)
    colors = _class_colors(rows, plt)

    n_lanes = sum(len(_lanes([d for d in shown if d["label"] == lab])) + bool(gt) for lab in rows)
    ratios = [2.0, 1.6, max(1.2, 0.22 * (n_lanes + 0.5 * len(rows)) + 0.5)]   # inches of each panel
    fig, axes = plt.subplots(3, 1, figsize=(12, 1.2 + sum(ratios)), sharex=True,
                             gridspec_kw={"height_ratios": ratios})
    pred_names = ", ".join(f"{names[c]} ({scores[c]:.2f})" for c in pred)
    fig.suptitle(f"{video_id}", fontsize=14, fontweight="bold")
    axes[0].set_title(f"{t_orig} snippets, {duration:.1f} s; predicted: {pred_names}", fontsize=10)

    prob = torch.softmax(out["cas"][0].float(), -1).numpy()
    for c in pred:
        axes[0].plot(secs, prob[:, c], color=colors[names[c]], lw=1.6)
    axes[0].set_ylabel("class activation\n(softmax)", fontsize=9)
    axes[0].set_ylim(0, 1.02)
    axes[0].grid(alpha=0.3)

    lam = cfg["model"]["fusion_lambda"]
    a_rgb, a_flow = out["a_rgb"][0].numpy(), out["a_flow"][0].numpy()
    axes[1].plot(secs, a_rgb, label="RGB", color="tab:orange", alpha=0.7, lw=1)
    axes[1].plot(secs, a_flow, label="flow", color="tab:blue", alpha=0.7, lw=1)
    axes[1].plot(secs, (1 - lam) * a_flow + lam * a_rgb, label="fused", color="k", lw=1.6)
    axes[1].set_ylabel("actionness", fontsize=9)
    axes[1].set_ylim(0, 1.3)                  # the band above 1 holds the legend
    axes[1].set_yticks([0, 0.5, 1])
    axes[1].grid(alpha=0.3)
    axes[1].legend(loc="upper right", fontsize=8, ncol=3, framealpha=0.9)

    ax = axes[2]
    top_score = max([d["score"] for d in shown] + [1e-12])
    y = 0.0
    ticks = []
    for lab in rows:                           # one block per class: a ground-truth lane, then
        lanes = _lanes([d for d in shown if d["label"] == lab])      # its detections' lanes
        start = y
        if gt:
            for a in gt:
                if a["label"] == lab:
                    s, e = a["segment"]
                    ax.barh(y + 0.5, e - s, left=s, height=0.45, color="k")
            y += 1
        for lane in lanes:
            for d in lane:
                s, e = d["segment"]
                ax.barh(y + 0.5, e - s, left=s, height=0.8, color=colors[lab], edgecolor="none",
                        alpha=0.2 + 0.8 * max(0.0, d["score"]) / top_score)
                if e - s > 0.04 * duration:
                    ax.text(s + 0.005 * duration, y + 0.5, f"{d['score']:.2f}", va="center",
                            fontsize=7, color="k")
            y += 1
        y = max(y, start + 1)
        ticks.append((start + y) / 2)
        ax.axhline(y + 0.25, color="0.8", lw=0.8)
        y += 0.5
    ax.set_yticks(ticks)
    ax.set_yticklabels(rows, fontsize=9)
    for tick, lab in zip(ax.get_yticklabels(), rows):
        tick.set_color(colors[lab])
        tick.set_fontweight("bold")
    ax.set_ylim(max(y - 0.25, 1), 0)
    ax.grid(axis="x", alpha=0.3)
    what = f"top {len(shown)} of {len(dets)} detections (bars, opacity and label = score)"
    ax.set_title(what + ("; ground truth: black bars, first line of each class" if gt else ""), fontsize=10)
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, duration)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
