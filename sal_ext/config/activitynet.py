"""The ActivityNet presets: lizhilin-ustc/SAL_ActivityNet (main_SA13_1.py, config13_base.py).

activitynet13: 200 classes, 50 segments, encoder kernel 7, batch 32, 50,000 iterations, test
every 200, tIoU 0.5:0.05:0.95. activitynet12: the same with 100 classes (the paper reports
it; no code exists). Both start from the THUMOS14 preset and change what the reference
changes. What each key may hold: :mod:`sal_ext.config.schema`.
"""
from __future__ import annotations

import copy
from typing import Any, Dict

from .thumos14 import THUMOS14

ANET_TIOU = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]

ACTIVITYNET13: Dict[str, Any] = copy.deepcopy(THUMOS14)
ACTIVITYNET13.update({
    "name": "activitynet13",
    "dataset": "activitynet",
    "num_classes": 200,
    "num_segments": 50,
    "model": {"hidden": 512, "encoder_kernel": 7, "fusion_lambda": 0.3, "dropout": 0.5},
})
ACTIVITYNET13["loss"].update({
    "mil_select": "cas", "mil_topk_divisor": 4, "bg_topk_divisor": 8,
    "pseudo_topk": 40, "pseudo_require_label": False, "confidence_mask": False,
    "ema_momentum": 0.99, "var_scale": 6.0, "w_mc": 20.0, "w_bg": 1.0,
})
ACTIVITYNET13["train"].update({
    "batch_size": 32, "epochs": None, "max_steps": 50000, "eval_every": 200, "save_every": 1000,
    "eval_from_epoch": 0, "seed": 0, "drop_last": True, "test_split": "val",
})
ACTIVITYNET13["inference"].update({
    "class_threshold": 0.1, "score_weight": 0.5, "topk_r": 4, "fuse_weights": [0.6, 0.2, 0.2],
    "nms_threshold": 0.7, "nms_sigma": 0.35,
})
ACTIVITYNET13["eval"] = {"tiou_thresholds": ANET_TIOU, "subset": None, "select_metric": "0.5:0.95",
                         "protocols": ["activitynet"], "ambiguous_file": None}

ACTIVITYNET12: Dict[str, Any] = copy.deepcopy(ACTIVITYNET13)
ACTIVITYNET12.update({"name": "activitynet12", "num_classes": 100})
