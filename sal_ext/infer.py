"""Localize actions with a trained SAL checkpoint.

    # one video: detections in seconds, optionally a results JSON and a figure
    python -m sal_ext.infer --checkpoint runs/x/best.pt --features video.npy [--out r.json] [--plot out.png]
    python -m sal_ext.infer --checkpoint runs/x/best.pt --rgb r.npy --flow f.npy --plot out.png --gt gt.json
    python -m sal_ext.infer --checkpoint CAS_Only.pkl --preset thumos14 --rgb r.npy --flow f.npy
    # straight from video files (I3D features made in memory, as python -m sal_ext.features does)
    python -m sal_ext.infer --checkpoint best.pt --video my.mp4 --rgb-weights R.pt --flow-weights F.pt
    python -m sal_ext.infer --checkpoint best.pt --videos DIR --rgb-weights R.pt --flow-weights F.pt --out r.json
    # a whole split of a data set: an ActivityNet results JSON (and its mAP when gt exists)
    python -m sal_ext.infer --checkpoint runs/x/best.pt --split-root DATA --out results.json
    # the same, sharded over N processes (each runs its share of the videos; rank 0 writes)
    torchrun --nproc_per_node N -m sal_ext.infer --checkpoint runs/x/best.pt --split-root DATA

The checkpoint is one written by sal_ext.train (it carries its config and class names) or
a reference state dict (lizhilin-ustc/SAL ``CAS_Only.pkl``, SAL_ActivityNet
``model_best.pth.tar``): then --preset says which network and inference settings to use.
Features: [T, D] in one .npy (--features; D = the model's feature_dim, RGB columns first),
or the two [T, D/2] halves (--rgb and --flow, the layout of THUMOS14 and of the built-in
synthetic set). The video is sampled uniformly to the preset's num_segments rows, as in
testing. Its name (--video-id, default the file name without .npy) keys the results JSON and
the ground truth that --plot draws from --gt.

Every flag combination either works or is refused in one line, and everything is checked
(inputs exist, outputs writable, matplotlib present for --plot) before the model is loaded.
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import torch

from . import distributed
from .config import PRESETS, apply_overrides, get_preset
from .checkpoint_fit import mismatch_message
from .config.schema import validate_config
from .features.flags import add_extraction_flags
from .file_kinds import describe, sniff
from .model import build_model, load_reference_state_dict
from . import train as _train
from .train import _message


def _user_error(msg) -> SystemExit:
    """A one-line message on stderr and exit status 1 for a mistake in the arguments or data."""
    return SystemExit(f"python -m sal_ext.infer: error: {' '.join(_message(msg).split())}")


# =============================================================================================
# checkpoint
# =============================================================================================
def load_checkpoint(path: str, preset: Optional[str], overrides: Sequence[str], device) -> tuple:
    """(model in eval mode, config) from our checkpoint or a reference state dict.

    A missing or unreadable file, something that is not a state dict, a bad --set or a state
    dict that does not fit the preset's network raise SystemExit with a one-line message."""
    _check_file(path, "--checkpoint")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch.load raises many kinds (unpickling, zip, EOF, ...)
        if getattr(exc, "errno", None) is None and sniff(path) not in ("zip", "pickle"):  # not an OS error
            raise _user_error(f"--checkpoint {path}: not a PyTorch checkpoint (torch.save's format): it is "
                              f"{describe(path)}") from None
        raise _user_error(f"--checkpoint: cannot read {path}: {exc}") from None
    if not isinstance(ck, Mapping):
        raise _user_error(f"--checkpoint {path} holds a {type(ck).__name__}, not a state dict or a "
                          "checkpoint of sal_ext.train")
    if "config" in ck and "model" in ck:
        cfg = copy.deepcopy(ck["config"])  # --set must not edit the checkpoint's own record
        if preset is not None:
            keep = ("model", "num_classes", "feature_dim", "num_segments", "class_names")
            cfg = {**get_preset(preset), **{k: cfg.get(k) for k in keep if k in cfg}}
    else:
        cfg = get_preset(preset or "thumos14")
    try:
        apply_overrides(cfg, overrides)
        validate_config(cfg)
    except (ValueError, KeyError, TypeError) as exc:
        raise _user_error(f"--set: {_message(exc)}" if overrides else f"--checkpoint {path}: {_message(exc)}") from None
    model = build_model(cfg)
    try:
        load_reference_state_dict(model, ck)
    except RuntimeError:  # load_state_dict: missing, unexpected or other-shaped tensors
        raise _user_error(mismatch_message(path, ck, cfg, model.state_dict(), preset, overrides)) from None
    except (ValueError, KeyError, AttributeError, TypeError) as exc:  # not a state dict of tensors
        raise _user_error(f"--checkpoint {path} is not a state dict of this network: {exc}") from None
    return model.to(device).eval(), cfg


def class_names_of(cfg: Dict[str, Any]) -> List[str]:
    if cfg.get("class_names"):
        return list(cfg["class_names"])
    if cfg["num_classes"] == 20:
        from .data import THUMOS14_CLASSES
        return list(THUMOS14_CLASSES)
    return [f"class_{i}" for i in range(cfg["num_classes"])]


# =============================================================================================
# features
# =============================================================================================
def _load(path: str, flag: str) -> np.ndarray:
    try:
        x = np.load(path)
    except (OSError, ValueError, EOFError) as exc:
        if getattr(exc, "errno", None) is None and sniff(path) != "npy":  # not an OS error: the content
            raise _user_error(f"{flag} {path}: not a NumPy .npy file: it is {describe(path)} (save the "
                              f"[T, D] array with np.save)") from None
        if "Object arrays" in str(exc):
            raise _user_error(f"{flag} {path}: holds Python objects (dtype object), not a [T, D] array of "
                              f"numbers") from None
        raise _user_error(f"{flag} {path}: cannot read it as a .npy array: {exc}") from None
    if isinstance(x, np.lib.npyio.NpzFile):
        keys = list(x.files)
        x.close()
        shown = ", ".join(repr(k) for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
        raise _user_error(f"{flag} {path}: an .npz archive of {len(keys)} array(s) ({shown}), not one .npy "
                          f"array: save the [T, D] one alone, e.g. np.save('x.npy', np.load({path!r})"
                          f"[{(keys or ['KEY'])[0]!r}])")
    if not isinstance(x, np.ndarray) or x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        shape = getattr(x, "shape", None)
        raise _user_error(f"{flag} {path}: expected a [T, D] array with T, D >= 1, got shape {shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise _user_error(f"{flag} {path}: expected real numbers, got dtype {x.dtype}")
    bad = ~np.isfinite(x)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise _user_error(f"{flag} {path}: holds NaN or Inf (first in row {row})")
    return x


def read_features(features: Optional[str], rgb: Optional[str], flow: Optional[str]) -> np.ndarray:
    """[T, D] float32 from --features, or --rgb and --flow side by side (RGB first)."""
    if features:
        x = _load(features, "--features")
    elif rgb and flow:
        r, f = _load(rgb, "--rgb"), _load(flow, "--flow")
        if r.shape[0] != f.shape[0]:
            raise _user_error(f"--rgb has {r.shape[0]} rows, --flow {f.shape[0]}: they must match")
        x = np.concatenate([r, f], axis=1)
    else:
        raise _user_error("give --features F.npy, or --rgb R.npy and --flow F.npy, or --split-root DIR")
    return np.ascontiguousarray(x, dtype=np.float32)


def check_feature_width(feats: np.ndarray, cfg: Dict[str, Any], flag: str) -> None:
    D = cfg["feature_dim"]
    if feats.shape[1] == D:
        return
    hint = ""
    if flag == "--features" and feats.shape[1] * 2 == D:
        hint = ("; this looks like one stream: give the RGB and flow files with --rgb R.npy "
                "--flow F.npy")
    elif flag == "--rgb/--flow":
        hint = f" ({feats.shape[1] // 2} + {feats.shape[1] - feats.shape[1] // 2})"
    raise _user_error(f"{flag}: the features have {feats.shape[1]} columns, the model expects {D} "
                      f"(RGB + flow){hint}")


def check_video_model(cfg: Dict[str, Any], flag: str) -> None:
    """Before extracting: the two I3D streams give 2 x 1024 columns; a model trained on
    other features is refused at once, not after minutes of extraction."""
    from .features.i3d import FEATURE_DIM
    if cfg["feature_dim"] != 2 * FEATURE_DIM:
        raise _user_error(f"{flag}: the model expects {cfg['feature_dim']} feature columns, the I3D "
                          f"extractor makes {2 * FEATURE_DIM} (RGB {FEATURE_DIM} + flow {FEATURE_DIM}); "
                          f"use a checkpoint trained on I3D features")


def uniform_rows(T: int, n: int) -> np.ndarray:
    """floor(i * T / n), i = 0..n-1 (the test-time sampling)."""
    return (np.arange(n, dtype=np.int64) * T) // n


@torch.no_grad()
def localize(model, cfg: Dict[str, Any], feats: np.ndarray, video_id: str = "video", device="cpu"):
    """Detections of one video: (list of {"label","score","segment"}, outputs, post)."""
    if feats.shape[1] != cfg["feature_dim"]:
        raise ValueError(f"features have {feats.shape[1]} columns, the model expects {cfg['feature_dim']}")
    T = feats.shape[0]
    x = torch.from_numpy(feats[uniform_rows(T, cfg["num_segments"])]).unsqueeze(0).to(device)
    out = {k: v.float().cpu() for k, v in model.predict(x).items()}
    post = _train.postprocess_outputs(out, torch.tensor([T]), [video_id], class_names_of(cfg), cfg)
    dets = post["results"]["results"].get(video_id, [])
    return sorted(dets, key=lambda d: -d["score"]), out, post


# =============================================================================================
# checks before any work
# =============================================================================================
def check_writable(path: str, flag: str) -> None:
    """`path` can be written: its folder exists and takes a new file, and it is not a folder."""
    if os.path.isdir(path):
        raise _user_error(f"{flag} {path}: is a folder, expected a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise _user_error(f"{flag} {path}: the folder {folder} does not exist")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
        if os.path.exists(path):
            with open(path, "ab"):
                pass
    except OSError as exc:
        raise _user_error(f"{flag} {path}: cannot write there ({exc.strerror or exc})") from None


def _check_file(path: str, flag: str) -> None:
    """`path` is an existing file (not a folder): else a one-line error saying which."""
    if os.path.isdir(path):
        raise _user_error(f"{flag} {path}: is a folder, expected a file")
    if not os.path.isfile(path):
        raise _user_error(f"{flag} {path}: no such file")


def check_flags(args: argparse.Namespace) -> None:
    """Refuses, in one line, every combination of flags that would not do what it says, and
    inputs that are missing or outputs that cannot be written."""
    _check_file(args.checkpoint, "--checkpoint")
    if args.video or args.videos:
        check_video_flags(args)
        return
    if args.rgb_weights or args.flow_weights:
        raise _user_error("--rgb-weights/--flow-weights make features from --video FILE or --videos DIR; "
                          "give one of those")
    if args.split_root:
        for flag in ("features", "rgb", "flow", "plot", "gt", "video_id", "top"):
            if getattr(args, flag) is not None:
                raise _user_error(f"--{flag.replace('_', '-')} is for one video; it cannot be combined "
                                  "with --split-root (which uses the split's own files and gt.json)")
        if not os.path.isdir(args.split_root):
            raise _user_error(f"--split-root {args.split_root}: no such folder")
        check_writable(args.out or "results.json", "--out")
        return
    if args.features and (args.rgb or args.flow):
        raise _user_error("--features cannot be combined with --rgb/--flow: give one [T, D] file "
                          "(--features) or the two halves (--rgb and --flow)")
    if bool(args.rgb) != bool(args.flow):
        raise _user_error(f"--{'rgb' if args.rgb else 'flow'} needs --{'flow' if args.rgb else 'rgb'} too")
    if not (args.features or args.rgb):
        raise _user_error("give --features F.npy, or --rgb R.npy and --flow F.npy, or --split-root DIR, "
                          "or --video FILE / --videos DIR")
    for flag in ("features", "rgb", "flow", "gt"):
        path = getattr(args, flag)
        if path is not None:
            _check_file(path, f"--{flag}")
    check_one_video_outputs(args)


def check_one_video_outputs(args: argparse.Namespace) -> None:
    """--out / --plot / --gt of one video: writable, a plot format, --gt only with --plot."""
    if args.gt and not args.plot:
        raise _user_error("--gt is drawn by --plot: give --plot FILE too")
    if args.out:
        check_writable(args.out, "--out")
    if args.plot:
        check_writable(args.plot, "--plot")
        from .plot import PlotError, check_plot_file
        try:
            check_plot_file(args.plot)
        except PlotError as exc:
            raise _user_error(exc) from None


def check_video_flags(args: argparse.Namespace) -> None:
    """--video FILE / --videos DIR: the feature flags are not for them, the weights are needed."""
    flag = "--video" if args.video else "--videos"
    if args.video and args.videos:
        raise _user_error("give --video FILE or --videos DIR, not both")
    for other in ("features", "rgb", "flow", "split_root"):
        if getattr(args, other) is not None:
            raise _user_error(f"--{other.replace('_', '-')} cannot be combined with {flag} (which makes the "
                              "features from the video)")
    for need in ("rgb_weights", "flow_weights"):
        if not getattr(args, need):
            raise _user_error(f"{flag} needs --{need.replace('_', '-')} (pytorch-i3d's "
                              f"{need.split('_')[0]}_imagenet.pt)")
    if args.video:
        _check_file(args.video, "--video")
    if args.videos:
        if not os.path.isdir(args.videos):
            raise _user_error(f"--videos {args.videos}: no such folder")
        for flag1 in ("plot", "gt", "video_id"):
            if getattr(args, flag1) is not None:
                raise _user_error(f"--{flag1.replace('_', '-')} is for one video (--video), not --videos")
        check_writable(args.out or "results.json", "--out")
        return
    check_one_video_outputs(args)


def video_features(args: argparse.Namespace, specs: List[str], device) -> tuple:
    """({name: [T, 2048] RGB + flow features}, {name: error line}) of the videos `specs`
    (files or folders), made in memory by sal_ext.features with the extraction flags."""
    try:
        from .features import require_video_extra
        require_video_extra()
        from .features.extract import build_networks, features_in_memory, find_videos
        from .features.flags import check_speed_flags, settings_from
        check_speed_flags(args)
        videos = find_videos(specs)
        if args.video and args.video_id:
            videos = [(args.video_id, videos[0][1])]
        nets, settings = build_networks(settings_from(args), args.rgb_weights, args.flow_weights, device,
                                        args.raft_weights)
    except (ValueError, ImportError, OSError) as exc:
        raise _user_error(exc) from None
    from .features.pipeline import default_workers
    workers = default_workers(len(videos), device) if args.workers is None else args.workers
    feats, errors = features_in_memory(videos, nets, settings, workers=workers, batch_size=args.batch_size,
                                       progress=not args.no_progress, report=not args.video)
    return {k: np.concatenate([r, f], axis=1) for k, (r, f, _) in feats.items()}, errors


def run_videos(args: argparse.Namespace, device) -> int:
    """--videos DIR: every video's detections into one results JSON (--out, default
    results.json); exit status 1 when a video failed (the others are written)."""
    from .inference import save_results
    model, cfg = load_checkpoint(args.checkpoint, args.preset, args.set, device)  # before any extraction
    check_video_model(cfg, "--videos")
    feats, errors = video_features(args, [args.videos], device)
    merged: Dict[str, Any] = {}
    results = None
    for vid in sorted(feats):
        check_feature_width(feats[vid], cfg, "--videos")
        dets, _, post = localize(model, cfg, feats[vid], video_id=vid, device=device)
        results = post["results"] if results is None else results
        merged[vid] = dets
        print(f"{vid}: {feats[vid].shape[0]} snippets, {len(dets)} detections")
    out_path = args.out or "results.json"
    if results is not None:
        save_results(dict(results, results=merged), out_path)
        print(f"{sum(len(d) for d in merged.values())} detections of {len(merged)} videos written to {out_path}")
    for vid in sorted(errors):
        print(f"failed: {errors[vid]}", file=sys.stderr)
    return 1 if errors else 0


def video_name(args: argparse.Namespace) -> str:
    if args.video_id:
        return args.video_id
    if args.video:
        return os.path.splitext(os.path.basename(args.video))[0]
    base = os.path.basename(args.features or args.rgb)
    return base[:-4] if base.endswith(".npy") else base


def ground_truth_of(path: str, video_id: str) -> List[Dict[str, Any]]:
    """The annotations of `video_id` in the gt.json at `path` (one-line errors)."""
    from .data import load_ground_truth
    try:
        db = load_ground_truth(path)["database"]
    except (ValueError, OSError) as exc:
        raise _user_error(f"--gt {path}: {exc}") from None
    if video_id not in db:
        raise _user_error(f"--gt {path}: no video {video_id!r} in it (name the video with --video-id)")
    return list(db[video_id].get("annotations", []))


# =============================================================================================
# whole split
# =============================================================================================
def run_split(model, cfg, root: str, out_path: Optional[str], device,
              batch_size: Optional[int] = None) -> Dict[str, Any]:
    """Whole test split of `root` (the preset's data set): results JSON, and mAP from its gt.
    Under torchrun every rank runs its share of the videos and rank 0 writes `out_path`
    (the other ranks' records have "results" None). batch_size: videos per forward call,
    default the config's train.eval_batch_size (as in training's evaluations, whose numbers
    it then reproduces exactly), else 16."""
    if batch_size is None:
        batch_size = int(cfg.get("train", {}).get("eval_batch_size") or 16)
    from .inference import save_results
    cfg = dict(cfg, data_root=root)
    if not os.path.isdir(root):
        raise _user_error(f"--split-root {root}: no such folder")
    try:
        ds = _train.build_split(cfg, cfg["train"]["test_split"], "uniform")
        rec = _train.evaluate_split(model, ds, cfg, device, batch_size=batch_size)
    except (ValueError, OSError) as exc:
        raise _user_error(exc) from None
    if out_path and rec["results"] is not None:   # torchrun: rank 0 writes
        save_results(rec["results"], out_path)
    return rec


# =============================================================================================
# command line
# =============================================================================================
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
    p.add_argument("--video-id", help="the video's name in --out and --gt (default: the file name without .npy)")
    p.add_argument("--plot", help="save a figure (CAS, actionness, detections) to this file (.png, .pdf, "
                                  ".svg, ...); needs matplotlib: pip install 'sal_ext[plot]'")
    p.add_argument("--gt", help="ground-truth JSON (ActivityNet format, e.g. the data set's gt.json): "
                                "--plot draws the video's ground-truth segments")
    p.add_argument("--top", type=_train._nonnegative_int, default=None,
                   help="detections to print and plot (default 20)")
    p.add_argument("--split-root", help="run over the test split of this data folder (under torchrun: "
                                           "sharded over the processes, rank 0 writes --out)")
    p.add_argument("--out", help="results JSON (ActivityNet format) to write; with --split-root the "
                                 "default is results.json")
    p.add_argument("--device", choices=["cpu", "cuda"])
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    v = p.add_argument_group("from video files (needs the [video] extra; see python -m sal_ext.features)")
    v.add_argument("--video", help="a video file: its I3D features are made in memory, then as --features")
    v.add_argument("--videos", help="a folder of video files: every video's detections into --out "
                                    "(default results.json)")
    add_extraction_flags(v, weights_required=False, flow_flag="--flow-method")
    return p.parse_args(argv)


def main(argv=None) -> int:
    """The command line; with --split-root under torchrun, one process of the job."""
    with distributed.job("python -m sal_ext.infer"):
        return _main(argv)


def _main(argv=None) -> int:
    args = parse_args(argv)
    from .ops._common import default_backend
    try:
        default_backend()                       # SAL_EXT_BACKEND
    except ValueError as exc:
        raise _user_error(exc) from None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise _user_error("--device cuda: no CUDA device is available to torch")
    check_flags(args)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if distributed.launched() and not args.split_root:
        raise _user_error("under torchrun only --split-root runs sharded; run one video without torchrun")
    try:
        device = distributed.init(device).device   # torchrun: join the job (else unchanged)
    except ValueError as exc:
        raise _user_error(exc) from None
    if args.videos:
        return run_videos(args, device)
    if args.split_root:
        model, cfg = load_checkpoint(args.checkpoint, args.preset, args.set, device)
        out_path = args.out or "results.json"
        rec = run_split(model, cfg, args.split_root, out_path, device)
        if not distributed.current().is_main:
            return 0
        print(_train.format_table(rec, f"mAP (%) on {args.split_root}"))
        print(f"{rec['num_detections']} detections written to {out_path}")
        return 0

    vid = video_name(args)
    gt = ground_truth_of(args.gt, vid) if args.gt else None
    model, cfg = load_checkpoint(args.checkpoint, args.preset, args.set, device)  # before any extraction
    if args.video:
        check_video_model(cfg, "--video")
        made, errors = video_features(args, [args.video], device)
        if errors:
            raise _user_error(next(iter(errors.values())))
        feats = made[vid]
    else:
        feats = read_features(args.features, args.rgb, args.flow)
    check_feature_width(feats, cfg, "--video" if args.video else "--features" if args.features else "--rgb/--flow")
    try:
        dets, out, post = localize(model, cfg, feats, video_id=vid, device=device)
    except ValueError as exc:
        raise _user_error(exc) from None
    top = 20 if args.top is None else args.top
    names = class_names_of(cfg)
    pred = [names[c] for c in np.nonzero(np.asarray(post["pred_multi_hot"])[0])[0]]
    print(f"{vid}: {feats.shape[0]} snippets; predicted classes: {', '.join(pred)}; {len(dets)} detections")
    print(f"{'label':<24}{'start (s)':>10}{'end (s)':>10}{'score':>9}")
    for d in dets[:top]:
        print(f"{d['label']:<24}{d['segment'][0]:>10.2f}{d['segment'][1]:>10.2f}{d['score']:>9.4f}")
    if args.out:
        from .inference import save_results
        save_results(post["results"], args.out)
        print(f"{len(dets)} detections written to {args.out}")
    if args.plot:
        from .plot import plot_video
        try:
            plot_video(args.plot, out, post, dets, cfg, feats.shape[0], top=top, video_id=vid, gt=gt,
                       class_names=names)
        except (OSError, ValueError) as exc:
            raise _user_error(f"--plot {args.plot}: {exc}") from None
        print(f"figure saved to {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
