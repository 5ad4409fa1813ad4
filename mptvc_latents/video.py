"""Video input and output with PyAV, as uint8 ``(T, H, W, 3)`` RGB arrays."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "VIDEO_SUFFIXES",
    "FoundVideo",
    "VideoClip",
    "VideoSearch",
    "find_videos",
    "read_video",
    "write_frames",
    "write_video",
]

#: File endings that count as video when folders are searched (training, tokenizing, evaluation).
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".y4m", ".gif")


@dataclass(frozen=True)
class FoundVideo:
    """A video file that :func:`find_videos` found."""

    path: Path  # as named or found under its folder argument (not resolved)
    root: Path | None  # the folder argument it was found in; None when named directly or by a glob


@dataclass(frozen=True)
class VideoSearch:
    """What :func:`find_videos` found: each file once, and ``(argument, reason)`` per argument that matched nothing."""

    videos: tuple[FoundVideo, ...]
    unmatched: tuple[tuple[str, str], ...]

    @property
    def paths(self) -> list[Path]:
        return [video.path for video in self.videos]


def find_videos(sources: Iterable[str | Path], *, skip_missing: bool = False) -> VideoSearch:
    """The video files that ``sources`` name, in their order: a file as it is (whatever its suffix),
    a folder searched recursively for files with a suffix in :data:`VIDEO_SUFFIXES` (sorted), a glob
    pattern (``**`` recurses) by the files it matches (sorted). A file found twice is kept once.

    Args:
        skip_missing: report an argument that matches nothing in ``VideoSearch.unmatched`` instead
            of raising (bulk jobs that skip what they cannot read).

    Raises:
        ValueError: when an argument matches nothing (unless ``skip_missing``), or nothing at all is found.
    """
    found: dict[Path, FoundVideo] = {}
    unmatched: list[tuple[str, str]] = []
    arguments = [str(source) for source in sources]
    if not arguments:
        raise ValueError("No video sources were given: name video files, folders or glob patterns.")
    for arg in arguments:
        path = Path(arg)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
            videos = [FoundVideo(p, path) for p in files]
            reason = f"the folder holds no video files ({', '.join(VIDEO_SUFFIXES)})"
        elif path.is_file():
            videos, reason = [FoundVideo(path, None)], ""
        elif glob.has_magic(arg):
            files = sorted(Path(p) for p in glob.glob(arg, recursive=True) if Path(p).is_file())
            videos, reason = [FoundVideo(p, None) for p in files], "the pattern matches no file"
        else:
            videos, reason = [], "no such file or folder"
        if not videos:
            if not skip_missing:
                raise ValueError(f"The video source {arg!r} matches nothing: {reason}.")
            unmatched.append((arg, reason))
        for video in videos:
            found.setdefault(video.path.resolve(), video)
    if not found:
        raise ValueError("No video was found: " + "; ".join(f"{arg!r}: {reason}" for arg, reason in unmatched) + ".")
    return VideoSearch(tuple(found.values()), tuple(unmatched))


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
        frames: list[np.ndarray] = []
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
