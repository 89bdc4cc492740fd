"""The work of ``python -m sal_ext.features`` (to files, resumable, sharded under torchrun) and of
``python -m sal_ext.infer --video`` (in memory): finding the videos, loading the networks,
running the pipeline, writing and summarising.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from dataclasses import replace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from . import outputs, pipeline
from .i3d import load_i3d
from .settings import Settings

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts",
                    ".flv", ".wmv", ".3gp", ".ogv")


def find_videos(specs: Sequence[str]) -> List[Tuple[str, str]]:
    """[(name, path)] of the files given and of the video files (by extension) in the folders
    given, in name order; the name is the file name without its extension. ValueError (one
    line) for a missing path, an empty folder, or two videos with one name."""
    found: List[Tuple[str, str]] = []
    for spec in specs:
        if os.path.isdir(spec):
            files = sorted(f for f in os.listdir(spec)
                           if f.lower().endswith(VIDEO_EXTENSIONS) and os.path.isfile(os.path.join(spec, f)))
            if not files:
                raise ValueError(f"--videos {spec}: no video files in this folder "
                                 f"(looked for {', '.join(VIDEO_EXTENSIONS)})")
            found += [(os.path.splitext(f)[0], os.path.join(spec, f)) for f in files]
        elif os.path.isfile(spec):
            found.append((os.path.splitext(os.path.basename(spec))[0], spec))
        else:
            raise ValueError(f"--videos {spec}: no such file or folder")
    seen: Dict[str, str] = {}
    for name, path in found:
        if name in seen and os.path.abspath(seen[name]) != os.path.abspath(path):
            raise ValueError(f"--videos: {seen[name]} and {path} both have the name {name!r} "
                             "(features are named after the file): rename one")
        seen.setdefault(name, path)
    return sorted({n: p for n, p in reversed(found)}.items())


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_networks(settings: Settings, rgb_weights: str, flow_weights: str, device,
                   raft_weights: Optional[str] = None) -> Tuple[pipeline.Networks, Settings]:
    """The networks on `device`, and the settings completed with the weights' sha256 (and RAFT's).
    ValueError (one line) for a weight file that is missing or does not fit; ImportError (one
    line) for --flow raft without torchvision."""
    settings.check()
    device = torch.device(device)
    if settings.dtype == "float16" and device.type != "cuda":
        raise ValueError("--dtype float16 is for --device cuda (CPU convolutions in half precision are slow "
                         "or missing); use float32 on CPU")
    rgb, flow = load_i3d(rgb_weights, "rgb"), load_i3d(flow_weights, "flow")
    raft = None
    done = replace(settings, rgb_weights=sha256_of(rgb_weights), flow_weights=sha256_of(flow_weights))
    if settings.flow == "raft":
        from .raft import RAFT
        raft = RAFT(device, raft_weights)
        done = replace(done, flow_params={"model": "torchvision raft_large", "iterations": raft.iterations,
                                          "weights": sha256_of(raft.path)})
    return pipeline.Networks(rgb, flow, done, device, raft), done


class Progress:
    """A tqdm bar over videos with the frames/s through the networks (stderr), or nothing."""

    def __init__(self, total: int, enabled: bool, desc: str = "features"):
        self.bar = None
        self.frames, self.t0 = 0, time.perf_counter()
        if enabled and total:
            from tqdm import tqdm
            self.bar = tqdm(total=total, unit="video", desc=desc, file=sys.stderr, dynamic_ncols=True)

    def add_frames(self, n: int) -> None:
        self.frames += n
        if self.bar is not None:
            dt = time.perf_counter() - self.t0
            self.bar.set_postfix_str(f"{self.frames / dt:.1f} frames/s" if dt > 0 else "", refresh=True)

    def video_done(self) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def write(self, line: str) -> None:
        if self.bar is not None:
            self.bar.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _entry(split: str, path: str, rgb: np.ndarray, info: Dict) -> Dict:
    return {"split": split, "T": int(rgb.shape[0]), "source": os.path.abspath(path),
            "frames": info.get("frames"), "decoded_frames": info.get("decoded_frames"),
            "source_fps": info.get("source_fps"), "width": info.get("width"), "height": info.get("height"),
            "duration_s": info.get("duration_s")}


def features_in_memory(videos: Sequence[Tuple[str, str]], nets: pipeline.Networks, settings: Settings, *,
                       workers: int = 1, batch_size: int = 8, progress: bool = False,
                       report: bool = True) -> Tuple[Dict[str, Tuple], Dict[str, str]]:
    """({name: (rgb [T, 1024], flow [T, 1024], info)}, {name: error line}) of `videos`;
    report: also print each error line (on stderr) when it happens."""
    feats: Dict[str, Tuple] = {}
    errors: Dict[str, str] = {}
    bar = Progress(len(videos), progress)

    def on_video(name, rgb, flow, info):
        feats[name] = (rgb, flow, info)
        bar.video_done()

    def on_error(name, msg):
        errors[name] = msg
        if report:
            bar.write(f"error: {msg}")
        bar.video_done()

    try:
        pipeline.run(videos, settings, nets, on_video, on_error, workers=workers,
                     piece_chunks=batch_size, on_frames=bar.add_frames)
    finally:
        bar.close()
    return feats, errors


def extract_to_folder(out: str, split: str, videos: Sequence[Tuple[str, str]], nets: pipeline.Networks,
                      settings: Settings, *, workers: int = 1, batch_size: int = 8, overwrite: bool = False,
                      progress: bool = True, record: Optional[Dict] = None, write_record: bool = True) -> Dict:
    """Extracts `videos` into the THUMOS14 layout under `out` (:mod:`.outputs`), skipping those
    already done with these settings unless `overwrite`. Returns {"done": [...], "skipped":
    [...], "failed": {name: line}, "entries": {name: features.json entry}}.

    `record` is features.json's content to extend (read and checked by the caller);
    write_record False: features.json is left to the caller (torchrun: rank 0 merges)."""
    settings_json = settings.to_json()
    record = record if record is not None else {"settings": settings_json, "videos": {}}
    todo, skipped = [], []
    for name, path in videos:
        if not overwrite and outputs.is_done(out, split, name, record["videos"].get(outputs.record_key(split, name))):
            skipped.append(name)
        else:
            todo.append((name, path))
    result = {"done": [], "skipped": skipped, "failed": {}, "entries": {}}
    bar = Progress(len(todo), progress)
    paths = dict(videos)

    def on_video(name, rgb, flow, info):
        dst = outputs.feature_paths(out, split, name)
        outputs.save_npy(dst["rgb"], rgb)
        outputs.save_npy(dst["flow"], flow)
        entry = _entry(split, paths[name], rgb, info)
        key = outputs.record_key(split, name)
        record["videos"][key] = result["entries"][key] = entry
        if write_record:
            outputs.save_json(os.path.join(out, outputs.FEATURES_JSON), record)
        result["done"].append(name)
        bar.video_done()

    def on_error(name, msg):
        result["failed"][name] = msg
        bar.write(f"error: {msg}")
        bar.video_done()

    if write_record:
        outputs.save_json(os.path.join(out, outputs.FEATURES_JSON), record)
    try:
        pipeline.run(todo, settings, nets, on_video, on_error, workers=workers,
                     piece_chunks=batch_size, on_frames=bar.add_frames)
    finally:
        bar.close()
    return result
