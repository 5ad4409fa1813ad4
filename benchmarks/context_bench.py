"""The context entropy model against the scale hyperprior on the same tokens (BENCHMARKS.md, "Context
entropy model"). Run from the repository root, one torch thread::

    python -m benchmarks.context_bench dump ../shared/data/train --out runs/ctx/train --max-side 320 --max-frames 64
    python -m benchmarks.context_bench dump ../shared/data/val --out runs/ctx/val --max-frames 96
    python -m benchmarks.context_bench ablation --train runs/ctx/train --val runs/ctx/val \
        [--ckpt CONTEXT_CKPT...] [--out benchmarks/results/context/ablation.json]
    python -m benchmarks.context_bench entropy --val runs/ctx/val --ckpt CONTEXT_CKPT \
        [--out benchmarks/results/context/entropy_times.json]
    python -m benchmarks.context_bench prior ../shared/data/val --ckpt CONTEXT_CKPT \
        [--out benchmarks/results/context/prior_level0_96x128.json]

``dump`` encodes each clip once with the shipped checkpoint and keeps, per level, the symbols
``s{k}`` (C, T', H', W') and the bits the hyperprior's coder spends on them (``ybits``, ``zbits``:
the exact integer-table bits of ``compress``), so every entropy model below codes identical
tokens and the PSNR does not move. ``ablation`` fits context tables of each configuration on the
train dumps (``clip_counts`` + ``ContextModel.fit``, as ``mptvc train-entropy`` does on token
stores) and codes the val dumps with them through each level's ``compress`` (real bytes, each
segment decoded back; ideal code lengths too). ``entropy`` times the entropy stage alone (each
level's ``compress`` and ``decompress``, best of a few runs) on the val dumps, hyperprior against
context. ``prior`` repeats the token prior's level-0 setting (BENCHMARKS.md, "Token prior"):
first 256 frames, centre-cropped and resized to 96x128, real bytes of ``compress``. Timings of
the whole pipeline: ``benchmarks/pipeline_bench.py --ckpt CONTEXT_CKPT``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import functools
import json
import logging
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

from mptvc_latents.runtime import configure_threads

log = logging.getLogger("context_bench")

RESULTS = Path(__file__).parent / "results" / "context"


def _configs() -> dict:
    """The ablation: each context added in turn up to the default config, then commit 9ee7667's default."""
    from mptvc_latents.config import ContextConfig

    off = {"temporal": False, "coarser": False, "channels": False, "channel_changes": False}
    out = {
        "histogram (no z)": ContextConfig(scale_bins=1, hyper_from=99, **off),
        "scale bin (8), z at every level": ContextConfig(scale_bins=8, hyper_from=0, **off),
    }
    on: dict[str, bool] = {}
    for name, flag in (("temporal", "temporal"), ("coarser", "coarser"), ("channel", "channels")):
        on[flag] = True
        out[f"+ {name}"] = ContextConfig(scale_bins=8, hyper_from=0, **{**off, **on})
    out["+ channel changes"] = ContextConfig(scale_bins=8, hyper_from=0)
    default = ContextConfig()
    out[f"+ no z below level {default.hyper_from} (the default config)"] = default
    out["16 bins, no channel changes (commit 9ee7667)"] = ContextConfig(
        scale_bins=16, channel_changes=False, hyper_from=0
    )
    return out


def _hyperprior_only(model):
    """``model`` without its context tables, if it has any: the scale hyperprior alone (container v2)."""
    from mptvc_latents.codec import MPTVC

    if model.config.context is None:
        return model
    plain = MPTVC(dataclasses.replace(model.config, context=None))
    plain.load_state_dict({n: t for n, t in model.state_dict().items() if ".context." not in n})
    return plain.eval()


def _provenance() -> dict:
    import torch

    commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# ---------------------------------------------------------------------------- dump


def dump(sources: list[str], out: Path, max_side: int, max_frames: int) -> None:
    """Symbols and hyperprior bits per level of each clip (``<folder>__<stem>.npz``)."""
    import av
    import torch

    from mptvc_latents.codec import MPTVC
    from mptvc_latents.store import find_sources
    from mptvc_latents.video import read_video

    model = MPTVC.from_pretrained()
    out.mkdir(parents=True, exist_ok=True)
    found, _ = find_sources(sources)
    for source in found:
        path = Path(source.path)
        dst = out / f"{path.parent.name}__{path.stem}.npz"
        if dst.exists():
            continue
        clip = read_video(path, max_frames=max_frames)
        frames = clip.frames
        t, h, w = frames.shape[:3]
        if max_side and max(h, w) > max_side:  # area resize, even sides
            scale = max(h, w) / max_side
            nh, nw = int(round(h / scale)) // 2 * 2, int(round(w / scale)) // 2 * 2
            frames = np.stack([
                av.VideoFrame.from_ndarray(f, format="rgb24")
                .reformat(width=nw, height=nh, interpolation="AREA")
                .to_ndarray(format="rgb24")
                for f in frames
            ])  # fmt: skip
        x, info = model._prepare(frames, clip.fps)
        symbols: list[list[np.ndarray]] = [[] for _ in range(model.num_levels)]
        ybits, zbits = np.zeros(model.num_levels), np.zeros(model.num_levels)
        with torch.no_grad():
            for chunk in model._chunks(info):
                t_pos = model._t_pos(chunk.stop - chunk.start, info.scene_ids[chunk])
                chunk_symbols, bounds = model._analyze(x[:, :, chunk], t_pos)
                for k, level in enumerate(model.pyramid_levels()):
                    hp = level.hyperprior
                    z = hp._exact_z_symbols(bounds[k])
                    zbits[k] += float(hp.z_tables.bits(z, hp._z_index(z.shape)).to(torch.float64).sum())
                    y_bits = hp.y_tables.bits(chunk_symbols[k], hp._y_index(z))
                    ybits[k] += float(y_bits.to(torch.float64).sum())
                    symbols[k].append(chunk_symbols[k][0].numpy())  # (C, T', H', W')
        arrays: dict[str, Any] = {f"s{k}": np.concatenate(chunks, 1) for k, chunks in enumerate(symbols)}
        arrays.update(ybits=ybits, zbits=zbits, shape=np.array(frames.shape[:3]))
        np.savez_compressed(dst, **arrays)
        log.info(
            "%s: %s, hyperprior bits/px %s",
            dst.name,
            frames.shape[:3],
            np.round((ybits + zbits) / frames[..., 0].size, 4),
        )


# ---------------------------------------------------------------------------- ablation


def _walk(model, dump: dict, visit) -> None:
    """``visit(k, level, symbols (C, T', H', W'), LevelContext)`` over a dumped clip as the codec codes it."""
    from mptvc_latents.codec import ChunkContexts

    chunk_t = model.config.chunk_frames // model.config.patch_t
    symbols = [dump[f"s{k}"] for k in range(model.num_levels)]
    contexts = ChunkContexts(model.intra_period, model.num_levels)
    for c, start in enumerate(range(0, symbols[0].shape[1], chunk_t)):
        chunk = [np.ascontiguousarray(s[:, start : start + chunk_t]) for s in symbols]
        for k, level in enumerate(model.pyramid_levels()):
            visit(k, level, chunk[k], contexts.level(c, k, chunk[k - 1] if k else None))
        for k, s in enumerate(chunk):
            contexts.done(c, k, s)


def _measure(k: int, level, symbols: np.ndarray, context, ideal: np.ndarray, real: np.ndarray) -> None:
    """Code level ``k`` of one chunk as ``PyramidLevel.compress`` does (z, if the level sends one,
    then y), check that ``decompress`` gives the symbols back, and add its bits to ``real`` and
    its ideal bits (no stream overhead) to ``ideal``."""
    import torch

    t = torch.from_numpy(symbols)[None]  # uint8 (1, C, T', H', W')
    z_bytes, y_bytes = level.compress(t.float(), t, context)  # with a context, z comes from the symbols
    decoded = level.decompress((z_bytes, y_bytes), symbols.shape, context)[0].cpu().numpy()
    if not np.array_equal(decoded, symbols):
        raise AssertionError(f"Level {k}: a context-coded segment does not decode back to its symbols.")
    real[k] += 8 * (len(z_bytes) + len(y_bytes))
    ideal[k] += level.context.ideal_bits(symbols, level.scale_index(t), context)
    if z_bytes:
        hp = level.hyperprior
        z = hp._exact_z_symbols(t.float())
        ideal[k] += float(hp.z_tables.bits(z, hp._z_index(z.shape)).to(torch.float64).sum())


def ablation(train_dir: Path, val_dir: Path, alpha: float, checkpoints: list[str]) -> dict:
    """Each configuration of :func:`_configs`, fitted on the train dumps, and the tables of each of
    ``checkpoints`` as they are, coding the val dumps (see the module docstring)."""

    from mptvc_latents.codec import MPTVC
    from mptvc_latents.train.entropy import clip_counts, with_context_model

    base = _hyperprior_only(MPTVC.from_pretrained())  # the shipped checkpoint may carry context tables
    train = [dict(np.load(p)) for p in sorted(train_dir.glob("*.npz"))]
    val = {p.stem: dict(np.load(p)) for p in sorted(val_dir.glob("*.npz"))}
    if not train or not val:
        raise SystemExit(f"No dumps in {train_dir} or {val_dir}: run `dump` first.")
    report = {**_provenance(), "train_clips": len(train), "alpha": alpha, "configs": {}, "clips": {}}
    for name, d in val.items():
        report["clips"][name] = {
            "symbols": [int(d[f"s{k}"].size) for k in range(base.num_levels)],
            "pixels": int(np.prod(d["shape"])),
            "hyperprior_bits": (d["ybits"] + d["zbits"]).tolist(),
            "bits": {},
            "ideal_bits": {},
        }
    models = {}
    for name, config in _configs().items():
        model = with_context_model(base, config)
        counts: list[np.ndarray] | None = None
        for d in train:
            per_level = clip_counts(model, [d[f"s{k}"].transpose(1, 2, 3, 0) for k in range(model.num_levels)])
            counts = per_level if counts is None else [a + b for a, b in zip(counts, per_level, strict=True)]
        assert counts is not None
        for level, c in zip(model.pyramid_levels(), counts, strict=True):
            assert level.context is not None
            level.context.fit(c, alpha)
        models[name] = model
    for path in checkpoints:
        model = MPTVC.from_pretrained(path)
        if model.config.context is None or model.weights_digest() != base.weights_digest():
            raise SystemExit(f"{path} is not the shipped checkpoint with context tables: its tokens or tables differ.")
        models[f"checkpoint {path}"] = model
    for name, model in models.items():
        assert model.config.context is not None
        report["configs"][name] = {**model.config.context.to_dict(), "tables_digest": model.tables_digest()}
        for clip, d in val.items():
            ideal, real = np.zeros(model.num_levels), np.zeros(model.num_levels)
            _walk(model, d, functools.partial(_measure, ideal=ideal, real=real))
            report["clips"][clip]["bits"][name] = real.tolist()
            report["clips"][clip]["ideal_bits"][name] = ideal.tolist()
            old = np.array(report["clips"][clip]["hyperprior_bits"])
            log.info(
                "%-48s %-36s saving per prefix %s",
                name,
                clip,
                [f"{x:.1f}%" for x in _savings(real, old)],
            )
    return report


def _savings(bits: np.ndarray, old: np.ndarray) -> list[float]:
    return [100 * (1 - bits[: k + 1].sum() / old[: k + 1].sum()) for k in range(len(old))]


def ablation_markdown(report: dict) -> str:
    """Three tables: pooled over the val clips per configuration (real bytes; the ideal code length
    of the main one for reference), per clip for the main one (the first checkpoint measured, else
    the default config), per clip per configuration."""
    clips = report["clips"]
    names = list(report["configs"])
    shipped = next((n for n in names if n.startswith("checkpoint")), next(n for n in names if "default config" in n))
    pooled = {n: np.sum([c["bits"][n] for c in clips.values()], 0) for n in names}
    symbols = np.sum([c["symbols"] for c in clips.values()], 0)
    old = np.sum([c["hyperprior_bits"] for c in clips.values()], 0)
    lines = [
        "| entropy model (val, pooled) | L0 bits/symbol | L1 | L2 | saving preview | medium | full |",
        "|---|---:|---:|---:|---:|---:|---:|",
        "| scale hyperprior (step 9400) | " + " | ".join(f"{x:.3f}" for x in old / symbols) + " | — | — | — |",
    ]
    ideal = np.sum([c["ideal_bits"][shipped] for c in clips.values()], 0)
    for name, bits in [*pooled.items(), (f"{shipped}, ideal code length", ideal)]:
        cells = [f"{x:.3f}" for x in bits / symbols] + [f"{x:.1f}%" for x in _savings(bits, old)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| clip | entropy model | L0 bits/symbol | L1 | L2 | bpp preview | medium | full "
        "| saving preview | medium | full |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for clip, c in clips.items():
        o, n = np.array(c["hyperprior_bits"]), np.array(c["symbols"])
        for label, bits in (("hyperprior", o), (shipped, np.array(c["bits"][shipped]))):
            cells = [f"{x:.3f}" for x in bits / n] + [f"{bits[: k + 1].sum() / c['pixels']:.4f}" for k in range(3)]
            cells += ["—"] * 3 if label == "hyperprior" else [f"{x:.1f}%" for x in _savings(bits, o)]
            lines.append(f"| {clip} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "| entropy model | " + " | ".join(clips) + " |", "|---|" + "---:|" * len(clips)]
    for name in names:
        cells = [
            " / ".join(f"{x:.1f}" for x in _savings(np.array(c["bits"][name]), np.array(c["hyperprior_bits"])))
            for c in clips.values()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- entropy stage alone


def _time_level(k: int, level, symbols: np.ndarray, context, seconds: np.ndarray, repeats: int) -> None:
    """Best of ``repeats`` of level ``k``'s compress and of its decompress on one chunk (best: the
    machine is shared, and the work is deterministic)."""
    import time

    import torch

    t = torch.from_numpy(symbols)[None]
    best = [float("inf"), float("inf")]
    for _ in range(repeats):
        start = time.perf_counter()
        segment = level.compress(t.float(), t, context)
        middle = time.perf_counter()
        decoded = level.decompress(segment, symbols.shape, context)
        end = time.perf_counter()
        best = [min(best[0], middle - start), min(best[1], end - middle)]
    if not np.array_equal(decoded[0].cpu().numpy(), symbols):
        raise AssertionError(f"Level {k}: a segment does not decode back to its symbols.")
    seconds[:, k] += best


def entropy_times(val_dir: Path, ckpt: str, repeats: int) -> dict:
    """Seconds of the entropy stage alone (every level's compress and decompress of each chunk) on
    the val dumps, for the hyperprior and for the context checkpoint."""
    from mptvc_latents.codec import MPTVC

    models = {"hyperprior": _hyperprior_only(MPTVC.from_pretrained()), "context": MPTVC.from_pretrained(ckpt)}
    if models["context"].config.context is None:
        raise SystemExit(f"{ckpt} has no context tables (fit them with `mptvc train-entropy`).")
    report = {**_provenance(), "ckpt": str(ckpt), "repeats": repeats, "clips": {}}
    for path in sorted(val_dir.glob("*.npz")):
        d = dict(np.load(path))
        row: dict[str, Any] = {"frames": int(d["shape"][0]), "height": int(d["shape"][1]), "width": int(d["shape"][2])}
        totals = []
        for name, model in models.items():
            seconds = np.zeros((2, model.num_levels))  # (encode, decode) x level
            _walk(model, d, functools.partial(_time_level, seconds=seconds, repeats=repeats))
            row[name] = {"encode_s": seconds[0].tolist(), "decode_s": seconds[1].tolist()}
            totals.append(float(seconds.sum()))
        report["clips"][path.stem] = row
        log.info("%s: entropy encode + decode %.3f s (hyperprior) vs %.3f s (context)", path.stem, *totals)
    return report


# ---------------------------------------------------------------------------- prior setting


def prior_setting(sources: list[str], ckpt: str, size: tuple[int, int], max_frames: int) -> dict:
    """Real bytes per level of ``compress`` with the hyperprior and the context checkpoint, on the
    token prior's frames (first ``max_frames``, cut to a multiple of 16, centre crop + area resize)."""
    from generation.data import fit_frames
    from mptvc_latents.codec import MPTVC
    from mptvc_latents.store import find_sources
    from mptvc_latents.video import read_video

    models = {"hyperprior": _hyperprior_only(MPTVC.from_pretrained()), "context": MPTVC.from_pretrained(ckpt)}
    report = {**_provenance(), "ckpt": str(ckpt), "size": list(size), "clips": {}}
    found, _ = find_sources(sources)
    for source in found:
        clip = read_video(source.path, max_frames=max_frames)
        t = clip.frames.shape[0] // 16 * 16
        frames = fit_frames(clip.frames[:t], size)
        row: dict = {"frames": t}
        previews = []
        for name, model in models.items():
            compressed = model.compress(frames, clip.fps)
            previews.append(model.decompress(compressed, 0))  # identical tokens: identical previews
            row[f"{name}_bits"] = [8.0 * sum(len(z) + len(y) for z, y in level) for level in compressed.segments]
        if not np.array_equal(*previews):
            raise AssertionError(f"{source.path}: the context checkpoint decodes another level-0 video")
        c0 = models["hyperprior"].config.levels[0]
        row["tokens"] = (t // models["hyperprior"].config.patch_t) * (size[0] // 8) * (size[1] // 8)
        row["level0_channels"] = c0.latent_channels
        report["clips"][Path(source.path).stem] = row
        log.info("%s: level 0 bits/token hyperprior %.3f, context %.3f", Path(source.path).stem,
                 row["hyperprior_bits"][0] / row["tokens"], row["context_bits"][0] / row["tokens"])  # fmt: skip
    return report


def main(argv: list[str] | None = None) -> None:
    configure_threads(1)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dump", help="symbols and hyperprior bits per level of each clip")
    p.add_argument("sources", nargs="+")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-side", type=int, default=0, help="area-resize so the longer side is at most this (0: native)")
    p.add_argument("--max-frames", type=int, default=96)
    p = sub.add_parser("ablation", help="fit each configuration on the train dumps, measure on the val dumps")
    p.add_argument("--train", type=Path, required=True)
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--ckpt", nargs="*", default=[], help="checkpoints whose context tables to measure as they are")
    p.add_argument("--out", type=Path, default=RESULTS / "ablation.json")
    p = sub.add_parser("entropy", help="seconds of the entropy stage alone on the val dumps")
    p.add_argument("--val", type=Path, required=True)
    p.add_argument("--ckpt", required=True, help="a checkpoint with context tables (mptvc train-entropy)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=RESULTS / "entropy_times.json")
    p = sub.add_parser("prior", help="level 0 at the token prior's setting (96x128)")
    p.add_argument("sources", nargs="+")
    p.add_argument("--ckpt", required=True, help="a checkpoint with context tables (mptvc train-entropy)")
    p.add_argument("--max-frames", type=int, default=256)
    p.add_argument("--out", type=Path, default=RESULTS / "prior_level0_96x128.json")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "dump":
        dump(args.sources, args.out, args.max_side, args.max_frames)
        return
    if args.command == "ablation":
        report = ablation(args.train, args.val, args.alpha, args.ckpt)
        text = ablation_markdown(report)
    elif args.command == "entropy":
        report = entropy_times(args.val, args.ckpt, args.repeats)
        text = "\n".join(
            f"{clip}: " + ", ".join(f"{m} encode {sum(r[m]['encode_s']):.3f} s decode {sum(r[m]['decode_s']):.3f} s"
                                    for m in ("hyperprior", "context"))
            for clip, r in report["clips"].items()
        )  # fmt: skip
    else:
        report = prior_setting(args.sources, args.ckpt, (96, 128), args.max_frames)
        rows = report["clips"].values()
        n = sum(r["tokens"] for r in rows)
        text = "level 0, bits/token: " + ", ".join(
            f"{name} {sum(r[f'{name}_bits'][0] for r in rows) / n:.3f}" for name in ("hyperprior", "context")
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(text)
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
