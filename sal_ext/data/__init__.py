"""Data: THUMOS14 / ActivityNet / W-TALC feature datasets, their checker, and a synthetic set.

``build_dataset("thumos14", root, "train", num_segments=750, sampling="random")`` gives a
torch Dataset whose items are dicts {"features" [num_segments, D], "label" [C],
"video_id", "t_orig"}; ``check_dataset`` (and ``python -m sal_ext.data check``) lists every
problem in a data folder; ``ensure_synthetic()`` writes (once) a small THUMOS-like set.

Modules: ``datasets`` (the torch Datasets, the checker), one per on-disk layout (``thumos14``,
``activitynet``, ``wtalc``) and ``layouts`` (the layouts by name, ``build_index``), what the
layouts share (``split_index``, ``ground_truth``, ``feature_files``), ``sampling``,
``synthetic``, ``classes``.
"""
from .classes import THUMOS14_CLASSES
from .datasets import (
    ActivityNetFeatures,
    FeatureDataset,
    Thumos14Features,
    WTALCFeatures,
    build_dataset,
    check_dataset,
    load_ground_truth,
    scan_dataset,
)
from .sampling import random_perturb_indices, uniform_indices
from .synthetic import ensure_synthetic, write_synthetic_thumos

__all__ = [
    "THUMOS14_CLASSES",
    "build_dataset",
    "load_ground_truth",
    "FeatureDataset",
    "Thumos14Features",
    "ActivityNetFeatures",
    "WTALCFeatures",
    "random_perturb_indices",
    "uniform_indices",
    "check_dataset",
    "scan_dataset",
    "write_synthetic_thumos",
    "ensure_synthetic",
]
