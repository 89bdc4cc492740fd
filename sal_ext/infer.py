"""Localize actions with a trained SAL checkpoint.

    # one video: detections in seconds, optionally a figure
    python -m sal_ext.infer --checkpoint runs/x/best.pt --features video.npy [--plot out.png]
    python -m sal_ext.infer --checkpoint CAS_Only.pkl --preset thumos14 --rgb r.npy --flow f.npy
    # a whole split of a data set: an ActivityNet results JSON (and its mAP when gt exists)
    python -m sal_ext.infer --checkpoint runs/x/best.pt --split-root DATA --out results.json
    # the same, sharded over N processes (each runs its share of the videos; rank 0 writes)
    torchrun --nproc_per_node N -m sal_ext.infer --checkpoint runs/x/best.pt --split-root DATA

The checkpoint is one written by sal_ext.train (it carries its config and class names) or
a reference state dict (lizhilin-ustc/SAL ``CAS_Only.pkl``, SAL_ActivityNet
``model_best.pth.tar``): then --preset says which network and inference settings to use.
Features: [T, 2048] (RGB first) in one .npy, or [T, 1024] RGB and flow files. The video is
sampled uniformly to the preset's num_segments rows, as in testing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch

from . import distributed
from .config import PRESETS, apply_overrides, get_preset
from .model import build_model, load_reference_state_dict
from . import train as _train
from .train import _message


def load_checkpoint(path: str, preset: Optional[str], overrides: Sequence[str], device) -> tuple:
    """(model in eval mode, config) from our checkpoint or a reference state dict.

    A missing or unreadable file, a bad --set or a state dict that does not fit the preset's
    network raise SystemExit with a one-line message."""
    if not os.path.isfile(path):
        raise _user_error(f"--checkpoint {path}: no such file")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises many kinds (unpickling, zip, EOF, ...)
        raise _user_error(f"--checkpoint: cannot read {path}: {exc}") from None
    if isinstance(ck, dict) and "config" in ck and "model" in ck:
        cfg = ck["config"]
        if preset is not None:
            keep = ("model", "num_classes", "feature_dim", "num_segments", "class_names")
            cfg = {**get_preset(preset), **{k: cfg.get(k) for k in keep}}
    else:
        cfg = get_preset(preset or "thumos14")
    try:
        apply_overrides(cfg, overrides)
        model = build_model(cfg)
    except (ValueError, KeyError, TypeError) as exc:
        raise _user_error(f"--set: {_message(exc)}") from None
    try:
        load_reference_state_dict(model, ck)
    except (ValueError, KeyError, RuntimeError) as exc:  # a state dict of another network
        what = "" if preset else " (a reference state dict needs the matching --preset)"
        raise _user_error(f"--checkpoint {path} does not fit the network{what}: {exc}") from None
    return model.to(device).eval(), cfg


def _user_error(msg) -> SystemExit:
    """A one-line message on stderr and exit status 1 for a mistake in the arguments or data."""
    return SystemExit(f"python -m sal_ext.infer: error: {' '.join(_message(msg).split())}")


def class_names_of(cfg: Dict[str, Any]) -> List[str]:
    if cfg.get("class_names"):
        return list(cfg["class_names"])
    if cfg["num_classes"] == 20:
        from .data import THUMOS14_CLASSES
        return list(THUMOS14_CLASSES)
    return [f"class_{i}" for i in range(cfg["num_classes"])]


def _load(path: str) -> np.ndarray:
    try:
        return np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        raise SystemExit(f"cannot read features {path}: {exc}")


def read_features(features: Optional[str], rgb: Optional[str], flow: Optional[str]) -> np.ndarray:
    if features:
        x = _load(features)
    elif rgb and flow:
        r, f = _load(rgb), _load(flow)
        if r.shape[0] != f.shape[0]:
            raise SystemExit(f"--rgb has {r.shape[0]} rows, --flow {f.shape[0]}")
        x = np.concatenate([r, f], axis=1)
    else:
        raise SystemExit("give --features F.npy, or --rgb R.npy and --flow F.npy, or --split-root DIR")
    if x.ndim != 2 or x.shape[0] < 1:
        raise SystemExit(f"features must be [T, D], got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def uniform_rows(T: int, n: int) -> np.ndarray:
    """floor(i * T / n), i = 0..n-1 (the test-time sampling)."""
    return (np.arange(n, dtype=np.int64) * T) // n


@torch.no_grad()
def localize(model, cfg: Dict[str, Any], feats: np.ndarray, video_id: str = "video", device="cpu"):
    """Detections of one video: (list of {"label","score","segment"}, outputs, post)."""
    if feats.shape[1] != cfg["feature_dim"]:
        raise SystemExit(f"features have {feats.shape[1]} columns, the model expects {cfg['feature_dim']}")
    T = feats.shape[0]
    x = torch.from_numpy(feats[uniform_rows(T, cfg["num_segments"])]).unsqueeze(0).to(device)
    out = {k: v.float().cpu() for k, v in model.predict(x).items()}
    post = _train.postprocess_outputs(out, torch.tensor([T]), [video_id], class_names_of(cfg), cfg)
    dets = post["results"]["results"].get(video_id, [])
    return sorted(dets, key=lambda d: -d["score"]), out, post


def plot_video(path: str, out: Dict[str, torch.Tensor], post, dets, cfg, t_orig: int, top: int = 10) -> None:
    """CAS (softmax) of the predicted classes, actionness and the top detections over time."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = class_names_of(cfg)
    inf = cfg["inference"]
    T = out["cas"].shape[1]
    secs = np.arange(T) * t_orig / T * inf["frames_per_snippet"] / inf["fps"]
    pred = np.nonzero(np.asarray(post["pred_multi_hot"])[0])[0]
    prob = torch.softmax(out["cas"][0], -1).numpy()
    fig, axes = plt.subplots(3, 1, figsize=(12, 7), sharex=True)
    for c in pred:
        axes[0].plot(secs, prob[:, c], label=names[c])
    axes[0].set_ylabel("CAS (softmax)")
    axes[0].legend(loc="upper right", fontsize=8)
    lam = cfg["model"]["fusion_lambda"]
    a_rgb, a_flow = out["a_rgb"][0].numpy(), out["a_flow"][0].numpy()
    axes[1].plot(secs, a_rgb, label="RGB", alpha=0.6)
    axes[1].plot(secs, a_flow, label="flow", alpha=0.6)
    axes[1].plot(secs, (1 - lam) * a_flow + lam * a_rgb, label="fused", color="k")
    axes[1].set_ylabel("actionness")
    axes[1].set_ylim(0, 1)
    axes[1].legend(loc="upper right", fontsize=8)
    shown = dets[:top]
    labels = sorted({d["label"] for d in shown})
    colors = {lab: plt.cm.tab10(i % 10) for i, lab in enumerate(labels)}
    for rank, d in enumerate(shown):          # one row per detection, best on top
        s, e = d["segment"]
        axes[2].barh(rank, e - s, left=s, height=0.7, color=colors[d["label"]])
        axes[2].text(e, rank, f" {d['score']:.2f}", va="center", fontsize=7)
    axes[2].set_yticks(range(len(shown)))
    axes[2].set_yticklabels([d["label"] for d in shown], fontsize=7)
    axes[2].invert_yaxis()
    axes[2].set_xlabel("time (s)")
    axes[2].set_title(f"top {min(top, len(dets))} detections", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_split(model, cfg, root: str, out_path: Optional[str], device,
              batch_size: Optional[int] = None) -> Dict[str, Any]:
    """Whole test split of `root` (the preset's data set): results JSON, and mAP from its gt.
    Under torchrun every rank runs its share of the videos and rank 0 writes `out_path`
    (the other ranks' records have "results" None). batch_size: videos per forward call,
    default the config's train.eval_batch_size (as in training's evaluations, whose numbers
    it then reproduces exactly), else 16."""
    if batch_size is None:
        batch_size = int(cfg.get("train", {}).get("eval_batch_size") or 16)
    cfg = dict(cfg, data_root=root)
    if not os.path.isdir(root):
        raise _user_error(f"--split-root {root}: no such folder")
    try:
        ds = _train.build_split(cfg, cfg["train"]["test_split"], "uniform")
    except (ValueError, OSError) as exc:
        raise _user_error(exc) from None
    rec = _train.evaluate_split(model, ds, cfg, device, batch_size=batch_size)
    if out_path and rec["results"] is not None:
        with open(out_path, "w") as f:
            json.dump(rec["results"], f)
    return rec


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m sal_ext.infer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--preset", choices=sorted(PRESETS),
                   help="settings for a reference checkpoint (default thumos14), or to change "
                        "the inference settings of one of ours")
    p.add_argument("--features", help="[T, D] .npy, RGB columns first (D = the model's feature_dim, "
                                      "2048 for THUMOS14)")
    p.add_argument("--rgb", help="[T, D/2] RGB .npy (with --flow)")
    p.add_argument("--flow", help="[T, D/2] flow .npy (with --rgb)")
    p.add_argument("--plot", help="save a figure (CAS, actionness, detections) to this file")
    p.add_argument("--top", type=_train._nonnegative_int, default=20, help="detections to print and plot (default 20)")
    p.add_argument("--split-root", help="run over the test split of this data folder (under torchrun: "
                                           "sharded over the processes, rank 0 writes --out)")
    p.add_argument("--out", help="results JSON path (with --split-root; default results.json)")
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """The command line; with --split-root under torchrun, one process of the job."""
    with distributed.job("python -m sal_ext.infer"):
        return _main(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise _user_error("--device cuda: no CUDA device is available to torch")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if distributed.launched() and not args.split_root:
        raise _user_error("under torchrun only --split-root runs sharded; run one video without torchrun")
    try:
        device = distributed.init(device).device   # torchrun: join the job (else unchanged)
    except ValueError as exc:
        raise _user_error(exc) from None
    model, cfg = load_checkpoint(args.checkpoint, args.preset, args.set, device)
    if args.split_root:
        out_path = args.out or "results.json"
        rec = run_split(model, cfg, args.split_root, out_path, device)
        if not distributed.current().is_main:
            return 0
        print(_train.format_table(rec, f"mAP (%) on {args.split_root}"))
        print(f"{rec['num_detections']} detections written to {out_path}")
        return 0
    feats = read_features(args.features, args.rgb, args.flow)
    dets, out, post = localize(model, cfg, feats, device=device)
    names = class_names_of(cfg)
    pred = [names[c] for c in np.nonzero(np.asarray(post["pred_multi_hot"])[0])[0]]
    print(f"{feats.shape[0]} snippets; predicted classes: {', '.join(pred)}; {len(dets)} detections")
    print(f"{'label':<24}{'start (s)':>10}{'end (s)':>10}{'score':>9}")
    for d in dets[:args.top]:
        print(f"{d['label']:<24}{d['segment'][0]:>10.2f}{d['segment'][1]:>10.2f}{d['score']:>9.4f}")
    if args.plot:
        plot_video(args.plot, out, post, dets, cfg, feats.shape[0], top=args.top)
        print(f"figure saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
