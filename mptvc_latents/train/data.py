"""Training clips: videos decoded once into memory, then random crops of T x H x W frames.

Decoding a whole folder once (downscaled so the longer side is at most ``max_side``) and
cropping from memory keeps the 2-core CPU busy with training rather than with seeking
in H.264 streams. Each video's shot cuts are detected once; a clip carries the scene
ids of its frames, so training sees the scene-aware phase jump.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mptvc_latents.scenes import detect_scene_cuts
from mptvc_latents.video import find_videos

log = logging.getLogger(__name__)


__all__ = ["Video", "load_videos", "ClipSampler"]


@dataclass
class Video:
    name: str
    frames: np.ndarray  # (T, H, W, 3) uint8
    scene_ids: np.ndarray  # (T,) int32


def _decode(path: Path, max_side: int, max_frames: int) -> np.ndarray:
    import av

    frames = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            scale = max(frame.width, frame.height) / max_side
            if scale > 1:
                w, h = int(round(frame.width / scale)) // 2 * 2, int(round(frame.height / scale)) // 2 * 2
                frame = frame.reformat(width=w, height=h, interpolation="AREA")
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise ValueError(f"The video {str(path)!r} has no frames.")
    return np.stack(frames)


def load_videos(sources: list[str | Path], max_side: int = 480, max_frames: int = 300) -> list[Video]:
    """Decode every video once (longer side at most ``max_side``); unreadable files are skipped with a warning."""
    videos = []
    for path in find_videos(sources).paths:
        try:
            frames = _decode(path, max_side, max_frames)
        except Exception as e:  # noqa: BLE001 - one bad file must not stop training
            log.warning("Skipping %s: %s", path, e)
            continue
        videos.append(Video(path.name, frames, detect_scene_cuts(frames)))
        log.info("loaded %s: %s, %d shots", path.name, frames.shape, videos[-1].scene_ids.max() + 1)
    if not videos:
        raise ValueError("None of the training videos could be decoded.")
    return videos


class ClipSampler:
    """Random clips ``(B, 3, T, H, W)`` in [-1, 1] with their scene ids ``(B, T)``.

    Videos are drawn in proportion to their number of frames; crops are uniform in time and
    space, with random horizontal flips. Videos smaller than a crop are skipped.
    """

    def __init__(self, videos: list[Video], frames: int, height: int, width: int, seed: int = 0) -> None:
        self.videos = [
            v
            for v in videos
            if v.frames.shape[0] >= frames and v.frames.shape[1] >= height and v.frames.shape[2] >= width
        ]
        if not self.videos:
            raise ValueError(f"No training video is at least {frames} frames of {height}x{width}.")
        self.frames, self.height, self.width = frames, height, width
        sizes = np.array([v.frames.shape[0] for v in self.videos], dtype=np.float64)
        self.weights = sizes / sizes.sum()
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int):
        import torch

        clips, scenes = [], []
        for _ in range(batch):
            v = self.videos[self.rng.choice(len(self.videos), p=self.weights)]
            t = self.rng.integers(0, v.frames.shape[0] - self.frames + 1)
            y = self.rng.integers(0, v.frames.shape[1] - self.height + 1)
            x = self.rng.integers(0, v.frames.shape[2] - self.width + 1)
            clip = v.frames[t : t + self.frames, y : y + self.height, x : x + self.width]
            if self.rng.random() < 0.5:
                clip = clip[:, :, ::-1]
            clips.append(np.ascontiguousarray(clip))
            scenes.append(v.scene_ids[t : t + self.frames])
        x = torch.from_numpy(np.stack(clips)).permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0  # (B, 3, T, H, W)
        return x, torch.from_numpy(np.stack(scenes).astype(np.int64))
