"""The ``mptvc`` command line: encode, decode, info, truncate and train.

::

    mptvc encode clip.mp4 clip.mptvc [--ckpt DIR] [--fp32 | --bf16]
                 [--target-bpp B | --target-psnr P [--best-effort] [--no-skip-frames]]   (rate control)
    mptvc decode clip.mptvc clip.mp4 [--k-max K]        (.npy writes the exact uint8 frames)
    mptvc info clip.mptvc [--json]
    mptvc truncate clip.mptvc preview.mptvc --k-max 0
    mptvc train VIDEOS... --run DIR
    mptvc tokenize VIDEOS... --out STORE.zarr [--workers N] [--levels L] [--engine local|ray]   (resumable)
                   [--target-bpp B | --target-psnr P]        (rate control: the store keeps a mask of sent tokens)
    mptvc detokenize STORE.zarr --out DIR [--k-max K] [--clips KEY...] [--format mp4|npy]

The original tool's flags ``--input``, ``--output``, ``--ckpt``, ``--k-max`` and ``--fp32`` work
too. Errors print one line (``mptvc: error: ...``) and exit non-zero; outputs are written to a
temp file beside the target and renamed only when complete, so a failure leaves nothing behind.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mptvc_latents.eval import cli as eval_cli
from mptvc_latents.pretrained import causal_checkpoint_dir
from mptvc_latents.runtime import configure_threads

if TYPE_CHECKING:
    from mptvc_latents.codec import MPTVC

log = logging.getLogger("mptvc")

# Commands import torch and the codec only when they run, so `--help` and `info` start fast.


# --------------------------------------------------------------------------- pipeline pieces


def _bar(total: int, desc: str, unit: str = "chunk"):
    from tqdm import tqdm

    # disable=None: drawn on a terminal, silent when stderr is a pipe or a file.
    return tqdm(total=total, desc=desc, unit=unit, disable=None, dynamic_ncols=True, leave=False)


def compress_video(model: MPTVC, video: np.ndarray, fps: float):
    """``model.compress`` with a progress bar over the chunks."""
    with _bar(model.num_chunks(video.shape[0]), "encode") as bar:
        return model.compress(video, fps, progress=bar.update)


def decompress_video(model: MPTVC, compressed: Any, k_max: int | None = None) -> np.ndarray:
    """``model.decompress`` with a progress bar over the chunks."""
    with _bar(model.num_chunks(compressed.info.frames), "decode") as bar:
        return model.decompress(compressed, k_max, progress=bar.update)


def _load_model(args: argparse.Namespace) -> MPTVC:
    from mptvc_latents.codec import MPTVC

    model = MPTVC.from_pretrained(args.ckpt)
    if getattr(args, "bf16", False):
        import torch

        model.set_inference_dtype(torch.bfloat16)
    return model


# --------------------------------------------------------------------------- commands


def encode_file(model: MPTVC, src: Path, dst: Path) -> tuple[Any, int]:
    """Encode the video file ``src`` into the ``.mptvc`` file ``dst`` a chunk at a time: frames are
    decoded as needed and the segments wait on disk (``formats.spool``), so memory does not grow with
    the video's length. A progress bar counts frames. Returns the ``VideoInfo`` and the file's size."""
    from mptvc_latents.files import atomic_output
    from mptvc_latents.formats.spool import SegmentSpool
    from mptvc_latents.video import VideoReader

    reader = VideoReader(src)
    with atomic_output(dst) as tmp, SegmentSpool(model.num_levels, dst.parent) as spool:  # checks dst's folder first
        with _bar(reader.frame_count, "encode", unit="frame") as bar:
            chunks = reader.chunks(model.config.chunk_frames)
            compressed = model.compress_stream(chunks, reader.fps, segments=spool, progress=bar.update)
        with open(tmp, "wb") as out:
            size = spool.write(out, compressed.info, model.config.to_dict(), model.tables_digest())
    return compressed.info, size


def decode_file(model: MPTVC, compressed: Any, dst: Path, k_max: int) -> None:
    """Decode ``compressed`` (``formats.spool.open_mptvc``) into the video or ``.npy`` file ``dst`` a
    chunk at a time, each chunk written as it finishes; a progress bar counts frames."""
    from mptvc_latents.files import atomic_output
    from mptvc_latents.video import FrameWriter

    info = compressed.info
    with _bar(info.frames, "decode", unit="frame") as bar, atomic_output(dst) as tmp:
        with FrameWriter(tmp, info.fps, frames=info.frames) as writer:
            for frames in model.decompress_stream(compressed, k_max, progress=bar.update):
                writer.write(frames)


def encode_file_to_target(model: MPTVC, src: Path, dst: Path, target: Any) -> tuple[Any, int]:
    """``encode_file`` for a ``ratecontrol.RateTarget``: the video is read once per encoder pass
    (a chunk at a time) and the file written as container v4. Returns the ``VideoInfo`` and the size."""
    from mptvc_latents.files import atomic_output
    from mptvc_latents.formats.container import write_mptvc
    from mptvc_latents.ratecontrol import compress_to_target
    from mptvc_latents.streaming import DEFAULT_LOOKAHEAD
    from mptvc_latents.video import VideoReader

    def frames() -> Any:
        return VideoReader(src).chunks(model.config.chunk_frames)

    with atomic_output(dst) as tmp:
        with _bar(None, "rate control passes", unit="frame") as bar:  # type: ignore[arg-type]
            compressed = compress_to_target(
                model, frames, VideoReader(src).fps, target, lookahead=DEFAULT_LOOKAHEAD, progress=bar.update
            )
        data = write_mptvc(compressed, model.config.to_dict(), model.tables_digest())
        tmp.write_bytes(data)
    return compressed.info, len(data)


def _rate_target(args: argparse.Namespace) -> Any:
    """The ``RateTarget`` of ``--target-bpp`` / ``--target-psnr`` (None without either)."""
    if args.target_bpp is None and args.target_psnr is None:
        if args.best_effort or args.no_skip_frames:
            raise ValueError("--best-effort and --no-skip-frames need a target: --target-bpp or --target-psnr.")
        return None
    from mptvc_latents.ratecontrol import RateTarget

    return RateTarget(
        bpp=args.target_bpp, psnr=args.target_psnr, best_effort=args.best_effort, skip_frames=not args.no_skip_frames
    )


def _add_target(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--target-bpp", type=float, help="rate control: at most this many bits per pixel (whole file)")
    group.add_argument("--target-psnr", type=float, help="rate control: at least this PSNR-RGB in dB (predicted)")
    p.add_argument("--best-effort", action="store_true", help="an unreachable target gives the nearest coding")
    p.add_argument("--no-skip-frames", action="store_true", help="rate control by levels per chunk only")


def _encode(args: argparse.Namespace) -> None:
    if args.stream:
        return _encode_stream(args)
    src, dst = _paths(args, "input", "output")
    _require_file(src)
    target = _rate_target(args)
    model = _load_model(args)
    info, size = encode_file(model, src, dst) if target is None else encode_file_to_target(model, src, dst, target)
    t, h, w = info.frames, info.height, info.width
    log.info("%s: %d frames of %dx%d in %d bytes (%.4f bpp)", dst, t, w, h, size, 8 * size / (t * h * w))


def _decode(args: argparse.Namespace) -> None:
    from mptvc_latents.formats.container import check_checkpoint
    from mptvc_latents.formats.spool import open_mptvc

    src, dst = _paths(args, "input", "output")
    _require_file(src)
    # A bad file fails before the model loads: every CRC is checked, reading one segment at a time.
    stream, header, report = open_mptvc(src, verify=True)
    k = report.levels_complete - 1 if args.k_max is None else args.k_max
    if k >= report.levels_complete:
        cut = " (the file is cut)" if report.truncated else ""
        last = report.levels_complete - 1
        raise ValueError(f"The level --k-max {k} is out of range: {str(src)!r} holds levels 0..{last}{cut}.")
    if report.truncated and args.k_max is None:
        log.warning("%s", report.summary())
    if args.ckpt is None and header.config.get("causal"):
        args.ckpt = str(causal_checkpoint_dir())  # a causal file: the shipped causal checkpoint by default
    model = _load_model(args)
    check_checkpoint(header, *model.file_identity(header.config), f"the file {str(src)!r}")
    if args.stream:
        return _decode_stream(model, stream, dst, k)
    decode_file(model, stream, dst, k)
    log.info("%s: %d frames from levels 0..%d", dst, stream.info.frames, k)


def _encode_stream(args: argparse.Namespace) -> None:
    """``encode --stream``: raw rgb24 frames from a file or standard input (``-``), as they arrive."""
    from mptvc_latents.causal import encode_raw_stream, parse_size

    src, dst = _paths(args, "input", "output")
    if args.size is None or args.fps is None:
        raise ValueError("`mptvc encode --stream` reads raw rgb24 frames: give their --size WxH and --fps.")
    size = parse_size(args.size)
    if not args.fps > 0:
        raise ValueError(f"--fps must be a positive number, got {args.fps}.")
    if str(src) != "-":
        _require_file(src)
    if args.ckpt is None:
        args.ckpt = str(causal_checkpoint_dir())
    model = _load_model(args)
    with contextlib.ExitStack() as stack:
        source = sys.stdin.buffer if str(src) == "-" else stack.enter_context(open(src, "rb"))
        bar = stack.enter_context(_bar(None, "encode", unit="frame"))  # type: ignore[arg-type]
        info, written = encode_raw_stream(model, source, size, args.fps, dst, progress=bar.update)
    t, h, w = info.frames, info.height, info.width
    log.info("%s: %d frames of %dx%d in %d bytes (%.4f bpp)", dst, t, w, h, written, 8 * written / (t * h * w))


def _decode_stream(model: MPTVC, stream: Any, dst: Path, k: int) -> None:
    """``decode --stream``: raw rgb24 frames to a file or standard output (``-``), a chunk at a time."""
    from mptvc_latents.causal import decode_raw_stream
    from mptvc_latents.files import atomic_output

    if str(dst) == "-":
        frames = decode_raw_stream(model, stream, sys.stdout.buffer, k)
    else:
        with atomic_output(dst) as tmp, open(tmp, "wb") as out:
            frames = decode_raw_stream(model, stream, out, k)
    info = stream.info
    log.info("%s: %d frames of %dx%d rgb24 from levels 0..%d", dst, frames, info.width, info.height, k)


def _info(args: argparse.Namespace) -> None:
    from mptvc_latents.formats.container import inspect_mptvc

    (src,) = _paths(args, "input")
    _require_file(src)
    inspection = inspect_mptvc(src)
    print(json.dumps(inspection.to_dict(), indent=2) if args.json else inspection.format())


def _truncate(args: argparse.Namespace) -> None:
    from mptvc_latents.files import atomic_output
    from mptvc_latents.formats.container import truncate_mptvc

    src, dst = _paths(args, "input", "output")
    _require_file(src)
    data = truncate_mptvc(src.read_bytes(), args.k_max)
    with atomic_output(dst) as tmp:
        tmp.write_bytes(data)
    log.info("%s: levels 0..%d in %d bytes", dst, args.k_max, len(data))


def _export(args: argparse.Namespace) -> None:
    from mptvc_latents.train.export import export_checkpoint, training_card

    run = Path(args.run)
    if not (run / "checkpoint" / "trainer.pt").is_file():
        raise ValueError(f"{str(run)!r} is not a training run folder: it has no checkpoint/trainer.pt.")
    overrides = {"tile_overlap": tuple(args.tile_overlap)} if args.tile_overlap else {}
    out = export_checkpoint(run / "checkpoint", args.out, card=training_card(run), ema=args.ema, **overrides)
    print(out)


def _train(args: argparse.Namespace) -> None:
    configure_threads(args.threads or None)
    import torch.distributed

    from mptvc_latents.train import Stage, TrainConfig, Trainer
    from mptvc_latents.train.distributed import init_from_env

    flags = given_flags(args, TrainConfig)
    if "crop" in flags:  # a side (square) or height and width on the command line, (height, width) in the config
        if len(flags["crop"]) > 2:
            raise ValueError(f"--crop takes one side or a height and a width, got {len(flags['crop'])} numbers.")
        flags["crop"] = (flags["crop"][0], flags["crop"][-1])
    if "stages" in flags:
        flags["stages"] = tuple(Stage(start, batch, frames, (h, w)) for start, batch, frames, h, w in flags["stages"])
    config = TrainConfig(sources=tuple(args.sources), run_dir=args.run_dir, **flags)
    world = init_from_env()  # under torchrun: join the process group (NCCL on GPUs, gloo on CPUs)
    try:
        Trainer(config).fit(progress=not args.no_progress)
    finally:
        if world.world_size > 1:
            torch.distributed.destroy_process_group()


def _tokenize(args: argparse.Namespace) -> None:
    from mptvc_latents.store import tokenize

    target = _rate_target(args)
    model = _load_model(args)
    summary = tokenize(
        args.sources, args.out, model, workers=args.workers, levels=args.levels, engine=args.engine, target=target
    )
    log.info("%s: %s", args.out, summary.format())


def _detokenize(args: argparse.Namespace) -> None:
    from mptvc_latents.store import detokenize

    model = _load_model(args)
    written = detokenize(args.store, args.out, model, k_max=args.k_max, clips=args.clips, suffix=f".{args.format}")
    log.info("%s: %d clips decoded", args.out, len(written))


# --------------------------------------------------------------------------- arguments

_PATH_HELP = {
    "encode": {"input": "video to encode (any format FFmpeg reads)", "output": "the .mptvc file to write"},
    "decode": {"input": "the .mptvc file", "output": "video to write (.mp4 etc.; .npy keeps the exact uint8 frames)"},
    "info": {"input": "the .mptvc file"},
    "truncate": {"input": "the .mptvc file", "output": "the prefix file to write"},
}


def _add_paths(p: argparse.ArgumentParser, command: str) -> None:
    """Positional paths, and the original tool's ``--input`` / ``--output`` for the same values."""
    for name, text in _PATH_HELP[command].items():
        p.add_argument(name, nargs="?", metavar=name.upper(), help=text)
    for name in _PATH_HELP[command]:
        p.add_argument(f"--{name}", dest=f"{name}_flag", metavar=name.upper(), help=f"same as {name.upper()}")


def _paths(args: argparse.Namespace, *names: str) -> tuple[Path, ...]:
    """Each path from its flag, else from the positionals in order (``encode --input a.mp4 b.mptvc``)."""
    free = [getattr(args, n) for n in names if getattr(args, n) is not None]
    out = []
    for name in names:
        value = getattr(args, f"{name}_flag")
        if value is None and free:
            value = free.pop(0)
        if value is None:
            raise ValueError(f"`mptvc {args.command}` needs an {name.upper()} path (positional or --{name}).")
        out.append(Path(value))
    if free:
        raise ValueError(f"`mptvc {args.command}` got the extra argument {free[0]!r}; each path is given once.")
    return tuple(out)


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise ValueError(f"The input file {str(path)!r} does not exist (or is not a file).")


def _add_ckpt(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", help="checkpoint folder (config.json + model.safetensors); default: the shipped one")


def _add_dtype(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument("--fp32", action="store_true", help="run the transformers in float32 (default)")
    group.add_argument(
        "--bf16", action="store_true", help="run the transformers in bfloat16 (entropy coding stays exact)"
    )


def _k_max(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a level number (0, 1, ...), got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def given_flags(args: argparse.Namespace, target: Callable[..., Any]) -> dict[str, Any]:
    """The parameters with a default of ``target`` (a config dataclass or a function) that the
    command line gives, lists as tuples.

    A flag that sets such a parameter is added with ``default=argparse.SUPPRESS`` and ``dest`` the
    parameter's name: left out, it is absent from ``args``, so ``target``'s own default applies and
    no default is written twice.
    """
    names = {n for n, p in inspect.signature(target).parameters.items() if p.default is not inspect.Parameter.empty}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in vars(args).items() if k in names}


def _command(sub, name: str, text: str) -> argparse.ArgumentParser:
    return sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")


# --------------------------------------------------------------------------- the core commands
# Each adds its parser to the ``mptvc`` subparsers, like the plugins of PLUGIN_GROUP.


def add_encode(sub) -> None:
    p = _command(sub, "encode", "compress a video into an .mptvc file")
    _add_paths(p, "encode")
    _add_ckpt(p)
    _add_dtype(p)
    _add_target(p)
    p.add_argument(
        "--stream",
        action="store_true",
        help="INPUT is raw rgb24 frames (- for standard input), coded as they arrive by a causal checkpoint "
        "(default: the shipped mptvc-cpu-causal); needs --size and --fps",
    )
    p.add_argument("--size", metavar="WxH", help="with --stream: the frame size, e.g. 640x360")
    p.add_argument("--fps", type=float, help="with --stream: the frame rate")
    p.set_defaults(func=_encode)


def add_decode(sub) -> None:
    p = _command(sub, "decode", "decode an .mptvc file into a video")
    _add_paths(p, "decode")
    _add_ckpt(p)
    p.add_argument(
        "--k-max", type=_k_max, help="highest level to decode: 0 preview, 1 medium; omitted: every level in the file"
    )
    _add_dtype(p)
    p.add_argument(
        "--stream", action="store_true", help="write raw rgb24 frames to OUTPUT (- for standard output) as they decode"
    )
    p.set_defaults(func=_decode)


def add_info(sub) -> None:
    p = _command(sub, "info", "describe an .mptvc file: levels, bytes and bpp of each prefix, shape, fps, digest")
    _add_paths(p, "info")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=_info)


def add_truncate(sub) -> None:
    p = _command(sub, "truncate", "write the prefix of an .mptvc file with levels 0..K (a valid, smaller file)")
    _add_paths(p, "truncate")
    p.add_argument("--k-max", type=_k_max, required=True, help="last level to keep: 0 preview, 1 medium")
    p.set_defaults(func=_truncate)


def add_train(sub) -> None:
    p = _command(sub, "train", "train a codec on folders of videos (resumable)")
    p.epilog = "Flags left out take the defaults of TrainConfig (mptvc_latents/train/loop.py)."
    config: dict[str, Any] = {"default": argparse.SUPPRESS}  # defaults: TrainConfig's (given_flags)
    p.add_argument("sources", nargs="+", help="video files, folders (searched recursively) or globs")
    p.add_argument(
        "--run",
        "--run-dir",  # under torchrun: its own parser takes --run for an abbreviation of --run-path
        dest="run_dir",
        metavar="RUN",
        required=True,
        help="run folder (checkpoint, log.jsonl); re-running resumes",
    )
    p.add_argument("--preset", **config, help="codec preset name, or the path of a codec config.json")
    p.add_argument("--batch", type=int, **config, help="clips per step (global: split over torchrun's processes)")
    p.add_argument("--frames", type=int, **config, help="frames per clip")
    p.add_argument("--crop", type=int, nargs="+", **config, help="crop side, or height and width, in pixels")
    p.add_argument(
        "--stage",
        dest="stages",
        type=int,
        nargs=5,
        action="append",
        metavar=("STEP", "BATCH", "FRAMES", "HEIGHT", "WIDTH"),
        **config,
        help="from STEP on, BATCH clips of FRAMES x HEIGHT x WIDTH (repeat for more stages)",
    )
    p.add_argument("--time-strides", type=int, nargs="+", **config, help="temporal strides drawn per clip")
    p.add_argument(
        "--rescale", type=float, nargs=2, metavar=("LOW", "HIGH"), **config, help="scale range before cropping"
    )
    p.add_argument("--no-flip", dest="flip", action="store_false", **config, help="no random horizontal flips")
    p.add_argument("--autocast", choices=("auto", "bf16", "off"), **config, help="bf16 transformers (auto: if fast)")
    p.add_argument("--workers", type=int, **config, help="background processes that decode and cut clips")
    p.add_argument("--max-side", type=int, **config, help="decode videos with the longer side at most this")
    p.add_argument("--max-frames", type=int, **config, help="decode at most this many frames of a video")
    p.add_argument("--frame-cache", **config, help="folder of decoded videos (default RUN/frames)")
    p.add_argument(
        "--phase-steps", type=int, nargs="+", **config, help="steps of each level alone, then of all levels jointly"
    )
    p.add_argument("--lr", type=float, **config, help="peak learning rate (warm-up, then cosine decay)")
    p.add_argument("--lambdas", type=float, nargs="+", **config, help="rate-distortion trade-off of each level")
    p.add_argument(
        "--ycbcr-weights",
        type=float,
        nargs=3,
        metavar=("Y", "CB", "CR"),
        **config,
        help="measure the distortion in BT.709 Y, Cb, Cr with these weights (e.g. 6 1 1) instead of RGB",
    )
    p.add_argument("--checkpoint-every", type=int, **config, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, **config, help="steps between records in RUN/log.jsonl")
    p.add_argument("--seed", type=int, **config)
    p.add_argument(
        "--ema",
        type=float,
        metavar="DECAY",
        **config,
        help="keep a moving average of the parameters with this decay (e.g. 0.999; export it with --ema)",
    )
    p.add_argument(
        "--init",
        **config,
        help="start from this checkpoint's weights when the run folder has none (e.g. the shipped one)",
    )
    p.add_argument(
        "--causal",
        action="store_true",
        default=argparse.SUPPRESS,
        help="train the causal variant (with --init: its weights, the schedule from step 0)",
    )
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)


def add_tokenize(sub) -> None:
    p = _command(sub, "tokenize", "tokenize videos into a zarr token store (resumable; bad files are skipped)")
    p.add_argument("sources", nargs="+", metavar="SRC", help="video files, folders (searched recursively) or globs")
    p.add_argument("--out", required=True, metavar="STORE", help="the token store (.zarr folder): created, or resumed")
    p.add_argument("--workers", type=int, default=1, help="processes, each with its own model (default 1)")
    p.add_argument("--levels", type=int, help="store levels 0..LEVELS-1 only (default: every level)")
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local processes, or a Ray Data actor pool of --workers actors (the cluster at RAY_ADDRESS, "
        "else a local Ray with --workers CPUs; needs the `ray` extra)",
    )
    _add_ckpt(p)
    _add_target(p)
    p.set_defaults(func=_tokenize)


def add_detokenize(sub) -> None:
    p = _command(sub, "detokenize", "decode the clips of a token store into videos")
    p.add_argument("store", metavar="STORE", help="the token store (.zarr folder)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <clip key>.mp4 (created)")
    p.add_argument("--k-max", type=_k_max, help="highest level to decode; omitted: every level stored")
    p.add_argument("--clips", nargs="+", metavar="KEY", help="clip keys to decode (default: every complete clip)")
    p.add_argument("--format", choices=("mp4", "npy"), default="mp4", help="npy keeps the exact uint8 frames")
    _add_ckpt(p)
    p.set_defaults(func=_detokenize)


def add_export(sub) -> None:
    p = _command(sub, "export", "export a training run's checkpoint as a compact (float16) hub-style folder")
    p.add_argument("run", help="the run folder of `mptvc train`")
    p.add_argument("out", help="the folder to write (replaced)")
    p.add_argument("--tile-overlap", type=int, nargs=2, metavar=("H", "W"), help="inference tile overlap in pixels")
    p.add_argument(
        "--ema", action="store_true", help="export the moving average of the parameters (a run trained with --ema)"
    )
    p.set_defaults(func=_export)


def _train_entropy(args: argparse.Namespace) -> None:
    from mptvc_latents.config import ContextConfig
    from mptvc_latents.train.entropy import fit_context_model

    configure_threads(args.threads or None)
    context = ContextConfig(**given_flags(args, ContextConfig))
    model = fit_context_model(args.stores, args.ckpt, args.out, context, **given_flags(args, fit_context_model))
    log.info(
        "%s: context tables of %s fitted; tables digest %s", args.out, model.config.name, model.tables_digest()[:12]
    )


def add_train_entropy(sub) -> None:
    p = _command(
        sub,
        "train-entropy",
        "fit a checkpoint's context entropy model from token stores (frozen transforms, resumable)",
    )
    p.add_argument(
        "stores", nargs="+", metavar="STORE", help="token stores written with the checkpoint (mptvc tokenize)"
    )
    p.add_argument("--out", required=True, help="the checkpoint folder to write (base weights + context tables)")
    _add_ckpt(p)
    hidden: dict[str, Any] = {"default": argparse.SUPPRESS}  # defaults: ContextConfig's, fit_context_model's
    p.add_argument("--intra-period", type=int, help="chunks between restarts of temporal context", **hidden)
    p.add_argument("--scale-bins", type=int, help="bins of the hyperprior's scale in the context", **hidden)
    p.add_argument("--alpha", type=float, help="smoothing towards the level's histogram", **hidden)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.set_defaults(func=_train_entropy)


#: The subcommands of the core, in the order ``mptvc --help`` lists them; plugins follow.
CORE_COMMANDS: tuple[Callable[[Any], None], ...] = (
    add_encode,
    add_decode,
    add_info,
    add_truncate,
    add_train,
    add_export,
    add_train_entropy,
    add_tokenize,
    add_detokenize,
    eval_cli.add_command,
)


def build_parser() -> argparse.ArgumentParser:
    from mptvc_latents import __version__

    parser = argparse.ArgumentParser(prog="mptvc", description="MPT-VC: neural video codec and tokenizer.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more")
    parser.add_argument("--version", action="version", version=f"mptvc {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add_command in CORE_COMMANDS:
        add_command(sub)
    _add_plugin_commands(sub)
    return parser


PLUGIN_GROUP = "mptvc.commands"


def _add_plugin_commands(sub) -> None:
    """Subcommands that other packages register under the ``mptvc.commands`` entry-point group.

    Each entry point names a function ``add_command(sub)`` that adds its parser(s) to ``sub``, as
    the core commands of ``CORE_COMMANDS`` do; ``heads`` and ``generation`` add theirs this way, so
    the core never imports them. A plugin that fails to import is logged and left out rather than
    breaking every other command.
    """
    from importlib.metadata import entry_points

    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            add_command = entry.load()
        except Exception as e:  # a broken optional plugin must not take the whole CLI down
            log.warning("The mptvc command %r (%s) could not be loaded: %s", entry.name, entry.value, _one_line(e))
            continue
        add_command(sub)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    configure_threads()  # before any command imports torch
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except ValueError as e:
        print(f"mptvc: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # unreadable input, full disk, no permission
        detail = f"{e.strerror}: {e.filename!r}" if e.strerror and e.filename else _one_line(e)
        print(f"mptvc: error: {detail}.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("mptvc: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
