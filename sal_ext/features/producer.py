"""One video's network inputs, produced piece by piece: decoded frames -> 16-frame chunks of
cropped RGB (uint8) and of TV-L1 flow (float32 in [-1, 1]), a few chunks at a time.

This runs in the worker processes of :mod:`sal_ext.features.pipeline` (decoding and flow there
overlap the networks in the main process). With ``flow="raft"`` the flow is left to the main
process (RAFT runs on the network's device): the pieces carry the resized frames instead.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional

import numpy as np

from .chunks import center_crop, num_chunks
from .decode import VideoError, decode_frames
from .flow import TVL1, flow_to_input, gray
from .settings import Settings


def video_pieces(path: str, s: Settings, piece_chunks: int = 8,
                 info: Optional[Dict] = None) -> Iterator[Dict[str, np.ndarray]]:
    """Pieces {"rgb": uint8 [n, 16, crop, crop, 3], "flow": float32 [n, 16, crop, crop, 2]}
    (or, for RAFT, "frames": uint8 [16n + 1, H, W, 3] instead of "flow") of n <= piece_chunks
    whole chunks, in order. `info` gets the decoder's record and "T". VideoError: a bad file,
    or one too short for a single chunk."""
    info = {} if info is None else info
    L = s.chunk
    tvl1 = TVL1() if s.flow == "tvl1" else None
    frames, grays, flows = [], [], []       # the current chunk's frames (+ successor), its flow
    rgb_out, flow_out, frames_out = [], [], []   # the current piece
    done = 0

    def piece():
        out = {"rgb": np.stack(rgb_out)}
        if tvl1 is not None:
            out["flow"] = np.stack(flow_out)
        else:
            out["frames"] = np.stack(frames_out)
        return out

    for f in decode_frames(path, s.fps, s.resize, info):
        if f.shape[0] < s.crop or f.shape[1] < s.crop:
            raise VideoError(path, f"a {f.shape[1]}x{f.shape[0]} frame is smaller than the {s.crop}x{s.crop} crop")
        frames.append(f)
        if tvl1 is not None:
            grays.append(gray(f))
            if len(grays) >= 2:
                flows.append(center_crop(flow_to_input(tvl1(grays[-2], grays[-1]), s.flow_bound), s.crop))
                grays.pop(0)
        if len(frames) == L + 1:            # a whole chunk and its successor frame
            rgb_out.append(center_crop(np.stack(frames[:L]), s.crop))
            if tvl1 is not None:
                flow_out.append(np.stack(flows))
                flows = []
            else:
                frames_out.extend(frames[:L])
            frames = frames[L:]
            done += 1
            if len(rgb_out) == piece_chunks:
                if tvl1 is None:
                    frames_out.append(frames[0])
                yield piece()
                rgb_out, flow_out, frames_out = [], [], []
    if rgb_out:
        if tvl1 is None:
            frames_out.append(frames[0])
        yield piece()
    info["T"] = done
    if done == 0:
        n = info.get("frames", len(frames))
        raise VideoError(path, f"too short: {n} frames at {s.fps:g} fps, a {L}-frame chunk needs {L + 1}")
    if num_chunks(info.get("frames", 0), L) != done:   # the decoder's count and ours agree
        raise RuntimeError(f"{path}: {done} chunks from {info.get('frames')} frames")
