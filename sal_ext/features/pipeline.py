"""The extraction pipeline: worker processes decode videos and compute TV-L1 flow
(:mod:`sal_ext.features.producer`) while the main process runs the two I3D networks on batches
of chunks.

* ``workers`` processes (0: everything in this process) each take one video at a time and send
  its pieces (``piece_chunks`` chunks each, the network's batch) through a bounded queue, so
  decoding and flow overlap the networks and memory stays bounded on long videos.
* A bad video ends with one line naming the file (:class:`~sal_ext.features.decode.VideoError`,
  or a worker that died on it); the other videos go on.
* ``on_video(name, rgb, flow, info)`` receives each finished video's [T, 1024] arrays;
  ``on_error(name, message)`` each failure.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import queue
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch

from .chunks import center_crop, rgb_to_input, to_ncthw
from .decode import VideoError
from .flow import flow_to_input
from .producer import video_pieces
from .settings import Settings

_POLL_S = 0.5


class Networks:
    """The two I3D streams on one device (and RAFT when the flow is RAFT's):
    ``features(piece) -> (rgb [n, 1024], flow [n, 1024])`` float32 numpy."""

    def __init__(self, rgb_net, flow_net, settings: Settings, device, raft=None):
        self.device = torch.device(device)
        self.dtype = torch.float16 if settings.dtype == "float16" else torch.float32
        self.rgb = rgb_net.to(self.device, self.dtype).eval()
        self.flow = flow_net.to(self.device, self.dtype).eval()
        self.settings = settings
        self.raft = raft

    @torch.no_grad()
    def _run(self, net, x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(to_ncthw(x)).to(self.device, self.dtype, non_blocking=True)
        return net(t).float().cpu().numpy()

    def features(self, piece: Dict[str, np.ndarray]) -> Tuple[np.ndarray, np.ndarray]:
        rgb = self._run(self.rgb, rgb_to_input(piece["rgb"]))
        if "flow" in piece:
            flow_in = piece["flow"]
        else:                                       # RAFT on this device
            s = self.settings
            fl = self.raft(piece["frames"])            # [16n, H, W, 2] pixels
            fl = center_crop(flow_to_input(fl, s.flow_bound), s.crop)
            flow_in = fl.reshape(-1, s.chunk, s.crop, s.crop, 2)
        return rgb, self._run(self.flow, flow_in)


def _produce(path: str, settings: Settings, piece_chunks: int, send) -> None:
    """Runs one video through the producer, sending ("piece", piece) ... ("done", info) or
    ("error", message)."""
    info: Dict = {}
    try:
        for piece in video_pieces(path, settings, piece_chunks, info):
            send(("piece", piece))
    except VideoError as exc:
        send(("error", str(exc)))
        return
    except (MemoryError, OSError, ValueError, RuntimeError) as exc:
        send(("error", f"{path}: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}"))
        return
    send(("done", info))


def _worker(wid: int, tasks, results, settings: Settings, piece_chunks: int, cv_threads: int) -> None:
    import cv2
    cv2.setNumThreads(cv_threads)
    while True:
        task = tasks.get()
        if task is None:
            return
        idx, path = task
        results.put(("start", idx, wid))
        _produce(path, settings, piece_chunks, lambda msg: results.put((msg[0], idx, msg[1])))


def default_workers(num_videos: int, device="cpu") -> int:
    """Decoding/flow processes: on CPU one per two cores (the networks need the others); on a
    GPU every core but one, shared by the processes of this machine under torchrun. At least
    one, at most one a video."""
    cores = os.cpu_count() or 2
    if torch.device(device).type == "cuda":
        n = (cores - 1) // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))
    else:
        n = cores // 2
    return max(1, min(num_videos, n))


def run(videos: Sequence[Tuple[str, str]], settings: Settings, nets: Networks,
        on_video: Callable, on_error: Callable, *, workers: int = 1, piece_chunks: int = 8,
        on_frames: Optional[Callable[[int], None]] = None) -> None:
    """Extracts the features of `videos` [(name, path)] (module doc). `on_frames(n)` is told
    of every n frames (chunks x 16) that went through the networks (for a progress bar)."""
    state: Dict[int, Dict] = {}

    def take(idx: int, kind: str, payload) -> None:
        name = videos[idx][0]
        st = state.setdefault(idx, {"rgb": [], "flow": []})
        if kind == "piece":
            r, f = nets.features(payload)
            st["rgb"].append(r)
            st["flow"].append(f)
            if on_frames:
                on_frames(r.shape[0] * settings.chunk)
        elif kind == "done":
            on_video(name, np.concatenate(st["rgb"]), np.concatenate(st["flow"]), payload)
            state.pop(idx, None)
        else:
            on_error(name, payload)
            state.pop(idx, None)

    if workers <= 0:
        for idx, (_, path) in enumerate(videos):
            _produce(path, settings, piece_chunks, lambda msg, i=idx: take(i, msg[0], msg[1]))
        return
    workers = min(workers, len(videos))
    before = torch.get_num_threads()
    if nets.device.type == "cpu":       # the networks get the cores the workers leave
        torch.set_num_threads(max(1, min(before, (os.cpu_count() or 1) - workers)))
    try:
        _run_workers(videos, settings, piece_chunks, workers, take)
    finally:
        torch.set_num_threads(before)


def _run_workers(videos, settings, piece_chunks, workers, take) -> None:
    if not videos:
        return
    # spawn, not fork: a forked child of a process whose OpenMP / OpenCV thread pools already ran
    # can deadlock in them
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue(maxsize=2 * workers)
    for item in enumerate(path for _, path in videos):
        tasks.put(item)
    cv_threads = max(1, (os.cpu_count() or 1) // workers)
    procs: Dict[int, mp.Process] = {}
    current: Dict[int, Optional[int]] = {}     # worker -> the video it is on
    finished = set()

    def start(wid: int) -> None:
        tasks.put(None)                         # one stop sign per worker, queued after the videos
        p = ctx.Process(target=_worker, args=(wid, tasks, results, settings, piece_chunks, cv_threads),
                        daemon=True, name=f"sal_ext.features worker {wid}")
        p.start()
        procs[wid], current[wid] = p, None

    next_wid = 0
    for _ in range(workers):
        start(next_wid)
        next_wid += 1
    try:
        while len(finished) < len(videos):
            try:
                kind, idx, payload = results.get(timeout=_POLL_S)
            except queue.Empty:
                for wid, p in list(procs.items()):
                    if not p.is_alive():
                        p.join()
                        procs.pop(wid)
                        idx = current.pop(wid)
                        if idx is not None and idx not in finished:
                            finished.add(idx)
                            take(idx, "error", f"{videos[idx][1]}: the decoding process died on it "
                                               f"(exit code {p.exitcode})")
                        if p.exitcode != 0 and len(finished) < len(videos):   # crashed: replace it
                            start(next_wid)
                            next_wid += 1
                if not procs:      # every worker gone, videos left: a task was lost with a worker
                    for idx in range(len(videos)):
                        if idx not in finished:
                            finished.add(idx)
                            take(idx, "error", f"{videos[idx][1]}: not extracted (its decoding process "
                                               "was lost)")
                continue
            if kind == "start":
                current[payload] = idx
                continue
            take(idx, kind, payload)
            if kind in ("done", "error"):
                finished.add(idx)
                for wid, v in current.items():
                    if v == idx:
                        current[wid] = None
    finally:
        for p in procs.values():
            if p.is_alive():
                p.terminate()
            p.join(timeout=5)
        tasks.cancel_join_thread()
        results.cancel_join_thread()


__all__ = ["Networks", "run", "default_workers"]
