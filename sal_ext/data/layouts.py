"""The three on-disk layouts by name: THUMOS14, ActivityNet, W-TALC.

``build_index(dataset, root, split)`` reads one split of a data folder in the layout's own
module (:mod:`.thumos14`, :mod:`.activitynet`, :mod:`.wtalc`) and returns its
:class:`~.split_index.SplitIndex`: the videos, their labels and ground truth, and every
problem found, one line each.
"""
from __future__ import annotations

import os

from .activitynet import index_activitynet
from .split_index import SplitIndex
from .thumos14 import index_thumos14
from .wtalc import index_wtalc

DATASETS = ("thumos14", "activitynet", "wtalc")
_ALIASES = {
    "thumos14": "thumos14",
    "thumos": "thumos14",
    "activitynet": "activitynet",
    "activitynet13": "activitynet",
    "activitynet1.3": "activitynet",
    "activitynet12": "activitynet",
    "activitynet1.2": "activitynet",
    "anet": "activitynet",
    "wtalc": "wtalc",
    "w-talc": "wtalc",
}
SPLITS = ("train", "test")
DEFAULT_TOLERANCE = 1.0  # seconds a segment may end past the video's duration


def canonical_dataset(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"dataset must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in _ALIASES:
        raise ValueError(f"unknown dataset {name!r}: expected one of {', '.join(DATASETS)}")
    return _ALIASES[key]


def canonical_split(dataset: str, split: str) -> str:
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    key = split.strip().lower()
    if key in ("train", "training"):
        return "train"
    if key == "test" or (dataset != "thumos14" and key in ("val", "validation")):
        return "test"
    raise ValueError(
        f"unknown split {split!r} for {dataset}: expected 'train' or 'test'"
        + (" ('val'/'validation' also mean the test split)" if dataset != "thumos14" else "")
    )


def build_index(dataset, root, split, *, class_names=None, tolerance=DEFAULT_TOLERANCE,
                feature_dim=None, name=None) -> SplitIndex:
    dataset = canonical_dataset(dataset)
    split = canonical_split(dataset, split)
    root = os.fspath(root)
    if not isinstance(tolerance, (int, float)) or isinstance(tolerance, bool) or not tolerance >= 0:
        raise ValueError(f"tolerance must be a number >= 0 (seconds), got {tolerance!r}")
    if feature_dim is not None and (not isinstance(feature_dim, int) or feature_dim < 1):
        raise ValueError(f"feature_dim must be a positive int, got {feature_dim!r}")
    if dataset == "thumos14":
        return index_thumos14(root, split, class_names, float(tolerance), feature_dim)
    if dataset == "activitynet":
        return index_activitynet(root, split, class_names, float(tolerance), feature_dim)
    return index_wtalc(root, split, class_names, float(tolerance), feature_dim, name=name)
