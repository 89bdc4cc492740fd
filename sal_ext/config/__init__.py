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

Modules: one per preset family (``thumos14``, ``activitynet``, ``synthetic``), ``presets``
(the presets by name), ``overrides`` (``key=value`` strings) and ``schema`` (what every key
may hold, the rules all presets share: ``validate_config``).
"""
from ..inference_config import THUMOS_ACT_THRESHOLDS
from .activitynet import ACTIVITYNET12, ACTIVITYNET13, ANET_TIOU
from .overrides import apply_overrides, parse_value, resolve_key, set_value
from .presets import PRESETS, get_preset, inference_config
from .schema import ConfigError, validate_config
from .synthetic import SYNTHETIC
from .thumos14 import INFERENCE_THUMOS, THUMOS14, THUMOS_TIOU

__all__ = [
    "PRESETS", "get_preset", "inference_config",
    "THUMOS14", "ACTIVITYNET13", "ACTIVITYNET12", "SYNTHETIC",
    "THUMOS_TIOU", "ANET_TIOU", "THUMOS_ACT_THRESHOLDS", "INFERENCE_THUMOS",
    "apply_overrides", "parse_value", "resolve_key", "set_value",
    "ConfigError", "validate_config",
]
