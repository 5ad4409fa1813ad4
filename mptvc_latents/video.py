"""Video input and output with PyAV, as uint8 ``(T, H, W, 3)`` RGB arrays."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = ["VIDEO_SUFFIXES", "VideoClip", "read_video", "write_frames", "write_video"]

#: File endings that count as video when folders are searched (training, tokenizing, evaluation).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".y4m", ".gif")


@dataclass(frozen=True)
class VideoClip:
    """Decoded frames and their frame rate."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float


def read_video(path: str | Path, max_frames: int | None = None, start: int = 0) -> VideoClip:
    """Read frames ``start .. start + max_frames`` of a video file (every format FFmpeg reads).

    Raises:
        ValueError: when the file cannot be opened or holds no video frames.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"The video file {str(path)!r} does not exist.")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as e:
        raise ValueError(f"The file {str(path)!r} could not be opened as a video: {e}.") from e
    with container:
        if not container.streams.video:
            raise ValueError(f"The file {str(path)!r} has no video stream.")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        frames = []
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i < start:
                    continue
                if max_frames is not None and len(frames) >= max_frames:
                    break
                frames.append(frame.to_ndarray(format="rgb24"))
        except av.error.FFmpegError as e:
            if not frames:
                raise ValueError(f"The video {str(path)!r} could not be decoded: {e}.") from e
            log.warning("Stopped reading %s after %d frames: %s", path, len(frames), e)
    if not frames:
        raise ValueError(f"The video {str(path)!r} has no frames in the requested range.")
    return VideoClip(np.stack(frames), float(rate))


def write_video(path: str | Path, frames: np.ndarray, fps: float, crf: int = 12) -> None:
    """Write uint8 ``(T, H, W, 3)`` RGB frames as H.264 (yuv420p, even sizes padded by FFmpeg rules)."""
    import av

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:  # yuv420p needs even sizes: repeat the last row/column
        frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_frames(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """``.npy``: the exact uint8 ``(T, H, W, 3)`` array; anything else: H.264 through PyAV.

    Raises:
        ValueError: when FFmpeg cannot write that container.
    """
    import av

    path = Path(path)
    if path.suffix.lower() == ".npy":
        np.save(path, frames)
        return
    try:
        write_video(path, frames, fps)
    except av.error.FFmpegError as e:
        raise ValueError(f"The video could not be written as {path.suffix or 'a file without extension'}: {e}.") from e
