"""Standard metrics, computed by the standard tools: COCO mAP with pycocotools, HOTA / MOTA / IDF1
with TrackEval (MotChallenge2DBox, benchmark MOT15: no class or distractor preprocessing).

Both take MOT-style arrays, so token frames evaluate against the ground truth of their
reference frames (``heads.data.reference_frames``), renumbered ``1 .. T'``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from pathlib import Path

import numpy as np

from heads.mot import write_mot

log = logging.getLogger(__name__)

__all__ = ["coco_map", "track_metrics"]


def coco_map(gt: list[np.ndarray], predictions: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """COCO box AP of one class over images ``0 .. n-1``.

    Args:
        gt: per image, boxes ``(g, 4)`` ``[x, y, w, h]``.
        predictions: per image, ``(boxes (d, 4), scores (d,))``.
    Returns:
        ``{"mAP": AP@[.5:.95], "AP50": AP@.5, "AP75": AP@.75, "AR100": recall at 100}``.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if len(gt) != len(predictions):
        raise ValueError(f"Need one prediction entry per ground-truth image, got {len(predictions)} and {len(gt)}.")
    images, annotations, results = [], [], []
    for i, (boxes, (pred, scores)) in enumerate(zip(gt, predictions, strict=True)):
        images.append({"id": i, "width": 1, "height": 1})
        for b in np.asarray(boxes, float).reshape(-1, 4):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": b.tolist(),
                    "area": float(b[2] * b[3]),
                    "iscrowd": 0,
                }
            )
        for b, s in zip(np.asarray(pred, float).reshape(-1, 4), np.asarray(scores, float).reshape(-1), strict=True):
            results.append({"image_id": i, "category_id": 1, "bbox": b.tolist(), "score": float(s)})
    if not annotations:
        raise ValueError("COCO mAP needs at least one ground-truth box.")
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
        coco.createIndex()
        if not results:
            return {"mAP": 0.0, "AP50": 0.0, "AP75": 0.0, "AR100": 0.0}
        dets = coco.loadRes(results)
        ev = COCOeval(coco, dets, "bbox")
        ev.params.areaRng = [[0, 1e10]] * 4  # boxes are in pixels of any size; one area range
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    s = ev.stats
    return {"mAP": float(s[0]), "AP50": float(s[1]), "AP75": float(s[2]), "AR100": float(s[8])}


def track_metrics(gt: np.ndarray, tracks: np.ndarray, num_frames: int, seq: str = "seq") -> dict[str, float]:
    """HOTA, DetA, AssA, MOTA, IDF1 (and counts) of ``tracks`` against ``gt`` with TrackEval.

    Both are MOT rows ``(N, >=6)`` ``[frame, id, x, y, w, h, ...]`` with frames ``1 .. num_frames``.
    """
    import trackeval

    gt, tracks = np.asarray(gt, float).reshape(-1, gt.shape[-1] if len(gt) else 7), np.asarray(tracks, float)
    if num_frames < 1 or (len(gt) and gt[:, 0].max() > num_frames) or (len(tracks) and tracks[:, 0].max() > num_frames):
        raise ValueError(f"Frames must lie in 1..{num_frames} for both ground truth and tracks.")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        gt_rows = np.column_stack([gt[:, :6], np.ones(len(gt))]) if len(gt) else np.zeros((0, 7))
        write_mot(root / "gt" / seq / "gt" / "gt.txt", gt_rows)
        tr_rows = (
            np.column_stack([tracks[:, :6], tracks[:, 6] if tracks.shape[1] > 6 else np.ones(len(tracks))])
            if len(tracks)
            else np.zeros((0, 7))
        )
        write_mot(root / "trackers" / "heads" / f"{seq}.txt", tr_rows)
        eval_config = trackeval.Evaluator.get_default_eval_config()
        eval_config.update(
            {
                "USE_PARALLEL": False,
                "PRINT_RESULTS": False,
                "PRINT_CONFIG": False,
                "TIME_PROGRESS": False,
                "OUTPUT_SUMMARY": False,
                "OUTPUT_DETAILED": False,
                "PLOT_CURVES": False,
                "DISPLAY_LESS_PROGRESS": True,
                "OUTPUT_EMPTY_CLASSES": False,
            }
        )
        dataset_config = {
            "GT_FOLDER": str(root / "gt"),
            "TRACKERS_FOLDER": str(root / "trackers"),
            "OUTPUT_FOLDER": str(root / "out"),
            "TRACKERS_TO_EVAL": ["heads"],
            "BENCHMARK": "MOT15",
            "SPLIT_TO_EVAL": "train",
            "SEQ_INFO": {seq: int(num_frames)},
            "SKIP_SPLIT_FOL": True,
            "TRACKER_SUB_FOLDER": "",
            "PRINT_CONFIG": False,
        }
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = trackeval.Evaluator(eval_config)
            dataset = trackeval.datasets.MotChallenge2DBox(dataset_config)
            metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(), trackeval.metrics.Identity()]
            res, msg = evaluator.evaluate([dataset], metrics)
    status = msg["MotChallenge2DBox"]["heads"]
    if status != "Success":
        raise RuntimeError(f"TrackEval failed: {status}")
    r = res["MotChallenge2DBox"]["heads"][seq]["pedestrian"]
    return {
        "HOTA": float(np.mean(r["HOTA"]["HOTA"])), "DetA": float(np.mean(r["HOTA"]["DetA"])),
        "AssA": float(np.mean(r["HOTA"]["AssA"])), "MOTA": float(r["CLEAR"]["MOTA"]),
        "IDF1": float(r["Identity"]["IDF1"]), "IDSW": int(r["CLEAR"]["IDSW"]),
        "GT_IDs": int(r["Count"]["GT_IDs"]) if "Count" in r else int(len(np.unique(gt[:, 1]))),
        "num_tracks": int(len(np.unique(tracks[:, 1]))) if len(tracks) else 0,
    }  # fmt: skip
