"""``mptvc eval``: rate-distortion of a checkpoint on real clips, against x264 and x265.

``add_command(sub)`` adds it to the ``mptvc`` subparsers (listed in ``cli.CORE_COMMANDS``); the
command's function raises ValueError for bad input, which ``cli.main`` prints as an error.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["add_command", "default_clip_dirs", "load_model"]

DATA_ENV = "MPTVC_DATA_DIR"


def default_clip_dirs() -> list[Path]:
    """Where the validation clips are looked for: ``$MPTVC_DATA_DIR/val`` when the variable is
    set, else ``../shared/data/val`` next to the repository root."""
    if os.environ.get(DATA_ENV):
        return [Path(os.environ[DATA_ENV]) / "val"]
    repo_root = Path(__file__).resolve().parents[2]
    return [repo_root.parent / "shared" / "data" / "val"]


def load_model(ckpt: str | None):
    """``MPTVC.from_pretrained(ckpt)``: the codec at ``ckpt``, by default the shipped checkpoint."""
    from mptvc_latents.codec import MPTVC

    return MPTVC.from_pretrained(ckpt)


def _eval(args: argparse.Namespace) -> None:
    from mptvc_latents.eval.rd import collect_clips, evaluate, write_report

    sources = [Path(p) for p in args.clips] if args.clips else default_clip_dirs()
    if not args.clips and not sources[0].is_dir():
        raise ValueError(
            f"No clips were given and the default validation folder {str(sources[0])!r} does not exist; "
            f"pass video files or folders, or set {DATA_ENV} to a data folder that has val/."
        )
    clips = collect_clips(sources)
    anchor = _read_anchor(args.anchor) if args.anchor else None
    model = load_model(args.ckpt)
    baselines = () if args.no_baselines else ("libx264", "libx265")
    result = evaluate(model, clips, max_frames=args.max_frames, baselines=baselines)
    result["model"]["checkpoint"] = args.ckpt
    if anchor is not None:
        from mptvc_latents.eval.bjontegaard import compare

        result["anchor"] = {"path": str(args.anchor), **compare(result, anchor)}
    paths = write_report(result, args.out)
    print(paths["markdown"].read_text())
    for kind, path in paths.items():
        log.info("wrote %s: %s", kind, path)


def _read_anchor(path: str) -> dict:
    """An earlier ``eval.json`` to compare against (read before the long evaluation starts)."""
    try:
        anchor = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ValueError(f"The anchor report {path!r} cannot be read: {exc}.") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"The anchor report {path!r} is not JSON: {exc}.") from exc
    if not isinstance(anchor, dict) or not isinstance(anchor.get("clips"), list):
        raise ValueError(f"The anchor report {path!r} is not an eval.json of `mptvc eval` (it has no clips).")
    return anchor


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def add_command(subparsers) -> None:
    """Register ``mptvc eval [CLIPS_OR_FOLDERS...] [--ckpt DIR] [--max-frames N] [--out DIR] [--no-baselines]
    [--anchor EVAL_JSON]``."""
    p = subparsers.add_parser(
        "eval",
        help="rate-distortion of a checkpoint on clips, against x264/x265 at matched bpp",
        description="Compress each clip, decode every prefix, measure bpp and PSNR (BT.709 luma and RGB), "
        "match x264 and x265 to the medium and full rates, and write eval.json, eval.md and rd.png.",
    )
    p.add_argument("clips", nargs="*", help=f"video files or folders (default: ${DATA_ENV}/val or ../shared/data/val)")
    p.add_argument("--ckpt", help="checkpoint folder (config.json + model.safetensors)")
    p.add_argument("--max-frames", type=_positive_int, default=None, help="frames per clip (default: all)")
    p.add_argument("--out", default="eval_report", help="report folder (default: ./eval_report)")
    p.add_argument("--no-baselines", action="store_true", help="skip x264 and x265")
    p.add_argument(
        "--anchor",
        help="an earlier eval.json (same clips and frames): add BD-PSNR and BD-rate against it, per clip",
    )
    p.set_defaults(func=_eval)
