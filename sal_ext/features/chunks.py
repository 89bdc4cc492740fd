"""From frames at 25 fps to the networks' inputs: non-overlapping 16-frame chunks.

Chunk t (t = 0, 1, ...) is frames 16t .. 16t+15 for the RGB stream and the 16 flow fields
from those frames to their successors (frame 16t+15 -> 16t+16) for the flow stream, so a chunk
needs 17 frames and a video of N frames gives T = (N - 1) // 16 chunks, the same for both
streams. The frames after the last whole chunk (fewer than 16) are dropped (as in the
extraction scripts of the W-TALC line, which keep whole chunks and cut both streams to the
shorter one). Feature row t covers [16t, 16t + 16) / 25 s.

Each chunk is center-cropped to `crop` x `crop` (224) from the resized frame; RGB is scaled
to [-1, 1] by x / 127.5 - 1 (x * 2 / 255 - 1).
"""
from __future__ import annotations

import numpy as np


def num_chunks(num_frames: int, chunk: int = 16) -> int:
    """Whole chunks of a video of `num_frames` frames (module doc)."""
    return max(0, (int(num_frames) - 1) // int(chunk))


def center_crop(x: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window of [..., H, W, C] (the extra pixel, if any, after)."""
    h, w = x.shape[-3], x.shape[-2]
    if h < size or w < size:
        raise ValueError(f"a {w}x{h} frame is smaller than the {size}x{size} crop")
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size, :]


def rgb_to_input(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 in [-1, 1]."""
    return rgb.astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def to_ncthw(chunks: np.ndarray) -> np.ndarray:
    """[N, 16, H, W, C] -> [N, C, 16, H, W] (the network's layout), contiguous."""
    return np.ascontiguousarray(chunks.transpose(0, 4, 1, 2, 3))
