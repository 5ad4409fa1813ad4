"""Is a level's capacity the limit? Grow its transformers by identity blocks, fine-tune, compare.

`python -m benchmarks.level_capacity grow --ckpt CKPT --level 2 --depth 4 4 --out GROWN`

Writes a checkpoint folder whose level ``--level`` has ``--depth`` encoder and decoder blocks
(at least its own), the trained blocks first and the new ones after them with their attention and
MLP output projections set to zero: each new block is then the identity (pre-norm residual
blocks add ``0``), so the grown codec codes exactly as the original one (checked on a clip before
writing) and only fine-tuning can make use of the new blocks (the "zero-init residual" of Goyal
et al. 2017 and the function-preserving growth of Net2Net, Chen et al. 2016).

The experiment (BENCHMARKS.md, "Capacity of level 2"): fine-tune the original and the grown
checkpoint with the same command, data, seed and steps (``mptvc train --init FOLDER``), then
compare the two on val with the transforms alone (``mptvc eval --no-baselines`` on copies without
the context tables, which the growth makes stale). If the grown level gains clearly more than the
control, the level's capacity limits the codec; if both gain alike, it does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shutil
from pathlib import Path

import torch

from mptvc_latents.codec import MPTVC
from mptvc_latents.layers.blocks import AxialBlock

log = logging.getLogger(__name__)


def grow_level(model: MPTVC, level: int, encoder_depth: int, decoder_depth: int) -> MPTVC:
    """A copy of ``model`` whose level ``level`` has the given depths; the new blocks are identities."""
    levels = list(model.config.levels)
    if not 0 <= level < len(levels):
        raise ValueError(f"The codec has levels 0 to {len(levels) - 1}; level {level} does not exist.")
    old = levels[level]
    if encoder_depth < old.encoder_depth or decoder_depth < old.decoder_depth:
        raise ValueError(
            f"Growing only adds blocks: level {level} has {old.encoder_depth} encoder and {old.decoder_depth} "
            f"decoder blocks, asked for {encoder_depth} and {decoder_depth}."
        )
    levels[level] = dataclasses.replace(old, encoder_depth=encoder_depth, decoder_depth=decoder_depth)
    grown = MPTVC(dataclasses.replace(model.config, levels=tuple(levels)))
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected:
        raise ValueError(f"The grown codec has no place for {unexpected[:3]}...: not a growth of this codec.")
    grown_level = grown.level(level)
    new_blocks = [
        block
        for transformer, depth in ((grown_level.g_a.transformer, old.encoder_depth),
                                   (grown_level.g_s.transformer, old.decoder_depth))
        for block in list(transformer.blocks)[depth:]
    ]  # fmt: skip
    expected = {id(p) for block in new_blocks for p in block.parameters()}
    named = dict(grown.named_parameters())
    if any(name not in named or id(named[name]) not in expected for name in missing):
        raise ValueError(f"Only the added transformer blocks may be new, but {missing[:3]}... are missing.")
    with torch.no_grad():
        for block in new_blocks:
            assert isinstance(block, AxialBlock)
            for attention in block.attns.values():
                attention.proj.weight.zero_()
                attention.proj.bias.zero_()
            block.mlp.out.weight.zero_()
            block.mlp.out.bias.zero_()
    log.info("grew level %d by %d blocks", level, len(new_blocks))
    return grown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    grow = sub.add_parser("grow", help="write a checkpoint with identity blocks added to one level")
    grow.add_argument("--ckpt", type=Path, required=True, help="checkpoint folder to grow")
    grow.add_argument("--level", type=int, default=2)
    grow.add_argument("--depth", type=int, nargs=2, metavar=("ENCODER", "DECODER"), default=(4, 4))
    grow.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")

    model = MPTVC.from_pretrained(args.ckpt).eval()
    grown = grow_level(model, args.level, *args.depth).eval()
    torch.manual_seed(0)
    clip = (torch.rand(1, 3, 16, 64, 64) * 2 - 1).round(decimals=2)
    with torch.no_grad():
        before, after = model(clip), grown(clip)
    for k, (a, b) in enumerate(zip(before.recon, after.recon, strict=True)):
        if not torch.equal(a, b):
            raise RuntimeError(f"The grown codec decodes level {k} differently: the growth is not an identity.")
    grown.save_pretrained(args.out)
    if (args.ckpt / "training.json").is_file():  # the step the fine-tune's schedule continues from
        shutil.copy2(args.ckpt / "training.json", args.out / "training.json")
    log.info(
        "wrote %s (%d parameters, %d before)",
        args.out,
        *(m.parameter_counts()["total"] for m in (grown, model)),
    )


if __name__ == "__main__":
    main()
