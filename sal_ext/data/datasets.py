"""Feature datasets (torch ``Dataset``) for THUMOS14, ActivityNet and the W-TALC layout."""
from __future__ import annotations

import numbers
import operator
import os
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from . import ground_truth, layouts, wtalc
from .progress import progress_iter
from .split_index import problems_message
from .sampling import random_perturb_indices, uniform_indices

__all__ = [
    "FeatureDataset",
    "Thumos14Features",
    "ActivityNetFeatures",
    "WTALCFeatures",
    "build_dataset",
    "load_ground_truth",
    "check_dataset",
    "scan_dataset",
]

SAMPLINGS = ("random", "uniform")


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


class FeatureDataset(Dataset):
    """Videos of one split as fixed-length feature sequences with video-level labels.

    Item ``i`` is a dict: ``features`` float32 [num_segments, D] (RGB columns first, then flow),
    ``label`` float32 [C] multi-hot, ``video_id`` str, ``t_orig`` int (rows before sampling).
    ``num_segments=None`` returns all T_orig rows (no sampling).

    Sampling: ``"uniform"`` is deterministic (floor(i*T/n)); ``"random"`` is the reference's
    random perturbation, drawn from ``np.random.default_rng([seed, epoch, index])`` so that
    the result does not depend on DataLoader workers. Call ``set_epoch(e)`` before each epoch
    (the epoch is kept in shared memory, so persistent workers see it too).

    Every problem in the data (missing or unreadable files, wrong shapes, NaN/Inf, rows that
    differ between streams, unknown labels, segments outside the video) is found when the
    dataset is built and raises ValueError naming the first one and their count; nothing is
    skipped. With ``cache=True`` (default) all features are loaded and checked once, and kept
    in memory; with ``cache=False`` only file headers are checked up front and each item reads
    its sampled rows (memory-mapped) and checks them.
    """

    DATASET = ""

    def __init__(
        self,
        root,
        split: str,
        *,
        num_segments: Optional[int],
        sampling: str,
        seed: int = 0,
        class_names: Optional[Sequence[str]] = None,
        cache: bool = True,
        tolerance: float = layouts.DEFAULT_TOLERANCE,
        feature_dim: Optional[int] = None,
        progress: Optional[bool] = None,
        **layout_kw,
    ):
        super().__init__()
        if num_segments is not None:
            num_segments = _check_int("num_segments", num_segments, 1)
        if sampling not in SAMPLINGS:
            raise ValueError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")
        self.seed = _check_int("seed", seed, 0)
        self.num_segments = num_segments
        self.sampling = sampling
        # the epoch lives in shared memory, so set_epoch also reaches persistent DataLoader workers
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.cache = bool(cache)
        index = layouts.build_index(self.DATASET, root, split, class_names=class_names, tolerance=tolerance,
                                    feature_dim=feature_dim, **layout_kw)
        problems = list(index.problems)
        store, t_orig = [], []
        for rec in progress_iter(index.videos, desc=f"loading {index.dataset} {index.split}",
                                 progress=progress):
            feats, T, probs = rec.load(self.cache)
            problems += probs
            store.append(feats)
            t_orig.append(T)
        if problems:
            raise ValueError(problems_message(problems, index.dataset, index.root, index.split))
        if not index.videos:
            raise ValueError(f"{index.dataset} data at {index.root}: split {index.split!r} has no videos")
        getattr(index, "shared_state", {}).pop("arr", None)  # W-TALC: keep only the split's arrays
        self.dataset = index.dataset
        self.root = index.root
        self.split = index.split
        self.class_names = tuple(index.class_names)
        self.num_classes = len(self.class_names)
        self.feature_dim = int(index.feature_dim)
        self.video_ids = [rec.vid for rec in index.videos]
        self.gt = index.gt
        self.gt_subset = index.gt_subset
        self.labels = np.ascontiguousarray(index.labels, dtype=np.float32)
        self.t_orig = np.asarray(t_orig, dtype=np.int64)
        self._store = store

    # -- sampling ---------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the random-perturbation draws of this epoch (reproducible per (seed, epoch, index)).

        Call it before iterating the DataLoader for that epoch; it reaches workers too
        (also persistent ones: the value is kept in shared memory).
        """
        self._epoch.fill_(_check_int("epoch", epoch, 0))

    def sample_indices(self, index: int) -> np.ndarray:
        """The row indices item `index` uses in the current epoch."""
        i = self._position(index)
        T = int(self.t_orig[i])
        if self.num_segments is None:
            return np.arange(T, dtype=np.int64)
        if self.sampling == "uniform":
            return uniform_indices(T, self.num_segments)
        rng = np.random.default_rng([self.seed, self.epoch, i])
        return random_perturb_indices(T, self.num_segments, rng)

    # -- Dataset ----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.video_ids)

    def _position(self, index) -> int:
        i = operator.index(index)
        n = len(self.video_ids)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"index {index} out of range for {n} videos")
        return i

    def __getitem__(self, index):
        i = self._position(index)
        idx = self.sample_indices(i)
        src = self._store[i]
        rows = src[idx] if isinstance(src, np.ndarray) else src.rows(idx)
        return {
            "features": torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32)),
            "label": torch.from_numpy(self.labels[i].copy()),
            "video_id": self.video_ids[i],
            "t_orig": int(self.t_orig[i]),
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(root={self.root!r}, split={self.split!r}, videos={len(self)}, "
            f"classes={self.num_classes}, feature_dim={self.feature_dim}, num_segments={self.num_segments}, "
            f"sampling={self.sampling!r}, seed={self.seed}, cache={self.cache})"
        )


class Thumos14Features(FeatureDataset):
    """THUMOS14 two-stream I3D features in the SAL reference layout.

    ``root/features/{train,test}/{rgb,flow}/<video>.npy`` ([T, 1024] each, concatenated RGB
    first), ``root/split_{train,test}.txt`` (one video id a line), ``root/gt.json``
    (ActivityNet-style; train videos are subset "validation", test videos "test"). Classes
    default to THUMOS14_CLASSES (the reference's order); labels come from gt.json.
    """

    DATASET = "thumos14"


class ActivityNetFeatures(FeatureDataset):
    """ActivityNet (1.2 or 1.3) features in the SAL_ActivityNet layout.

    ``root/{train,validation}/<video>.npy`` ([T, 2048], RGB first), ``root/split_train.txt``,
    ``root/split_test.txt`` (the test split reads ``validation/``), ``root/gt.json``.
    Classes default to the sorted labels of gt.json (200 for 1.3, 100 for 1.2).
    """

    DATASET = "activitynet"


class WTALCFeatures(FeatureDataset):
    """Features in the W-TALC / CO2-Net single-file layout.

    ``root/<name>-I3D-JOINTFeatures.npy`` (a pickled object array of [T, 2048] arrays, RGB
    first) and ``root/<name>-Annotations/`` with videoname.npy, subset.npy, classlist.npy,
    segments.npy (per video, [start, end] in seconds), labels.npy (per segment),
    duration.npy (seconds) and optionally labels_all.npy (video-level labels). ``name`` is
    found when the root holds one such feature file. THUMOS-style sets train on subset
    "validation" and test on "test"; ActivityNet-style sets train on "training" and test on
    "validation". Loading uses pickle (allow_pickle=True): only open files you trust.
    """

    DATASET = "wtalc"

    def __init__(self, root, split, *, name: Optional[str] = None, **kw):
        super().__init__(root, split, name=name, **kw)


_CLASSES = {"thumos14": Thumos14Features, "activitynet": ActivityNetFeatures, "wtalc": WTALCFeatures}


def build_dataset(dataset: str, root, split: str, *, num_segments: Optional[int], sampling: str, seed: int = 0,
                  class_names: Optional[Sequence[str]] = None, **kw) -> FeatureDataset:
    """The dataset class for `dataset` ("thumos14", "activitynet" or "wtalc") on `root`/`split`.

    Extra keywords (cache, tolerance, feature_dim, progress, name for W-TALC) go to the class.
    """
    cls = _CLASSES[layouts.canonical_dataset(dataset)]
    return cls(root, split, num_segments=num_segments, sampling=sampling, seed=seed, class_names=class_names, **kw)


def load_ground_truth(path) -> dict:
    """Ground truth as {"database": {vid: {"subset", "duration", "annotations": [{"label", "segment"}]}}}.

    `path` is an ActivityNet-style gt.json, or a W-TALC ``<name>-Annotations`` folder (all its
    videos, segments in seconds). Raises ValueError naming the first malformed entry (and how
    many there are); value ranges (labels, segment bounds) are checked by check_dataset.
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        ann, problems = wtalc.read_wtalc_annotations(path)
        if ann is None:
            raise ValueError(problems_message(problems, "wtalc", path))
        gt, problems = wtalc.wtalc_ground_truth(ann, path, range(len(ann["videoname"])))
        for entry in gt["database"].values():
            entry.pop("_ok")
        if problems:
            raise ValueError(problems_message(problems, "wtalc", path))
        return gt
    gt, problems = ground_truth.read_gt_json(path)
    if gt is None:
        raise ValueError(problems[0])
    for vid, entry in gt["database"].items():
        problems += ground_truth.entry_structure_problems(vid, entry, path)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ValueError(f"{len(problems)} problem(s) in ground truth {path}: {problems[0]}{more}")
    return gt


def scan_dataset(dataset: str, root, *, splits: Optional[Sequence[str]] = None,
                 class_names: Optional[Sequence[str]] = None, tolerance: float = layouts.DEFAULT_TOLERANCE,
                 feature_dim: Optional[int] = None, progress: Optional[bool] = None,
                 **layout_kw) -> tuple[list[str], dict]:
    """Check every file of the given splits; (problems, summary). See check_dataset."""
    dataset = layouts.canonical_dataset(dataset)
    root = os.fspath(root)
    splits = list(splits) if splits is not None else list(layouts.SPLITS)
    problems: list[str] = []
    summary = {"dataset": dataset, "root": root, "splits": {}}
    for split in splits:
        index = layouts.build_index(dataset, root, split, class_names=class_names, tolerance=tolerance,
                                    feature_dim=feature_dim, **layout_kw)
        split_problems = list(index.problems)
        lengths = []
        for rec in progress_iter(index.videos, desc=f"checking {dataset} {index.split}", progress=progress):
            feats, T, probs = rec.load(True)
            split_problems += probs
            if T is not None:
                lengths.append(T)
            del feats
        getattr(index, "shared_state", {}).pop("arr", None)
        problems += [p for p in split_problems if p not in problems]  # whole-file problems once
        db = index.gt["database"]
        durations = [e["duration"] for e in db.values()]
        inst = [a for e in db.values() for a in e["annotations"]]
        inst_len = [a["segment"][1] - a["segment"][0] for a in inst]
        summary["splits"][index.split] = {
            "videos": len(index.videos),
            "gt_subset": index.gt_subset,
            "instances": len(inst),
            "classes_present": len({a["label"] for a in inst}),
            "t_orig": _stats(lengths),
            "duration_s": _stats(durations),
            "instance_length_s": _stats(inst_len),
            "problems": len(split_problems),
        }
        summary["num_classes"] = len(index.class_names)
        summary["feature_dim"] = index.feature_dim
    return problems, summary


def _stats(values):
    if not values:
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"min": float(a.min()), "mean": float(a.mean()), "median": float(np.median(a)), "max": float(a.max())}


def check_dataset(dataset: str, root, *, splits: Optional[Sequence[str]] = None,
                  class_names: Optional[Sequence[str]] = None, tolerance: float = layouts.DEFAULT_TOLERANCE,
                  feature_dim: Optional[int] = None, progress: Optional[bool] = None, **layout_kw) -> list[str]:
    """Every problem in the data set's files, one line each naming the video and the file.

    Checks: split files and ground truth present and readable; every split video in the
    ground truth, with well-formed annotations whose labels are known classes and whose
    segments lie in [0, duration + tolerance] with start <= end; training videos have a label;
    feature files present, readable, 2-D, of the expected width (2048 = 1024 RGB + 1024 flow
    by default), with T >= 1 rows, the same number of rows in both streams, no NaN/Inf.
    `splits` defaults to ("train", "test"). An empty list means the data is usable.
    """
    return scan_dataset(dataset, root, splits=splits, class_names=class_names, tolerance=tolerance,
                        feature_dim=feature_dim, progress=progress, **layout_kw)[0]
