"""Optical flow between consecutive frames, as the flow stream's input.

TV-L1 (the default): OpenCV contrib's ``cv2.optflow.DualTVL1OpticalFlow`` with OpenCV's default
parameters (those of ``denseflow`` / the TSN and I3D extraction scripts), on grayscale frames.
The flow of frame i is the motion from frame i to frame i + 1, in pixels of the resized frame
(x then y: a square moving right gives positive x). :func:`flow_to_input` clips it to
[-bound, bound] (20 by default) and divides by bound: the [-1, 1] input of I3D's flow stream.

RAFT (``--flow raft``) lives in :mod:`sal_ext.features.raft` (it needs torchvision).
"""
from __future__ import annotations

import cv2
import numpy as np

# OpenCV's DualTVL1OpticalFlow defaults, recorded in features.json.
TVL1_PARAMS = {"tau": 0.25, "lambda": 0.15, "theta": 0.3, "nscales": 5, "warps": 5, "epsilon": 0.01,
               "inner_iterations": 30, "outer_iterations": 10, "scale_step": 0.8, "gamma": 0.0,
               "median_filtering": 5}


def gray(rgb: np.ndarray) -> np.ndarray:
    """uint8 [H, W] luma of an RGB uint8 [H, W, 3] frame (OpenCV's BT.601 weights)."""
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


class TVL1:
    """``flow = TVL1()(prev_gray, next_gray)``: float32 [H, W, 2] (x, y) in pixels."""

    def __init__(self):
        if not hasattr(cv2, "optflow"):
            raise ImportError("TV-L1 needs OpenCV's contrib modules (cv2.optflow): "
                              "pip install opencv-contrib-python-headless (the [video] extra)")
        p = TVL1_PARAMS
        self.impl = cv2.optflow.DualTVL1OpticalFlow_create(
            tau=p["tau"], lambda_=p["lambda"], theta=p["theta"], nscales=p["nscales"], warps=p["warps"],
            epsilon=p["epsilon"], innnerIterations=p["inner_iterations"],
            outerIterations=p["outer_iterations"], scaleStep=p["scale_step"], gamma=p["gamma"],
            medianFiltering=p["median_filtering"])

    def __call__(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return self.impl.calc(prev, nxt, None)


def flow_to_input(flow: np.ndarray, bound: float = 20.0) -> np.ndarray:
    """Flow clipped to [-bound, bound] and scaled to [-1, 1] (float32)."""
    return (np.clip(flow, -bound, bound) / np.float32(bound)).astype(np.float32, copy=False)
