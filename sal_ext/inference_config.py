"""Post-processing settings (:class:`InferenceConfig`), apart from the post-processing itself.

Plain data with no torch: the presets (:mod:`sal_ext.config`) and the post-processing
(:mod:`sal_ext.inference`) both import it, so neither imports the other.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional

import numpy as np

# The reference's OIC thresholds, np.arange(0.1, 1.0, 0.1) with its exact values
# (0.30000000000000004, 0.7000000000000001, ...): which upsampled positions lie above a
# threshold, and so the proposals, depends on them. InferenceConfig's default and the presets use them.
THUMOS_ACT_THRESHOLDS = tuple(float(t) for t in np.arange(0.1, 1.0, 0.1))


@dataclass
class InferenceConfig:
    """Post-processing settings; defaults are the THUMOS14 reference (SAL_SPEC.md)."""

    class_threshold: float = 0.25          # classes with video score >= this; argmax if none
    score_weight: float = 0.35             # s = softmax(w * cas_top + (1 - w) * sc)
    topk_r: int = 8                        # k = T // r time steps for cas_top
    fuse_weights: tuple = (1 / 3, 1 / 3, 1 / 3)  # combined = w0*softmax(cas) + w1*a_rgb + w2*a_flow
    act_thresholds: tuple = THUMOS_ACT_THRESHOLDS
    upsample: int = 24
    outer_ratio: float = 0.2               # the reference passes gamma (0.2) as the OIC ratio
    gamma: float = 0.2
    nms_method: str = "sal"                # "sal" (reference soft-NMS) | "hard" | "linear" | "gaussian"
    nms_threshold: float = 0.4
    nms_sigma: float = 0.3                 # the reference's nms_alpha
    nms_plus_one: bool = True              # reference quirk: +1 on second-valued lengths
    fps: float = 25.0
    frames_per_snippet: int = 16
    max_detections: Optional[int] = None   # per video, highest scores after NMS (None: all)
    # Added fields (defaults keep the THUMOS reference behaviour):
    oic_skip_first_only: bool = True       # reference `positions.any()` quirk (see ops.proposals)
    version: str = "VERSION 1.3"
    external_data: dict = field(default_factory=dict)

    @classmethod
    def activitynet(cls, **overrides) -> "InferenceConfig":
        """lizhilin-ustc/SAL_ActivityNet test settings (main_SA13_1.py, config13_base.py)."""
        base = cls(class_threshold=0.1, score_weight=0.5, topk_r=4, fuse_weights=(0.6, 0.2, 0.2),
                   nms_threshold=0.7, nms_sigma=0.35)
        return replace(base, **overrides)
