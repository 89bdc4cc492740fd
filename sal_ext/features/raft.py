"""RAFT optical flow (torchvision's ``raft_large``), the ``--flow raft`` option: fast on a GPU.

Needs torchvision (not a dependency of sal_ext: install the torchvision that matches your torch).
The weights come from a local file (``--raft-weights``) or torchvision's cache
(``$TORCH_HOME/hub/checkpoints``, where ``Raft_Large_Weights.DEFAULT`` is stored once
downloaded); nothing is downloaded here. Frames are padded to a multiple of 8 (RAFT's stride),
the flow is cropped back, in pixels of the resized frame like TV-L1's.
"""
from __future__ import annotations

import os
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

INSTALL_HINT = ("--flow raft needs torchvision (pip install torchvision, the build matching your "
                "torch); or use the default --flow tvl1")


def _torchvision():
    try:
        from torchvision.models.optical_flow import Raft_Large_Weights, raft_large
    except Exception as exc:  # not installed, or built for another torch
        raise ImportError(f"{INSTALL_HINT} ({type(exc).__name__}: {' '.join(str(exc).split())[:120]})") from None
    return raft_large, Raft_Large_Weights


def weights_file(path: Optional[str]) -> str:
    """The RAFT weights to load: `path`, else the file in torchvision's cache; ValueError (one
    line) when there is none."""
    if path:
        if not os.path.isfile(path):
            raise ValueError(f"--raft-weights {path}: no such file")
        return path
    _, W = _torchvision()
    name = os.path.basename(W.DEFAULT.url)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", name)
    if not os.path.isfile(cached):
        raise ValueError(f"--flow raft: no RAFT weights: give --raft-weights FILE, or put {name} "
                         f"({W.DEFAULT.url}) in {os.path.dirname(cached)}")
    return cached


class RAFT:
    """``RAFT(device)(frames uint8 [n+1, H, W, 3]) -> float32 [n, H, W, 2]`` flow in pixels."""

    def __init__(self, device, weights: Optional[str] = None, iterations: int = 12):
        raft_large, _ = _torchvision()
        self.path = weights_file(weights)
        self.net = raft_large(weights=None, progress=False)
        self.net.load_state_dict(torch.load(self.path, map_location="cpu", weights_only=True))
        self.device = torch.device(device)
        self.net = self.net.to(self.device).eval()
        self.iterations = iterations

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(frames).to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        h, w = x.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        flow = self.net(x[:-1], x[1:], num_flow_updates=self.iterations)[-1]
        flow = flow[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
        return flow.permute(0, 2, 3, 1).float().cpu().numpy()
