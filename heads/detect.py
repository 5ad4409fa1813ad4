"""People in a video, in one call: the shipped token heads on a video file or a folder of frames.

::

    video file / folder of numbered frames --(chunks of 32 frames, shrunk to the head's work height)-->
      MPTVC.encode_stream (the frozen codec) -> FSQ codes of levels 0..k -> CenterHead -> boxes of each
      token frame's reference frame (4t + 1, 0-based) -> boxes in the input's pixels
      [-> ByteTracker -> identities]

Memory does not grow with the video's length: frames are read, coded and detected a chunk at a
time. Frame numbers are the input's, from 1 (the n-th frame of a folder, in name order, is frame n,
as in MOTChallenge ``img1/`` folders); only the reference frame of each group of 4 frames is
predicted, so rows carry frames 2, 6, 10, ...
"""

from __future__ import annotations

import configparser
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from heads.data import REFERENCE_OFFSET
from heads.detector import CenterHead
from heads.features import PREFIX_NAMES, token_features
from heads.infer import detect
from heads.tracker import ByteTracker, TrackerConfig

log = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINTS",
    "pretrained_head",
    "FrameSource",
    "open_frames",
    "FrameDetections",
    "detect_people",
    "track_people",
]

#: The shipped pedestrian heads, one per level prefix (k = 0 preview, 1 medium, 2 full).
CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def pretrained_head(k: int = 2) -> CenterHead:
    """The shipped pedestrian head on tokens of levels ``0 .. k`` (``heads/checkpoints/person-k<k>``)."""
    path = CHECKPOINTS / f"person-k{k}"
    if not path.is_dir():
        shipped = sorted(p.name for p in CHECKPOINTS.glob("person-k*")) if CHECKPOINTS.is_dir() else []
        raise ValueError(f"No head ships for k={k}; the shipped heads are {', '.join(shipped) or 'none'}.")
    return CenterHead.from_pretrained(path)


@dataclass
class FrameSource:
    """uint8 frames ``(n, H, W, 3)`` a chunk at a time, the frame rate and the frame count (if known)."""

    chunks: Iterator[np.ndarray]
    fps: float
    frames: int | None


def _image_chunks(files: list[Path], size: int) -> Iterator[np.ndarray]:
    import av

    batch: list[np.ndarray] = []
    shape = None
    for f in files:
        try:
            with av.open(str(f)) as container:
                frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
        except (av.error.FFmpegError, StopIteration) as e:
            raise ValueError(f"The frame {str(f)!r} could not be read: {e}.") from None
        shape = shape or frame.shape
        if frame.shape != shape:
            raise ValueError(
                f"The frame {str(f)!r} is {frame.shape[1]}x{frame.shape[0]}, the first one {shape[1]}x{shape[0]}."
            )
        batch.append(frame)
        if len(batch) == size:
            yield np.stack(batch)
            batch = []
    if batch:
        yield np.stack(batch)


def open_frames(path: str | Path, fps: float | None = None, chunk: int = 32) -> FrameSource:
    """A video file (anything FFmpeg reads) or a folder of numbered frames (images, in name order;
    its frame rate from ``seqinfo.ini`` beside it, as in MOTChallenge, else ``fps``, else 25)."""
    from mptvc_latents.video import VideoReader

    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"The folder {str(path)!r} holds no frames ({', '.join(_IMAGE_SUFFIXES)}).")
        rate = fps
        ini = path.parent / "seqinfo.ini"
        if rate is None and ini.is_file():
            info = configparser.ConfigParser()
            info.read(ini)
            rate = float(info["Sequence"].get("frameRate", "25")) if "Sequence" in info else None
        return FrameSource(_image_chunks(files, chunk), float(rate or 25.0), len(files))
    if not path.is_file():
        raise ValueError(f"There is no video file or frame folder at {str(path)!r}.")
    reader = VideoReader(path)
    return FrameSource(reader.chunks(chunk), float(fps or reader.fps), reader.frame_count or None)


def _shrink(chunks: Iterator[np.ndarray], height: int) -> Iterator[np.ndarray]:
    """Frames taller than ``height`` shrunk to it (aspect kept, even width), bilinear as in training."""
    import av

    for frames in chunks:
        h, w = frames.shape[1:3]
        if height <= 0 or h <= height:
            yield frames
            continue
        nw = int(round(w * height / h / 2)) * 2
        yield np.stack([
            av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")
            .reformat(width=nw, height=height, interpolation="BILINEAR").to_ndarray()
            for f in frames
        ])  # fmt: skip


@dataclass
class FrameDetections:
    """One predicted frame: its number in the input (from 1), boxes ``(n, 4)`` ``[x, y, w, h]`` in the
    input's pixels, scores ``(n,)``, unit appearance embeddings ``(n, E)``."""

    frame: int
    boxes: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray


def detect_people(
    source: FrameSource, head: CenterHead, codec=None, k: int | None = None, threshold: float | None = None
) -> Iterator[FrameDetections]:
    """Detections of every reference frame of ``source`` with ``head`` on the codec's tokens of
    levels ``0 .. head.config.k`` (``k``, when given, must equal it), scores at least ``threshold``
    (default: the head's ``config.threshold``).

    Raises:
        ValueError: when the head reads pixels, another prefix, or tokens of another codec.
    """
    from mptvc_latents.codec import MPTVC

    cfg = head.config
    if cfg.input != "tokens":
        raise ValueError(f"detect_people runs heads on tokens; this one reads {cfg.input!r} pixels.")
    if k is not None and k != cfg.k:
        raise ValueError(
            f"This head reads prefix k={cfg.k} ({PREFIX_NAMES[cfg.k]}), not k={k}: load the head of that prefix."
        )
    codec = codec or MPTVC.from_pretrained()
    if cfg.codec and cfg.codec != codec.weights_digest():
        raise ValueError(
            "The head was trained on the tokens of another codec checkpoint (weights digest "
            f"{cfg.codec[:12]}..., this codec's is {codec.weights_digest()[:12]}...): retrain it on its tokens."
        )
    fsq_levels = [lv.fsq_levels for lv in codec.config.levels]
    pt = codec.config.patch_t
    sizes: dict[str, tuple[int, ...]] = {}

    def remember(chunks: Iterator[np.ndarray], name: str) -> Iterator[np.ndarray]:
        for frames in chunks:
            sizes.setdefault(name, frames.shape[1:3])
            yield frames

    coded = remember(_shrink(remember(source.chunks, "input"), cfg.work_height), "coded")
    for chunk in codec.encode_stream(coded, source.fps):
        (h, w), (ch, cw) = sizes["input"], sizes["coded"]
        scale = np.array([w / cw, h / ch, w / cw, h / ch])
        features = token_features(chunk.symbols[: cfg.k + 1], fsq_levels)  # (T', C, H', W')
        floor = cfg.threshold if threshold is None else threshold
        for t, det in enumerate(detect(head, features, threshold=floor)):
            ref = chunk.start + pt * t + REFERENCE_OFFSET
            if ref >= chunk.start + chunk.frames:
                break  # token frames of end padding
            boxes = det.boxes * scale
            yield FrameDetections(ref + 1, boxes, det.scores, det.embeddings)


def track_people(
    source: FrameSource,
    head: CenterHead,
    codec=None,
    k: int | None = None,
    tracker: TrackerConfig | None = None,
) -> Iterator[np.ndarray]:
    """MOT rows ``(m, 7)`` ``[frame, id, x, y, w, h, score]`` per predicted frame: ``detect_people``
    (every score the tracker's low threshold keeps) linked by ``ByteTracker`` with the embeddings
    (default tracker: anchored at the head's threshold, ``heads.calibrate.calibrated_tracker``)."""
    from heads.calibrate import calibrated_tracker

    tracker_cfg = tracker or calibrated_tracker(head.config.threshold)
    tracks = ByteTracker(tracker_cfg)
    for det in detect_people(source, head, codec, k, threshold=tracker_cfg.low):
        rows = tracks.update(det.boxes, det.scores, det.embeddings)  # (m, 6) [id, x, y, w, h, score]
        yield np.column_stack([np.full(len(rows), det.frame), rows])


def ship_head(head_dir: str | Path, out: str | Path | None = None, threshold: float | None = None) -> Path:
    """Copy a trained token head into the package as ``person-k<k>`` (float16 weights: half the bytes;
    they load back into the float32 head strictly), with its score ``threshold`` (calibrated on its
    training clips, ``heads.calibrate``) when given. Returns the folder written."""
    trained = CenterHead.from_pretrained(head_dir)
    cfg = trained.config if threshold is None else replace(trained.config, threshold=threshold)
    head = CenterHead(cfg)
    head.load_state_dict(trained.state_dict())
    if cfg.input != "tokens" or not cfg.codec or not cfg.work_height:
        raise ValueError(
            f"Only token heads that record their codec digest and working height ship; {str(head_dir)!r} has "
            f"input={cfg.input!r}, codec={cfg.codec[:12]!r}, work_height={cfg.work_height}."
        )
    folder = Path(out) if out is not None else CHECKPOINTS / f"person-k{cfg.k}"
    head.half().save_pretrained(folder)
    CenterHead.from_pretrained(folder)  # strict: every tensor is there
    log.info("shipped %s as %s", head_dir, folder)
    return folder
