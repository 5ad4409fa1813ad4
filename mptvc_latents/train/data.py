"""Training clips: a catalog of videos, a deterministic plan of crops per step, and a background worker.

Data flow::

    probe_videos(sources)          header + packet count + first frame: (frames, height, width)
      │                            per video, in seconds; nothing is decoded in full up front
      ▼
    plan_crops(catalog, seed, step, stage, augment)      the global batch of step ``step``
      │   Crop(video, t, y, x in [0, 1), flip, stride, scale), from a NumPy generator seeded
      │   with (seed, step) alone: any step of any run is reproducible, and resuming (on any
      │   number of processes) needs nothing but the step
      ▼
    ClipStream (torch IterableDataset, in DataLoader worker processes)
      │   rank r of a world of N takes crops [r * B/N, (r + 1) * B/N) of the global batch
      │   FrameCache: a video is decoded the first time a crop needs it (longer side at most
      │   max_side, at most max_frames frames), its shot cuts detected, and both written to
      │   ``.npy`` files that later reads memory-map: the page cache, not the process, holds them
      ▼
    (x (B/N, 3, T, H, W) float32 in [-1, 1], scene_ids (B/N, T) int64) per step, prefetched

A crop's position is relative (a fraction of the room left), so it is resolved against the
decoded video by :func:`cut_clip`; the catalog only weights and filters the videos (by their
frame count; a video smaller than the stage's crop is skipped).

Augmentation (``Augment``): a random temporal stride (frames ``t, t + s, ...``: faster motion),
a random rescale before cropping (a region of ``crop / scale`` pixels resized to the crop with
antialiasing: the same content at other sizes) and random horizontal flips.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from mptvc_latents.config import ConfigBase
from mptvc_latents.files import atomic_output
from mptvc_latents.scenes import detect_scene_cuts
from mptvc_latents.video import VideoReader, find_videos

log = logging.getLogger(__name__)

__all__ = [
    "Augment",
    "ClipStream",
    "clip_loader",
    "Crop",
    "FrameCache",
    "Stage",
    "VideoEntry",
    "cut_clip",
    "decode_video",
    "plan_crops",
    "probe_videos",
]


def _is_count(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


@dataclass(frozen=True)
class Stage(ConfigBase):
    """The clips of the steps from ``start`` on: ``batch`` crops (global, over all processes) of
    ``frames`` frames of ``crop = (height, width)`` pixels."""

    start: int
    batch: int
    frames: int
    crop: tuple[int, int]

    def __post_init__(self) -> None:
        if not _is_count(self.start, 0):
            raise ValueError(f"Stage.start must be a step, 0 or more, got {self.start!r}.")
        for name in ("batch", "frames"):
            if not _is_count(getattr(self, name), 1):
                raise ValueError(f"Stage.{name} must be a positive integer, got {getattr(self, name)!r}.")
        if not (isinstance(self.crop, tuple) and len(self.crop) == 2 and all(_is_count(c, 1) for c in self.crop)):
            raise ValueError(f"Stage.crop must be (height, width) in pixels, got {self.crop!r}.")


@dataclass(frozen=True)
class Augment(ConfigBase):
    """Random changes of each crop: temporal strides to choose from (uniformly), a rescale factor
    range (uniform; 1 keeps the pixels, 0.8 takes a region 1.25x the crop and shrinks it) and
    horizontal flips."""

    time_strides: tuple[int, ...] = (1,)
    rescale: tuple[float, float] = (1.0, 1.0)
    flip: bool = True

    def __post_init__(self) -> None:
        strides = self.time_strides
        if not (isinstance(strides, tuple) and strides and all(_is_count(s, 1) for s in strides)):
            raise ValueError(f"Augment.time_strides must be positive integers, got {strides!r}.")
        lo_hi = self.rescale
        if not (
            isinstance(lo_hi, tuple)
            and len(lo_hi) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in lo_hi)
            and 0.25 <= lo_hi[0] <= lo_hi[1] <= 4.0
        ):
            raise ValueError(f"Augment.rescale must be (low, high) with 0.25 <= low <= high <= 4, got {lo_hi!r}.")
        if not isinstance(self.flip, bool):
            raise ValueError(f"Augment.flip must be True or False, got {self.flip!r}.")


# --------------------------------------------------------------------------- the catalog


@dataclass(frozen=True)
class VideoEntry:
    """A training video as the frame cache decodes it: at most ``max_frames`` frames of ``height x width``."""

    path: str
    frames: int
    height: int
    width: int


def _target_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """``(height, width)`` of a decoded frame: the longer side at most ``max_side``, even sides when shrunk."""
    scale = max(width, height) / max_side
    if scale <= 1:
        return height, width
    return int(round(height / scale)) // 2 * 2, int(round(width / scale)) // 2 * 2


def probe_videos(sources: list[str] | tuple[str, ...], max_side: int, max_frames: int) -> list[VideoEntry]:
    """The catalog of ``sources``: per video its frame count (as ``VideoReader.frame_count``
    declares it, capped at ``max_frames``) and the decoded size of its first frame, without
    decoding the rest. Unreadable files are skipped with a warning; ValueError when none is left."""
    entries = []
    for path in find_videos(sources).paths:
        try:
            reader = VideoReader(path, max_frames=max_frames)
            height, width = _target_size(*reader.size, max_side)
            frames = reader.frame_count
        except Exception as e:  # noqa: BLE001 - one bad file must not stop training
            log.warning("Skipping %s: %s", path, e)
            continue
        entries.append(VideoEntry(str(path), max(1, frames), height, width))
    if not entries:
        raise ValueError("None of the training videos could be read.")
    log.info("%d training videos, %d frames (decoded when first used)", len(entries), sum(e.frames for e in entries))
    return entries


def decode_video(path: str | Path, max_side: int, max_frames: int) -> np.ndarray:
    """Frames ``(T, H, W, 3)`` uint8 as ``video.VideoReader`` reads them (upright, every frame at the
    first one's size), shrunk by area averaging so the longer side is at most ``max_side``."""
    import av

    reader = VideoReader(path, max_frames=max_frames)
    height, width = _target_size(*reader.size, max_side)
    frames = []
    for frame in reader.frames():  # (H, W, 3)
        if frame.shape[:2] != (height, width):  # FFmpeg's area filter: 3x faster than torch's on a CPU
            shrunk = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(width, height, interpolation="AREA")
            frame = shrunk.to_ndarray(format="rgb24")
        frames.append(frame)
    return np.stack(frames)


class FrameCache:
    """Decoded videos as ``.npy`` files in ``folder``, memory-mapped when read.

    A file is named by a digest of the video's path, size and modification time and of the
    decode settings, so an edited video or other settings decode again. Files appear atomically
    (``files.atomic_output``): processes that share the folder may decode the same video at once.
    """

    def __init__(self, folder: str | Path, max_side: int, max_frames: int) -> None:
        self.folder = Path(folder)
        self.max_side, self.max_frames = max_side, max_frames
        self._open: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def __getstate__(self) -> dict:
        """What a worker process receives: the settings, not the open memory maps."""
        return {**self.__dict__, "_open": {}}

    def _stem(self, path: str) -> str:
        stat = Path(path).stat()
        key = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.max_side}|{self.max_frames}"
        return f"{Path(path).stem[:40]}-{hashlib.sha1(key.encode()).hexdigest()[:16]}"

    def get(self, path: str) -> tuple[np.ndarray, np.ndarray]:
        """``(frames (T, H, W, 3) uint8, scene_ids (T,) int32)`` of the video at ``path``."""
        if path not in self._open:
            stem = self._stem(path)
            frames_file, scenes_file = self.folder / f"{stem}.npy", self.folder / f"{stem}.scenes.npy"
            if not (frames_file.is_file() and scenes_file.is_file()):
                frames = decode_video(path, self.max_side, self.max_frames)
                self.folder.mkdir(parents=True, exist_ok=True)
                with atomic_output(scenes_file) as tmp:
                    np.save(tmp, detect_scene_cuts(frames))
                with atomic_output(frames_file) as tmp:
                    np.save(tmp, frames)
                log.debug("decoded %s: %s", path, frames.shape)
            self._open[path] = (np.load(frames_file, mmap_mode="r"), np.load(scenes_file))
        return self._open[path]


# --------------------------------------------------------------------------- crops


@dataclass(frozen=True)
class Crop:
    """One training clip: a catalog index, where it starts as a fraction of the room left along
    t, y and x, a horizontal flip, a temporal stride and a rescale factor."""

    video: int
    t: float
    y: float
    x: float
    flip: bool
    stride: int
    scale: float


def plan_crops(entries: list[VideoEntry], seed: int, step: int, stage: Stage, augment: Augment) -> list[Crop]:
    """The ``stage.batch`` crops of ``step``: a function of the seed and the step only.

    Videos are drawn in proportion to their frame count among those at least as large as the
    stage's clip (ValueError when there is none).
    """
    h, w = stage.crop
    eligible = [i for i, e in enumerate(entries) if e.frames >= stage.frames and e.height >= h and e.width >= w]
    if not eligible:
        raise ValueError(f"No training video is at least {stage.frames} frames of {h}x{w}.")
    sizes = np.array([entries[i].frames for i in eligible], dtype=np.float64)
    rng = np.random.default_rng([seed, step])
    crops = []
    for _ in range(stage.batch):
        video = eligible[int(rng.choice(len(eligible), p=sizes / sizes.sum()))]
        t, y, x = (float(v) for v in rng.random(3))
        flip = bool(rng.random() < 0.5) and augment.flip
        stride = augment.time_strides[int(rng.integers(len(augment.time_strides)))]
        scale = float(rng.uniform(*augment.rescale))
        crops.append(Crop(video, t, y, x, flip, stride, scale))
    return crops


def _start(fraction: float, room: int) -> int:
    """The first index of a window with ``room`` possible starts (``room >= 1``)."""
    return min(int(fraction * room), room - 1)


def cut_clip(
    frames: np.ndarray, scene_ids: np.ndarray, crop: Crop, length: int, height: int, width: int
) -> tuple[Tensor, np.ndarray]:
    """The clip of ``crop``: float ``(3, length, height, width)`` in [-1, 1] and its scene ids ``(length,)``.

    The stride shrinks when the video is too short for it and the region grows toward the
    crop's own size when the video is too small for it, so every crop of an eligible video is
    valid. A video shorter than ``length`` (its header promised more frames than it decoded)
    repeats its last frame.
    """
    total, full_h, full_w = frames.shape[:3]
    stride = max(1, min(crop.stride, (total - 1) // max(1, length - 1)))
    span = (length - 1) * stride + 1
    t0 = _start(crop.t, max(1, total - span + 1))
    index = np.minimum(t0 + stride * np.arange(length), total - 1)
    scale = max(crop.scale, height / full_h, width / full_w)
    region_h, region_w = min(full_h, round(height / scale)), min(full_w, round(width / scale))
    y0 = _start(crop.y, full_h - region_h + 1)
    x0 = _start(crop.x, full_w - region_w + 1)
    clip = np.asarray(frames[index, y0 : y0 + region_h, x0 : x0 + region_w])  # (T, h, w, 3) uint8
    if crop.flip:
        clip = clip[:, :, ::-1]
    x = torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).float()  # (3, T, h, w), 0..255
    if (region_h, region_w) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(0.0, 255.0)
    return x / 127.5 - 1.0, np.asarray(scene_ids[index])


class ClipStream(IterableDataset):
    """The batches ``(step, x (b, 3, T, H, W), scene_ids (b, T))`` of steps ``start .. end - 1`` for
    one process (``rank`` of ``world_size``: ``b`` = its share of the stage's global batch).

    In ``DataLoader`` worker processes, worker ``i`` of ``n`` makes steps ``start + i, start + i + n,
    ...``, which the loader hands out in step order.
    """

    def __init__(
        self,
        entries: list[VideoEntry],
        stages: tuple[Stage, ...],
        augment: Augment,
        cache: FrameCache,
        *,
        seed: int,
        start: int,
        end: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        super().__init__()
        for stage in stages:
            if stage.batch % world_size:
                raise ValueError(
                    f"The batch of {stage.batch} clips (from step {stage.start}) cannot be split evenly over "
                    f"{world_size} processes; give a multiple of {world_size}."
                )
        self.entries, self.stages, self.augment, self.cache = entries, stages, augment, cache
        self.seed, self.start, self.end = seed, start, end
        self.rank, self.world_size = rank, world_size

    def stage(self, step: int) -> Stage:
        return [s for s in self.stages if s.start <= step][-1]

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        stage = self.stage(step)
        share = stage.batch // self.world_size
        crops = plan_crops(self.entries, self.seed, step, stage, self.augment)
        clips, scenes = [], []
        for crop in crops[self.rank * share : (self.rank + 1) * share]:
            frames, scene_ids = self.cache.get(self.entries[crop.video].path)
            clip, ids = cut_clip(frames, scene_ids, crop, stage.frames, *stage.crop)
            clips.append(clip)
            scenes.append(ids)
        return torch.stack(clips), torch.from_numpy(np.stack(scenes).astype(np.int64))

    def __iter__(self) -> Iterator[tuple[int, Tensor, Tensor]]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        for step in range(self.start + worker, self.end, workers):
            yield (step, *self.batch(step))


def clip_loader(stream: ClipStream, workers: int, pin_memory: bool = False) -> DataLoader:
    """A ``DataLoader`` over ``stream`` with ``workers`` background processes (0: in this process).

    Workers are spawned, not forked: a fork copies whatever locks the training process's threads
    (OpenMP, the video decoder) hold at that moment, and a worker can hang on one for ever.
    """
    return DataLoader(
        stream,
        batch_size=None,
        num_workers=workers,
        prefetch_factor=2 if workers else None,
        multiprocessing_context="spawn" if workers else None,
        pin_memory=pin_memory,
    )
