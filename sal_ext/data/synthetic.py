"""A synthetic THUMOS14-like feature set: same layout, I3D-like features, known ground truth.

The features imitate two-stream I3D snippets (non-negative, ReLU of Gaussians, 1024 RGB +
1024 flow columns, temporally correlated). Each video has a background scene and 1-2 action
classes with several instances of 5-30 snippets. Per snippet, in units of the noise's
standard deviation along the signal's direction:

* inside an instance: the class's appearance (RGB, strong) and motion pattern (flow), a
  generic actionness motion (flow, strong) and a weak generic appearance (RGB);
* near an instance (a few snippets before/after) and, weaker, anywhere in a video of that
  class: class *context* (RGB, correlated with the class appearance), and the scene, which
  depends on the class most of the time (e.g. a pool for diving);
* in the background: short bursts of generic motion without an action (camera motion).

So a linear classifier on mean features separates the classes easily, the actions can be
found from the features, and localisation is harder than classification (context and
distractor motion sit outside the annotated segments). Deterministic from the seed.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import shutil
import tempfile
from typing import Optional

import numpy as np

from .classes import THUMOS14_CLASSES

__all__ = ["write_synthetic_thumos", "ensure_synthetic", "SYNTHETIC_VERSION"]

SYNTHETIC_VERSION = 1
_PARAMS_FILE = "synthetic_params.json"

# Signal strengths, in noise standard deviations along each unit direction (pre-ReLU).
_SNR = {
    "rgb_class": 5.0,      # class appearance inside actions
    "rgb_generic": 1.5,    # generic "person acting" appearance inside actions
    "rgb_context": 1.8,    # class context next to actions (decays over a few snippets)
    "rgb_bg_context": 1.0, # class context anywhere in a video of that class
    "rgb_scene": 2.0,      # the video's scene
    "flow_generic": 4.0,   # generic actionness motion inside actions
    "flow_class": 2.5,     # class motion pattern inside actions
    "flow_context": 0.6,   # class motion next to actions
    "flow_distractor": 2.5,  # background motion bursts
    "flow_scene": 1.0,     # camera motion style of the scene
}
_BIAS = -0.2        # pre-ReLU offset (about 40% zeros, like I3D features)
_RHO = 0.5          # temporal correlation of the noise between adjacent snippets
_NUM_SCENES = 6
_CONTEXT_SPAN = 6   # snippets of context before/after an instance


def _unit_rows(rng, n, d):
    v = rng.standard_normal((n, d))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def _coverage(T, start, end):
    """Fraction of each snippet [t, t+1) covered by [start, end) (snippet units)."""
    t = np.arange(T, dtype=np.float64)
    return np.clip(np.minimum(t + 1.0, end) - np.maximum(t, start), 0.0, 1.0)


def _place_instances(rng, T, n_classes_video):
    """Non-overlapping instances [(start, end)] in snippet units (fractional), 5-30 snippets long."""
    fraction = rng.uniform(0.2, 0.45)
    lengths = []
    budget = fraction * T
    while sum(lengths) < budget or len(lengths) < n_classes_video:
        lengths.append(int(np.clip(np.round(rng.lognormal(np.log(12.0), 0.45)), 5, 30)))
    min_gap = 3
    while len(lengths) > n_classes_video and sum(lengths) + min_gap * (len(lengths) + 1) > T:
        lengths.pop()
    lengths = np.array(lengths, dtype=np.float64)
    spare = T - lengths.sum() - min_gap * (len(lengths) + 1)
    if spare < 0:  # very short video: shrink the instances
        lengths *= max(T - min_gap * (len(lengths) + 1), len(lengths)) / lengths.sum()
        spare = 0.0
    gaps = min_gap + spare * rng.dirichlet(np.ones(len(lengths) + 1))
    out, pos = [], 0.0
    for k, L in enumerate(lengths):
        pos += gaps[k]
        s = pos + rng.uniform(-0.45, 0.45)
        e = pos + L + rng.uniform(-0.45, 0.45)
        out.append((max(0.0, s), min(float(T), e)))
        pos += L
    return out


class _World:
    """The prototypes shared by all videos of one synthetic set."""

    def __init__(self, seed, num_classes, feature_dim):
        rng = np.random.default_rng([seed, 0])
        d = feature_dim // 2
        self.d = d
        self.C = num_classes
        self.rgb_class = _unit_rows(rng, num_classes, d)
        ctx = 0.6 * self.rgb_class + 0.8 * _unit_rows(rng, num_classes, d)
        self.rgb_context = (ctx / np.linalg.norm(ctx, axis=1, keepdims=True)).astype(np.float32)
        self.rgb_generic = _unit_rows(rng, 1, d)[0]
        self.rgb_scene = _unit_rows(rng, _NUM_SCENES, d)
        self.flow_class = _unit_rows(rng, num_classes, d)
        self.flow_generic = _unit_rows(rng, 1, d)[0]
        self.flow_scene = _unit_rows(rng, _NUM_SCENES, d)
        self.class_scene = rng.integers(0, _NUM_SCENES, size=num_classes)
        self.class_order = rng.permutation(num_classes)


def _video(world, rng, T, classes):
    """Features [T, 2d] float32 and annotations [(class, start_s_units, end_s_units)]."""
    C, d = world.C, world.d
    spans = _place_instances(rng, T, len(classes))
    owner = list(classes) + [classes[int(k)] for k in rng.integers(0, len(classes), size=len(spans) - len(classes))]
    owner = [owner[k] for k in rng.permutation(len(spans))]
    act = np.zeros((T, C))     # action coverage, times a per-instance amplitude
    near = np.zeros((T, C))    # context next to actions
    t = np.arange(T, dtype=np.float64)
    for (s, e), c in zip(spans, owner):
        cov = _coverage(T, s, e)
        envelope = 0.75 + 0.25 * np.sin(np.pi * np.clip((t + 0.5 - s) / max(e - s, 1e-6), 0, 1))
        act[:, c] = np.maximum(act[:, c], cov * envelope * rng.uniform(0.8, 1.2))
        dist = np.maximum(s - (t + 1.0), t - e)  # snippets outside the instance
        near[:, c] = np.maximum(near[:, c], np.clip(1.0 - dist / _CONTEXT_SPAN, 0.0, 1.0))
    any_act = np.clip(act.sum(axis=1), 0.0, 1.0)
    outside = 1.0 - any_act
    bg_ctx = np.zeros((T, C))
    bg_ctx[:, list(classes)] = 1.0
    near = near * outside[:, None]
    # distractor motion bursts in the background
    distract = np.zeros(T)
    for _ in range(int(rng.integers(1, 4))):
        s = rng.uniform(0, T)
        distract = np.maximum(distract, _coverage(T, s, s + rng.uniform(3, 12)) * outside)
    primary = classes[0]
    scene = world.class_scene[primary] if rng.random() < 0.7 else int(rng.integers(0, _NUM_SCENES))

    # Sum of rank-1 terms (np.outer, no BLAS: multi-threaded BLAS on tiny products is slow on busy machines).
    S = _SNR
    f32 = np.float32
    feats = np.empty((T, 2 * d), dtype=f32)
    rgb, flow = feats[:, :d], feats[:, d:]
    rgb[:] = f32(S["rgb_scene"]) * world.rgb_scene[scene]
    flow[:] = f32(S["flow_scene"]) * world.flow_scene[scene]
    rgb += np.outer((any_act * S["rgb_generic"]).astype(f32), world.rgb_generic)
    flow += np.outer((any_act * S["flow_generic"] + distract * S["flow_distractor"]).astype(f32), world.flow_generic)
    for c in sorted(set(classes)):
        rgb += np.outer((act[:, c] * S["rgb_class"]).astype(f32), world.rgb_class[c])
        ctx = near[:, c] * S["rgb_context"] + bg_ctx[:, c] * outside * S["rgb_bg_context"]
        rgb += np.outer(ctx.astype(f32), world.rgb_context[c])
        flow += np.outer((act[:, c] * S["flow_class"] + near[:, c] * S["flow_context"]).astype(f32), world.flow_class[c])
    feats += _BIAS
    noise = rng.standard_normal((T, 2 * d), dtype=np.float32)
    c = np.float32(np.sqrt(1.0 - _RHO * _RHO))
    for i in range(1, T):  # AR(1) in time: unit variance, correlation rho between neighbours
        noise[i] *= c
        noise[i] += np.float32(_RHO) * noise[i - 1]
    feats += noise
    np.maximum(feats, 0.0, out=feats)
    return feats, [(c_, s, e) for (s, e), c_ in sorted(zip(spans, owner))]


def _params(**kw) -> dict:
    sig = inspect.signature(write_synthetic_thumos)
    params = {k: p.default for k, p in sig.parameters.items() if k != "root"}
    unknown = set(kw) - set(params)
    if unknown:
        raise TypeError(f"unknown synthetic-set parameter(s): {sorted(unknown)}")
    params.update(kw)
    return params


def write_synthetic_thumos(
    root,
    *,
    seed: int = 0,
    num_train: int = 100,
    num_test: int = 60,
    num_classes: int = 20,
    feature_dim: int = 2048,
    min_len: int = 80,
    max_len: int = 400,
    fps: float = 25.0,
    snippet_frames: int = 16,
):
    """Write a synthetic set in the THUMOS14 layout under `root` (created; must be empty) and return root.

    ``features/{train,test}/{rgb,flow}/<vid>.npy`` (float32 [T, feature_dim/2]),
    ``split_train.txt``, ``split_test.txt``, ``gt.json`` (train videos "video_validation_*"
    in subset "validation", test videos "video_test_*" in subset "test"; durations
    T*snippet_frames/fps seconds; labels are the first `num_classes` THUMOS14 class names),
    and ``synthetic_params.json``.
    """
    for name, value, lo in (("seed", seed, 0), ("num_train", num_train, 1), ("num_test", num_test, 1),
                            ("num_classes", num_classes, 1), ("feature_dim", feature_dim, 2),
                            ("min_len", min_len, 8), ("snippet_frames", snippet_frames, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
            raise ValueError(f"{name} must be an int >= {lo}, got {value!r}")
    if num_classes > len(THUMOS14_CLASSES):
        raise ValueError(f"num_classes must be <= {len(THUMOS14_CLASSES)} (THUMOS14 class names), got {num_classes}")
    if feature_dim % 2:
        raise ValueError(f"feature_dim must be even (RGB half + flow half), got {feature_dim}")
    if not isinstance(max_len, (int, np.integer)) or max_len < min_len:
        raise ValueError(f"max_len must be an int >= min_len ({min_len}), got {max_len!r}")
    if not (isinstance(fps, (int, float)) and fps > 0):
        raise ValueError(f"fps must be > 0, got {fps!r}")
    root = os.fspath(root)
    if os.path.exists(root) and (not os.path.isdir(root) or os.listdir(root)):
        raise ValueError(f"synthetic set destination must be a new or empty folder: {root}")
    params = _params(seed=int(seed), num_train=int(num_train), num_test=int(num_test), num_classes=int(num_classes),
                     feature_dim=int(feature_dim), min_len=int(min_len), max_len=int(max_len), fps=float(fps),
                     snippet_frames=int(snippet_frames))
    world = _World(int(seed), int(num_classes), int(feature_dim))
    sec = float(snippet_frames) / float(fps)
    names = THUMOS14_CLASSES[:num_classes]
    d = feature_dim // 2
    database = {}
    for split, count, subset, prefix, stream in (("train", num_train, "validation", "video_validation", 1),
                                                  ("test", num_test, "test", "video_test", 2)):
        for mod in ("rgb", "flow"):
            os.makedirs(os.path.join(root, "features", split, mod), exist_ok=True)
        vids = []
        for i in range(count):
            rng = np.random.default_rng([int(seed), stream, i])
            vid = f"{prefix}_{i + 1:07d}"
            T = int(rng.integers(min_len, max_len + 1))
            first = int(world.class_order[(i + (0 if split == "train" else 7)) % num_classes])
            classes = [first]
            if num_classes > 1 and rng.random() < 0.25:
                classes.append(int((first + rng.integers(1, num_classes)) % num_classes))
            feats, anns = _video(world, rng, T, classes)
            base = os.path.join(root, "features", split)
            np.save(os.path.join(base, "rgb", vid + ".npy"), feats[:, :d])
            np.save(os.path.join(base, "flow", vid + ".npy"), feats[:, d:])
            duration = round(T * sec, 4)
            database[vid] = {
                "subset": subset,
                "duration": duration,
                "annotations": [
                    {"label": names[c], "segment": [round(s * sec, 3), min(round(e * sec, 3), duration)]}
                    for c, s, e in anns
                ],
            }
            vids.append(vid)
        with open(os.path.join(root, f"split_{split}.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(vids) + "\n")
    with open(os.path.join(root, "gt.json"), "w", encoding="utf-8") as f:
        json.dump({"version": "synthetic THUMOS14-like", "database": database}, f)
    with open(os.path.join(root, _PARAMS_FILE), "w", encoding="utf-8") as f:
        json.dump({"version": SYNTHETIC_VERSION, "params": params}, f, indent=1, sort_keys=True)
    return root


def default_cache_root() -> str:
    env = os.environ.get("SAL_EXT_CACHE")
    if env:
        return env
    return os.path.join(os.path.expanduser("~"), ".cache", "sal_ext")


def synthetic_dirname(**kw) -> str:
    params = _params(**kw)
    blob = json.dumps({"version": SYNTHETIC_VERSION, "params": params}, sort_keys=True)
    return f"synthetic-v{SYNTHETIC_VERSION}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def ensure_synthetic(cache_dir: Optional[str] = None, **kw) -> str:
    """Path of the synthetic set with these parameters, written once under the cache and then reused.

    The folder is ``<cache>/synthetic-v1-<hash of the parameters>``, where ``<cache>`` is
    `cache_dir`, else the environment variable SAL_EXT_CACHE, else ~/.cache/sal_ext. It is
    written to a temporary folder beside it and renamed into place, so concurrent callers
    and interrupted writes never leave a partial set behind.
    """
    cache = os.fspath(cache_dir) if cache_dir is not None else default_cache_root()
    final = os.path.join(cache, synthetic_dirname(**kw))
    if os.path.isfile(os.path.join(final, _PARAMS_FILE)):
        return final
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-synthetic-", dir=cache)
    try:
        write_synthetic_thumos(tmp, **kw)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isfile(os.path.join(final, _PARAMS_FILE)):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final
