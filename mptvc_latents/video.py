"""Video input and output with PyAV, as uint8 ``(T, H, W, 3)`` RGB arrays."""

from __future__ import annotations

import glob
import logging
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

log = logging.getLogger(__name__)

__all__ = [
    "VIDEO_SUFFIXES",
    "FoundVideo",
    "FrameWriter",
    "VideoClip",
    "VideoReadError",
    "VideoReader",
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
    """Decoded frames, their frame rate and (when the file has them) presentation times in seconds."""

    frames: np.ndarray  # (T, H, W, 3) uint8 RGB
    fps: float
    timestamps: np.ndarray | None = field(default=None, repr=False)  # (T,) float64 seconds, NaN where unknown


# Display matrices (the 2x2 rotation/mirror part, normalised) -> (quarter turns counterclockwise,
# then mirror left-right, then mirror top-bottom): the eight orientations a player applies, as
# FFmpeg's autorotate does. Any other matrix (an angle that is not a multiple of 90 degrees, a
# shear) is refused with a VideoReadError.
_ORIENTATIONS: dict[tuple[int, int, int, int], tuple[int, bool, bool]] = {
    (1, 0, 0, 1): (0, False, False),
    (1, 0, 0, -1): (0, False, True),
    (-1, 0, 0, 1): (0, True, False),
    (-1, 0, 0, -1): (2, False, False),
    (0, -1, 1, 0): (1, False, False),
    (0, 1, -1, 0): (3, False, False),
    (0, 1, 1, 0): (1, False, True),
    (0, -1, -1, 0): (1, True, False),
}
_IDENTITY = (0, False, False)
# A frame rate the container declares above this is a time base, not a rate (WebM says 1000).
_MAX_PLAUSIBLE_FPS = 480.0


class VideoReadError(ValueError):
    """A video file cannot be read as frames; the message names the file and, mid-stream, the frame."""


def _orientation(frame, path: Path, index: int) -> tuple[int, bool, bool]:
    """How to turn ``frame`` upright, from its display matrix (side data); identity without one."""
    from av.sidedata.sidedata import Type

    data = frame.side_data.get(Type.DISPLAYMATRIX)
    if data is None:
        return _IDENTITY
    a, b, c, d = np.frombuffer(bytes(data), dtype="<i4")[[0, 1, 3, 4]] / 65536.0  # 16.16 fixed point
    scale_x, scale_y = np.hypot(a, c), np.hypot(b, d)  # FFmpeg's av_display_rotation_get normalises so
    if scale_x == 0 or scale_y == 0:
        raise VideoReadError(f"Frame {index} of {str(path)!r} has a degenerate display matrix {[a, b, c, d]}.")
    unit = np.array([a / scale_x, b / scale_y, c / scale_x, d / scale_y])
    key = tuple(int(v) for v in np.rint(unit))
    if np.abs(unit - key).max() > 1e-3 or key not in _ORIENTATIONS:
        angle = round(-float(np.degrees(np.arctan2(unit[1], unit[0]))), 1)  # counterclockwise, as FFmpeg reads it
        raise VideoReadError(
            f"Frame {index} of {str(path)!r} asks to be displayed rotated by {angle:g} degrees (display "
            f"matrix {np.round(unit, 3).tolist()}); only multiples of 90 degrees and mirroring are supported: "
            f"re-encode the video upright first (e.g. ffmpeg -i in.mp4 -vf rotate=... out.mp4)."
        )
    return _ORIENTATIONS[key]


def _upright(rgb: np.ndarray, orientation: tuple[int, bool, bool]) -> np.ndarray:
    turns, mirror_lr, mirror_tb = orientation
    if turns:
        rgb = np.rot90(rgb, turns)  # counterclockwise, as the display matrix means it
    if mirror_lr:
        rgb = rgb[:, ::-1]
    if mirror_tb:
        rgb = rgb[::-1]
    return rgb


class VideoReader:
    """Frames of a video file, decoded a few at a time: memory does not grow with the video's length.

    ``frames()`` yields uint8 RGB frames ``(H, W, 3)`` and ``chunks(n)`` arrays ``(n, H, W, 3)``
    (the last one shorter); each call decodes the file afresh, so a reader can be iterated again.
    ``start`` skips frames, ``max_frames`` stops early. Every format FFmpeg reads works.

    What comes out of awkward files (tested in ``tests/test_video.py``):

    - **Rotation.** A display matrix (phone videos) is applied as a player applies it: frames
      come out upright, with height and width swapped for quarter turns; mirrored matrices too.
      An angle that is not a multiple of 90 degrees raises :class:`VideoReadError`.
    - **Frame size changes** (screen recordings): every frame is rescaled (bilinear) to the
      displayed size of the first frame; a warning names the first frame of each new size.
    - **Variable frame rate.** Every decoded frame is kept, once, in presentation order; ``fps``
      is the container's average rate (measured from the packets' times when it declares none)
      and ``timestamps`` keeps each frame's presentation time in seconds
      (the codec codes frames, not times; token stores keep the times, ``.mptvc`` files and
      decoded videos are constant-rate at ``fps``).
    - **Damage.** A decoding error after the first frame logs a warning and ends the video
      there; before it, or a file that is not a video, raises :class:`VideoReadError`.

    Raises:
        VideoReadError: when the file does not exist, cannot be opened or has no video stream.
    """

    def __init__(self, path: str | Path, start: int = 0, max_frames: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise VideoReadError(f"The video file {str(self.path)!r} does not exist.")
        if start < 0 or (max_frames is not None and max_frames < 1):
            raise ValueError(f"start must be 0 or more and max_frames 1 or more, got {start} and {max_frames}.")
        self.start, self.max_frames = start, max_frames
        with self._open() as container:
            stream = container.streams.video[0]
            rate = stream.average_rate
            self._declared_fps = float(rate) if rate and 0 < float(rate) <= _MAX_PLAUSIBLE_FPS else None
            self._declared_frames = int(stream.frames) or None
        self._scan: tuple[int, float | None] | None = None
        self._size: tuple[int, int] | None = None
        self.timestamps = np.zeros(0)  # (frames,) seconds, of the last complete pass over the frames

    def _open(self):
        import av

        try:
            container = av.open(str(self.path))
        except (av.error.FFmpegError, OSError) as e:
            raise VideoReadError(f"The file {str(self.path)!r} could not be opened as a video: {e}.") from e
        if not container.streams.video:
            container.close()
            raise VideoReadError(f"The file {str(self.path)!r} has no video stream.")
        return container

    def _packets(self) -> tuple[int, float | None]:
        """``(packets, fps)`` from a scan of the packets' timestamps (no decoding: fast)."""
        if self._scan is None:
            count, times = 0, []
            with self._open() as container:
                stream = container.streams.video[0]
                for packet in container.demux(stream):
                    if packet.size:
                        count += 1
                        if packet.pts is not None:
                            times.append(float(packet.pts * stream.time_base))
            span = max(times) - min(times) if len(times) > 1 else 0.0
            self._scan = count, (len(times) - 1) / span if span > 0 else None
        return self._scan

    @property
    def fps(self) -> float:
        """The average frame rate: the container's, else measured from the packets' times (WebM
        declares none), else 25."""
        if self._declared_fps is not None:
            return self._declared_fps
        measured = self._packets()[1]
        if measured is None:
            log.warning("%s declares no frame rate and its timestamps give none; assuming 25 fps", self.path)
            return 25.0
        return measured

    @property
    def frame_count(self) -> int:
        """Frames this reader yields, as the container declares (else as its packets count; a few
        files count a packet more or less than they decode, so treat it as an estimate)."""
        total = self._declared_frames or self._packets()[0]
        total = max(0, total - self.start)
        return total if self.max_frames is None else min(total, self.max_frames)

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` of the frames: the first frame's, upright."""
        if self._size is None:
            frames = self.frames()
            next(frames)  # sets _size, or raises VideoReadError for a video without frames
            frames.close()
        assert self._size is not None
        return self._size

    def frames(self) -> Generator[np.ndarray, None, None]:
        """uint8 RGB frames ``(H, W, 3)``, upright and all of the first frame's size (see the class)."""
        import av

        times: list[float] = []
        self.timestamps = np.zeros(0)
        with self._open() as container:
            stream = container.streams.video[0]
            index, size, orientation = -1, self._size, _IDENTITY
            source_size: tuple[int, int] | None = None
            decoded = container.decode(stream)
            while self.max_frames is None or len(times) < self.max_frames:
                try:
                    frame = next(decoded, None)
                except av.error.FFmpegError as e:
                    if not times:
                        raise VideoReadError(f"The video {str(self.path)!r} could not be decoded: {e}.") from e
                    log.warning("Stopped reading %s after frame %d: %s", self.path, index, e)
                    break
                if frame is None:
                    break
                index += 1
                if index < self.start:
                    continue
                orientation = _orientation(frame, self.path, index)
                turned = orientation[0] % 2 == 1
                shown = (frame.width, frame.height) if turned else (frame.height, frame.width)
                if size is None:
                    size = self._size = shown
                if shown != size:
                    if source_size != (frame.height, frame.width):
                        log.warning(
                            "%s: frame %d is %dx%d, not %dx%d like the first frame; rescaling it (and any frame "
                            "of that size) to the first frame's size",
                            self.path,
                            index,
                            shown[1],
                            shown[0],
                            size[1],
                            size[0],
                        )
                    source_size = (frame.height, frame.width)
                    height, width = (size[1], size[0]) if turned else size
                    frame = frame.reformat(width=width, height=height)
                else:
                    source_size = None
                try:
                    rgb = _upright(frame.to_ndarray(format="rgb24"), orientation)
                except (av.error.FFmpegError, ValueError) as e:
                    raise VideoReadError(
                        f"Frame {index} of {str(self.path)!r} could not be converted to RGB: {e}."
                    ) from e
                times.append(np.nan if frame.time is None else float(frame.time))
                yield rgb
        if not times:
            raise VideoReadError(f"The video {str(self.path)!r} has no frames in the requested range.")
        self.timestamps = np.asarray(times)
        _log_variable_rate(self.path, self.timestamps)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """Frames in arrays ``(n, H, W, 3)`` of ``size`` frames (the last one may be shorter)."""
        if size < 1:
            raise ValueError(f"A chunk holds 1 or more frames, got {size}.")
        batch: list[np.ndarray] = []
        for frame in self.frames():
            batch.append(frame)
            if len(batch) == size:
                yield np.stack(batch)  # (size, H, W, 3)
                batch = []
        if batch:
            yield np.stack(batch)

    def read(self) -> VideoClip:
        """Every frame in memory at once: for short clips only (``chunks`` for long ones)."""
        frames = np.stack(list(self.frames()))  # (T, H, W, 3)
        return VideoClip(frames, self.fps, self.timestamps)


def _log_variable_rate(path: Path, timestamps: np.ndarray) -> None:
    durations = np.diff(timestamps[np.isfinite(timestamps)])
    if durations.size > 1 and durations.min() > 0 and durations.max() > 1.01 * durations.min():
        log.info(
            "%s has a variable frame rate (frame durations %.4g to %.4g s); its frames are coded in order, at "
            "the average rate",
            path,
            durations.min(),
            durations.max(),
        )


def read_video(path: str | Path, max_frames: int | None = None, start: int = 0) -> VideoClip:
    """Read frames ``start .. start + max_frames`` of a video file into memory (:class:`VideoReader`).

    For long videos iterate ``VideoReader(path).chunks(n)`` instead: this holds every frame.

    Raises:
        VideoReadError: (a ``ValueError``) when the file cannot be opened, holds no video frames in
            the range, or asks for a rotation other than a multiple of 90 degrees.
    """
    return VideoReader(path, start=start, max_frames=max_frames).read()


class FrameWriter:
    """Writes uint8 RGB frames ``(n, H, W, 3)`` as they come, so a long video never sits in memory.

    ``.npy`` (or ``npy=True``) keeps the exact array ``(frames, H, W, 3)`` and needs ``frames``, the total, up front
    (the header comes first); anything else is H.264 (yuv420p, ``crf``) through PyAV, odd sizes
    padded by repeating the last row/column. Use it as a context manager: leaving it closes the
    file, and for ``.npy`` checks that ``frames`` frames were written.

    Raises:
        ValueError: for frames of another shape or size than the first, a wrong total, or a
            container FFmpeg cannot write.
    """

    def __init__(
        self, path: str | Path, fps: float, frames: int | None = None, crf: int = 12, *, npy: bool | None = None
    ) -> None:
        self.path, self.fps, self.total, self.crf = Path(path), float(fps), frames, crf
        self.npy = self.path.suffix.lower() == ".npy" if npy is None else npy
        if self.npy and frames is None:
            raise ValueError(f"Writing {str(self.path)!r} as .npy needs the number of frames up front.")
        self.written = 0
        self._size: tuple[int, int] | None = None
        self._file: BinaryIO | None = None
        self._container: Any = None  # av OutputContainer, and its video stream
        self._stream: Any = None

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(check=kind is None)

    def _start(self, height: int, width: int) -> None:
        import av

        self._size = (height, width)
        if self.npy:
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed by close()
            header = {"descr": "|u1", "fortran_order": False, "shape": (self.total, height, width, 3)}
            np.lib.format.write_array_header_1_0(self._file, header)  # the header np.save writes
            return
        try:
            self._container = av.open(str(self.path), mode="w")
            stream = self._container.add_stream("libx264", rate=Fraction(self.fps).limit_denominator(1001))
            stream.width, stream.height = width + width % 2, height + height % 2  # yuv420p: even sizes
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(self.crf), "preset": "medium"}
        except av.error.FFmpegError as e:
            raise ValueError(
                f"The video could not be written as {self.path.suffix or 'a file without extension'}: {e}."
            ) from e
        self._stream = stream

    def write(self, frames: np.ndarray) -> None:
        """Append uint8 frames ``(n, H, W, 3)`` (or one frame ``(H, W, 3)``)."""
        frames = np.asarray(frames)
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"Frames must be uint8 (n, H, W, 3), got {frames.dtype} {frames.shape}.")
        if self._size is None:
            self._start(frames.shape[1], frames.shape[2])
        if frames.shape[1:3] != self._size:
            raise ValueError(f"Frames of {frames.shape[1:3]} cannot follow frames of {self._size} in {self.path}.")
        if self.total is not None and self.written + len(frames) > self.total:
            raise ValueError(f"{str(self.path)!r} was opened for {self.total} frames; got more.")
        if self._file is not None:
            self._file.write(np.ascontiguousarray(frames).tobytes())
        else:
            self._encode(frames)
        self.written += len(frames)

    def _encode(self, frames: np.ndarray) -> None:
        import av

        assert self._size is not None
        height, width = self._size
        if height % 2 or width % 2:  # repeat the last row/column
            frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
        try:
            for rgb in frames:
                for packet in self._stream.encode(
                    av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
                ):
                    self._container.mux(packet)
        except av.error.FFmpegError as e:
            raise ValueError(f"Frame {self.written} could not be written to {str(self.path)!r}: {e}.") from e

    def close(self, check: bool = True) -> None:
        """Flush and close; with ``check``, a ``.npy`` short of its frames raises ValueError."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._container is not None:
            try:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            finally:
                self._container.close()
                self._container = None
        if check and self.total is not None and self.written != self.total:
            raise ValueError(f"{str(self.path)!r} got {self.written} frames of the {self.total} it was opened for.")


def write_video(path: str | Path, frames: np.ndarray, fps: float, crf: int = 12) -> None:
    """Write uint8 ``(T, H, W, 3)`` RGB frames as H.264 (yuv420p, even sizes padded by FFmpeg rules)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    with FrameWriter(path, fps, crf=crf, npy=False) as writer:
        writer.write(frames)


def write_frames(path: str | Path, frames: np.ndarray, fps: float) -> None:
    """``.npy``: the exact uint8 ``(T, H, W, 3)`` array; anything else: H.264 through PyAV.

    Raises:
        ValueError: when FFmpeg cannot write that container.
    """
    frames = np.asarray(frames)
    with FrameWriter(path, fps, frames=len(frames)) as writer:
        writer.write(frames)
