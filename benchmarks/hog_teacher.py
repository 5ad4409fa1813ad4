"""How far a pretrained pedestrian detector that installs offline gets on the heads' unseen scenes.

The heads' target (AP50 >= 40% on scenes never trained on, docs/heads.md) asks for more labelled
scenes than ``../shared/data/tracking`` holds; pseudo-labels from a pretrained detector are the
usual way round. The one pedestrian detector whose weights ship inside a package on the registries
this project can reach is OpenCV's HOG + linear SVM (Dalal and Triggs 2005, trained on INRIA
Person), in opencv 4.x (5.x moved it out of the main package). This scores it on the evaluation
scenes as the heads are scored: the reference frame of every token frame (``heads.data``), the
frame at the working height (``heads.scenes``), optionally enlarged (HOG's window is 64x128),
COCO AP with pycocotools (``heads.evaluate``), per scene and pooled::

    pip install "opencv-python-headless<5"      # opencv 4.x, in an environment of its own
    python -m benchmarks.hog_teacher ../shared/data/tracking --upscale 1 2 \\
        --out benchmarks/results/heads/hog_teacher.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from heads.data import boxes_at, read_mot_sequence, reference_frames
from heads.evaluate import coco_map
from heads.scenes import EVAL_SCENES, working_scale


def hog_detector() -> Any:
    """OpenCV's default people detector (HOG + linear SVM); a clear error where opencv lacks it."""
    import cv2

    if not hasattr(cv2, "HOGDescriptor"):
        raise RuntimeError(
            f"opencv {cv2.__version__} has no HOGDescriptor (opencv 5 moved it out of the main package); "
            "run this benchmark in an environment with `pip install 'opencv-python-headless<5'`."
        )
    cv2.setNumThreads(1)
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def detect_frame(hog: Any, frame: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """HOG detections of one RGB frame resized by ``scale``: boxes ``(d, 4)`` ``[x, y, w, h]`` in the
    frame's own pixels and SVM margins ``(d,)`` as scores (every window above margin -0.5, so the AP
    sweeps the threshold)."""
    import cv2

    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(frame[..., ::-1], None, fx=scale, fy=scale, interpolation=interp)  # RGB -> BGR
    rects, margins = hog.detectMultiScale(image, winStride=(8, 8), padding=(8, 8), scale=1.05, hitThreshold=-0.5)
    boxes = np.asarray(rects, np.float64).reshape(-1, 4) / scale
    return boxes, np.asarray(margins, np.float64).reshape(-1)


def score_scenes(data: str | Path, upscale: float, hog: Any | None = None) -> dict:
    """AP of the HOG detector on each evaluation scene's reference frames and on all of them pooled."""
    hog = hog_detector() if hog is None else hog
    result: dict[str, Any] = {"upscale": upscale, "scenes": {}}
    pooled_gt: list[np.ndarray] = []
    pooled_pred: list[tuple[np.ndarray, np.ndarray]] = []
    for scene in EVAL_SCENES:
        seq = read_mot_sequence(Path(data) / scene.folder)
        n, height = seq.frames.shape[:2]
        refs = reference_frames(n, math.ceil(n / 4))
        scale = working_scale(height) * upscale
        t0 = time.time()
        gt = [boxes_at(seq, int(f))[:, 1:5] for f in refs]
        pred = [detect_frame(hog, seq.frames[f], scale) for f in refs]
        result["scenes"][scene.key] = {
            "frames": len(refs),
            "boxes": int(sum(len(g) for g in gt)),
            "seconds": time.time() - t0,
            **coco_map(gt, pred),
        }
        pooled_gt += gt
        pooled_pred += pred
    result["pooled"] = {"frames": len(pooled_gt), "boxes": int(sum(len(g) for g in pooled_gt))}
    result["pooled"].update(coco_map(pooled_gt, pooled_pred))
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="the tracking data folder (../shared/data/tracking)")
    parser.add_argument("--upscale", type=float, nargs="+", default=[1.0], help="enlargements of the working size")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    import cv2

    hog = hog_detector()
    out = {
        "machine": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load": os.getloadavg()[0],
        "opencv": cv2.__version__,
        "runs": [score_scenes(args.data, u, hog) for u in args.upscale],
    }
    for run in out["runs"]:
        per_scene = ", ".join(f"{k} {100 * v['AP50']:.1f}" for k, v in run["scenes"].items())
        pooled = run["pooled"]
        print(
            f"x{run['upscale']:g}: pooled AP50 {100 * pooled['AP50']:.1f}% mAP {100 * pooled['mAP']:.1f}% ({per_scene})"
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
