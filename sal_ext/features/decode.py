"""Video decoding with PyAV (FFmpeg: H.264, MPEG-4, VP9, ..., constant or variable frame rate)
and resampling to a fixed frame rate.

:func:`decode_frames` yields the video as RGB frames at `fps` (25 by default), each resized so
that its shorter side is `short_side` pixels (FFmpeg's swscale, bilinear; aspect kept).
Resampling: output frame k shows what the video shows at time k / fps (counted from the first
frame): the last decoded frame whose presentation time is <= k / fps, computed on exact
fractions of the stream's time base. The video ends at the last frame's time plus its duration
(the last interval between frames); output frame k is kept when at least half of its interval
[k / fps, (k + 1) / fps) lies before the end (so timestamps rounded by a container do not add a
frame): a 3 s clip gives 75 frames at 25 fps from any frame rate.

A file that is missing, not a video (no video stream: e.g. audio only), undecodable, has no
frames, or is truncated (decoding fails midway, or ends well before the duration its header
declares) raises :class:`VideoError` with one line naming the file.
"""
from __future__ import annotations

import os
from fractions import Fraction
from typing import Dict, Iterator, Optional

import av
import numpy as np

# A truncated file: decoding ends this long before the declared duration (seconds, and a fraction of it).
TRUNCATION_SLACK_S = 1.0
TRUNCATION_SLACK_FRACTION = 0.02


class VideoError(Exception):
    """A video that cannot be used; str() is one line naming the file."""

    def __init__(self, path: str, what: str):
        super().__init__(f"{path}: {what}")
        self.path = path


def _first_line(exc: BaseException) -> str:
    """The error in one line: FFmpeg's own words, without the errno and file name that
    PyAV adds (the message names the file already)."""
    text = getattr(exc, "strerror", None) if isinstance(exc, av.FFmpegError) else None
    text = " ".join(str(text or exc).split())
    return text[:200] or type(exc).__name__


def resized_size(width: int, height: int, short_side: int) -> tuple:
    """(w, h) with the shorter side `short_side` and the aspect kept (rounded)."""
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


class _Resampler:
    """Turns decoded frames (with exact times) into frames at a fixed rate (module doc)."""

    def __init__(self, fps: Fraction):
        self.fps = fps
        self.k = 0           # next output frame
        self.prev = None     # (time, frame) of the last decoded frame
        self.cache = None    # (frame, array) of the last converted frame

    def push(self, t: Fraction, frame, convert) -> Iterator[np.ndarray]:
        if self.prev is not None:
            if t <= self.prev[0]:       # a repeated or out-of-order time: keep the newer frame
                self.prev = (self.prev[0], frame)
                return
            yield from self._emit_while(lambda tk: tk < t, convert)
        self.prev = (t, frame)

    def _emit_while(self, keep_going, convert) -> Iterator[np.ndarray]:
        frame = self.prev[1]
        while keep_going(Fraction(self.k) / self.fps):
            if self.cache is None or self.cache[0] is not frame:
                self.cache = (frame, convert(frame))
            yield self.cache[1]
            self.k += 1

    def finish(self, end: Fraction, convert) -> Iterator[np.ndarray]:
        """The frames up to `end`: those whose interval [t, t + 1/fps) lies at least half inside."""
        if self.prev is not None:
            half = 1 / (2 * self.fps)
            yield from self._emit_while(lambda t: t + half <= end or t == 0, convert)


def decode_frames(path: str, fps: float = 25.0, short_side: int = 256,
                  info: Optional[Dict] = None) -> Iterator[np.ndarray]:
    """RGB frames uint8 [H, W, 3] of `path` at `fps`, shorter side `short_side` (module doc).

    `info`, when given, is filled with what was decoded: "decoded_frames", "frames" (output),
    "source_fps" (average), "width"/"height" (of the file), "duration_s"."""
    info = {} if info is None else info
    if not os.path.isfile(path):
        raise VideoError(path, "no such file")
    try:
        container = av.open(path)
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(path, f"cannot open it as a video: {_first_line(exc)}") from None
    with container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams})
            if not kinds:
                raise VideoError(path, "has no stream at all (an empty container, 0 frames)")
            raise VideoError(path, f"has no video stream ({', '.join(kinds)} only)")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = Fraction(fps).limit_denominator(1001)
        tb = stream.time_base or Fraction(1, 90000)
        avg = stream.average_rate or stream.guessed_rate
        w = h = None

        def convert(frame):
            return frame.to_ndarray(format="rgb24", width=w, height=h, interpolation="BILINEAR")

        res = _Resampler(rate)
        n = 0
        t0 = last_t = None
        last_dur = None
        try:
            for frame in container.decode(stream):
                if w is None:
                    info["width"], info["height"] = frame.width, frame.height
                    w, h = resized_size(frame.width, frame.height, short_side)
                pts = frame.pts if frame.pts is not None else frame.dts
                if pts is None:        # no timestamps at all: the frame index at the average rate
                    t = Fraction(n) / Fraction(avg or 25)
                else:
                    t = Fraction(pts) * Fraction(tb)
                if t0 is None:
                    t0 = t
                t = t - t0
                if last_t is not None and t > last_t:
                    last_dur = t - last_t
                last_t = t if last_t is None else max(last_t, t)
                n += 1
                yield from res.push(t, frame, convert)
        except av.FFmpegError as exc:
            what = "cannot decode it" if n == 0 else f"decoding failed after {n} frames (truncated or corrupt?)"
            raise VideoError(path, f"{what}: {_first_line(exc)}") from None
        if n == 0:
            raise VideoError(path, "no frame could be decoded (empty or corrupt video stream)")
        if last_dur is None:
            last_dur = Fraction(1) / Fraction(avg) if avg else Fraction(1) / rate
        end = last_t + last_dur
        declared = None
        if stream.duration:
            declared = float(stream.duration * tb)
        elif container.duration:
            declared = container.duration / 1e6
        info.update(decoded_frames=n, source_fps=float(avg) if avg else None, duration_s=float(end))
        if declared and float(end) < declared - max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRACTION * declared):
            raise VideoError(path, f"truncated: decoding ended at {float(end):.2f} s of the {declared:.2f} s "
                                   "its header declares")
        yield from res.finish(end, convert)
        info["frames"] = res.k
