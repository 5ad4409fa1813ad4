"""Image outputs through PyAV (a core dependency): GIFs with FFmpeg's two-pass palette (palettegen,
paletteuse), PNG stills, and grids of frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["tile", "write_gif", "write_png"]


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


def tile(rows: list[np.ndarray], gap: int = 2) -> np.ndarray:
    """Rows of frames -> one uint8 image: ``rows[r]`` is ``(n, H, W, 3)``; white ``gap`` pixels between."""
    n, h, w, _ = rows[0].shape
    if any(r.shape != rows[0].shape for r in rows):
        raise ValueError("Every row of the grid must hold the same number of frames of one size.")
    out = np.full((len(rows) * (h + gap) - gap, n * (w + gap) - gap, 3), 255, np.uint8)
    for i, row in enumerate(rows):
        for j, frame in enumerate(row):
            out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = frame
    return out


def write_png(path: str | Path, image: np.ndarray) -> None:
    """Write a uint8 ``(H, W, 3)`` RGB image as PNG."""
    import av

    image = np.ascontiguousarray(image)
    if image.ndim != 3 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"The image must be uint8 (H, W, 3), got {image.dtype} {image.shape}.")
    with av.open(str(path), mode="w", format="image2", options={"update": "1"}) as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
