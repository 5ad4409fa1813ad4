"""Rate-distortion evaluation of a codec's prefixes against x264 and x265 at matched bitrate.

For each clip, a chunk at a time (memory does not grow with the clip's length)::

    VideoReader(clip, max_frames).chunks -> model.compress_stream -> for k in 0..K-1:
        bytes_k = container_bytes(compressed, k)            size of the file holding levels 0..k
        model.decompress_stream(compressed, k), chunk by chunk against the source read again
                                                            -> bpp, PSNR-Y (BT.709), PSNR-RGB, seconds
    for each baseline: RateSweep(the reader's chunks) -> PSNR at bpp_{K-2} and bpp_{K-1} (medium,
        full) + RD curve; each encode keeps only its packets and is compared chunk by chunk

``container_bytes(compressed, k)`` gives the byte size of the file that holds levels 0..k.
By default it is :func:`mptvc_file_bytes`: the real ``.mptvc`` file (``formats.container.write_mptvc``)
cut after level k by ``formats.container.truncate_mptvc``, header, config and segment table
included. :func:`estimated_container_bytes` (payload plus a header estimate) or any other
function can stand in; ``settings.bytes_source`` records which was used.

Results are plain dicts of numbers and strings; :func:`write_report` (``report.py``) writes
them as JSON, a markdown table and an RD plot.
"""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path

import numpy as np
import torch

from mptvc_latents.eval.baselines import OutOfRangeError, RateSweep
from mptvc_latents.eval.metrics import SquaredError, bpp
from mptvc_latents.eval.report import write_report
from mptvc_latents.video import VideoReader, find_videos

log = logging.getLogger(__name__)

__all__ = [
    "PUBLISHED_LADDER",
    "collect_clips",
    "estimated_container_bytes",
    "mptvc_file_bytes",
    "evaluate",
    "write_report",
]

# The published MPT-VC ladder: (prefix k, bpp, PSNR-Y dB).
PUBLISHED_LADDER = ((0, 0.011, 27.85), (1, 0.103, 32.76), (2, 0.351, 40.26))
PREFIX_NAMES = {0: "preview", 1: "medium", 2: "full"}
DEFAULT_CURVE_CRFS = (20, 28, 36, 44)

# Header estimate (bytes): magic + version, geometry (T, H, W, padding), fps as a rational,
# K and the chunk length, a 16-byte prefix of the tables digest; then two varint lengths
# per (level, chunk) segment and one varint per scene cut.
_HEADER_FIXED, _PER_SEGMENT, _PER_SCENE_CUT = 40, 6, 3

ContainerBytes = Callable[[object, int], int]


def estimated_container_bytes(compressed, k: int) -> int:
    """Payload of levels ``0..k`` (``sum(len(z) + len(y))`` over their chunks) plus a header estimate."""
    payload = sum(compressed.level_bytes()[: k + 1])
    chunks = len(compressed.segments[0])
    cuts = int(np.count_nonzero(np.diff(compressed.info.scene_ids)))
    return payload + _HEADER_FIXED + _PER_SEGMENT * (k + 1) * chunks + _PER_SCENE_CUT * cuts


def mptvc_file_bytes(model) -> ContainerBytes:
    """``(compressed, k) -> len(truncate_mptvc(write_mptvc(compressed, ...), k))`` for ``model``:
    the size of the real ``.mptvc`` prefix file (written once per compressed clip)."""
    from mptvc_latents.formats.container import truncate_mptvc, write_mptvc

    config, digest = model.config.to_dict(), model.tables_digest()
    written: object = None  # the last compressed clip written, and its file
    data = b""

    def container_bytes(compressed, k: int) -> int:
        nonlocal written, data
        if written is not compressed:
            written, data = compressed, write_mptvc(compressed, config, digest)
        return len(truncate_mptvc(data, k))

    return container_bytes


def collect_clips(paths: Iterable[str | Path]) -> list[Path]:
    """Video files among ``paths`` (files, folders searched recursively, globs): :func:`video.find_videos`.

    Raises:
        ValueError: when a path matches no video.
    """
    return find_videos(paths).paths


def _prefix_name(k: int, levels: int) -> str:
    if levels == len(PREFIX_NAMES):
        return PREFIX_NAMES[k]
    return "full" if k == levels - 1 else f"k={k}"


def _evaluate_ours(model, reader: VideoReader, container_bytes: ContainerBytes) -> dict:
    """Compress the clip a chunk at a time, then decode every prefix a chunk at a time, comparing each
    decoded chunk with the source's frames read again alongside (PSNR pooled over the clip)."""
    step = model.config.chunk_frames
    start = time.perf_counter()
    compressed = model.compress_stream(reader.chunks(step), reader.fps)
    encode_seconds = time.perf_counter() - start
    t, h, w = compressed.info.frames, compressed.info.height, compressed.info.width
    prefixes = []
    for k in range(model.num_levels):
        error, seconds = SquaredError(), 0.0
        decoded = model.decompress_stream(compressed, k)
        for reference in reader.chunks(step):
            start = time.perf_counter()
            frames = next(decoded)
            seconds += time.perf_counter() - start
            error.add(reference, frames)
        num_bytes = int(container_bytes(compressed, k))
        prefixes.append(
            {
                "k": k,
                "name": _prefix_name(k, model.num_levels),
                "bytes": num_bytes,
                "payload_bytes": sum(compressed.level_bytes()[: k + 1]),  # the rest: header, table
                "bpp": bpp(num_bytes, t, h, w),
                "psnr_y": error.psnr_y(),
                "psnr_rgb": error.psnr_rgb(),
                "decode_seconds": seconds,
            }
        )
    return {"frames": t, "encode_seconds": encode_seconds, "prefixes": prefixes}


def _evaluate_baseline(
    sweep: RateSweep, prefixes: list[dict], matched: Sequence[int], curve_crfs: Sequence[int]
) -> dict:
    start = time.perf_counter()
    points = []
    for k in matched:
        target = prefixes[k]["bpp"]
        try:
            points.append({"k": k, **asdict(sweep.at_bpp(target))})
        except OutOfRangeError as e:
            points.append({"k": k, "bpp": target, "psnr_y": None, "psnr_rgb": None, "error": str(e)})
    sweep.curve(curve_crfs)
    return {
        "matched": points,
        "curve": [asdict(p) for p in sweep.points],  # every encode made, the requested CRFs and the search's
        "seconds": time.perf_counter() - start,
    }


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _aggregate(clips: list[dict], levels: int, baselines: Sequence[str], matched: Sequence[int]) -> dict:
    """Means over clips: bpp and PSNR per prefix; per baseline and matched prefix, the PSNR and
    our advantage over the clips where the baseline reached our rate."""
    prefixes = []
    for k in range(levels):
        rows = [c["prefixes"][k] for c in clips]
        prefixes.append(
            {
                "k": k,
                "name": rows[0]["name"],
                "bpp": _mean([r["bpp"] for r in rows]),
                "psnr_y": _mean([r["psnr_y"] for r in rows]),
                "psnr_rgb": _mean([r["psnr_rgb"] for r in rows]),
            }
        )
    per_baseline = {}
    for codec in baselines:
        points = []
        for i, k in enumerate(matched):
            pairs = [
                (c["prefixes"][k], c["baselines"][codec]["matched"][i])
                for c in clips
                if c["baselines"][codec]["matched"][i]["psnr_y"] is not None
            ]
            points.append(
                {
                    "k": k,
                    "clips": len(pairs),
                    "bpp": _mean([ours["bpp"] for ours, _ in pairs]),
                    "psnr_y": _mean([theirs["psnr_y"] for _, theirs in pairs]),
                    "ours_psnr_y": _mean([ours["psnr_y"] for ours, _ in pairs]),
                    "delta_psnr_y": _mean([ours["psnr_y"] - theirs["psnr_y"] for ours, theirs in pairs]),
                }
            )
        per_baseline[codec] = points
    return {"clips": len(clips), "prefixes": prefixes, "baselines": per_baseline}


def _clip_name(path: Path) -> str:
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def evaluate(
    model,
    clips: Sequence[str | Path],
    max_frames: int | None = None,
    baselines: Sequence[str] = ("libx264", "libx265"),
    container_bytes: ContainerBytes | None = None,
    *,
    matched_prefixes: Sequence[int] | None = None,
    curve_crfs: Sequence[int] = DEFAULT_CURVE_CRFS,
    threads: int = 1,
) -> dict:
    """Evaluate ``model`` (an ``MPTVC``) on video files; returns the result dict (see module docstring).

    Args:
        clips: video files (use :func:`collect_clips` for folders).
        max_frames: read at most this many frames of each clip (all when None).
        baselines: encoder names from ``baselines.CODECS``; empty to skip them.
        container_bytes: ``(compressed, k) -> bytes of the file with levels 0..k``; None: the
            real ``.mptvc`` prefix (:func:`mptvc_file_bytes`).
        matched_prefixes: prefixes at whose bpp the baselines are measured; default the top two
            (medium and full).
        curve_crfs: CRFs of each baseline's RD curve (the matched search's encodes are added).
        threads: encoder threads of the baselines (1: reproducible bytes).
    """
    clip_paths = [Path(c) for c in clips]
    if not clip_paths:
        raise ValueError("There are no clips to evaluate; pass at least one video file.")
    if max_frames is not None and (not isinstance(max_frames, int) or max_frames <= 0):
        raise ValueError(f"The frame limit max_frames must be a positive integer or None, got {max_frames!r}.")
    levels = model.num_levels
    matched = tuple(range(max(0, levels - 2), levels)) if matched_prefixes is None else tuple(matched_prefixes)
    if any(not 0 <= k < levels for k in matched):
        raise ValueError(f"The matched prefixes {matched} must lie in 0..{levels - 1} for a codec of {levels} levels.")
    if container_bytes is None:
        bytes_source, container_bytes = "mptvc", mptvc_file_bytes(model)
    else:
        bytes_source = "estimate" if container_bytes is estimated_container_bytes else "custom"
    model.eval()

    results = []
    for path in clip_paths:
        reader = VideoReader(path, max_frames=max_frames)
        h, w = reader.size
        log.info("%s: %d frames of %dx%d at %.3g fps", path, reader.frame_count, w, h, reader.fps)
        entry: dict = {"name": _clip_name(path), "path": str(path), "frames": 0, "height": h, "width": w}
        entry["fps"] = reader.fps
        entry.update(_evaluate_ours(model, reader, container_bytes))  # with the frames it read
        sizes = [p["bytes"] for p in entry["prefixes"]]
        if sizes != sorted(sizes):
            log.warning("%s: prefix sizes %s are not increasing", path, sizes)
        entry["baselines"] = {}
        for codec in baselines:
            sweep = RateSweep(partial(reader.chunks, model.config.chunk_frames), reader.fps, codec, threads=threads)
            entry["baselines"][codec] = _evaluate_baseline(sweep, entry["prefixes"], matched, curve_crfs)
        for p in entry["prefixes"]:
            log.info("  k=%d %8d B %.4f bpp %.2f dB", p["k"], p["bytes"], p["bpp"], p["psnr_y"])
        results.append(entry)

    return {
        "model": {
            "name": model.config.name,
            "levels": levels,
            "parameters": model.parameter_counts(),
            "tables_digest": model.tables_digest(),
        },
        "settings": {
            "max_frames": max_frames,
            "baselines": list(baselines),
            "matched_prefixes": list(matched),
            "curve_crfs": list(curve_crfs),
            "baseline_threads": threads,
            "bytes_source": bytes_source,
            "metric": "PSNR over all frames and pixels of a clip (pooled MSE); Y = BT.709 luma of full-range RGB",
        },
        "environment": {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
        },
        "published": [{"k": k, "bpp": b, "psnr_y": p} for k, b, p in PUBLISHED_LADDER],
        "clips": results,
        "mean": _aggregate(results, levels, baselines, matched),
    }
