"""ActivityNet (1.2 / 1.3) in the SAL_ActivityNet layout.

``root/{train,validation}/<video>.npy`` (one file a video, [T, D]), ``root/split_{train,test}.txt``
(the test split reads ``validation/``) and ``root/gt.json``. Classes default to the sorted
labels of gt.json.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .feature_files import LazyRows, array_problems, open_npy
from .ground_truth import read_gt_json
from .split_index import (DEFAULT_FEATURE_DIM, SplitIndex, VideoRecord, check_class_names, classes_from_gt,
                          fill_ground_truth, read_split_file)


def _one_file_loader(vid: str, path: str, width: int) -> Callable:
    def load(content: bool):
        arr, probs = open_npy(path, "features", vid, mmap=not content)
        if not probs:
            probs = array_problems(arr, "features", vid, path, width, content)
        if probs:
            return None, None, probs
        T = int(arr.shape[0])
        if not content:
            return LazyRows(vid, [path], ["features"]), T, []
        return np.ascontiguousarray(arr, dtype=np.float32), T, []

    return load


def index_activitynet(root, split, class_names, tolerance, feature_dim) -> SplitIndex:
    width = feature_dim or DEFAULT_FEATURE_DIM
    gt_path = os.path.join(root, "gt.json")
    gt, gt_probs = read_gt_json(gt_path)
    if class_names is not None:
        classes = check_class_names(class_names)
        source = "the given class list"
    else:
        classes = classes_from_gt(gt) if gt is not None else ()
        source = "gt.json"
    idx = SplitIndex("activitynet", root, split, classes, width, gt_path)
    vids, probs = read_split_file(os.path.join(root, f"split_{split}.txt"))
    idx.problems += probs + gt_probs
    if gt is None:
        return idx
    if not classes:
        idx.problems.append(f"no class labels found in the ground truth [{gt_path}]")
        return idx
    fill_ground_truth(idx, gt, vids, "train" if split == "train" else "val", tolerance, source, split == "train")
    feat_dir = os.path.join(root, "train" if split == "train" else "validation")
    for vid in vids:
        path = os.path.join(feat_dir, vid + ".npy")
        idx.videos.append(VideoRecord(vid, [path], _one_file_loader(vid, path, width)))
    return idx
