"""The main job on built-in defaults (`make demo`).

Tokenize the sample clip that ships with the package with the shipped checkpoint into a
zarr token store, compress it into one rate-ordered .mptvc file, then decode every prefix
(preview = level 0, medium = levels 0-1, full = all) back from the store and from the file
and print PSNR and bpp per prefix, the bpp taken from the real .mptvc prefix sizes. The
store path (``decode(tokens, k)``) and the file path must give the same frames; the demo
checks it.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

import numpy as np

from mptvc_latents.runtime import configure_threads

log = logging.getLogger("mptvc_latents.demo")

SAMPLE = Path(__file__).parent / "assets" / "bikes_sample.mp4"
PREFIX_NAMES = ("preview", "medium", "full")


def run(clip_path: Path, ckpt: str | None, out_dir: Path, max_frames: int | None) -> list[dict]:
    """Encode, write, and decode every prefix; returns one row per prefix."""
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.eval.metrics import bpp, psnr_rgb, psnr_y
    from mptvc_latents.formats.container import read_mptvc, truncate_mptvc, write_mptvc
    from mptvc_latents.store import TokenStore, tokenize
    from mptvc_latents.video import read_video

    model = MPTVC.from_pretrained(ckpt)
    clip = read_video(clip_path, max_frames=max_frames)
    t, h, w = clip.frames.shape[:3]
    log.info("clip %s: %d frames of %dx%d at %g fps", clip_path.name, t, w, h, clip.fps)

    out_dir.mkdir(parents=True, exist_ok=True)
    store_path = out_dir / (clip_path.stem + ".zarr")
    shutil.rmtree(store_path, ignore_errors=True)
    t0 = time.perf_counter()
    summary = tokenize([clip_path], store_path, model, progress=False)
    if summary.failed:
        raise SystemExit(f"Tokenizing failed: {summary.failed}")
    store = TokenStore.open(store_path, model)
    (key,) = store.clips()
    tokens = store.read_tokens(key)
    log.info(
        "token store %s, clip %r: (T', H', W', C) per level %s, %.2f s",
        store_path,
        key,
        ", ".join(str(s.shape) for s in tokens.symbols),
        time.perf_counter() - t0,
    )
    t0 = time.perf_counter()
    data = write_mptvc(model.compress(clip.frames, clip.fps), model.config.to_dict(), model.tables_digest())
    path = out_dir / (clip_path.stem + ".mptvc")
    path.write_bytes(data)
    log.info("wrote %s: %d bytes, %.2f s", path, len(data), time.perf_counter() - t0)

    rows = []
    for k in range(model.num_levels):
        prefix = truncate_mptvc(data, k)
        stream, _, _ = read_mptvc(prefix, digest=model.tables_digest(), config=model.config.to_dict(), warn=False)
        decoded = model.decompress(stream, k_max=k)
        if not np.array_equal(decoded, model.decode(store.read_tokens(key, k_max=k), k_max=k)):
            raise SystemExit(f"Prefix {k}: the .mptvc file and the token store decode to different frames.")
        name = PREFIX_NAMES[k] if model.num_levels == 3 else f"k={k}"
        rows.append(
            {
                "prefix": name,
                "levels": k + 1,
                "bytes": len(prefix),
                "bpp": bpp(len(prefix), t, h, w),
                "psnr_y": psnr_y(clip.frames, decoded),
                "psnr_rgb": psnr_rgb(clip.frames, decoded),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    configure_threads()  # before torch loads
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLE, help="video file (default: the shipped sample)")
    parser.add_argument("--ckpt", default=None, help="checkpoint folder (default: the shipped one)")
    parser.add_argument("--out", type=Path, default=Path("runs/demo"), help="where the token store and .mptvc file go")
    parser.add_argument("--max-frames", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    rows = run(args.clip, args.ckpt, args.out, args.max_frames)
    print(f"{'prefix':<8} {'levels':>6} {'bytes':>8} {'bpp':>8} {'PSNR-Y':>8} {'PSNR-RGB':>9}")
    for r in rows:
        print(
            f"{r['prefix']:<8} {r['levels']:>6} {r['bytes']:>8} {r['bpp']:>8.4f} "
            f"{r['psnr_y']:>8.2f} {r['psnr_rgb']:>9.2f}"
        )


if __name__ == "__main__":
    main()
