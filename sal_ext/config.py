"""Presets: every setting of a SAL run as plain, JSON-serialisable data.

A preset is a nested dict; ``get_preset(name)`` returns a fresh copy. Override any value
with ``apply_overrides(cfg, ["model.hidden=64", "lr=3e-4"])``: a dotted path, or a bare
leaf name when it is unique in the preset; values are parsed as JSON (then as a string).

Presets:
  thumos14       the reference THUMOS14 settings (lizhilin-ustc/SAL, main_thumos.py +
                 scripts/train.sh): 750 segments, batch 2, Adam 1e-4 / wd 5e-4, 100 epochs,
                 test every 10 steps from the 2nd epoch, best checkpoint by test mAP.
  activitynet13  lizhilin-ustc/SAL_ActivityNet (main_SA13_1.py, config13_base.py): 200
                 classes, 50 segments, encoder kernel 7, batch 32, 50,000 iterations,
                 test every 200, tIoU 0.5:0.05:0.95.
  activitynet12  as activitynet13 with 100 classes (the paper reports it; no code exists).
  synthetic      the built-in synthetic set (sal_ext.data.synthetic), sized so that
                 `python -m sal_ext.train` finishes in minutes on a 2-core CPU.
"""
from __future__ import annotations

import copy
import json
from typing import Any, Dict, Iterable, List

from .config_schema import unknown_key_message, validate_config  # noqa: F401  (validate_config: re-export)
from .inference_config import THUMOS_ACT_THRESHOLDS, InferenceConfig

THUMOS_TIOU = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
ANET_TIOU = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]

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
    "eval": {"tiou_thresholds": THUMOS_TIOU, "subset": None, "select_metric": "0.1:0.7"},
}

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
ACTIVITYNET13["eval"] = {"tiou_thresholds": ANET_TIOU, "subset": None, "select_metric": "0.5:0.95"}

ACTIVITYNET12: Dict[str, Any] = copy.deepcopy(ACTIVITYNET13)
ACTIVITYNET12.update({"name": "activitynet12", "num_classes": 100})

# Built-in synthetic set: THUMOS layout, THUMOS method, smaller network and clips so that
# the default `python -m sal_ext.train` runs in minutes on 2 CPU cores: 5000 steps (200 epochs
# of 25 batches of 4), an evaluation every 500 steps. What it prints and how long it takes are
# measured, with the machine and thread count, in README.md's default-run block (rewritten by
# `python tools/readme_default_run.py`). hidden 64 instead of 512 (fc1 is hidden^2 x hidden).
# lr 3e-4: at 1e-3 the encoder's ReLUs all die within ~30 steps on these features; at the
# reference's 1e-4 learning starts only after ~400 steps.
SYNTHETIC: Dict[str, Any] = copy.deepcopy(THUMOS14)
SYNTHETIC.update({
    "name": "synthetic",
    "dataset": "thumos14",
    "num_segments": 100,
    "model": {"hidden": 64, "encoder_kernel": 3, "fusion_lambda": 0.1, "dropout": 0.5},
    "synthetic": {"seed": 0, "num_train": 100, "num_test": 60, "num_classes": 20,
                  "feature_dim": 2048, "min_len": 80, "max_len": 400},
})
SYNTHETIC["optim"].update({"lr": 3e-4})
SYNTHETIC["train"].update({
    "batch_size": 4, "epochs": 200, "eval_every": 500, "eval_from_epoch": 0, "seed": 0, "save_every": None,
})

# The final evaluation's protocols (sal_ext.evaluate: "activitynet", "wtalc", "thumos14") and
# the ambiguous-segment file wtalc/thumos14 use (None: the data root's Ambiguous_test.txt if
# there is one, else none; the synthetic set has none).
for _preset in (THUMOS14, ACTIVITYNET13, ACTIVITYNET12, SYNTHETIC):
    _preset["eval"].update(protocols=["activitynet"], ambiguous_file=None)

PRESETS = {
    "thumos14": THUMOS14,
    "activitynet13": ACTIVITYNET13,
    "activitynet12": ACTIVITYNET12,
    "synthetic": SYNTHETIC,
}


def get_preset(name: str) -> Dict[str, Any]:
    """A fresh deep copy of preset `name`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def _leaves(cfg: Dict[str, Any], prefix: str = "") -> List[str]:
    out = []
    for k, v in cfg.items():
        path = prefix + k
        if isinstance(v, dict):
            out += _leaves(v, path + ".")
        else:
            out.append(path)
    return out


def resolve_key(cfg: Dict[str, Any], key: str) -> str:
    """Full dotted path of `key`: itself if it is a path in cfg, else the unique leaf so named."""
    node = cfg
    parts = key.split(".")
    ok = True
    for p in parts[:-1]:
        if not isinstance(node, dict) or p not in node or not isinstance(node[p], dict):
            ok = False
            break
        node = node[p]
    if ok and isinstance(node, dict) and parts[-1] in node:
        return key
    matches = [p for p in _leaves(cfg) if p.split(".")[-1] == key or p.endswith("." + key)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise KeyError(unknown_key_message(key, _leaves(cfg)))
    raise KeyError(f"config key {key!r} is ambiguous: {matches}")


def parse_value(text: str) -> Any:
    """JSON value (numbers, true/false/null, lists) or, failing that, the raw string."""
    low = text.strip()
    if low in ("None", "none"):
        return None
    if low in ("True", "False"):
        return low == "True"
    try:
        return json.loads(low)
    except ValueError:
        return text


def set_value(cfg: Dict[str, Any], key: str, value: Any) -> str:
    """Sets cfg[key] (dotted / unique leaf); returns the full path."""
    path = resolve_key(cfg, key)
    node = cfg
    parts = path.split(".")
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
    return path


def apply_overrides(cfg: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """Applies "key=value" strings in order (see module doc). Returns cfg (modified)."""
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, text = item.split("=", 1)
        set_value(cfg, key.strip(), parse_value(text))
    return cfg


def inference_config(cfg: Dict[str, Any]):
    """sal_ext.inference_config.InferenceConfig from the preset's "inference" dict."""
    kw = dict(cfg["inference"])
    for key in ("fuse_weights", "act_thresholds"):
        if kw.get(key) is not None:
            kw[key] = tuple(kw[key])
    return InferenceConfig(**kw)
