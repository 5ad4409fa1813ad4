"""Animated GIFs through PyAV (a core dependency): FFmpeg's two-pass palette (palettegen, paletteuse)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["write_gif"]


def write_gif(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """Write uint8 ``(T, H, W, 3)`` RGB frames as a looping GIF with one palette fitted to all frames."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    t, h, w, _ = frames.shape
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(str(path), mode="w", format="gif") as container:
        stream = container.add_stream("gif", rate=rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "pal8"
        graph = av.filter.Graph()
        src = graph.add_buffer(width=w, height=h, format="rgb24", time_base=Fraction(1) / rate)
        split = graph.add("split")
        gen = graph.add("palettegen", "stats_mode=full")
        use = graph.add("paletteuse", "dither=bayer:bayer_scale=3")
        sink = graph.add("buffersink")
        src.link_to(split)
        split.link_to(gen, 0, 0)
        split.link_to(use, 1, 0)
        gen.link_to(use, 0, 1)
        use.link_to(sink)
        graph.configure()
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1) / rate
            graph.push(frame)
        graph.push(None)  # palettegen emits its palette only at the end of the input
        while True:
            try:
                out = graph.pull()
            except (av.error.BlockingIOError, av.error.EOFError):
                break
            out.pts = None
            for packet in stream.encode(out):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
