"""The THUMOS14 preset: the reference settings (lizhilin-ustc/SAL, main_thumos.py + scripts/train.sh).

750 segments, batch 2, Adam 1e-4 / wd 5e-4, 100 epochs, test every 10 steps from the 2nd
epoch, best checkpoint by test mAP. What each key may hold: :mod:`sal_ext.config.schema`.
"""
from __future__ import annotations

from typing import Any, Dict

from ..inference_config import THUMOS_ACT_THRESHOLDS

THUMOS_TIOU = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]

# sal_ext.inference_config.InferenceConfig defaults (the reference THUMOS inference)
INFERENCE_THUMOS = {
    "class_threshold": 0.25,
    "score_weight": 0.35,           # s = softmax(beta * cas_top + (1 - beta) * sc)
    "topk_r": 8,
    "fuse_weights": [1 / 3, 1 / 3, 1 / 3],   # combined = w0 softmax(cas) + w1 a_rgb + w2 a_flow
    "act_thresholds": list(THUMOS_ACT_THRESHOLDS),
    "upsample": 24,
    "outer_ratio": 0.2,
    "gamma": 0.2,
    "nms_method": "sal",
    "nms_threshold": 0.4,
    "nms_sigma": 0.3,
    "nms_plus_one": True,
    "fps": 25.0,
    "frames_per_snippet": 16,
    "max_detections": None,
}

THUMOS14: Dict[str, Any] = {
    "name": "thumos14",
    "dataset": "thumos14",
    "data_root": None,
    "num_classes": 20,
    "feature_dim": 2048,
    "num_segments": 750,
    "model": {"hidden": 512, "encoder_kernel": 3, "fusion_lambda": 0.1, "dropout": 0.5},
    "loss": {
        "r": 8, "mil_select": "combined", "mil_topk_divisor": None, "bg_topk_divisor": None,
        "select_weights": [1 / 3, 1 / 3, 1 / 3],
        "pseudo_topk": None, "pseudo_extra": 17, "pseudo_require_label": True,
        "confidence_mask": True, "ema_momentum": 0.7, "var_scale": 0.5, "q": 0.5,
        "w_mil": 1.0, "w_mc": 5.0, "w_bg": 10.0, "w_act": 1.0, "w_se": 3.0, "w_mix": 1.0,
    },
    "optim": {"lr": 1e-4, "betas": [0.9, 0.999], "weight_decay": 5e-4,
              "impl": "fused", "set_to_none": True},   # see train.make_optimizer
    "train": {
        "batch_size": 2,
        "epochs": 100,
        "max_steps": None,          # stop after this many steps (overrides epochs when set)
        "eval_every": 10,           # steps between evaluations
        "eval_from_epoch": 1,       # 0-based: the reference evaluates from the 2nd epoch on
        "eval_at_end": True,        # also evaluate after the last step
        "eval_batch_size": 16,      # videos per predict() call in an evaluation pass
        "save_every": 500,          # steps between last.pt writes (None: at every evaluation)
        "seed": 1,
        "drop_last": False,
        "test_split": "test",
    },
    "inference": dict(INFERENCE_THUMOS),
    # The final evaluation's protocols (sal_ext.evaluate: "activitynet", "wtalc", "thumos14") and
    # the ambiguous-segment file wtalc/thumos14 use (None: the data root's Ambiguous_test.txt if
    # there is one, else none; the synthetic set has none).
    "eval": {"tiou_thresholds": THUMOS_TIOU, "subset": None, "select_metric": "0.1:0.7",
             "protocols": ["activitynet"], "ambiguous_file": None},
}
