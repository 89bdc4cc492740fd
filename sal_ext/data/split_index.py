"""The index of one split, common to every layout: its videos, labels, ground truth, problems.

A layout module (:mod:`.thumos14`, :mod:`.activitynet`, :mod:`.wtalc`) fills a
:class:`SplitIndex` with one :class:`VideoRecord` per video (whose ``load`` reads and checks
its features) and the problems it found; the helpers here are the steps the layouts share.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .ground_truth import entry_structure_problems, entry_value_problems, normalized_entry

# Stream widths of two-stream I3D features: RGB rows first, then flow.
DEFAULT_FEATURE_DIM = 2048


@dataclass
class VideoRecord:
    vid: str
    files: list  # feature file(s), for messages
    # load(content) -> (features [T, D] float32 or LazyRows/None, T or None, problems)
    load: Callable[[bool], tuple]


@dataclass
class SplitIndex:
    dataset: str
    root: str
    split: str
    class_names: tuple
    feature_dim: int
    gt_path: str
    videos: list = field(default_factory=list)  # VideoRecord, in split order
    gt: dict = field(default_factory=lambda: {"database": {}})
    gt_subset: Optional[str] = None
    labels: Optional[np.ndarray] = None  # [N, C] float32 multi-hot
    problems: list = field(default_factory=list)


def read_split_file(path: str) -> tuple[list[str], list[str]]:
    if not os.path.isfile(path):
        return [], [f"split file is missing [{path}]"]
    try:
        with open(path, "r", encoding="utf-8") as f:
            lines = [ln.strip() for ln in f]
    except (OSError, UnicodeDecodeError) as exc:
        return [], [f"split file is unreadable: {exc} [{path}]"]
    vids = [ln for ln in lines if ln]
    problems = []
    seen = set()
    for v in vids:
        if v in seen:
            problems.append(f"video {v}: listed more than once [{path}]")
        seen.add(v)
    if not vids:
        problems.append(f"split file lists no videos [{path}]")
    return list(dict.fromkeys(vids)), problems


def fill_ground_truth(index: SplitIndex, gt: dict, vids: list[str], default_subset: str, tolerance: float,
                  class_source: str, require_labels: bool) -> list[str]:
    """Fill index.gt / gt_subset / labels (one row per video of `vids`); return the videos without problems."""
    db = gt["database"]
    class_index = {c: i for i, c in enumerate(index.class_names)}
    good = []
    subsets = {}
    labels = np.zeros((len(vids), len(index.class_names)), dtype=np.float32)
    for i, vid in enumerate(vids):
        if vid not in db:
            index.problems.append(f"video {vid}: not in the ground truth [{index.gt_path}]")
            continue
        entry = db[vid]
        probs = entry_structure_problems(vid, entry, index.gt_path)
        if not probs:
            probs = entry_value_problems(vid, entry, index.gt_path, class_index, tolerance, class_source)
        if not probs and require_labels and not entry["annotations"]:
            probs = [f"video {vid}: training video has no annotations (no video-level label) [{index.gt_path}]"]
        index.problems.extend(probs)
        if probs:
            continue
        if isinstance(entry.get("subset"), str):
            subsets.setdefault(entry["subset"], []).append(vid)
        for a in entry["annotations"]:
            labels[i, class_index[a["label"]]] = 1.0
        good.append(vid)
    if len(subsets) > 1:
        desc = ", ".join(f"{s!r} ({len(v)} videos, e.g. {v[0]})" for s, v in sorted(subsets.items()))
        index.problems.append(
            f"videos of split {index.split!r} belong to several ground-truth subsets: {desc} [{index.gt_path}]"
        )
    index.gt_subset = next(iter(subsets)) if len(subsets) == 1 else default_subset
    index.gt = {"database": {v: normalized_entry(db[v], index.gt_subset) for v in good}}
    index.labels = labels
    return good


def classes_from_gt(gt: dict) -> tuple:
    names = set()
    for entry in gt["database"].values():
        if isinstance(entry, dict) and isinstance(entry.get("annotations"), list):
            for a in entry["annotations"]:
                if isinstance(a, dict) and isinstance(a.get("label"), str):
                    names.add(a["label"])
    return tuple(sorted(names))


def check_class_names(class_names) -> tuple:
    if isinstance(class_names, str) or not isinstance(class_names, (list, tuple)):
        raise TypeError("class_names must be a list or tuple of str")
    names = tuple(class_names)
    if not names or not all(isinstance(c, str) and c for c in names):
        raise ValueError("class_names must be a non-empty list of non-empty strings")
    if len(set(names)) != len(names):
        dup = sorted({c for c in names if names.count(c) > 1})
        raise ValueError(f"class_names has duplicates: {dup}")
    return names


def problems_message(problems: list[str], dataset: str, root: str, split: Optional[str] = None) -> str:
    where = f"{dataset} data at {root}" + (f" (split {split!r})" if split else "")
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return (
        f"{len(problems)} problem(s) in {where}: {problems[0]}{more}. "
        f"List them all with: python -m sal_ext.data check --dataset {dataset} --data-root {root}"
    )
