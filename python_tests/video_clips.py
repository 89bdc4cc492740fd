"""Small test videos written with PyAV: a bright square moving right over a dark background,
at a chosen frame rate (or variable), size and codec; and broken files."""
from __future__ import annotations

from fractions import Fraction

import numpy as np


def square_frame(t: float, w: int, h: int, speed: float = 25.0, size: int = 12) -> np.ndarray:
    """RGB uint8 [h, w, 3]: a checkered square whose left edge is at 4 + speed * t pixels (wrapping)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 30 + (np.arange(w) * 3 % 40)[None, :]        # some texture for the flow
    img[..., 1] = 40
    img[..., 2] = 50 + (np.arange(h) * 5 % 30)[:, None]
    x = int(round(4 + speed * t)) % max(1, w - size)
    y = (h - size) // 2
    img[y:y + size, x:x + size] = (230, 200, 60)
    checks = (np.add.outer(np.arange(size) // 3, np.arange(size) // 3) % 2).astype(bool)
    img[y:y + size, x:x + size, 1][checks] = 90            # a textured square (its flow is defined)
    return img


def write_clip(path: str, seconds: float, fps=25, w: int = 64, h: int = 48, codec: str = "libx264",
               times=None) -> int:
    """Writes the moving square; `times` (seconds) instead of a constant rate gives a variable
    frame rate. Returns the number of frames."""
    import av
    if times is None:
        n = int(round(seconds * fps))
        times = [i / fps for i in range(n)]
    with av.open(path, "w") as c:
        s = c.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        tb = Fraction(1, 1000)
        s.time_base = tb
        for t in times:
            frame = av.VideoFrame.from_ndarray(square_frame(t, w, h), format="rgb24")
            frame.pts, frame.time_base = int(round(t * 1000)), tb
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return len(times)


def write_audio_only(path: str, seconds: float = 1.0) -> None:
    import av
    with av.open(path, "w") as c:
        s = c.add_stream("aac", rate=16000)
        n = 1024
        for i in range(int(seconds * 16000) // n):
            t = (np.arange(n) + i * n) / 16000
            frame = av.AudioFrame.from_ndarray(np.sin(2 * np.pi * 440 * t).astype(np.float32)[None, :],
                                               format="fltp", layout="mono")
            frame.sample_rate = 16000
            frame.pts = i * n
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def write_no_frames(path: str) -> None:
    """A container with a video stream and not one frame."""
    import av
    with av.open(path, "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()      # the header, with the stream; no packet follows


def write_truncated(path: str, tmp_full: str) -> None:
    """The first 40 % of the bytes of a 4 s Matroska clip (its header declares 4 s)."""
    write_clip(tmp_full, 4.0)
    data = open(tmp_full, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: int(len(data) * 0.4)])


def write_garbage(path: str) -> None:
    rng = np.random.default_rng(0)
    with open(path, "wb") as f:
        f.write(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
