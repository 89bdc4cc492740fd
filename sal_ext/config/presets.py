"""The presets by name, and the InferenceConfig a preset describes."""
from __future__ import annotations

import copy
from typing import Any, Dict

from ..inference_config import InferenceConfig
from .activitynet import ACTIVITYNET12, ACTIVITYNET13
from .synthetic import SYNTHETIC
from .thumos14 import THUMOS14

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


def inference_config(cfg: Dict[str, Any]):
    """sal_ext.inference_config.InferenceConfig from the preset's "inference" dict."""
    kw = dict(cfg["inference"])
    for key in ("fuse_weights", "act_thresholds"):
        if kw.get(key) is not None:
            kw[key] = tuple(kw[key])
    return InferenceConfig(**kw)
