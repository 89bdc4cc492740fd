"""The settings of a feature extraction: what features.json records and what resuming compares.

Defaults are the convention described for the two-stream I3D THUMOS14 features that most WTAL
code bases pass along (W-TALC, Paul et al. 2018, and its successors):
frames resampled to 25 fps, non-overlapping 16-frame chunks, frames resized to a shorter side of
256 (denseflow / TSN's 340x256 for 4:3 video) and center-cropped to 224, RGB scaled to [-1, 1],
TV-L1 optical flow clipped to [-20, 20] and scaled to [-1, 1], I3D pre-trained on ImageNet +
Kinetics (pytorch-i3d's rgb_imagenet.pt / flow_imagenet.pt).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict

from .flow import TVL1_PARAMS

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Settings:
    fps: float = 25.0
    chunk: int = 16
    resize: int = 256          # shorter side of the resized frame
    crop: int = 224            # center crop of the resized frame
    flow: str = "tvl1"         # "tvl1" or "raft"
    flow_bound: float = 20.0
    dtype: str = "float32"     # the networks' precision ("float16": CUDA only)
    rgb_weights: str = ""      # sha256 of the weight files
    flow_weights: str = ""
    flow_params: Dict[str, Any] = field(default_factory=lambda: dict(TVL1_PARAMS))

    def check(self) -> None:
        """ValueError (one line naming the flag) for a setting that cannot work."""
        if not self.fps > 0:
            raise ValueError(f"--fps must be > 0, got {self.fps}")
        if self.chunk < 1:
            raise ValueError(f"--chunk must be >= 1, got {self.chunk}")
        if self.crop < 1 or self.resize < self.crop:
            raise ValueError(f"--resize ({self.resize}) must be >= --crop ({self.crop}) >= 1")
        if self.flow not in ("tvl1", "raft"):
            raise ValueError(f"--flow must be tvl1 or raft, got {self.flow!r}")
        if not self.flow_bound > 0:
            raise ValueError(f"--flow-bound must be > 0, got {self.flow_bound}")
        if self.dtype not in ("float32", "float16"):
            raise ValueError(f"--dtype must be float32 or float16, got {self.dtype!r}")

    def to_json(self) -> Dict[str, Any]:
        return {"format": FORMAT_VERSION, **asdict(self)}
