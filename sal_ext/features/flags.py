"""Command-line flags of the extraction, shared by ``python -m sal_ext.features`` and
``python -m sal_ext.infer --video`` (no dependency beyond argparse: infer imports it always)."""
from __future__ import annotations

import argparse


def add_extraction_flags(p: argparse.ArgumentParser, weights_required: bool = True,
                         flow_flag: str = "--flow") -> None:
    """The flags shared with ``sal_ext.infer --video`` (where the flow method is --flow-method,
    --flow being a feature file there): weights, convention, speed."""
    p.add_argument("--rgb-weights", required=weights_required, metavar="R.pt",
                   help="pytorch-i3d's rgb_imagenet.pt (or any InceptionI3d RGB state dict)")
    p.add_argument("--flow-weights", required=weights_required, metavar="F.pt",
                   help="pytorch-i3d's flow_imagenet.pt")
    p.add_argument("--fps", type=float, default=25.0, help="frame rate the videos are resampled to (25)")
    p.add_argument("--chunk", type=int, default=16, help="frames per feature row, non-overlapping (16)")
    p.add_argument("--resize", type=int, default=256, help="shorter side of the resized frame (256)")
    p.add_argument("--crop", type=int, default=224, help="center crop fed to I3D (224)")
    p.add_argument(flow_flag, dest="flow_method", choices=["tvl1", "raft"], default="tvl1",
                   help="optical flow: OpenCV's TV-L1 (default, the convention) or torchvision's RAFT "
                        "(needs torchvision; fast on a GPU, not the convention)")
    p.add_argument("--flow-bound", type=float, default=20.0, help="flow clipped to [-b, b] then divided by b (20)")
    p.add_argument("--raft-weights", help="RAFT weights file (default: torchvision's cache)")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                   help="precision of the I3D networks (float16: with --device cuda)")
    p.add_argument("--batch-size", type=int, default=8, help="chunks per network call (8)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding/flow processes (default: one per two CPU cores on CPU, every core but "
                        "one with a GPU; at most one a video; 0: all in this process)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from(args):
    from .settings import Settings
    return Settings(fps=args.fps, chunk=args.chunk, resize=args.resize, crop=args.crop, flow=args.flow_method,
                    flow_bound=args.flow_bound, dtype=args.dtype)


def check_speed_flags(args) -> None:
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.workers is not None and args.workers < 0:
        raise ValueError(f"--workers must be >= 0, got {args.workers}")
