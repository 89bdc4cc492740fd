"""THUMOS14 in the SAL reference layout.

``root/features/{train,test}/{rgb,flow}/<video>.npy`` (two streams, [T, D/2] each),
``root/split_{train,test}.txt`` and ``root/gt.json`` (train videos are subset "validation",
test videos "test"). Classes default to THUMOS14_CLASSES.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from .classes import THUMOS14_CLASSES
from .feature_files import LazyRows, array_problems, open_npy
from .ground_truth import read_gt_json
from .split_index import (DEFAULT_FEATURE_DIM, SplitIndex, VideoRecord, check_class_names, fill_ground_truth,
                          read_split_file)


def _two_stream_loader(vid: str, rgb_path: str, flow_path: str, width: int) -> Callable:
    half = width // 2

    def load(content: bool):
        arrays, problems = [], []
        for what, path in (("rgb features", rgb_path), ("flow features", flow_path)):
            arr, probs = open_npy(path, what, vid, mmap=not content)
            if not probs:
                probs = array_problems(arr, what, vid, path, half, content)
            problems += probs
            arrays.append(None if probs else arr)
        if problems:
            return None, None, problems
        rgb, flow = arrays
        if rgb.shape[0] != flow.shape[0]:
            return None, None, [
                f"video {vid}: rgb features have {rgb.shape[0]} rows but flow features have "
                f"{flow.shape[0]} [{rgb_path}, {flow_path}]"
            ]
        T = int(rgb.shape[0])
        if not content:
            return LazyRows(vid, [rgb_path, flow_path], ["rgb features", "flow features"]), T, []
        feats = np.empty((T, width), dtype=np.float32)
        feats[:, :half] = rgb
        feats[:, half:] = flow
        return feats, T, []

    return load


def index_thumos14(root, split, class_names, tolerance, feature_dim) -> SplitIndex:
    width = feature_dim or DEFAULT_FEATURE_DIM
    if width % 2:
        raise ValueError(f"feature_dim must be even (RGB half + flow half), got {width}")
    classes = check_class_names(class_names) if class_names is not None else THUMOS14_CLASSES
    idx = SplitIndex("thumos14", root, split, classes, width, os.path.join(root, "gt.json"))
    vids, probs = read_split_file(os.path.join(root, f"split_{split}.txt"))
    idx.problems += probs
    gt, probs = read_gt_json(idx.gt_path)
    idx.problems += probs
    if gt is None:
        return idx
    source = "the given class list" if class_names is not None else "THUMOS14 (sal_ext.data.THUMOS14_CLASSES)"
    # every listed video's features are checked, also those with ground-truth problems
    fill_ground_truth(idx, gt, vids, "validation" if split == "train" else "test", tolerance, source, split == "train")
    base = os.path.join(root, "features", split)
    for vid in vids:
        rgb = os.path.join(base, "rgb", vid + ".npy")
        flow = os.path.join(base, "flow", vid + ".npy")
        idx.videos.append(VideoRecord(vid, [rgb, flow], _two_stream_loader(vid, rgb, flow, width)))
    return idx
